"""Search spaces by name. ``get_space(name)`` returns a pure (torch-free) space object."""
from __future__ import annotations

from .base import Genotype, SearchSpace
from .darts import DARTSSpace
from .nb201 import NB201Space

_SPACES = {"nb201": NB201Space, "darts": DARTSSpace}


def list_spaces() -> list[str]:
    return sorted(_SPACES)


def get_space(name: str) -> SearchSpace:
    try:
        return _SPACES[name]()
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; available: {', '.join(list_spaces())}") from None


__all__ = ["Genotype", "SearchSpace", "get_space", "list_spaces"]
