"""Rank correlation of proxies with ground truth (``genas correlate``).

For every proxy column against every ground-truth column: Kendall τ-b, Spearman ρ and precision@k
(top ``top_fraction`` of the architectures), each with a percentile-bootstrap 95 % confidence interval;
plus Kendall τ-b between every pair of columns (proxies and ground truth), e.g. the GeNAS poster's
"Angle & Flatness" numbers. Conventions (stated again in every output, see ``CONVENTIONS``):

* Orientation: every column is higher-is-better. Columns where lower is better (a loss, an error) are
  listed in ``negate`` and multiplied by -1 before anything else.
* Join: ground-truth rows and proxy rows are joined on a key column (inner join). Several rows with the
  same key (e.g. one per ``seed``, or several files with different columns) are merged: each column is
  the mean of its finite values among those rows. With a ``seed`` column holding >= 2 seeds, the
  correlations are also computed per seed (point estimates; mean and sample std over seeds).
* Missing values: a row whose value is missing or non-finite (None, "", NaN, ±inf) in either column of a
  pair is dropped for that pair only; every result reports its own n. Finite sentinels (e.g. -1e8 for a
  failed proxy) are kept as ordinary, very low, scores.
* Ties: τ-b corrects for ties in both columns; Spearman ρ uses average ranks. Precision@k is the
  expected overlap under uniform random tie-breaking (see ``precision_at_k``), with its range over all
  tie-breakings of the proxy reported as ``tie_range`` (the lower end is the conservative count).
* Degenerate input (n < 3, or a constant column) gives null with a note, never NaN; JSON never holds NaN.

No torch here: the module only needs numpy, scipy and matplotlib (``genas.checkpoint`` is imported
lazily, for its JSON helpers, when a file is read or written).
"""
from __future__ import annotations

import csv
import json
import math
import re
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

from ..errors import GenasError
from ..io import read_jsonl, save_json

CONFIDENCE = 0.95
CONVENTIONS = {
    "orientation": "higher is better for every column; columns listed in 'negate' were multiplied by -1 first",
    "kendall_tau": "Kendall tau-b (scipy.stats.kendalltau, variant='b'): corrects for ties in both columns",
    "spearman_rho": "Spearman rho (scipy.stats.spearmanr): Pearson correlation of average ranks (ties share "
                    "their mean rank)",
    "precision_at_k": "|top-k by proxy ∩ top-k by ground truth| / k with k = ceil(top_fraction * n); ties at "
                      "the top-k boundary count as the expected overlap under uniform random tie-breaking "
                      "(order-independent; a constant proxy scores k/n, i.e. chance). 'tie_range' gives the "
                      "lowest (conservative) and highest value over every way of breaking the proxy's ties",
    "missing_values": "pairwise deletion: a row with a missing or non-finite value in either column of a pair is "
                      "dropped for that pair only; each result reports its n. Finite sentinels (e.g. -1e8) are "
                      "kept as valid (very low) scores",
    "join": "inner join of ground-truth and proxy rows on the key column; rows sharing a key (e.g. one per "
            "seed, or several files) are merged by averaging each column's finite values",
    "bootstrap": "percentile bootstrap over architectures: the joined architectures are resampled with "
                 "replacement (one resample shared by all pairs, so intervals of different proxies are paired); "
                 "each pair uses the resampled rows where both of its values are finite; the interval is the "
                 "2.5th-97.5th percentile of the resampled statistic (resamples where it is undefined are "
                 "skipped); the point estimate is always the full-sample value",
    "degenerate": "fewer than 3 rows, or a constant column: tau and rho are null (with a note); JSON holds null, "
                  "never NaN",
    "per_seed": "with >= 2 distinct values in the seed column, each seed's proxy values are correlated on "
                "their own (point estimates); mean and sample std (ddof=1) over the seeds are reported",
}


# ---------------------------------------------------------------------------------------------- loading

def _convert(value: Any) -> Any:
    """Numeric strings become float, empty strings None; everything else is left as it is."""
    if isinstance(value, str):
        s = value.strip()
        if s == "":
            return None
        try:
            return float(s)
        except ValueError:
            return value
    return value


def _available(rows: Sequence[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for name in row:
            seen.setdefault(name, None)
    return list(seen)


def _check_columns(available: Sequence[str], wanted: Iterable[str], what: str, source: str) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise GenasError(f"unknown {what} column(s) {', '.join(map(repr, missing))} in {source}; "
                         f"available: {', '.join(available) or '(none)'}")


def load_table(path: str | Path, key: str | None = None, columns: Sequence[str] | None = None) -> list[dict]:
    """Read a ``.csv`` or ``.jsonl`` table as a list of dicts (numeric strings -> float, "" -> None).

    ``key`` / ``columns``, when given, must exist (GenasError listing the available columns otherwise).
    """
    path = Path(path)
    if not path.is_file():
        raise GenasError(f"table {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with open(path, newline="") as f:
                raw = list(csv.DictReader(f))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise GenasError(f"cannot read CSV {path}: {exc}") from None
        if any(None in r for r in raw):
            bad = next(i for i, r in enumerate(raw) if None in r)
            raise GenasError(f"{path}: data row {bad + 1} has more fields than the header")
    elif suffix == ".jsonl":
        raw = read_jsonl(path)
        lines = [ln for ln in path.read_text().splitlines()]
        nonblank = sum(1 for ln in lines if ln.strip())
        if len(raw) < nonblank:  # read_jsonl stops at the first line that is not JSON
            raise GenasError(f"{path}: line {len(raw) + 1} is not valid JSON")
        if not all(isinstance(r, dict) for r in raw):
            bad = next(i for i, r in enumerate(raw) if not isinstance(r, dict))
            raise GenasError(f"{path}: line {bad + 1} is not a JSON object")
    else:
        raise GenasError(f"table {path}: unsupported format {suffix or '(no suffix)'!r}; use .csv or .jsonl")
    rows = [{k: _convert(v) for k, v in r.items()} for r in raw]
    if not rows:
        raise GenasError(f"table {path} has no rows")
    available = _available(rows)
    if key is not None and key not in available:
        raise GenasError(f"table {path} has no key column {key!r}; available: {', '.join(available)}")
    if columns:
        _check_columns(available, columns, "", str(path))
    return rows


def load_tables(paths: Sequence[str | Path], key: str | None = None) -> list[dict]:
    """``load_table`` for each path (each must have ``key``), concatenated: e.g. one proxy file per seed."""
    if not paths:
        raise GenasError("no table given")
    return [row for path in paths for row in load_table(path, key=key)]


# --------------------------------------------------------------------------------------- statistics

def _k_for(n: int, fraction: float) -> int:
    # round() first: 0.1 * 30 is 3.0000000000000004 in floating point, whose ceil would be 4
    return int(min(n, max(1, math.ceil(round(fraction * n, 9)))))


def _topk_weights(v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """P(item in the top k) under uniform random tie-breaking.

    Also returns the masks of the items strictly above the k-th largest value and of the tie group at
    that value, and the number of top-k slots left for the tie group (>= 1).
    """
    n = len(v)
    threshold = np.partition(v, n - k)[n - k]  # k-th largest value
    above = v > threshold
    tie = v == threshold
    slots = k - int(above.sum())
    w = above.astype(float)
    w[tie] = slots / tie.sum()
    return w, above, tie, slots


def precision_at_k(proxy: Sequence[float], truth: Sequence[float], fraction: float = 0.1) -> dict:
    """Precision@k, k = ceil(fraction * n): share of the ground-truth top k that the proxy's top k recovers.

    Ties at the top-k boundary (in either column) make "the top k" ambiguous. The estimate is the expected
    overlap / k when ties are broken uniformly at random, independently in the two columns: item i is in a
    column's top k with probability 1 (strictly above the k-th largest value), slots / size for the tie group
    at that value, or 0; the expected overlap is sum_i p_i * g_i. It does not depend on the row order, and
    a constant proxy scores k / n (chance). ``tie_range`` is the minimum (the conservative count) and the
    maximum over all ways of breaking the *proxy's* ties (ground-truth ties kept at their expectation);
    both equal the estimate when the proxy has no tie across the boundary.
    Inputs must be finite and of equal length n >= 1.
    """
    x = np.asarray(proxy, float)
    y = np.asarray(truth, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError("precision_at_k needs two 1-D arrays of the same, non-zero length")
    k = _k_for(len(x), fraction)
    wp, above, tie, slots = _topk_weights(x, k)
    wg = _topk_weights(y, k)[0]
    strict = float(wg[above].sum())
    g_tie = np.sort(wg[tie])
    lo = strict + float(g_tie[:slots].sum())
    hi = strict + float(g_tie[len(g_tie) - slots:].sum())
    return {"estimate": float(wp @ wg) / k, "k": k, "tie_range": [lo / k, hi / k]}


def _is_constant(v: np.ndarray) -> bool:
    return bool(v.max() == v.min())


def _tau(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or _is_constant(x) or _is_constant(y):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.kendalltau(x, y, variant="b").statistic)


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or _is_constant(x) or _is_constant(y):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


def _pk(x: np.ndarray, y: np.ndarray, fraction: float) -> float:
    return precision_at_k(x, y, fraction)["estimate"] if len(x) >= 3 else math.nan


def _degenerate_note(x: np.ndarray, y: np.ndarray, a: str, b: str) -> str | None:
    if len(x) < 3:
        return f"{a} vs {b}: only {len(x)} row(s) with both values (need 3): statistics are null"
    const = [name for name, v in ((a, x), (b, y)) if _is_constant(v)]
    if const:
        return (f"{a} vs {b}: {' and '.join(const)} {'is' if len(const) == 1 else 'are'} constant over the "
                f"n={len(x)} rows: tau and rho are null")
    return None


def _ci(values: list[float], confidence: float) -> tuple[list[float] | None, int]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None, 0
    alpha = (1 - confidence) / 2
    lo, hi = np.percentile(v, [100 * alpha, 100 * (1 - alpha)])
    return [float(lo), float(hi)], int(len(v))


# ------------------------------------------------------------------------------------------ the join

def _norm_key(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    s = str(value).strip()
    return s or None


def _number(value: Any, column: str, role: str, index: int) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise GenasError(f"{role} column {column!r}, row {index + 1}: boolean {value!r} is not a number")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return math.nan
        try:
            return float(s)
        except ValueError:
            pass
    raise GenasError(f"{role} column {column!r}, row {index + 1}: {value!r} is not a number")


def _aggregate(rows: Sequence[dict], key: str, columns: Sequence[str], role: str) -> tuple[dict, int]:
    """key -> {column: mean of the finite values among the rows with that key}; also #keys with >1 row."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    nrows: dict[str, int] = {}
    for i, row in enumerate(rows):
        k = _norm_key(row.get(key))
        if k is None:
            raise GenasError(f"{role} row {i + 1} has no value in key column {key!r}")
        vals = np.array([_number(row.get(c), c, role, i) for c in columns], float)
        ok = np.isfinite(vals)
        if k not in sums:
            sums[k] = np.zeros(len(columns))
            counts[k] = np.zeros(len(columns))
            nrows[k] = 0
        sums[k][ok] += vals[ok]
        counts[k][ok] += 1
        nrows[k] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        table = {k: np.where(counts[k] > 0, sums[k] / np.maximum(counts[k], 1), np.nan) for k in sums}
    return table, sum(1 for n in nrows.values() if n > 1)


def _numeric_columns(rows: Sequence[dict], exclude: set[str]) -> list[str]:
    out = []
    for name in _available(rows):
        if name in exclude:
            continue
        for r in rows:
            v = _convert(r.get(name))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(name)
                break
    return out


def _seed_label(value: Any) -> str | None:
    return _norm_key(value)


# ------------------------------------------------------------------------------------- main function

def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _metric(est: float, ci: list[float] | None = None, n_valid: int | None = None, bootstrap: int = 0) -> dict:
    out: dict[str, Any] = {"estimate": est if math.isfinite(est) else None}
    if bootstrap:
        out["ci"] = ci if out["estimate"] is not None else None
        if out["estimate"] is not None and n_valid is not None and n_valid < bootstrap:
            out["bootstrap_resamples_used"] = n_valid
    return out


def _validate_options(gt_rows: Sequence[dict], proxy_rows: Sequence[dict], top_fraction: float, bootstrap: int,
                      confidence: float) -> None:
    """Reject empty inputs and out-of-range options (GenasError)."""
    if not gt_rows:
        raise GenasError("no ground-truth rows")
    if not proxy_rows:
        raise GenasError("no proxy rows")
    if not 0 < top_fraction <= 1:
        raise GenasError(f"top fraction must be in (0, 1], got {top_fraction}")
    if bootstrap < 0:
        raise GenasError(f"bootstrap must be >= 0, got {bootstrap}")
    if not 0 < confidence < 1:
        raise GenasError(f"confidence must be in (0, 1), got {confidence}")


def _resolve_columns(gt_rows: Sequence[dict], proxy_rows: Sequence[dict], gt_columns: Sequence[str] | None,
                     proxy_columns: Sequence[str] | None, key: str, proxy_key: str, seed_column: str,
                     negate: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Check the keys and pick / check the ground-truth, proxy and negated columns (GenasError if bad)."""
    gt_avail, px_avail = _available(gt_rows), _available(proxy_rows)
    if key not in gt_avail:
        raise GenasError(f"ground-truth rows have no key column {key!r}; available: {', '.join(gt_avail)}")
    if proxy_key not in px_avail:
        raise GenasError(f"proxy rows have no key column {proxy_key!r}; available: {', '.join(px_avail)}")
    gt_columns = list(gt_columns) if gt_columns else _numeric_columns(gt_rows, {key, seed_column})
    proxy_columns = list(proxy_columns) if proxy_columns else _numeric_columns(proxy_rows, {proxy_key, seed_column})
    _check_columns(gt_avail, gt_columns, "ground-truth", "the ground-truth rows")
    _check_columns(px_avail, proxy_columns, "proxy", "the proxy rows")
    if not gt_columns:
        raise GenasError(f"no numeric ground-truth column; available: {', '.join(gt_avail)}")
    if not proxy_columns:
        raise GenasError(f"no numeric proxy column; available: {', '.join(px_avail)}")
    for what, cols in (("ground-truth", gt_columns), ("proxy", proxy_columns)):
        if len(set(cols)) != len(cols):
            raise GenasError(f"{what} columns repeat a name: {', '.join(cols)}")
    bad_neg = [c for c in negate if c not in gt_columns and c not in proxy_columns]
    if bad_neg:
        raise GenasError(f"cannot negate unknown column(s) {', '.join(map(repr, bad_neg))}; "
                         f"columns: {', '.join(dict.fromkeys([*proxy_columns, *gt_columns]))}")
    return gt_columns, proxy_columns, list(dict.fromkeys(negate))


@dataclass
class _Joined:
    """Both tables aggregated per key and inner-joined; ``cols`` holds the proxies, then the ground truth."""

    gt_table: dict
    gt_multi: int
    px_table: dict
    px_multi: int
    joined: list[str]
    sign_gt: np.ndarray
    sign_px: np.ndarray
    cols: np.ndarray


def _join(gt_rows: Sequence[dict], proxy_rows: Sequence[dict], key: str, proxy_key: str, gt_columns: list[str],
          proxy_columns: list[str], negate: list[str]) -> _Joined:
    """Aggregate each side per key, inner-join them and orient every column higher-is-better."""
    gt_table, gt_multi = _aggregate(gt_rows, key, gt_columns, "ground-truth")
    px_table, px_multi = _aggregate(proxy_rows, proxy_key, proxy_columns, "proxy")
    joined = [k for k in gt_table if k in px_table]
    sign_gt = np.array([-1.0 if c in negate else 1.0 for c in gt_columns])
    sign_px = np.array([-1.0 if c in negate else 1.0 for c in proxy_columns])
    G = np.array([gt_table[k] for k in joined], float).reshape(len(joined), len(gt_columns)) * sign_gt
    P = np.array([px_table[k] for k in joined], float).reshape(len(joined), len(proxy_columns)) * sign_px
    # columns of the pairwise τ matrix: proxies first, then ground truth
    cols = np.concatenate([P, G], axis=1)
    return _Joined(gt_table, gt_multi, px_table, px_multi, joined, sign_gt, sign_px, cols)


def _finite_pair(cols: np.ndarray, i: int, j: int) -> np.ndarray:
    """Rows where both column i and column j are finite."""
    return np.isfinite(cols[:, i]) & np.isfinite(cols[:, j])


def _point_estimates(cols: np.ndarray, labels: Sequence[str], main_pairs: set, all_pairs: list,
                     top_fraction: float) -> dict[tuple[int, int], dict]:
    """Full-sample n, τ (every pair), ρ and precision@k (proxy-vs-ground-truth pairs) and degenerate notes."""
    point: dict[tuple[int, int], dict] = {}
    for i, j in main_pairs | set(all_pairs):
        m = _finite_pair(cols, i, j)
        x, y = cols[m, i], cols[m, j]
        entry = {"n": int(m.sum()), "tau": _tau(x, y)}
        if (i, j) in main_pairs:
            entry["rho"] = _rho(x, y)
            entry["pk"] = precision_at_k(x, y, top_fraction) if len(x) >= 3 else None
        note = _degenerate_note(x, y, labels[i], labels[j])
        entry["note"] = note
        point[(i, j)] = entry
    return point


def _bootstrap(cols: np.ndarray, point: dict, boot_pairs: set, main_pairs: set, bootstrap: int, seed: int,
               top_fraction: float) -> dict[tuple[int, int], dict[str, list[float]]]:
    """Resampled statistics per pair: one resample of the joined architectures per round, shared by every pair."""
    n_joined = len(cols)
    boot: dict[tuple[int, int], dict[str, list[float]]] = {p: {"tau": [], "rho": [], "pk": []} for p in boot_pairs}
    if bootstrap and n_joined >= 3:
        rng = np.random.default_rng(seed)
        masks = {p: _finite_pair(cols, *p) for p in boot_pairs}
        active = [p for p in boot_pairs if point[p]["n"] >= 3]
        for _ in range(bootstrap):
            idx = rng.integers(0, n_joined, n_joined)
            for p in active:
                i, j = p
                sel = idx[masks[p][idx]]
                x, y = cols[sel, i], cols[sel, j]
                if not math.isnan(point[p]["tau"]):
                    boot[p]["tau"].append(_tau(x, y))
                if p in main_pairs:
                    if not math.isnan(point[p]["rho"]):
                        boot[p]["rho"].append(_rho(x, y))
                    boot[p]["pk"].append(_pk(x, y, top_fraction))
    return boot


@dataclass
class _Estimates:
    """Point estimates and bootstrap draws per pair, turned into result metrics by ``metric``."""

    point: dict
    boot: dict
    bootstrap: int
    confidence: float

    def metric(self, p: tuple[int, int], name: str) -> dict:
        """Estimate (+ CI, + k and tie range for precision@k) of statistic ``name`` for pair ``p``."""
        pk = self.point[p].get("pk") if name == "pk" else None
        est = (pk["estimate"] if pk else math.nan) if name == "pk" else self.point[p][name]
        ci, used = _ci(self.boot[p][name], self.confidence) if p in self.boot and self.bootstrap else (None, 0)
        out = _metric(est, ci, used, self.bootstrap)
        if pk:
            out["k"] = pk["k"]
            out["tie_range"] = pk["tie_range"]
        return out


def _main_results(est: _Estimates, gt_columns: list[str], proxy_columns: list[str], notes: list[str]) -> dict:
    """results[gt][proxy] = n, τ, ρ, precision@k and note; appends each pair's note to ``notes``."""
    results: dict[str, dict] = {}
    for g, gname in enumerate(gt_columns):
        results[gname] = {}
        for p, pname in enumerate(proxy_columns):
            pair = (p, len(proxy_columns) + g)
            e = est.point[pair]
            results[gname][pname] = {
                "n": e["n"],
                "kendall_tau": est.metric(pair, "tau"),
                "spearman_rho": est.metric(pair, "rho"),
                "precision_at_k": est.metric(pair, "pk"),
                "note": e["note"],
            }
            if e["note"]:
                notes.append(e["note"])
    return results


def _pairwise(est: _Estimates, all_pairs: list, main_pairs: set, labels: list[str], roles: list[str],
              gt_columns: list[str], n_proxy: int, pairwise_ci: bool, notes: list[str]) -> list[dict]:
    """τ between every pair of columns (with CI if ``pairwise_ci``); appends new notes to ``notes``."""
    pairwise = []
    for i, j in all_pairs:
        e = est.point[(i, j)]
        entry = {"a": labels[i] if roles[i] == "proxy" else gt_columns[i - n_proxy], "a_role": roles[i],
                 "b": labels[j] if roles[j] == "proxy" else gt_columns[j - n_proxy], "b_role": roles[j],
                 "n": e["n"], "kendall_tau": est.metric((i, j), "tau") if pairwise_ci else _metric(e["tau"]),
                 "note": e["note"]}
        pairwise.append(entry)
        if e["note"] and (i, j) not in main_pairs and e["note"] not in notes:
            notes.append(e["note"])
    return pairwise


def _tau_matrix(point: dict, all_pairs: list, cols: np.ndarray, n_labels: int) -> np.ndarray:
    """Symmetric matrix of the pairwise τ point estimates; the diagonal is 1, or NaN for a degenerate column."""
    tau_matrix = np.eye(n_labels)
    for (i, j) in all_pairs:
        tau_matrix[i, j] = tau_matrix[j, i] = point[(i, j)]["tau"]
    for i in range(n_labels):  # τ of a column with itself: 1 unless it is constant / too short
        v = cols[np.isfinite(cols[:, i]), i]
        if len(v) < 3 or _is_constant(v):
            tau_matrix[i, i] = math.nan
    return tau_matrix


def correlate(gt_rows: Sequence[dict], proxy_rows: Sequence[dict],
              gt_columns: Sequence[str] | None = None, proxy_columns: Sequence[str] | None = None, *,
              key: str = "genotype", proxy_key: str | None = None, out_dir: str | Path | None = None,
              bootstrap: int = 1000, seed: int = 0, negate: Sequence[str] = (), split: str = "",
              top_fraction: float = 0.1, seed_column: str = "seed", pairwise_ci: bool = True,
              confidence: float = CONFIDENCE, sources: dict | None = None, plots: bool = True) -> dict:
    """Rank correlations of every proxy column with every ground-truth column, and τ between all columns.

    ``gt_rows`` / ``proxy_rows``: lists of dicts (e.g. from ``load_table``), joined on ``key`` (``proxy_key``
    if the proxy rows name it differently). ``gt_columns`` / ``proxy_columns``: None means every numeric
    column except the keys and ``seed_column``. ``negate``: columns (of either side) where lower is better.
    ``bootstrap``: number of resamples B (0 = point estimates only); ``seed`` seeds its numpy Generator.
    ``split``: free-text label of the ground truth's split. ``pairwise_ci``: bootstrap the pairwise τ too.
    ``sources``: free-form description of the inputs (e.g. file paths), stored verbatim.
    With ``out_dir``: writes correlation.json, correlation.md, scatter_<gt>.png and pairwise_tau.png there.
    Returns the JSON-safe result dict (null instead of NaN). Raises GenasError on bad input.
    """
    proxy_key = proxy_key or key
    negate = [negate] if isinstance(negate, str) else list(negate or ())
    _validate_options(gt_rows, proxy_rows, top_fraction, bootstrap, confidence)
    gt_columns, proxy_columns, negate = _resolve_columns(gt_rows, proxy_rows, gt_columns, proxy_columns, key,
                                                         proxy_key, seed_column, negate)
    jn = _join(gt_rows, proxy_rows, key, proxy_key, gt_columns, proxy_columns, negate)
    cols, n_joined, n_proxy = jn.cols, len(jn.joined), len(proxy_columns)
    # labels disambiguate a name shared by a proxy and a ground-truth column
    labels = [*proxy_columns, *(f"{c} (GT)" for c in gt_columns)]
    roles = ["proxy"] * n_proxy + ["ground_truth"] * len(gt_columns)

    notes: list[str] = []
    if n_joined < 3:
        notes.append(f"only {n_joined} architecture(s) are in both tables (need >= 3): every statistic is null")
    main_pairs = {(p, n_proxy + g) for g in range(len(gt_columns)) for p in range(n_proxy)}
    all_pairs = [(i, j) for i in range(len(labels)) for j in range(i + 1, len(labels))]
    point = _point_estimates(cols, labels, main_pairs, all_pairs, top_fraction)
    boot_pairs = main_pairs | (set(all_pairs) if pairwise_ci else set())
    boot = _bootstrap(cols, point, boot_pairs, main_pairs, bootstrap, seed, top_fraction)
    est = _Estimates(point, boot, bootstrap, confidence)
    results = _main_results(est, gt_columns, proxy_columns, notes)
    pairwise = _pairwise(est, all_pairs, main_pairs, labels, roles, gt_columns, n_proxy, pairwise_ci, notes)
    tau_matrix = _tau_matrix(point, all_pairs, cols, len(labels))
    per_seed = _per_seed(jn.gt_table, proxy_rows, proxy_key, proxy_columns, gt_columns, jn.joined, jn.sign_gt,
                         jn.sign_px, seed_column, top_fraction)

    result = {
        "conventions": {**CONVENTIONS, "split": split or "(not stated)", "top_fraction": top_fraction,
                        "confidence": confidence},
        "inputs": {
            "key": key, "proxy_key": proxy_key, "split": split,
            "ground_truth_columns": gt_columns, "proxy_columns": proxy_columns, "negate": negate,
            "ground_truth_rows": len(gt_rows), "ground_truth_keys": len(jn.gt_table),
            "ground_truth_keys_with_several_rows": jn.gt_multi,
            "proxy_rows": len(proxy_rows), "proxy_keys": len(jn.px_table),
            "proxy_keys_with_several_rows": jn.px_multi,
            "joined": n_joined, "ground_truth_only": len(jn.gt_table) - n_joined,
            "proxy_only": len(jn.px_table) - n_joined,
            "seeds": per_seed["seeds"] if per_seed else None,
            "bootstrap": {"resamples": bootstrap, "seed": seed, "method": "percentile", "confidence": confidence,
                          "pairwise": bool(pairwise_ci and bootstrap)},
            "sources": sources or {},
        },
        "results": results,
        "pairwise": pairwise,
        "tau_matrix": {"labels": labels, "roles": roles, "tau": tau_matrix.tolist()},
        "per_seed": per_seed,
        "notes": notes,
    }
    result = _clean(result)
    json.dumps(result, allow_nan=False)  # a NaN left anywhere is a bug: fail here, not in a reader
    if out_dir is not None:
        result["files"] = write_outputs(result, cols, Path(out_dir), plots=plots)
    return result


def _per_seed(gt_table, proxy_rows, proxy_key, proxy_columns, gt_columns, joined, sign_gt, sign_px,
              seed_column, top_fraction) -> dict | None:
    seeds: dict[str, None] = {}
    for r in proxy_rows:
        s = _seed_label(r.get(seed_column))
        if s is not None:
            seeds.setdefault(s, None)
    if len(seeds) < 2:
        return None
    try:
        order = sorted(seeds, key=float)
    except ValueError:
        order = sorted(seeds)
    per: dict[str, dict[str, dict[str, list]]] = {g: {p: {"tau": [], "rho": [], "pk": [], "n": []}
                                                      for p in proxy_columns} for g in gt_columns}
    for s in order:
        rows = [r for r in proxy_rows if _seed_label(r.get(seed_column)) == s]
        table, _ = _aggregate(rows, proxy_key, proxy_columns, "proxy")
        keys = [k for k in joined if k in table]
        G = np.array([gt_table[k] for k in keys], float).reshape(len(keys), len(gt_columns)) * sign_gt
        P = np.array([table[k] for k in keys], float).reshape(len(keys), len(proxy_columns)) * sign_px
        for g, gname in enumerate(gt_columns):
            for p, pname in enumerate(proxy_columns):
                m = np.isfinite(G[:, g]) & np.isfinite(P[:, p])
                x, y = P[m, p], G[m, g]
                d = per[gname][pname]
                d["tau"].append(_tau(x, y))
                d["rho"].append(_rho(x, y))
                d["pk"].append(_pk(x, y, top_fraction))
                d["n"].append(int(m.sum()))

    def summary(values: list[float]) -> dict:
        v = np.asarray(values, float)
        f = v[np.isfinite(v)]
        return {"values": values, "mean": float(f.mean()) if len(f) else None,
                "std": float(f.std(ddof=1)) if len(f) >= 2 else None, "seeds_used": int(len(f))}

    return {"seeds": order, "results": {g: {p: {"n": d["n"], "kendall_tau": summary(d["tau"]),
                                                "spearman_rho": summary(d["rho"]),
                                                "precision_at_k": summary(d["pk"])}
                                            for p, d in per_g.items()} for g, per_g in per.items()}}


# ------------------------------------------------------------------------------------------- outputs

def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _fmt_metric(m: dict) -> str:
    s = _fmt(m.get("estimate"))
    if m.get("ci"):
        s += f" [{_fmt(m['ci'][0])}, {_fmt(m['ci'][1])}]"
    return s


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "column"


def write_outputs(result: dict, cols: np.ndarray, out_dir: Path, plots: bool = True) -> dict:
    """Write correlation.json / correlation.md (+ PNGs) for a ``correlate`` result; returns the file names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    inp = result["inputs"]
    gt_columns = inp["ground_truth_columns"]
    files: dict[str, Any] = {"json": "correlation.json", "markdown": "correlation.md", "scatter": {}}
    if plots:
        from . import plots as _plots  # noqa: F401  (sets the Agg backend, as the other report plots do)

        for g, gname in enumerate(gt_columns):
            name = f"scatter_{_slug(gname)}.png"
            _plot_scatter(result, cols, g, out_dir / name)
            files["scatter"][gname] = name
        if len(result["tau_matrix"]["labels"]) >= 2:
            _plot_heatmap(result["tau_matrix"], out_dir / "pairwise_tau.png")
            files["heatmap"] = "pairwise_tau.png"
    (out_dir / "correlation.md").write_text(_markdown(result, files))
    save_json({**result, "files": files}, out_dir / "correlation.json")
    return files


def _markdown(result: dict, files: dict) -> str:
    inp, conv = result["inputs"], result["conventions"]
    pct = f"{100 * conv['top_fraction']:g}%"
    boot = inp["bootstrap"]
    ci_txt = (f"{100 * boot['confidence']:g}% percentile-bootstrap CI over architectures "
              f"(B = {boot['resamples']}, seed {boot['seed']})" if boot["resamples"] else "no bootstrap (B = 0)")
    lines = ["# Rank correlation of proxies with ground truth", "",
             f"- ground truth split: {inp['split'] or '(not stated)'}",
             f"- architectures: {inp['joined']} joined on `{inp['key']}`"
             + (f" / `{inp['proxy_key']}`" if inp["proxy_key"] != inp["key"] else "")
             + f" ({inp['ground_truth_keys']} with ground truth, {inp['proxy_keys']} with proxies; "
               f"{inp['ground_truth_only']} ground-truth-only and {inp['proxy_only']} proxy-only dropped)",
             f"- intervals: {ci_txt}; point estimates on the full sample",
             f"- negated (lower is better): {', '.join(inp['negate']) or 'none'}"]
    if inp.get("seeds"):
        lines.append(f"- proxy values averaged over seeds {', '.join(inp['seeds'])} (per-seed results below)")
    for name, desc in (inp.get("sources") or {}).items():
        lines.append(f"- {name}: {desc if isinstance(desc, str) else json.dumps(desc)}")
    lines += ["", "## Conventions", ""]
    lines += [f"- **{k}**: {v}" for k, v in conv.items() if isinstance(v, str)]
    tie_notes = []
    for gname, per in result["results"].items():
        lines += ["", f"## Ground truth: `{gname}`", "",
                  f"| proxy | n | Kendall τ-b [CI] | Spearman ρ [CI] | P@{pct} (k) [CI] |", "|---|---|---|---|---|"]
        for pname, r in per.items():
            pk = r["precision_at_k"]
            k = f" (k={pk['k']})" if pk.get("k") else ""
            neg = " (negated)" if pname in inp["negate"] else ""
            lines.append(f"| `{pname}`{neg} | {r['n']} | {_fmt_metric(r['kendall_tau'])} | "
                         f"{_fmt_metric(r['spearman_rho'])} | {_fmt_metric(pk)}{k} |")
            tr = pk.get("tie_range")
            if tr and tr[1] - tr[0] > 1e-12:
                tie_notes.append(f"`{pname}` vs `{gname}`: P@{pct} = {_fmt(pk['estimate'])} under random "
                                 f"tie-breaking; {_fmt(tr[0])} (conservative) to {_fmt(tr[1])} over all "
                                 "tie-breakings of the proxy")
        if gname in files.get("scatter", {}):
            lines += ["", f"![proxy vs {gname}]({files['scatter'][gname]})"]
    if tie_notes:
        lines += ["", f"### Ties at the top-{pct} boundary", ""] + [f"- {t}" for t in tie_notes]

    tm = result["tau_matrix"]
    labels = tm["labels"]
    lines += ["", "## Pairwise Kendall τ-b", "",
              "Proxies first, then ground-truth columns (marked GT); pairwise deletion, n per pair in "
              "correlation.json.", "",
              "| | " + " | ".join(f"`{lab}`" for lab in labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for i, lab in enumerate(labels):
        lines.append(f"| `{lab}` | " + " | ".join("—" if i == j else _fmt(tm["tau"][i][j], 2)
                                                 for j in range(len(labels))) + " |")
    if "heatmap" in files:
        lines += ["", f"![pairwise tau]({files['heatmap']})"]
    lines += ["", "### Pairs with intervals", "", "| a | b | n | Kendall τ-b [CI] |", "|---|---|---|---|"]
    for e in result["pairwise"]:
        a = e["a"] + (" (GT)" if e["a_role"] == "ground_truth" else "")
        b = e["b"] + (" (GT)" if e["b_role"] == "ground_truth" else "")
        lines.append(f"| `{a}` | `{b}` | {e['n']} | {_fmt_metric(e['kendall_tau'])} |")

    ps = result.get("per_seed")
    if ps:
        lines += ["", f"## Per seed ({len(ps['seeds'])} seeds: {', '.join(ps['seeds'])})", "",
                  "Each seed's proxy values on their own; mean ± sample std over seeds.", "",
                  f"| ground truth | proxy | Kendall τ-b | Spearman ρ | P@{pct} |", "|---|---|---|---|---|"]
        for gname, per in ps["results"].items():
            for pname, r in per.items():
                cells = [f"{_fmt(r[m]['mean'])} ± {_fmt(r[m]['std'])}"
                         for m in ("kendall_tau", "spearman_rho", "precision_at_k")]
                lines.append(f"| `{gname}` | `{pname}` | " + " | ".join(cells) + " |")
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def _plot_scatter(result: dict, cols: np.ndarray, g: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    inp = result["inputs"]
    proxy_columns, gname = inp["proxy_columns"], inp["ground_truth_columns"][g]
    y_all = cols[:, len(proxy_columns) + g]
    ncols = min(4, len(proxy_columns))
    nrows = math.ceil(len(proxy_columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    for p, pname in enumerate(proxy_columns):
        ax = axes[p // ncols][p % ncols]
        m = np.isfinite(cols[:, p]) & np.isfinite(y_all)
        x, y = cols[m, p], y_all[m]
        big = len(x) > 2000
        if len(x):
            # keep extreme outliers (e.g. a -1e8 sentinel) from squashing the axis: points more than ten
            # 1st-99th percentile spans beyond that range are drawn at the axis edge, in red
            p1, p99 = np.percentile(x, [1, 99])
            span = p99 - p1
            out = ((x < p1 - 10 * span) | (x > p99 + 10 * span)) if span > 0 else np.zeros(len(x), bool)
            lo, hi = (x[~out].min(), x[~out].max()) if (~out).any() else (x.min(), x.max())
            ax.scatter(x[~out], y[~out], s=2 if big else 12, alpha=0.25 if big else 0.7, lw=0)
            if out.any():
                ax.scatter(np.clip(x[out], lo, hi), y[out], s=14, marker="x", color="red", lw=0.8)
                ax.text(0.02, 0.02, f"{int(out.sum())} beyond axis (red, at edge)", transform=ax.transAxes,
                        fontsize=6, color="red")
        r = result["results"][gname][pname]
        neg = " (negated)" if pname in inp["negate"] else ""
        ax.set_title(f"{pname}{neg}\nτ = {_fmt(r['kendall_tau']['estimate'])}, n = {r['n']}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        if p % ncols == 0:
            ax.set_ylabel(gname, fontsize=7)
    for p in range(len(proxy_columns), nrows * ncols):
        axes[p // ncols][p % ncols].axis("off")
    title = f"proxy value vs {gname}" + (f" ({inp['split']})" if inp["split"] else "")
    title = textwrap.shorten(title, 90 * ncols, placeholder=" ...")
    fig.suptitle("\n".join(textwrap.wrap(title, 45 * ncols)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _plot_heatmap(tm: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    labels = tm["labels"]
    t = np.array([[math.nan if v is None else v for v in row] for row in tm["tau"]], float)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * n, 1.2 + 0.5 * n))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgray")
    im = ax.imshow(np.ma.masked_invalid(t), cmap=cmap, vmin=-1, vmax=1)
    fs = 8 if n <= 8 else 6 if n <= 16 else 5
    for i in range(n):
        for j in range(n):
            v = t[i, j]
            ax.text(j, i, "–" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=fs,
                    color="white" if not math.isnan(v) and abs(v) > 0.6 else "black")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=fs + 1)
    ax.set_yticks(range(n), labels, fontsize=fs + 1)
    ax.set_title("pairwise Kendall τ-b", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
