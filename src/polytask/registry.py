"""One registry and one validator for everything a user names: architectures, balancers, data
sets and experiments.

A :class:`Registry` maps names to entries (classes or functions). Lookups normalise the name
(case, ``-`` and spaces count as ``_``: ``Cross-Stitch`` finds ``cross_stitch``), and an unknown
name is one :class:`~polytask.errors.PolytaskError` in one wording: ``unknown <kind> '<name>'
(choose from ...)``. :func:`check_options` checks keyword options against an entry's signature
with the same wording: ``<kind> '<name>' takes no option '<option>' (options: ...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from polytask.errors import PolytaskError

T = TypeVar("T")


def normal_name(name: str) -> str:
    """The form names are compared in: lower case, ``-`` and spaces as ``_``."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


class Registry(Mapping[str, T], Generic[T]):
    """Names of one ``kind`` of thing (``"architecture"``, ``"balancer"``...) and their entries.

    A read-only mapping (``registry[name]``, ``name in registry``, iteration in registration
    order) whose lookups normalise names; :meth:`register` adds an entry."""

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._keys: dict[str, str] = {}  # normal name -> registered name
        for name, entry in (entries or {}).items():
            self.register(name, entry)

    def register(self, name: str, entry: T) -> T:
        """Add (or replace) ``entry`` under ``name``; returns the entry (usable as a decorator helper)."""
        if not str(name).strip():
            raise PolytaskError(f"a {self.kind} needs a non-empty name")
        old = self._keys.get(normal_name(name))
        if old is not None:
            del self._entries[old]
        self._keys[normal_name(name)] = name
        self._entries[name] = entry
        return entry

    def key(self, name: str) -> str:
        """The registered name ``name`` stands for, or a PolytaskError listing the names."""
        found = self._keys.get(normal_name(name))
        if found is None:
            raise PolytaskError(f"unknown {self.kind} '{name}' (choose from {', '.join(self.names())})")
        return found

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[self.key(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normal_name(name) in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def accepted_options(target: Callable[..., Any], structural: tuple[str, ...] = ()) -> list[str]:
    """The keyword options ``target`` (a class or a function) accepts, from its signature,
    leaving out ``self`` and the ``structural`` arguments the caller fills in itself."""
    fn = target.__init__ if inspect.isclass(target) else target  # type: ignore[misc]
    params = inspect.signature(fn).parameters
    skip = {"self", *structural}
    return [p for p, v in params.items() if p not in skip and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]


def check_options(kind: str, name: str, accepted: list[str], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with names normalised, or a PolytaskError naming the first unknown one."""
    by_normal = {normal_name(a): a for a in accepted}
    out: dict[str, Any] = {}
    for key, value in options.items():
        if normal_name(key) not in by_normal:
            choices = ", ".join(accepted) if accepted else "none"
            raise PolytaskError(f"{kind} '{name}' takes no option '{key}' (options: {choices})")
        out[by_normal[normal_name(key)]] = value
    return out
