"""Search outcome check (``genas outcome``): what did each proxy's search actually find?

For a set of finished searches (``search-*/result.json``), look each winner up in ground-truth
tables (``genas bench`` rows; several tables are merged, a genotype's rows averaged) and report its
test and shifted-test accuracy, per search and per method (mean ± sample std over seeds). A method is
the metric, plus its flatness settings when searches of one metric used different ones (e.g. the
paper preset next to a calibrated one). Winners
missing from the tables are listed in ``missing.txt``, ready for ``genas bench --genotypes``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import GenasError
from ..io import save_json

COLUMNS = ("test_accuracy", "shifted_accuracy")


def _load_search(path: Path) -> dict:

    result = path / "result.json"
    if not result.is_file():
        raise GenasError(f"{path} holds no finished search (result.json missing)")
    data = json.loads(result.read_text())
    return dict(search=path.name, metric=data.get("metric", "?"), seed=data["config"].get("seed"),
                winner=data["best"]["genotype"], score=data["best"]["score"], evaluations=data["evaluations"],
                scoring=data.get("scoring", {}))


FLATNESS_KEYS = dict(noise_scaling="absolute", noise_params="all", stds=[0.001, 0.003, 0.006], alpha=1.0,
                     depth_at="sigma1", noise_mode="independent",
                     noise_antithetic=False)  # defaults for searches saved before a key existed


def _flatness_label(scoring: dict) -> str:
    f = {k: scoring.get(k, v) for k, v in FLATNESS_KEYS.items()}
    a = f["alpha"] if isinstance(f["alpha"], str) else f"{f['alpha']:g}"
    return (f"{f['noise_scaling']}/{f['noise_params']} s={'/'.join(f'{x:g}' for x in f['stds'])} a={a} "
            f"depth={f['depth_at']} {f['noise_mode']}{' antithetic' if f['noise_antithetic'] else ''}")


def _methods(searches: list[dict]) -> None:
    """Set each search's method: its metric, with the flatness settings where one metric used several."""
    labels = {}
    for s in searches:
        s["flatness"] = _flatness_label(s["scoring"]) if "flatness" in s["metric"] else None
        labels.setdefault(s["metric"], set()).add(s["flatness"])
    for s in searches:
        several = len(labels[s["metric"]]) > 1
        s["method"] = f"{s['metric']} [{s['flatness']}]" if several else s["metric"]


def _truth(rows: Sequence[dict]) -> dict[str, dict]:
    acc: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        entry = acc.setdefault(r["genotype"], {c: [] for c in COLUMNS})
        for c in COLUMNS:
            v = r.get(c)
            if isinstance(v, (int, float)) and math.isfinite(v):
                entry[c].append(float(v))
    return {g: {c: (float(np.mean(v)) if v else None) for c, v in e.items()} for g, e in acc.items()}


def search_outcome(search_dirs: Sequence[str | Path], truth_rows: Sequence[dict], out_dir: str | Path) -> dict:
    """Per-search winners with their ground truth, and a per-metric summary; writes outcome.{json,md}."""
    if not search_dirs:
        raise GenasError("no search folders given")
    truth = _truth(truth_rows)
    searches = []
    for d in search_dirs:
        s = _load_search(Path(d))
        s.update(truth.get(s["winner"], {c: None for c in COLUMNS}))
        s["in_truth"] = s["winner"] in truth
        searches.append(s)
    _methods(searches)
    summary = {}
    for method in dict.fromkeys(s["method"] for s in searches):
        group = [s for s in searches if s["method"] == method]
        entry = dict(searches=len(group), with_truth=sum(s["in_truth"] for s in group))
        for c in COLUMNS:
            vals = [s[c] for s in group if s[c] is not None]
            entry[c] = dict(mean=float(np.mean(vals)) if vals else None,
                            std=float(np.std(vals, ddof=1)) if len(vals) > 1 else None, n=len(vals))
        summary[method] = entry
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = sorted({s["winner"] for s in searches if not s["in_truth"]})
    (out_dir / "missing.txt").write_text("".join(g + "\n" for g in missing))
    result = dict(searches=searches, summary=summary, missing=missing)
    save_json(result, out_dir / "outcome.json")
    (out_dir / "outcome.md").write_text(_markdown(result))
    return result


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _markdown(result: dict) -> str:
    lines = ["# Search outcome", "", "Winner of each search looked up in the ground truth (accuracy in %; mean ± "
             "sample std over seeds; n = searches whose winner has a ground-truth row).", "",
             "| method | searches | test accuracy | shifted-test accuracy | n |", "|---|---:|---:|---:|---:|"]
    for method, e in result["summary"].items():
        cells = []
        for c in COLUMNS:
            m = e[c]
            cells.append(f"{_pct(m['mean'])} ± {_pct(m['std'])}" if m["std"] is not None else _pct(m["mean"]))
        lines.append(f"| {method} | {e['searches']} | {cells[0]} | {cells[1]} | {e['with_truth']} |")
    lines += ["", "| search | method | seed | winner | score | test | shifted |", "|---|---|---:|---|---:|---:|---:|"]
    for s in result["searches"]:
        lines.append(f"| {s['search']} | {s['method']} | {s['seed']} | `{s['winner']}` | {s['score']:.4g} | "
                     f"{_pct(s['test_accuracy'])} | {_pct(s['shifted_accuracy'])} |")
    if result["missing"]:
        lines += ["", f"{len(result['missing'])} winner(s) have no ground-truth row yet: see missing.txt "
                      "(`genas bench --genotypes missing.txt`)."]
    return "\n".join(lines) + "\n"
