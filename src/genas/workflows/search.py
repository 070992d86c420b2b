"""Searches as run-folder workflows: a proxy search on a trained supernet, or a table look-up."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

from ..analysis.html_report import write_html_report
from ..analysis.report import write_search_report
from ..engine.cost import cost_model
from ..engine.distributed import setup, teardown
from ..errors import GenasError
from ..io import load_json, save_json
from ..options import to_dict
from ..proxies import ScoringConfig, get_proxy, make_evaluator, scoring_config
from ..proxies.config import stored_scoring_defaults
from ..search import TabularOracle, make_config, run_search
from ..run_folder import RunFolder
from ..search.driver import STATE, STRATEGIES, Shards
from ..search.strategy import check_limits, resolve_dedup
from ..supernet import run as rf
from ..spaces import get_space
from .scoring import scoring_context

SCORING, ORACLE = "scoring.json", "oracle.json"
log = logging.getLogger("genas")


def _scoring_defaults() -> dict:
    """ScoringConfig defaults as stored: a folder made before a setting existed ran with its default
    (or, where today's default differs from what it ran with, its legacy value)."""
    return stored_scoring_defaults()


def _check_scoring(out_dir: Path, record: dict, resume: bool) -> None:
    """A resumed search must use the same metric, scoring settings and supernet (by digest: the
    folder may have been moved); folders made before a key existed ran with its default."""
    path = out_dir / SCORING
    record = json.loads(json.dumps(record))  # compare as stored (tuples become lists)
    if path.exists():
        saved = load_json(path)
        saved["scoring"] = {**_scoring_defaults(), **saved.get("scoring", {})}  # settings added since it was made
        record = {k: v for k, v in record.items() if k != "supernet_run"}
        saved.pop("supernet_run", None)  # older folders pinned an absolute path; the digest identifies it now
        if "supernet" not in saved:
            record.pop("supernet", None)
        if saved != record:
            diff = sorted(k for k in set(saved) | set(record) if saved.get(k) != record.get(k))
            raise GenasError(f"cannot resume {out_dir}: its metric/scoring settings differ in {', '.join(diff)} "
                             f"(use another --name)")
    elif resume and (out_dir / "state.json").exists():
        raise GenasError(f"{out_dir} has no {SCORING}; it was not made by `genas search --run`")


def search_cost(space, search_cfg):
    """What a supernet search records per candidate: params and MACs of the evaluation network
    when the config limits them, or when the space counts them cheaply (additive, e.g. NB201)."""
    return cost_model(space) if search_cfg.limits or space.additive_cost else None


def search_supernet(run: str | Path, metric: str, strategy: str, search_cfg, scoring_cfg, name: str | None = None,
                    resume: bool = False, device: str = "auto", progress: bool | None = None,
                    data=None) -> tuple[dict, Path]:
    """Search with a proxy on a trained supernet; writes ``RUN/search-<name>/``.

    ``data``: the :class:`~genas.data.Data` the supernet was trained on, for a run made from a
    user's own arrays (by default the run's named dataset); other data is refused.
    Launched by ``torchrun`` (WORLD_SIZE > 1), the ranks share each generation's scoring and only
    rank 0 writes; the result is the same as one process's, so no option is needed to scale out.
    """
    dist_ctx = setup(device)
    try:
        return _search_supernet(run, metric, strategy, search_cfg, scoring_cfg, name, resume, dist_ctx, progress,
                                data)
    finally:
        teardown(dist_ctx)


def _search_supernet(run, metric, strategy, search_cfg, scoring_cfg, name, resume, dist_ctx, progress, data):
    get_proxy(metric)  # unknown metric -> clear error before any loading
    run = Path(run)
    out_dir = run / f"search-{name or metric}"
    record = dict(metric=metric, scoring=to_dict(scoring_cfg.validate()), supernet=rf.supernet_digest(
        rf.require_finished(run)))
    space = get_space(rf.load_run_config(run).space)
    search_cfg = resolve_dedup(search_cfg, supernet=True)
    cost = search_cost(space, search_cfg)
    check_limits(space, search_cfg, cost)  # an impossible limit fails before any loading
    folder = RunFolder(out_dir, "search", STATE)
    with folder.locked(dist_ctx.is_main):  # one process per search folder
        folder.open(resume, missing_ok=True)  # a used folder needs --resume: refused before anything is loaded
        _check_scoring(out_dir, record, resume)
        ctx = scoring_context(run, scoring_cfg, dist_ctx.device, data=data)
        def note(genotype, rec):
            if rec.get("blew_up"):
                log.warning("genas: warning: loss not finite under noise for %s; flatness set to 0", ctx.space.format(genotype))

        evaluate = make_evaluator(ctx, metric, note)  # a metric the space cannot serve fails before any write
        shards = Shards(dist_ctx.rank, dist_ctx.world, dist_ctx.all_gather)
        shards.barrier()  # every rank has checked the folder before rank 0 writes into it
        if shards.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_json(record, out_dir / SCORING)
        result = run_search(ctx.space, evaluate, strategy, search_cfg, out_dir, resume=resume,
                            progress=progress, shards=shards, cost=cost,
                            extra_result=dict(metric=metric, supernet=record["supernet"],
                                              scoring=record["scoring"]))
        return result, out_dir


def search_run(run: str | Path, metric: str = "flatness", strategy: str = "evolution", seed: int = 0, *,
           name: str | None = None, resume: bool = False, data=None, scoring=None,
           flatness_preset: str | None = None, device: str = "auto", progress: bool | None = False,
           report: bool = True, **overrides) -> dict:
    """Search a trained supernet run from Python (``genas.search_run``); returns the search result.

    ``overrides`` are settings of the strategy (``population``, ``generations``, ``topk``,
    ``mutations``, ...) or of the scoring (``val_images``, ``bn_images``, ``stds``, ``alpha``, ...;
    see :class:`~genas.proxies.ScoringConfig`), starting from ``scoring`` (a ScoringConfig) or the
    defaults with ``flatness_preset``. ``seed`` seeds both. ``data``: the run's own in-memory data
    (see :func:`genas.data.from_tensors`). The result dict is ``RUN/search-<name>/result.json``
    plus ``folder``, the search folder, and (with ``report``, as ``genas search`` writes them) the paths
    of its ``report`` (Markdown) and ``report_html``.
    """
    if strategy not in STRATEGIES:
        raise GenasError(f"unknown search strategy {strategy!r}; available: {', '.join(STRATEGIES)}")
    search_fields = {f.name for f in dataclasses.fields(STRATEGIES[strategy][1])} - {"seed"}
    scoring_fields = {f.name for f in dataclasses.fields(ScoringConfig)} - {"seed"}
    unknown = sorted(set(overrides) - search_fields - scoring_fields)
    if unknown:
        raise GenasError(f"unknown search option(s) {', '.join(unknown)}; {strategy} search takes "
                         f"{', '.join(sorted(search_fields))} and scoring takes {', '.join(sorted(scoring_fields))}")
    search_cfg = make_config(strategy, seed=seed, **{k: v for k, v in overrides.items() if k in search_fields})
    scoring_values = {k: v for k, v in overrides.items() if k in scoring_fields}
    if scoring is not None:
        if flatness_preset is not None:
            raise GenasError("give either scoring= (a ScoringConfig) or flatness_preset=, not both")
        scoring_cfg = dataclasses.replace(scoring, seed=seed, **scoring_values).validate()
    else:
        scoring_cfg = scoring_config(flatness_preset, seed=seed, **scoring_values)
    result, out_dir = search_supernet(run, metric, strategy, search_cfg, scoring_cfg, name=name, resume=resume,
                                      device=device, progress=progress, data=data)
    if not report or os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 alone writes the report
        return {**result, "folder": str(out_dir)}
    return {**result, "folder": str(out_dir), "report": str(write_search_report(out_dir)),
            "report_html": str(write_html_report(out_dir))}


def search_oracle(csv: str, column: str, out_dir: str | Path, strategy: str, search_cfg, space_name: str = "nb201",
                  resume: bool = False, progress: bool | None = None) -> tuple[dict, Path]:
    """Search a tabular benchmark by look-up (no training); writes ``out_dir``."""
    space = get_space(space_name)
    search_cfg = resolve_dedup(search_cfg, supernet=False)
    cost = cost_model(space) if search_cfg.limits else None
    check_limits(space, search_cfg, cost)
    oracle = TabularOracle(csv, column, space, canonical_rule=search_cfg.dedup)
    folder = RunFolder(out_dir, "tabular search", STATE)
    record = dict(column=column, space=space.name, table_sha256=hashlib.sha256(Path(csv).read_bytes()).hexdigest())
    if search_cfg.dedup != "off":  # scored by function-class means (older folders: per string)
        record["scores"] = f"class mean ({search_cfg.dedup} rule)"
    with folder.locked():
        if (folder / ORACLE).exists():  # the same table and column, or the result would be relabelled
            folder.check(record, ORACLE)
        elif resume and folder.started:
            raise GenasError(f"{out_dir} has no {ORACLE}; it was not made by `genas search --oracle`")
        elif not folder.started:
            folder.require_empty()
            folder.save(record, ORACLE)
        result = run_search(space, oracle, strategy, search_cfg, out_dir, resume=resume, progress=progress, cost=cost,
                            extra_result=dict(metric=column, oracle=dict(csv=Path(csv).name, column=column,
                                                                         table_sha256=record["table_sha256"])))
    return result, Path(out_dir)


__all__ = ["SCORING", "search_oracle", "search_run", "search_supernet"]
