"""The library and the lab apart: the library never imports the lab (nor its own CLI), the lab's
commands reach ``polytask`` through the ``polytask.commands`` entry points, they cost nothing to
register, and without the lab extra they say so in one line."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest

import polytask.cli as cli
from polytask.cli import add_commands, main, plugin_commands
from polytask.errors import PolytaskError
from polytask_lab.cli import LAB_MODULES, lab_imports

SRC = Path(__file__).resolve().parents[1] / "src"
LAB_MESSAGE = 'error: polytask {} needs the lab extra: pip install "polytask[lab]"\n'


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Every module that ``path`` (a module of ``package``, by default read from its place
    under src/) imports, as absolute names; relative imports resolved."""
    if package is None:
        package = ".".join(path.relative_to(SRC).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _library_modules() -> list[Path]:
    files = sorted((SRC / "polytask").rglob("*.py"))
    assert len(files) > 50  # the walk really found the package
    return files


def test_the_library_never_imports_the_lab() -> None:
    offenders = {str(p.relative_to(SRC)): sorted(n for n in _imports(p) if n.split(".")[0] == "polytask_lab")
                 for p in _library_modules()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_library_module_imports_the_cli() -> None:
    """The CLI sits on top of the library; only the CLI itself and ``python -m polytask`` import it."""
    top = {SRC / "polytask" / "__main__.py"}
    offenders = {str(p.relative_to(SRC)): sorted(n for n in _imports(p) if n == "polytask.cli" or n.startswith("polytask.cli."))
                 for p in _library_modules() if "cli" not in p.relative_to(SRC / "polytask").parts[:1] and p not in top}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_reader_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    """The reader the two tests above rely on: it must not miss an import of the lab."""
    module = tmp_path / "probe.py"
    module.write_text("from polytask_lab import suite\nimport polytask_lab.bench as b\nfrom . import report\n"
                      "from ..cli.common import console\n")
    found = _imports(module, "polytask.compare")
    assert {"polytask_lab", "polytask_lab.suite", "polytask_lab.bench", "polytask.compare.report", "polytask.cli.common"} <= found


def test_the_lab_commands_are_declared_entry_points() -> None:
    declared = {ep.name: ep.value for ep in plugin_commands()}
    assert declared["bench"] == "polytask_lab.cli.bench:command"
    assert declared["experiment"] == "polytask_lab.cli.experiment:command"
    assert {"bench", "experiment"} <= set(cli.app.commands)
    assert cli.app.commands["bench"] is __import__("polytask_lab.cli.bench", fromlist=["command"]).command


def test_plugins_are_added_unless_broken_or_shadowing_a_built_in(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    plugin = types.ModuleType("fake_polytask_plugin")

    @click.command("hello")
    def hello() -> None:
        click.echo("hello from a plugin")

    @click.command("fit")
    def not_fit() -> None:
        raise AssertionError("a plugin must not replace a built-in command")

    plugin.hello, plugin.not_fit = hello, not_fit
    monkeypatch.setitem(sys.modules, "fake_polytask_plugin", plugin)
    eps = [EntryPoint("hello", "fake_polytask_plugin:hello", cli.PLUGIN_GROUP),
           EntryPoint("fit", "fake_polytask_plugin:not_fit", cli.PLUGIN_GROUP),
           EntryPoint("broken", "no_such_module_anywhere:command", cli.PLUGIN_GROUP)]
    monkeypatch.setattr(cli, "entry_points", lambda group: [ep for ep in eps if ep.group == group])
    group = click.Group("polytask")
    add_commands(group)
    assert group.commands["hello"] is hello
    assert group.commands["fit"] is not not_fit and group.commands["fit"].name == "fit"
    assert "broken" not in group.commands
    assert "warning: cannot load the polytask command 'broken'" in capsys.readouterr().err


def test_registering_the_lab_commands_imports_none_of_their_work() -> None:
    """``polytask --help`` loads the lab's command modules; they must not pull in the benchmark,
    the experiments, the suite, the renderer or torchjd (jinja2 is no test: qpsolvers' osqp
    backend, a library dependency, imports it)."""
    code = ("import sys, polytask.cli; "
            "heavy = [m for m in sys.modules if m.split('.')[0] == 'torchjd' "
            "or m.startswith(('polytask_lab.bench', 'polytask_lab.experiments', 'polytask_lab.suite', 'polytask_lab.render'))]; "
            "print(sorted(m for m in sys.modules if m.startswith('polytask_lab.cli')), heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['polytask_lab.cli', 'polytask_lab.cli.bench', 'polytask_lab.cli.experiment'] []"


def _without(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Simulate a missing package: drop it and everything of the lab that imported it."""
    for name in list(sys.modules):
        if name.split(".")[0] == module or name.startswith(("polytask_lab.bench", "polytask_lab.experiments",
                                                              "polytask_lab.render", "polytask_lab.suite")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("module", ["jinja2", "torchjd"])
def test_bench_without_the_lab_extra_is_one_line(module: str, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _without(monkeypatch, module)
    assert main(["bench", "--quick", "--nets", "mlp", "--tasks", "2", "--methods", "ew", "--quiet"]) == 2
    assert capsys.readouterr().err == LAB_MESSAGE.format("bench")


def test_experiment_without_jinja2_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _without(monkeypatch, "jinja2")
    assert main(["experiment", "peaks", "--quick", "--quiet"]) == 2
    assert capsys.readouterr().err == LAB_MESSAGE.format("experiment")


def test_only_missing_lab_packages_become_the_lab_message() -> None:
    assert "jinja2" in LAB_MODULES and "torchjd" in LAB_MODULES
    with pytest.raises(PolytaskError, match='needs the lab extra'):
        with lab_imports("bench", needs=()):
            raise ModuleNotFoundError("No module named 'cvxpy.reductions'", name="cvxpy.reductions")
    with pytest.raises(ModuleNotFoundError, match="not_a_lab_package"):  # a real bug is not disguised as advice
        with lab_imports("bench", needs=()):
            raise ModuleNotFoundError("No module named 'not_a_lab_package'", name="not_a_lab_package")
