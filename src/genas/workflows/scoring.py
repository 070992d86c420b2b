"""Loading a finished supernet run folder into the proxies' :class:`ScoringContext`."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import Data, load_data
from ..engine.checkpoint import load_torch
from ..errors import GenasError
from ..io import load_json
from ..proxies import ScoringConfig, ScoringContext
from ..spaces import get_space
from ..supernet import run as rf


def run_data(run: str | Path) -> Data:
    """The dataset and split a supernet run was trained on (``config.json``).

    A run trained on a user's own arrays (``data.json`` source "arrays") cannot be reloaded by name:
    that is a one-line error asking for the same data.
    """
    run = Path(run)
    facts = load_json(run / rf.DATA) if (run / rf.DATA).exists() else {}
    if facts.get("source") == "arrays":
        raise GenasError(f"{run} was trained on in-memory data {facts.get('dataset')!r} (fingerprint "
                         f"{str(facts.get('fingerprint'))[:12]}); score it from Python with the same data "
                         f"passed as data=...")
    cfg = rf.load_run_config(run)
    return load_data(cfg.dataset, cfg.data_dir, cfg.split_seed, cfg.val_fraction, workers=cfg.workers)


def scoring_context(run: str | Path, cfg: ScoringConfig, device: torch.device | str = "cpu",
                    data: Data | None = None) -> ScoringContext:
    """A finished supernet run's final and epoch-0 weights and its data split, ready to score.

    ``data``: the user's own data the supernet was trained on (see :func:`genas.data.from_tensors`);
    by default the run's named dataset. Data whose fingerprint differs from the run's is refused.
    """
    run = rf.require_finished(run)
    scfg = rf.load_run_config(run)
    if data is None:
        data = run_data(run)
    rf.check_data(run, data)
    supernet = rf.load_supernet(run, "final")
    return ScoringContext(get_space(scfg.space), supernet, data, cfg, device, init_state=load_torch(run / rf.INIT))


__all__ = ["run_data", "scoring_context"]
