"""The end-to-end ``genas run``: train a supernet -> search -> retrain the winner -> report."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ..analysis.html_report import HTML, write_html_report
from ..analysis.report import write_search_report
from ..detection.transfer import check_preset as check_detect_preset, detect_winner
from ..errors import GenasError
from ..io import load_json, read_jsonl, save_json
from ..proxies import ScoringConfig, get_proxy
from ..engine.cost import cost_model
from ..options import to_dict
from ..search import LOG, RESULT, STATE, make_config, read_search_config
from ..search.driver import LEGACY_CONFIG
from ..search.strategy import check_limits
from ..spaces import get_space, winner_genotype
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
                 progress: bool | None = None, data=None, search_options: dict | None = None,
                 detect: str | None = None, detect_data: str | None = None) -> dict:
    """train-supernet -> search -> stand-alone retraining of the winner -> report, in one folder.

    ``search_options``: settings of the search added to the preset's (``dedup``, resource limits
    ``min_params`` ... ``max_macs``); an impossible limit is refused before the supernet trains.

    ``detect``: a ``genas detect train`` preset; the retrained winner then initialises a detector's
    backbone (``detect/``, on ``detect_data`` or the embedded scenes made into ``detect-data/``) and
    the summary gains its COCO metrics (``detection``).

    ``data``: a :class:`~genas.data.Data` (e.g. :func:`genas.data.from_tensors`) used by every step
    instead of the named ``dataset``. ``run.json`` records each step's seconds; a step finished in an
    earlier session keeps the seconds recorded then (re-reporting a finished run changes no timing).
    """
    if preset not in RUN_PRESETS:
        raise GenasError(f"unknown preset {preset!r}; available: {', '.join(RUN_PRESETS)}")
    get_proxy(metric)
    if detect is not None:
        check_detect_preset(detect)
    search_cfg = make_config("evolution", seed=seed, **RUN_PRESETS[preset]["search"], **(search_options or {}))
    search_dir = Path(out) / f"search-{metric}"
    if (search_dir / STATE).exists() and not search_options:  # a search made before a setting existed
        saved = to_dict(read_search_config(search_dir)[1])
        search_cfg = dataclasses.replace(search_cfg, **{k: saved[k] for k in LEGACY_CONFIG})
    check_limits(get_space(space), search_cfg, cost_model(get_space(space)) if search_cfg.limits else None)
    folder = RunFolder(out, "genas run", CONFIG)
    with folder.locked():
        resuming = folder.open(resume)
        if not resuming:
            folder.require_empty()
        summary = _run_steps(RUN_PRESETS[preset], preset, folder.path, metric, seed, space, dataset, data_dir,
                             resuming, device, progress, data, search_cfg)
        if detect is not None:
            print(f"[+] detection transfer ({detect}) -> {folder.path / 'detect'}")
            found = detect_winner(folder.path, detect, detect_data, seed=seed, device=device, progress=progress)
            summary["detection"] = dict(preset=detect, metrics=found["metrics"], folder=str(folder.path / "detect"))
            save_json(summary, folder.path / RUN)
        return summary


def _run_steps(p: dict, preset: str, out: Path, metric: str, seed: int, space: str, dataset, data_dir,
               resuming: bool, device: str, progress, data, search_cfg) -> dict:
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

    scoring = ScoringConfig(seed=seed, **p["scoring"])
    search_dir = out / f"search-{metric}"
    print(f"[2/3] {metric} search ({search_cfg.budget} candidates) -> {search_dir}")
    result, search_dir = timed("search_s", (search_dir / RESULT).exists(), lambda: search_supernet(
        out, metric, "evolution", search_cfg, scoring, resume=search_dir.exists(), device=device, progress=progress,
        data=data))

    retrain_dir = out / "retrain"
    started = (retrain_dir / "config.json").exists()
    stored = load_json(retrain_dir / "config.json").get("genotype") if started else None
    rcfg = retrain_config(p["retrain_preset"], space=scfg.space, genotype=winner_genotype(result, stored),
                          dataset=scfg.dataset, data_dir=scfg.data_dir, split_seed=scfg.split_seed, seed=seed,
                          **p["retrain"])
    if not (retrain_dir / RESULT).exists():
        print(f"[3/3] stand-alone training of the winner -> {retrain_dir}")
    if started and stored != rcfg.genotype:
        raise GenasError(f"{retrain_dir} retrains another genotype than the search's winner; cannot resume it")
    # a started retraining continues with its stored recipe (one made before a recipe setting existed
    # keeps the behaviour it was made with; the run's preset and seed were checked above)
    retrained = timed("retrain_s", (retrain_dir / RESULT).exists(), lambda: retrain(
        None if started else rcfg, retrain_dir, resume=started, device=device, progress=progress, data=data))
    report = write_search_report(search_dir, retrain=retrained)
    write_html_report(search_dir)
    summary = dict(preset=preset, space=scfg.space, metric=metric, seed=seed, best=result["best"],
                   retrained_genotype=retrained["genotype"], test_accuracy=retrained["final_top1"], params=retrained["params"], macs=retrained["macs"],
                   report=str(report.resolve()), seconds=seconds,
                   seconds_per_candidate=_seconds_per_candidate(search_dir))
    summary["report_html"] = str((out / HTML).resolve())
    save_json(summary, out / RUN)
    write_html_report(out)  # reads run.json
    return summary


def _seconds_per_candidate(search_dir: Path) -> float | None:
    rows = read_jsonl(search_dir / LOG)
    secs = [r["raw"]["seconds"] for r in rows if isinstance(r.get("raw"), dict) and "seconds" in r["raw"]]
    return round(sum(secs) / len(secs), 4) if secs else None


__all__ = ["RUN_PRESETS", "run_pipeline"]
