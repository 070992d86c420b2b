"""Search spaces by name. ``get_space(name)`` returns a pure (torch-free) space object;
``register_space(name, cls)`` adds a user's own space (a :class:`SearchSpace` subclass)."""
from __future__ import annotations

from ..registry import Registry
from .base import Genotype, NetworkSpec, SearchSpace, Supernet
from .darts import DARTSSpace
from .nb201 import NB201Space

SPACES: Registry[type[SearchSpace]] = Registry("search space")
SPACES.register("nb201", NB201Space)
SPACES.register("darts", DARTSSpace)


def register_space(name: str, cls: type[SearchSpace]) -> type[SearchSpace]:
    """Make ``cls`` available as ``--space name`` everywhere (CLI, configs, Python)."""
    if not (isinstance(cls, type) and issubclass(cls, SearchSpace)):
        raise TypeError(f"a search space must subclass genas.spaces.SearchSpace, got {cls!r}")
    if getattr(cls, "name", name) != name:
        raise ValueError(f"{cls.__name__}.name is {cls.name!r}; register it under that name, not {name!r}")
    cls.name = name
    return SPACES.register(name, cls)


def list_spaces() -> list[str]:
    return SPACES.names()


def get_space(name: str) -> SearchSpace:
    """A fresh space object; an unknown name is a one-line GenasError."""
    return SPACES.get(name)()


__all__ = ["Genotype", "NetworkSpec", "SearchSpace", "Supernet", "SPACES", "get_space", "list_spaces",
           "register_space"]
