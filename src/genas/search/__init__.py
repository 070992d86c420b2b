"""Search strategies over a pure search space (evolution as in GeNAS/SPOS, random search).

Strategies see only the space and an ``evaluate(genotypes) -> list`` callable, so the same code runs
against a tabular benchmark, a trained supernet or a zero-cost proxy. Nothing here imports torch.
"""
from .driver import LOG, RESULT, STATE, STRATEGIES, make_config, make_strategy, read_search_config, run_search, search_result
from .evolution import Evolution, EvolutionConfig
from .oracle import TabularOracle
from .random_search import RandomSearch, RandomSearchConfig
from .strategy import SearchConfig, SearchStrategy

__all__ = [
    "Evolution", "EvolutionConfig", "RandomSearch", "RandomSearchConfig", "SearchConfig", "SearchStrategy",
    "TabularOracle", "STRATEGIES", "make_config", "make_strategy", "read_search_config", "run_search",
    "search_result", "STATE", "LOG", "RESULT",
]
