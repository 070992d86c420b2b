"""A supernet run folder's files, and rebuilding its supernet from them.

* ``config.json``        the resolved :class:`~genas.supernet.config.SupernetConfig`
* ``data.json``          dataset facts, the split seed and the data's fingerprint
* ``init.pt``            weights before any step (the angle metric's reference point)
* ``weights_epoch_K.pt`` periodic weight snapshots
* ``checkpoint.pt``      full training state after the last finished epoch (for ``--resume``)
* ``final.pt``           weights after the last epoch
* ``log.jsonl``          one line per epoch
* ``summary.json``       written last; its presence marks a finished run
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .. import seeding
from ..data import Data, check_same_data
from ..engine.checkpoint import load_into, load_torch
from ..errors import GenasError
from ..io import load_json
from ..options import from_dict
from ..run_folder import RunFolder
from ..spaces import NetworkSpec, Supernet, get_space
from .config import SupernetConfig

CHECKPOINT, INIT, FINAL, SUMMARY, CONFIG, LOG, DATA = ("checkpoint.pt", "init.pt", "final.pt", "summary.json",
                                                      "config.json", "log.jsonl", "data.json")


def folder(run: str | Path) -> RunFolder:
    return RunFolder(run, "supernet run", CONFIG)


def snapshot_name(epoch: int) -> str:
    """The weights snapshot kept after ``epoch`` epochs."""
    return f"weights_epoch_{epoch}.pt"


def network_spec(cfg: SupernetConfig, num_classes: int, in_channels: int) -> NetworkSpec:
    """The space-neutral network arguments of a config (each space reads what applies)."""
    return NetworkSpec(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, layers=cfg.layers,
                       num_classes=num_classes, in_channels=in_channels, affine=cfg.affine)


def build_supernet_for(cfg: SupernetConfig, data: Data) -> Supernet:
    """The supernet a config describes, with deterministic initial weights."""
    with torch.random.fork_rng():
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT))
        return get_space(cfg.space).build_supernet(network_spec(cfg, data.num_classes, data.in_channels))


def load_run_config(run: str | Path) -> SupernetConfig:
    return from_dict(SupernetConfig, load_json(Path(run) / CONFIG))


def load_supernet(run: str | Path, which: str = "final", device: torch.device | str = "cpu") -> Supernet:
    """Rebuild a run's supernet with its ``init`` or ``final`` weights (or ``weights_epoch_K``)."""
    run = Path(run)
    cfg = load_run_config(run)
    facts = load_json(run / DATA)
    model = get_space(cfg.space).build_supernet(network_spec(cfg, facts["num_classes"], facts["in_channels"]))
    path = run / (which if which.endswith(".pt") else f"{which}.pt")
    state = load_torch(path)
    if not all(t.isfinite().all() for t in state.values() if t.is_floating_point()):
        raise GenasError(f"{path} holds non-finite weights (the training diverged); it cannot be scored")
    load_into(model, state, path, f"the run's {cfg.space} supernet")
    return model.to(device)


def check_data(run: str | Path, data: Data) -> None:
    """Refuse data other than the run's own (:func:`genas.data.check_same_data`)."""
    check_same_data(load_json(Path(run) / DATA), data, run)


def supernet_digest(run: str | Path) -> str:
    """SHA-256 of the run's ``final.pt``: identifies a supernet wherever its folder is moved or copied."""
    h = hashlib.sha256()
    with open(Path(run) / FINAL, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def require_finished(run: str | Path) -> Path:
    run = Path(run)
    if not (run / FINAL).exists():
        raise GenasError(f"{run} holds no finished supernet ({FINAL} missing); train or --resume it first")
    return run


__all__ = ["CHECKPOINT", "CONFIG", "DATA", "FINAL", "INIT", "LOG", "SUMMARY", "build_supernet_for", "check_data", "folder",
           "load_run_config", "load_supernet", "network_spec", "require_finished", "snapshot_name", "supernet_digest"]
