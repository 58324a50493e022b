"""One self-contained HTML report: the Markdown tables rendered as HTML tables, the PNG figures
embedded as base64 data URIs where the Markdown places them (no external file, script or style
sheet)."""

from __future__ import annotations

import base64
import html as html_lib
import re
from collections.abc import Mapping


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold** spans."""
    out = []
    for i, part in enumerate(text.split("`")):
        if i % 2:
            out.append(f"<code>{html_lib.escape(part)}</code>")
            continue
        bold = html_lib.escape(part).split("**")
        out.append("".join(f"<strong>{p}</strong>" if j % 2 else p for j, p in enumerate(bold)))
    return "".join(out)


def _figure(caption: str, png: bytes) -> str:
    return (f'<figure><img alt="{html_lib.escape(caption)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            f"<figcaption>{html_lib.escape(caption)}</figcaption></figure>")


IMAGE = re.compile(r"^!\[(?P<caption>[^\]]*)\]\((?P<path>[^)]*)\)$")


class _Blocks:
    """The HTML blocks of a Markdown document, with the open table or list."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.table: list[list[str]] = []
        self.items: list[str] = []

    def flush(self) -> None:
        if self.table:
            head, *body = self.table
            rows = [f"<tr>{''.join(f'<th>{_inline(c)}</th>' for c in head)}</tr>"]
            rows += [f"<tr>{''.join(f'<td>{_inline(c)}</td>' for c in r)}</tr>" for r in body]
            self.blocks.append('<div class="scroll"><table>' + "".join(rows) + "</table></div>")
            self.table.clear()
        if self.items:
            self.blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in self.items) + "</ul>")
            self.items.clear()


def markdown_to_html(md: str, images: Mapping[str, bytes] | None = None) -> str:
    """Render the small Markdown subset our reports use: headings, pipe tables, bullet lists,
    fenced code, paragraphs, and ``![caption](file.png)`` lines, which become the embedded
    figure of that caption in ``images`` (dropped when there is none)."""
    images = images or {}
    out = _Blocks()
    code: list[str] | None = None
    for line in md.splitlines():
        s = line.strip()
        if code is not None:
            if s.startswith("```"):
                out.blocks.append(f"<pre><code>{html_lib.escape(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        if s.startswith("```"):
            out.flush()
            code = []
        elif s.startswith("|"):
            cells = [c.strip() for c in s.strip("|").split("|")]
            if not all(set(c) <= {"-", ":", " "} for c in cells):
                out.table.append(cells)
        elif s.startswith("- "):
            out.items.append(s[2:])
        else:
            out.flush()
            image = IMAGE.match(s)
            if image:
                if image["caption"] in images:
                    out.blocks.append(_figure(image["caption"], images[image["caption"]]))
            elif s.startswith("#"):
                level = min(len(s) - len(s.lstrip("#")), 6)
                out.blocks.append(f"<h{level}>{_inline(s.lstrip('#').strip())}</h{level}>")
            elif s:
                out.blocks.append(f"<p>{_inline(s)}</p>")
    out.flush()
    return "\n".join(out.blocks)


STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f2f2f2}.scroll{overflow-x:auto}img{max-width:100%;display:block;margin:1em 0}
figure{margin:1.5em 0}figcaption{color:#555;font-size:0.9em}
pre{background:#f6f6f6;padding:0.6em 0.8em;overflow-x:auto}code{font-size:0.92em}"""


def render(title: str, markdown_text: str, images: Mapping[str, bytes]) -> str:
    """The HTML document: the Markdown body with each image where the Markdown names it by its
    caption; images it does not name follow at the end."""
    placed = {m["caption"] for m in (IMAGE.match(line.strip()) for line in markdown_text.splitlines()) if m}
    rest = "".join(_figure(cap, png) for cap, png in images.items() if cap not in placed)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html_lib.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{markdown_to_html(markdown_text, images)}{rest}</body></html>\n")
