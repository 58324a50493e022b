"""Modules keyed by task name, whatever the name.

Task names are the user's column names (``Grad.Rate``, ``train``, ``%change``...), but a torch
module name may not contain ``.``, be empty or shadow an attribute of the container. A task's
*module key* is its name when the name is a valid key, else ``"task%"`` followed by the name with
``%`` written ``%25`` and ``.`` written ``%2E``. The mapping is one to one (a plain key holds no
``%``, an encoded one always does), plain names keep their old keys (model directories saved
before keys were encoded load unchanged), and only state-dict keys see the encoded form:
:class:`TaskModules` is indexed, iterated and listed by task name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from torch import nn

#: Names a module key may not take (attributes of the container).
_RESERVED = frozenset(dir(nn.ModuleDict()))
PREFIX = "task%"


def module_key(name: str) -> str:
    """The module key of task ``name`` (see the module docstring)."""
    if name and "." not in name and "%" not in name and name not in _RESERVED:
        return name
    return PREFIX + name.replace("%", "%25").replace(".", "%2E")


def task_name(key: str) -> str:
    """The task name a module key stands for (inverse of :func:`module_key`)."""
    if not key.startswith(PREFIX):
        return key
    return key[len(PREFIX):].replace("%2E", ".").replace("%25", "%")


class TaskModules(nn.ModuleDict):
    """A ``ModuleDict`` whose keys are task names (stored under their :func:`module_key`)."""

    def __init__(self, modules: Mapping[str, nn.Module] | Iterable[tuple[str, nn.Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, name: str) -> nn.Module:  # type: ignore[override]
        return self._modules[module_key(name)]  # type: ignore[return-value]

    def __setitem__(self, name: str, module: nn.Module) -> None:
        self.add_module(module_key(name), module)

    def __delitem__(self, name: str) -> None:
        del self._modules[module_key(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and module_key(name) in self._modules

    def __iter__(self) -> Iterator[str]:
        return (task_name(k) for k in self._modules)

    def keys(self) -> list[str]:  # type: ignore[override]
        return [task_name(k) for k in self._modules]

    def items(self) -> list[tuple[str, nn.Module]]:  # type: ignore[override]
        return [(task_name(k), m) for k, m in self._modules.items()]  # type: ignore[misc]

    def values(self) -> list[nn.Module]:  # type: ignore[override]
        return list(self._modules.values())  # type: ignore[arg-type]

    def update(self, modules: Mapping[str, nn.Module] | Iterable[tuple[str, nn.Module]]) -> None:  # type: ignore[override]
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for name, module in pairs:
            self[name] = module
