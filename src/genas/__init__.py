"""genas: neural architecture search with flatness-based scoring (GeNAS, IJCAI 2023).

The Python API, one call per pipeline step (each writes into a run folder, as the CLI does)::

    import genas

    data = genas.data.from_tensors(train_x, train_y, test_x, test_y)     # or a dataset by name
    cfg = genas.supernet_config("quick", space="nb201", epochs=2)
    genas.train_supernet(cfg, "runs/a", data=data)
    found = genas.search_run("runs/a", metric="flatness", seed=0, data=data, population=20, generations=5)
    rcfg = genas.retrain_config("quick", space="nb201", genotype=genas.winner_genotype(found), epochs=2)
    genas.retrain(rcfg, "runs/a/retrain", data=data)
    genas.export_run("runs/a", "runs/a/export")

Every name is imported on first use, so ``import genas`` stays light and torch is imported only
when an entry point needs it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import GenasError

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None: the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "train_supernet": ("genas.supernet.train", "train_supernet"),
    "SupernetConfig": ("genas.supernet.config", "SupernetConfig"),
    "supernet_config": ("genas.supernet.config", "supernet_config"),
    "ScoringConfig": ("genas.proxies.config", "ScoringConfig"),
    "scoring_config": ("genas.proxies.config", "scoring_config"),
    "retrain": ("genas.train.retrain", "retrain"),
    "retrain_config": ("genas.train.recipes", "retrain_config"),
    "search_run": ("genas.workflows.search", "search_run"),
    "export_run": ("genas.export", "export_run"),
    "score": ("genas.workflows.score", "score_archs"),
    "correlate": ("genas.analysis.correlation", "correlate"),
    "run_pipeline": ("genas.workflows.pipeline", "run_pipeline"),
    "get_space": ("genas.spaces", "get_space"),
    "register_space": ("genas.spaces", "register_space"),
    "list_spaces": ("genas.spaces", "list_spaces"),
    "NetworkSpec": ("genas.spaces", "NetworkSpec"),
    "SearchSpace": ("genas.spaces", "SearchSpace"),
    "winner_genotype": ("genas.spaces", "winner_genotype"),
    "data": ("genas.data", None),
}
__all__ = ["GenasError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module) if attr is None else getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for editors and type checkers; nothing is imported at run time
    from . import data
    from .export import export_run
    from .analysis.correlation import correlate
    from .proxies.config import ScoringConfig, scoring_config
    from .spaces import NetworkSpec, SearchSpace, get_space, list_spaces, register_space, winner_genotype
    from .supernet.config import SupernetConfig, supernet_config
    from .supernet.train import train_supernet
    from .train.recipes import retrain_config
    from .train.retrain import retrain
    from .workflows.pipeline import run_pipeline
    from .workflows.score import score_archs as score
    from .workflows.search import search_run
