"""Measure once, calibrate offline: losses of fixed architectures over a grid of noise settings.

Every flatness variant (noise scaling, perturbed parameters, sigma list, alpha, depth at sigma_1 or
at sigma=0) is a function of the validation losses at a few noise stds plus the unperturbed loss.
``noise_grid`` measures those losses once per architecture for a grid of (scaling, params, stds)
blocks, with independent noise per std and common random numbers (one draw, not antithetic), so any
sigma list drawn from a block's stds scores exactly as the flatness proxy would with those settings. The analysis
(:mod:`genas.analysis.calibration`) then costs no forward pass.

Output: one JSONL row per (genotype, seed), appended as each architecture finishes, next to a
``grid.json`` header that a resumed run must match.
"""
from __future__ import annotations

import dataclasses as dc
import json
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..engine.distributed import resolve_device
from ..engine.precision import exact_fp32
from ..errors import GenasError
from ..io import append_jsonl, load_json, read_jsonl, save_json
from ..options import to_dict
from ..proxies.config import stored_scoring_defaults
from ..proxies.measure import losses_under_noise
from ..proxies.perturb import NOISE_PARAMS, NOISE_SCALINGS
from ..run_folder import FileLock
from ..supernet.run import require_finished, supernet_digest
from .scoring import scoring_context


# block name -> (noise scaling, perturbed parameters, stds); doubling ladders plus the paper's sigmas
DEFAULT_GRID: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "absolute/all": ("absolute", "all", (0.001, 0.002, 0.003, 0.004, 0.006, 0.008, 0.016)),
    "absolute/weights": ("absolute", "weights", (0.001, 0.003, 0.006)),
    "element/all": ("element", "all", (0.025, 0.05, 0.1, 0.2)),
    "filter/weights": ("filter", "weights", (0.025, 0.05, 0.1, 0.2)),
}


def parse_grid(text: str | None) -> dict[str, tuple[str, str, tuple[float, ...]]]:
    """``scaling/params:s1,s2,...;...`` -> grid; None or "" gives ``DEFAULT_GRID``."""
    if not text:
        return dict(DEFAULT_GRID)
    grid = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, stds = part.partition(":")
        scaling, _, params = name.partition("/")
        if scaling not in NOISE_SCALINGS or params not in NOISE_PARAMS or not stds:
            raise GenasError(f"bad --grid block {part!r}; write SCALING/PARAMS:S1,S2,... with SCALING in "
                             f"{', '.join(NOISE_SCALINGS)} and PARAMS in {', '.join(NOISE_PARAMS)}")
        try:
            values = tuple(sorted(float(s) for s in stds.split(",") if s.strip()))
        except ValueError:
            raise GenasError(f"bad stds in --grid block {part!r}") from None
        if not values or values[0] <= 0 or len(set(values)) != len(values):
            raise GenasError(f"--grid block {part!r} needs distinct positive stds")
        grid[f"{scaling}/{params}"] = (scaling, params, values)
    return grid


def noise_grid(genotypes: Sequence[str], run: str | Path, out_file: str | Path, seeds: Sequence[int], scoring_cfg,
               grid: dict | None = None, device: str = "cpu", progress: bool | None = None) -> int:
    """Append, per (genotype, seed), the unperturbed loss/accuracy and the losses of every grid block.

    Resumable: rows already in ``out_file`` are skipped; a header ``<out_file>.grid.json`` records the
    grid and scoring settings, and resuming with different ones is refused. Returns rows written.
    """
    grid = dict(grid or DEFAULT_GRID)
    out_file = Path(out_file)
    with FileLock(out_file):  # one process appends to a grid file
        return _measure(genotypes, run, out_file, seeds, scoring_cfg, grid, device, progress)


def _measure(genotypes, run, out_file: Path, seeds, scoring_cfg, grid: dict, device: str, progress) -> int:
    header_path = out_file.with_suffix(".grid.json")
    measured_cfg = dc.replace(scoring_cfg.validate(), seed=0, noise_antithetic=False)  # the grid draws once
    header = json.loads(json.dumps(dict(grid=grid, scoring=to_dict(measured_cfg),
                                        supernet=supernet_digest(require_finished(run)))))
    if header_path.exists():
        saved = load_json(header_path)
        saved["scoring"] = {**stored_scoring_defaults(), **saved.get("scoring", {})}  # keys added since
        if "supernet_run" in saved:  # made before the digest: its absolute path is no identity (moved folders)
            saved = {k: v for k, v in saved.items() if k != "supernet_run"}
            header_cmp = {k: v for k, v in header.items() if k != "supernet"}
        else:
            header_cmp = header
        if saved != header_cmp:
            diff = sorted(k for k in header_cmp if saved.get(k) != header_cmp[k])
            raise GenasError(f"{out_file} was measured with other settings ({', '.join(diff)}); "
                             f"use another -o")
    done = {(r["genotype"], r["seed"]) for r in read_jsonl(out_file)}
    todo = [(g, s) for s in seeds for g in genotypes if (g, s) not in done]
    if not todo:
        return 0
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_json(header, header_path)
    dev = resolve_device(device)
    contexts = {s: scoring_context(run, dc.replace(scoring_cfg, seed=s), dev) for s in seeds}
    written = 0
    for text, seed in tqdm(todo, desc="noise grid", disable=None if progress is None else not progress):
        ctx = contexts[seed]
        genotype = ctx.space.parse(text)
        t0 = time.perf_counter()
        base = ctx.evaluation(genotype)
        net = ctx.recalibrated(genotype)
        blocks = {}
        for name, (scaling, params, stds) in grid.items():
            with exact_fp32():  # as the flatness proxy: TF32 and autocast off
                measured = losses_under_noise(net, ctx.val_batches, stds, seed=seed, mode="independent",
                                              key_of=ctx.noise_key(genotype), scaling=scaling, params=params,
                                              channels_last=ctx.cfg.channels_last, fuse_bn=ctx.cfg.fuse_bn)
            blocks[name] = dict(stds=list(stds), losses=measured.losses)
        append_jsonl(dict(genotype=text, seed=seed, loss0=base["loss"], accuracy0=base["accuracy"],
                          images=base["images"], blocks=blocks, seconds=round(time.perf_counter() - t0, 3)),
                     out_file)
        written += 1
    return written
