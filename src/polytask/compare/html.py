"""One self-contained HTML report: the Markdown tables rendered as HTML tables, the PNG figures
embedded as base64 data URIs (no external file, script or style sheet)."""

from __future__ import annotations

import base64
import html as html_lib
from collections.abc import Mapping


def _inline(text: str) -> str:
    """Escape, then render **bold** spans."""
    out = html_lib.escape(text)
    parts = out.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def markdown_to_html(md: str) -> str:
    """Render the small Markdown subset our reports use: headings, pipe tables, bullet lists,
    paragraphs and ``![caption](file.png)`` images (left to the caller)."""
    blocks: list[str] = []
    table: list[list[str]] = []
    items: list[str] = []

    def flush() -> None:
        if table:
            head, *body = table
            rows = [f"<tr>{''.join(f'<th>{_inline(c)}</th>' for c in head)}</tr>"]
            rows += [f"<tr>{''.join(f'<td>{_inline(c)}</td>' for c in r)}</tr>" for r in body]
            blocks.append("<table>" + "".join(rows) + "</table>")
            table.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in md.splitlines():
        s = line.strip()
        if s.startswith("|"):
            cells = [c.strip() for c in s.strip("|").split("|")]
            if not all(set(c) <= {"-", ":", " "} for c in cells):
                table.append(cells)
            continue
        if s.startswith("- "):
            items.append(s[2:])
            continue
        flush()
        if not s or s.startswith("!["):
            continue
        if s.startswith("#"):
            level = min(len(s) - len(s.lstrip("#")), 6)
            blocks.append(f"<h{level}>{_inline(s.lstrip('#').strip())}</h{level}>")
        else:
            blocks.append(f"<p>{_inline(s)}</p>")
    flush()
    return "\n".join(blocks)


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f2f2f2}img{max-width:100%;display:block;margin:1em 0}figcaption{color:#555;font-size:0.9em}"""


def render(title: str, markdown_text: str, images: Mapping[str, bytes]) -> str:
    """The HTML document: the Markdown body, then every image as an embedded PNG."""
    figures = "".join(
        f'<figure><img alt="{html_lib.escape(cap)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{html_lib.escape(cap)}</figcaption></figure>"
        for cap, png in images.items()
    )
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html_lib.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{markdown_to_html(markdown_text)}{figures}</body></html>\n")
