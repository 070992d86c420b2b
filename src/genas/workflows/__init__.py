"""The pipeline's steps as functions over run folders: searches (:mod:`.search`), the end-to-end
run (:mod:`.pipeline`), scoring fixed architectures (:mod:`.score`), the noise grid
(:mod:`.noise_grid`) and loading a supernet run for scoring (:mod:`.scoring`)."""
from .pipeline import RUN_PRESETS, run_pipeline
from .score import score_archs
from .search import SCORING, search_oracle, search_supernet

__all__ = ["RUN_PRESETS", "SCORING", "run_pipeline", "score_archs", "search_oracle", "search_supernet"]
