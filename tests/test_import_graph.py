"""The package's import graph, read from the sources: no cycle, and no import from a lower
layer to a higher one, as the layer table of docs/ARCHITECTURE.md defines the layers.

Every import counts, at module level or inside a function, except those under
``if TYPE_CHECKING:`` (they never run; they only name types for annotations)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGES = ("polytask", "polytask_lab")


def module_files() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (SRC / package).rglob("*.py"):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return skipped


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the packages that ``module`` imports (a name imported from a package is
    the submodule when one has that name, else the package itself)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def layers_from_architecture_doc() -> list[tuple[int, list[str]]]:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) [^|]*\| (.+?) \|$", section, flags=re.M)
    return [(int(n), re.findall(r"`([\w.]+)`", cells)) for n, cells in rows]


def layer_of(module: str, layers: list[tuple[int, list[str]]]) -> int:
    """The layer of the most specific table entry that is ``module`` or a package above it."""
    best: tuple[int, int] | None = None
    for number, entries in layers:
        for entry in entries:
            full = entry if entry.startswith(PACKAGES) else f"polytask.{entry}"
            inside = module.startswith(full + ".") and full != "polytask"  # the root names itself alone
            if module == full or inside:
                if best is None or len(full) > best[1]:
                    best = (number, len(full))
    assert best is not None, f"module '{module}' is in no layer of docs/ARCHITECTURE.md"
    return best[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_module_imports_from_a_higher_layer() -> None:
    layers = layers_from_architecture_doc()
    assert len(layers) >= 5
    graph = import_graph()
    upward = [
        f"{m} (layer {layer_of(m, layers)}) imports {d} (layer {layer_of(d, layers)})"
        for m, deps in sorted(graph.items()) for d in sorted(deps) if layer_of(d, layers) > layer_of(m, layers)
    ]
    assert upward == []


def test_the_checker_sees_cycles_upward_imports_and_function_level_imports(tmp_path: Path) -> None:
    """The checks themselves can fail: a two-module cycle, and an import hidden in a function."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    modules = {"polytask.low": tmp_path / "low.py", "polytask.high": tmp_path / "high.py"}
    modules["polytask.low"].write_text("def f():\n    from polytask.high import g\n")
    modules["polytask.high"].write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from polytask.low import f\n")
    assert imports_of("polytask.low", modules["polytask.low"], modules) == {"polytask.high"}
    assert imports_of("polytask.high", modules["polytask.high"], modules) == set()
