"""Fine-tuning a found subnet from its supernet weights (``genas retrain --init-from-supernet RUN``).

The network is the space's extracted path (:meth:`~genas.spaces.Supernet.extract`): by the
space's contract it is the stand-alone network whose parameters ``subnet_state_dict`` names, so
the inherited weights load strictly and the network starts out computing exactly the supernet's
function of that path (NB201: cell BNs affine only when the supernet's are; DARTS: a BN after each
pool, no auxiliary head). Its size is the supernet's (channels, cells), not the recipe's. The
supernet is identified by the SHA-256 of its ``final.pt`` (``supernet_digest``), so a moved folder
still resumes and other weights are refused. Reads the supernet folder's JSON and weights
directly (the training layer does not import the supernet package).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from .. import seeding
from ..data import Data, check_same_data
from ..engine.checkpoint import load_into, load_torch
from ..errors import GenasError
from ..io import load_json
from ..spaces import NetworkSpec, get_space, winner_genotype

CONFIG, DATA, FINAL = "config.json", "data.json", "final.pt"
# settings a fine-tuning run takes from the supernet (the network's shape and the data it was trained on)
SHAPE = ("space", "channels", "layers", "cells_per_stage")
DATA_KEYS = ("dataset", "data_dir", "split_seed")


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _supernet_files(run: str | Path) -> tuple[Path, dict]:
    run = Path(run)
    if not (run / CONFIG).is_file() or not (run / FINAL).is_file():
        raise GenasError(f"--init-from-supernet {run}: not a finished train-supernet run folder "
                         f"({CONFIG} or {FINAL} missing)")
    saved = load_json(run / CONFIG)
    if not isinstance(saved, dict) or not all(k in saved for k in SHAPE):
        raise GenasError(f"--init-from-supernet {run}: {run / CONFIG} is not a supernet config")
    return run, saved


def supernet_settings(run: str | Path, passed: dict[str, Any]) -> dict[str, Any]:
    """The retrain settings a fine-tune of ``run``'s supernet must use, merged into ``passed`` (the
    options the user gave): the supernet's space and size (a contradicting option is an error),
    its dataset, data folder and split unless given, no auxiliary head, cifar style, the digest."""
    run, saved = _supernet_files(run)
    for key in SHAPE:
        if passed.get(key) is not None and passed[key] != saved[key]:
            raise GenasError(f"--init-from-supernet: the supernet in {run} has {key}={saved[key]!r}; "
                             f"a fine-tune cannot use {key}={passed[key]!r}")
    if passed.get("auxiliary"):
        raise GenasError("--init-from-supernet: the supernet's path has no auxiliary head; retrain with --no-auxiliary")
    if passed.get("style", "cifar") != "cifar":
        raise GenasError("--init-from-supernet: the supernet's path is a cifar-style network")
    values = {**passed, **{k: saved[k] for k in SHAPE}, "auxiliary": False, "style": "cifar",
              "supernet_affine": bool(saved.get("affine", False)), "supernet_digest": digest(run / FINAL),
              "init_from_supernet": str(run)}
    for key in DATA_KEYS:
        if passed.get(key) is None and saved.get(key) is not None:
            values[key] = saved[key]
    return values


def found_genotype(run: str | Path) -> str:
    """The winner of the one search in ``run`` (``RUN/search-*/result.json``), pruned of dead ops."""
    run = Path(run)
    found = sorted(run.glob("search-*/result.json"))
    if len(found) != 1:
        where = ", ".join(str(p.parent.name) for p in found) or "none"
        raise GenasError(f"--init-from-supernet {run}: give --genotype or --result; the run has "
                         f"{len(found)} searches ({where}), not exactly one")
    result = load_json(found[0])
    if not isinstance(result, dict) or "best" not in result or "space" not in result:
        raise GenasError(f"{found[0]} is not a search result.json (no 'best'/'space')")
    return winner_genotype(result)


def _supernet(cfg, num_classes: int, in_channels: int):
    spec = NetworkSpec(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, layers=cfg.layers,
                       num_classes=num_classes, in_channels=in_channels, affine=cfg.supernet_affine)
    with torch.random.fork_rng():
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT, 1))
        return get_space(cfg.space).build_supernet(spec)


def subnet_network(cfg, genotype, num_classes: int, in_channels: int) -> torch.nn.Module:
    """The extracted path's network of ``genotype`` at the supernet's size (seeded weights: the
    inherited ones are loaded by :func:`inherit`, a resumed run's from its checkpoint)."""
    return _supernet(cfg, num_classes, in_channels).extract(tuple(genotype))


def inherit(cfg, genotype, net: torch.nn.Module, data: Data) -> None:
    """Load the supernet's weights of ``genotype``'s path into ``net``; refuses a supernet whose
    ``final.pt`` is not the recorded one and data other than the supernet's."""
    run, _ = _supernet_files(cfg.init_from_supernet)
    path = run / FINAL
    if digest(path) != cfg.supernet_digest:
        raise GenasError(f"{path} is not the supernet this fine-tune was started from (its sha256 differs)")
    check_same_data(load_json(run / DATA), data, run)
    supernet = _supernet(cfg, data.num_classes, data.in_channels)
    load_into(supernet, load_torch(path), path, f"the run's {cfg.space} supernet")
    load_into(net, supernet.subnet_state_dict(tuple(genotype)), path, "the extracted path")


__all__ = ["digest", "found_genotype", "inherit", "subnet_network", "supernet_settings"]
