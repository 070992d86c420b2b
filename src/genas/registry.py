"""One registry shape for everything chosen by name: spaces, proxies, strategies, datasets,
published genotypes and presets (after torchvision's ``models/_api.py``: register / list / get,
duplicates refused).

An unknown name is a :class:`GenasError` that lists what is available, so wherever a name enters
(CLI option, config file, Python call) the user gets one line, not a traceback. Each entry may
carry metadata (e.g. what a proxy needs), declared once at registration.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import GenasError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``what`` names the kind in error messages)."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: T | None = None, **meta) -> Callable[[T], T] | T:
        """``registry.register(name, obj)`` or, as a decorator, ``@registry.register(name, **meta)``."""
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} registered twice")
            self._items[name] = item
            self._meta[name] = dict(meta)
            return item

        return add(obj) if obj is not None else add

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests and for replacing a user's own registration)."""
        self._items.pop(name, None)
        self._meta.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise GenasError(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}") from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def check(self, name: str) -> str:
        """``name`` if registered, else the one-line error."""
        self.get(name)
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["Registry"]
