"""The pipeline's steps as functions over run folders: search on a supernet or a table, and the
end-to-end ``run`` (train supernet -> search -> retrain the winner -> report)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .checkpoint import save_json
from .config import load_json, supernet_config, to_dict
from .errors import GenasError
from .search import RESULT, make_config, run_search

SCORING = "scoring.json"


def _scoring_defaults() -> dict:
    """ScoringConfig defaults as stored: a folder made before a setting existed ran with its default."""
    from .proxies import ScoringConfig

    return json.loads(json.dumps(to_dict(ScoringConfig())))


def _check_scoring(out_dir: Path, record: dict, resume: bool) -> None:
    path = out_dir / SCORING
    record = json.loads(json.dumps(record))  # compare as stored (tuples become lists)
    if path.exists():
        saved = load_json(path)
        saved["scoring"] = {**_scoring_defaults(), **saved.get("scoring", {})}  # settings added since it was made
        if saved != record:
            diff = sorted(k for k in set(saved) | set(record) if saved.get(k) != record.get(k))
            raise GenasError(f"cannot resume {out_dir}: its metric/scoring settings differ in {', '.join(diff)} "
                             f"(use another --name)")
    elif resume and (out_dir / "state.json").exists():
        raise GenasError(f"{out_dir} has no {SCORING}; it was not made by `genas search --run`")


def search_supernet(run: str | Path, metric: str, strategy: str, search_cfg, scoring_cfg, name: str | None = None,
                    resume: bool = False, device: str = "auto", progress: bool | None = None) -> tuple[dict, Path]:
    """Search with a proxy on a trained supernet; writes ``RUN/search-<name>/``.

    Launched by ``torchrun`` (WORLD_SIZE > 1), the ranks share each generation's scoring and only
    rank 0 writes; the result is the same as one process's, so no option is needed to scale out.
    """
    from .distributed import setup, teardown

    dist_ctx = setup(device)
    try:
        return _search_supernet(run, metric, strategy, search_cfg, scoring_cfg, name, resume, dist_ctx, progress)
    finally:
        teardown(dist_ctx)


def _search_supernet(run, metric, strategy, search_cfg, scoring_cfg, name, resume, dist_ctx, progress):
    from .proxies import ScoringContext, get_proxy, make_evaluator
    from .search.driver import Shards

    get_proxy(metric)  # unknown metric -> clear error before any loading
    run = Path(run)
    out_dir = run / f"search-{name or metric}"
    record = dict(metric=metric, scoring=to_dict(scoring_cfg.validate()), supernet_run=str(run.resolve()))
    if (out_dir / "state.json").exists() and not resume:
        raise GenasError(f"{out_dir} already holds a search; pass --resume to continue it or choose another --name")
    _check_scoring(out_dir, record, resume)
    ctx = ScoringContext.from_run(run, scoring_cfg, dist_ctx.device)
    shards = Shards(dist_ctx.rank, dist_ctx.world, dist_ctx.all_gather)
    shards.barrier()  # every rank has checked the folder before rank 0 writes into it
    if shards.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_json(record, out_dir / SCORING)
    blown = []

    def note(genotype, rec):
        if rec.get("blew_up"):
            blown.append(genotype)
            print(f"genas: warning: loss not finite under noise for {ctx.space.format(genotype)}; flatness set to 0")

    result = run_search(ctx.space, make_evaluator(ctx, metric, note), strategy, search_cfg, out_dir, resume=resume,
                        progress=progress, shards=shards,
                        extra_result=dict(metric=metric, supernet_run=record["supernet_run"],
                                          scoring=record["scoring"]))
    return result, out_dir


def search_oracle(csv: str, column: str, out_dir: str | Path, strategy: str, search_cfg, space_name: str = "nb201",
                  resume: bool = False, progress: bool | None = None) -> tuple[dict, Path]:
    """Search a tabular benchmark by look-up (no training); writes ``out_dir``."""
    from .search import TabularOracle
    from .spaces import get_space

    space = get_space(space_name)
    oracle = TabularOracle(csv, column, space)
    result = run_search(space, oracle, strategy, search_cfg, out_dir, resume=resume, progress=progress,
                        extra_result=dict(metric=column, oracle=dict(csv=str(Path(csv).resolve()), column=column)))
    return result, Path(out_dir)


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
                 dataset: str | None = None,
                 data_dir: str | None = None, resume: bool = False, device: str = "auto",
                 progress: bool | None = None) -> dict:
    """train-supernet -> search -> stand-alone retraining of the winner -> report, in one folder."""
    from .analysis.report import write_search_report
    from .proxies import ScoringConfig, get_proxy
    from .supernet.train import CONFIG, load_run_config, train_supernet
    from .train.retrain import retrain, retrain_config

    if preset not in RUN_PRESETS:
        raise GenasError(f"unknown preset {preset!r}; available: {', '.join(RUN_PRESETS)}")
    get_proxy(metric)
    p = RUN_PRESETS[preset]
    out = Path(out)
    if (out / CONFIG).exists() and not resume:
        raise GenasError(f"{out} already holds a run; pass --resume to continue it or choose another -o")
    t0 = time.perf_counter()
    timings = {}
    if (out / CONFIG).exists():
        scfg = load_run_config(out)
        if scfg.preset != p["supernet"] or scfg.seed != seed or scfg.space != space:
            raise GenasError(f"{out} was started with preset {scfg.preset!r} and seed {scfg.seed}; cannot resume "
                             f"it as preset {preset!r} with seed {seed}")
    else:
        scfg = supernet_config(p["supernet"], space=space, seed=seed, dataset=dataset, data_dir=data_dir)
    print(f"[1/3] supernet training ({scfg.epochs} epochs) -> {out}")
    train_supernet(scfg, out, resume=(out / CONFIG).exists(), device=device, progress=progress)
    timings["supernet_s"] = round(time.perf_counter() - t0, 1)

    t1 = time.perf_counter()
    search_cfg = make_config("evolution", seed=seed, **p["search"])
    scoring = ScoringConfig(seed=seed, **p["scoring"])
    search_dir = out / f"search-{metric}"
    print(f"[2/3] {metric} search ({search_cfg.budget} candidates) -> {search_dir}")
    result, search_dir = search_supernet(out, metric, "evolution", search_cfg, scoring, resume=search_dir.exists(),
                                         device=device, progress=progress)
    timings["search_s"] = round(time.perf_counter() - t1, 1)

    t2 = time.perf_counter()
    retrain_dir = out / "retrain"
    rcfg = retrain_config(p["retrain_preset"], space=scfg.space, genotype=result["best"]["genotype"],
                          dataset=scfg.dataset, data_dir=scfg.data_dir, split_seed=scfg.split_seed, seed=seed,
                          **p["retrain"])
    if (retrain_dir / RESULT).exists():
        retrained = load_json(retrain_dir / RESULT)
    else:
        print(f"[3/3] stand-alone training of the winner -> {retrain_dir}")
        retrained = retrain(rcfg, retrain_dir, resume=(retrain_dir / "config.json").exists(), device=device,
                            progress=progress)
    timings["retrain_s"] = round(time.perf_counter() - t2, 1)
    report = write_search_report(search_dir, retrain=retrained)
    summary = dict(preset=preset, space=scfg.space, metric=metric, seed=seed, best=result["best"],
                   test_accuracy=retrained["final_top1"], params=retrained["params"], macs=retrained["macs"],
                   report=str(report.resolve()), seconds_this_session=timings,
                   seconds_per_candidate=_seconds_per_candidate(search_dir))
    save_json(summary, out / "run.json")
    return summary


SUPERNET_METRICS = ("flatness", "angle", "accuracy", "loss", "angle+flatness", "accuracy+flatness")


def score_archs(genotypes: list[str], metrics: list[str], out_file: str | Path, seeds: list[int], scoring_cfg,
                run: str | Path | None = None, network_kwargs: dict | None = None, data_args: dict | None = None,
                noise_modes: tuple[str, ...] = ("independent",), device: str = "cpu",
                progress: bool | None = None, space: str = "nb201") -> int:
    """Score fixed architectures with several proxies and seeds; append one JSONL row per (genotype, seed).

    Flatness rows carry the raw losses and, from the same losses, the alpha=0 variant
    (``flatness_alpha0``); with several noise modes the columns get a ``_<mode>`` suffix.
    Resumable: rows already in ``out_file`` are skipped. Returns the number of rows written.
    """
    import dataclasses as dc

    from tqdm import tqdm

    from .checkpoint import append_jsonl, read_jsonl
    from .data import load_data
    from .distributed import resolve_device
    from .proxies import ProxyContext, ScoringContext, flatness_score, get_proxy
    from .spaces import get_space

    for m in metrics:
        get_proxy(m)
    needs_supernet = [m for m in metrics if m in SUPERNET_METRICS]
    if needs_supernet and run is None:
        raise GenasError(f"metrics {', '.join(needs_supernet)} need a supernet: pass --run")
    out_file = Path(out_file)
    done = {(r["genotype"], r["seed"]) for r in read_jsonl(out_file)}
    todo = [(g, s) for s in seeds for g in genotypes if (g, s) not in done]
    if not todo:
        return 0
    dev = resolve_device(device)
    contexts = {}
    for seed in seeds:
        cfg = dc.replace(scoring_cfg, seed=seed)
        if run is not None:
            base = ScoringContext.from_run(run, cfg, dev)
            if network_kwargs:
                base.network_kwargs = dict(network_kwargs, num_classes=base.data.num_classes,
                                           in_channels=base.data.in_channels)
        else:
            data = load_data(**(data_args or {}))
            base = ProxyContext(get_space(space), data, cfg, dict(network_kwargs, num_classes=data.num_classes,
                                                                    in_channels=data.in_channels), dev)
        contexts[seed] = base
    out_file.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    for text, seed in tqdm(todo, desc="scoring", disable=None if progress is None else not progress):
        ctx = contexts[seed]
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
        append_jsonl(row, out_file)
        written += 1
    return written


def _seconds_per_candidate(search_dir: Path) -> float | None:
    from .checkpoint import read_jsonl
    from .search import LOG

    rows = read_jsonl(search_dir / LOG)
    secs = [r["raw"]["seconds"] for r in rows if isinstance(r.get("raw"), dict) and "seconds" in r["raw"]]
    return round(sum(secs) / len(secs), 4) if secs else None


__all__ = ["search_supernet", "search_oracle", "run_pipeline", "RUN_PRESETS"]
