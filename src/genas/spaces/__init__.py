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


def resolve_genotype(space_name: str, text: str, needed_by: str = "this command") -> Genotype:
    """Genotype of a canonical string, or of a published name of the space (e.g. ``DARTS_V2``);
    anything else is a one-line GenasError naming ``needed_by``'s option ``--genotype``."""
    from ..errors import GenasError

    space = get_space(space_name)
    if not isinstance(text, str) or not text.strip():
        raise GenasError(f"{needed_by} needs a {space_name} genotype string (--genotype)")
    published = space.published()
    if text.strip().upper() in published:
        return published[text.strip().upper()]
    try:
        return space.parse(text)
    except ValueError as exc:
        extra = f" (or a published name: {', '.join(published)})" if published and "(" not in text else ""
        raise GenasError(f"bad {space_name} genotype: {exc}{extra}") from None


def winner_genotype(result: dict, started: str | None = None) -> str:
    """The string a search ``result.json``'s winner is retrained as: its ``best.genotype`` with the
    ops that cannot reach the output removed (``SearchSpace.prune``), so a retrained winner carries
    no dead module. Derived, not read, so results saved before pruning existed give the same string.

    ``started`` is the genotype a retraining already started stores; one started before pruning
    existed (the raw winner) keeps that string, so resuming it never changes the network."""
    space = get_space(result["space"])
    raw = result["best"]["genotype"]
    return raw if started == raw else space.format(space.prune(resolve_genotype(result["space"], raw, "a search result")))


__all__ = ["Genotype", "NetworkSpec", "SearchSpace", "Supernet", "SPACES", "get_space", "list_spaces",
           "register_space", "resolve_genotype", "winner_genotype"]
