"""The end-to-end ``genas run``: train a supernet -> search -> retrain the winner -> report."""
from __future__ import annotations

import time
from pathlib import Path

from ..analysis.report import write_search_report
from ..errors import GenasError
from ..io import load_json, read_jsonl, save_json
from ..proxies import ScoringConfig, get_proxy
from ..search import LOG, RESULT, make_config
from ..supernet.config import supernet_config
from ..run_folder import RunFolder
from ..supernet.run import CONFIG, SUMMARY, load_run_config
from ..supernet.train import train_supernet
from ..train.recipes import retrain_config
from ..train.retrain import retrain
from .search import search_supernet

RUN = "run.json"

# End-to-end presets: supernet preset, search sizes, scoring and retraining settings.
RUN_PRESETS = {
    "quick": dict(supernet="quick",
                  search=dict(population=20, topk=5, mutations=10, crossovers=10, generations=5),
                  scoring=dict(val_images=1000, bn_images=256),
                  retrain_preset="quick", retrain=dict()),
    "default": dict(supernet="default", search=dict(), scoring=dict(val_images=5000),
                    retrain_preset="quick", retrain=dict(epochs=20, max_train_images=None)),
    "paper": dict(supernet="paper", search=dict(), scoring=dict(val_images=None, bn_images=896),
                  retrain_preset="cifar", retrain=dict()),
}


def run_pipeline(preset: str, out: str | Path, metric: str = "flatness", seed: int = 0, space: str = "nb201",
                 dataset: str | None = None, data_dir: str | None = None, resume: bool = False, device: str = "auto",
                 progress: bool | None = None, data=None) -> dict:
    """train-supernet -> search -> stand-alone retraining of the winner -> report, in one folder.

    ``data``: a :class:`~genas.data.Data` (e.g. :func:`genas.data.from_tensors`) used by every step
    instead of the named ``dataset``. ``run.json`` records each step's seconds; a step finished in an
    earlier session keeps the seconds recorded then (re-reporting a finished run changes no timing).
    """
    if preset not in RUN_PRESETS:
        raise GenasError(f"unknown preset {preset!r}; available: {', '.join(RUN_PRESETS)}")
    get_proxy(metric)
    folder = RunFolder(out, "genas run", CONFIG)
    with folder.locked():
        resuming = folder.open(resume)
        if not resuming:
            folder.require_empty()
        return _run_steps(RUN_PRESETS[preset], preset, folder.path, metric, seed, space, dataset, data_dir, resuming,
                          device, progress, data)


def _run_steps(p: dict, preset: str, out: Path, metric: str, seed: int, space: str, dataset, data_dir,
               resuming: bool, device: str, progress, data) -> dict:
    earlier = load_json(out / RUN).get("seconds", {}) if (out / RUN).exists() else {}
    seconds: dict[str, float] = {}

    def timed(step: str, finished_before: bool, work):
        t0 = time.perf_counter()
        value = work()
        seconds[step] = earlier.get(step) if finished_before and step in earlier else round(time.perf_counter() - t0, 1)
        return value

    if resuming:
        scfg = load_run_config(out)
        if scfg.preset != p["supernet"] or scfg.seed != seed or scfg.space != space:
            raise GenasError(f"{out} was started with preset {scfg.preset!r}, seed {scfg.seed} and space "
                             f"{scfg.space!r}; cannot resume it as preset {preset!r} with seed {seed} and space {space!r}")
    else:
        scfg = supernet_config(p["supernet"], space=space, seed=seed, dataset=dataset, data_dir=data_dir)
    print(f"[1/3] supernet training ({scfg.epochs} epochs) -> {out}")
    timed("supernet_s", (out / SUMMARY).exists(), lambda: train_supernet(
        scfg, out, resume=resuming, device=device, progress=progress, data=data))

    search_cfg = make_config("evolution", seed=seed, **p["search"])
    scoring = ScoringConfig(seed=seed, **p["scoring"])
    search_dir = out / f"search-{metric}"
    print(f"[2/3] {metric} search ({search_cfg.budget} candidates) -> {search_dir}")
    result, search_dir = timed("search_s", (search_dir / RESULT).exists(), lambda: search_supernet(
        out, metric, "evolution", search_cfg, scoring, resume=search_dir.exists(), device=device, progress=progress,
        data=data))

    retrain_dir = out / "retrain"
    rcfg = retrain_config(p["retrain_preset"], space=scfg.space, genotype=result["best"]["genotype"],
                          dataset=scfg.dataset, data_dir=scfg.data_dir, split_seed=scfg.split_seed, seed=seed,
                          **p["retrain"])
    if not (retrain_dir / RESULT).exists():
        print(f"[3/3] stand-alone training of the winner -> {retrain_dir}")
    retrained = timed("retrain_s", (retrain_dir / RESULT).exists(), lambda: retrain(
        rcfg, retrain_dir, resume=(retrain_dir / "config.json").exists(), device=device, progress=progress, data=data))
    report = write_search_report(search_dir, retrain=retrained)
    summary = dict(preset=preset, space=scfg.space, metric=metric, seed=seed, best=result["best"],
                   test_accuracy=retrained["final_top1"], params=retrained["params"], macs=retrained["macs"],
                   report=str(report.resolve()), seconds=seconds,
                   seconds_per_candidate=_seconds_per_candidate(search_dir))
    save_json(summary, out / RUN)
    return summary


def _seconds_per_candidate(search_dir: Path) -> float | None:
    rows = read_jsonl(search_dir / LOG)
    secs = [r["raw"]["seconds"] for r in rows if isinstance(r.get("raw"), dict) and "seconds" in r["raw"]]
    return round(sum(secs) / len(secs), 4) if secs else None


__all__ = ["RUN_PRESETS", "run_pipeline"]
