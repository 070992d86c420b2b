"""Scoring fixed architectures with several proxies and seeds (``genas score``)."""
from __future__ import annotations

import dataclasses as dc
from pathlib import Path

from tqdm import tqdm

from ..data import load_data
from ..engine.distributed import resolve_device
from ..errors import GenasError
from ..io import append_jsonl, read_jsonl
from ..run_folder import FileLock
from ..proxies import ProxyContext, flatness_score, get_proxy, needs_supernet
from ..spaces import NetworkSpec, get_space
from .scoring import scoring_context


def _contexts(seeds, scoring_cfg, run, network: dict | None, data_args: dict | None, space: str, dev,
              data=None) -> dict:
    """One proxy context per seed: on the supernet of ``run``, or data-only on fresh networks."""
    contexts = {}
    if run is None and data is None:
        data = load_data(**(data_args or {}))
    for seed in seeds:
        cfg = dc.replace(scoring_cfg, seed=seed)
        if run is not None:
            ctx = scoring_context(run, cfg, dev, data=data)
            data = ctx.data  # the run's data, loaded once for every seed
            if network:  # zero-cost proxies on networks of another size than the supernet
                ctx.spec = ctx.spec.replace(**network)
        else:
            spec = NetworkSpec(num_classes=data.num_classes, in_channels=data.in_channels).replace(**(network or {}))
            ctx = ProxyContext(get_space(space), data, cfg, spec, dev)
        contexts[seed] = ctx
    return contexts


def _score_row(ctx, text: str, seed: int, metrics, noise_modes, scoring_cfg) -> dict:
    genotype = ctx.space.parse(text)
    row = dict(genotype=text, seed=seed)
    for metric in metrics:
        modes = noise_modes if "flatness" in metric else (None,)
        for mode in modes:
            if mode is not None:
                ctx.cfg = dc.replace(scoring_cfg, seed=seed, noise_mode=mode)
            col = metric if mode is None or len(noise_modes) == 1 else f"{metric}_{mode}"
            res = get_proxy(metric)(ctx, genotype)
            row[col] = res.value
            if metric == "flatness":
                row[col.replace("flatness", "flatness_alpha0")] = flatness_score(
                    res.raw["losses"], ctx.cfg.stds, 0.0, ctx.cfg.eps)
                row[col.replace("flatness", "flatness_losses")] = res.raw["losses"]
            elif metric == "angle+flatness" and mode == modes[0]:
                row["flatness_share_angle"] = res.raw["flatness_share"]
    return row


def _check_same_columns(rows: list[dict], metrics, noise_modes, out_file: Path) -> None:
    """Resuming a scores file with metrics its rows lack would skip them silently: refuse instead."""
    if not rows:
        return
    wanted = {m if "flatness" not in m or len(noise_modes) == 1 else f"{m}_{noise_modes[0]}" for m in metrics}
    missing = sorted(wanted - set(rows[0]))
    if missing:
        raise GenasError(f"{out_file} holds rows scored without {', '.join(missing)}; they would not be computed "
                         f"for those rows: write the new metrics to another -o file")


def score_archs(genotypes: list[str], metrics: list[str], out_file: str | Path, seeds: list[int], scoring_cfg,
                run: str | Path | None = None, network: dict | None = None, data_args: dict | None = None,
                noise_modes: tuple[str, ...] = ("independent",), device: str = "cpu",
                progress: bool | None = None, space: str = "nb201", data=None) -> int:
    """Score fixed architectures with several proxies and seeds; append one JSONL row per (genotype, seed).

    Flatness rows carry the raw losses and, from the same losses, the alpha=0 variant
    (``flatness_alpha0``); with several noise modes the columns get a ``_<mode>`` suffix.
    ``network``: NetworkSpec fields (e.g. channels, cells_per_stage) of the fresh networks the
    zero-cost proxies build. ``data``: a :class:`~genas.data.Data` (e.g. the user's own arrays,
    :func:`genas.data.from_tensors`) instead of ``data_args`` or the run's named dataset; with
    ``run`` it must be the run's own data. Resumable: rows already in ``out_file`` are skipped.
    Returns the number of rows written.
    """
    for m in metrics:
        get_proxy(m)
    supernet_metrics = [m for m in metrics if needs_supernet(m)]
    if supernet_metrics and run is None:
        raise GenasError(f"metrics {', '.join(supernet_metrics)} need a supernet: pass --run")
    out_file = Path(out_file)
    with FileLock(out_file):  # one process appends to a scores file
        return _score_locked(genotypes, metrics, out_file, seeds, scoring_cfg, run, network, data_args, noise_modes,
                             device, progress, space, data)


def _score_locked(genotypes, metrics, out_file: Path, seeds, scoring_cfg, run, network, data_args, noise_modes,
                  device, progress, space, data) -> int:
    rows = read_jsonl(out_file)
    _check_same_columns(rows, metrics, noise_modes, out_file)
    done = {(r["genotype"], r["seed"]) for r in rows}
    todo = [(g, s) for s in seeds for g in genotypes if (g, s) not in done]
    if not todo:
        return 0
    contexts = _contexts(seeds, scoring_cfg, run, network, data_args, space, resolve_device(device), data)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    for text, seed in tqdm(todo, desc="scoring", disable=None if progress is None else not progress):
        append_jsonl(_score_row(contexts[seed], text, seed, metrics, noise_modes, scoring_cfg), out_file)
        written += 1
    return written


__all__ = ["score_archs"]
