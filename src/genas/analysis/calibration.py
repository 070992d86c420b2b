"""Calibrate the flatness proxy offline from a noise grid (``genas calibrate``).

Input: the rows of :func:`genas.calibration.noise_grid` (losses per noise block, unperturbed loss)
and ground-truth tables. Every variant (block = noise scaling x perturbed parameters; sigma list
drawn from the block; alpha; depth at sigma_1 or at 0) is scored for every architecture from those
losses, with the same formula as the flatness proxy, and rank-correlated with each ground-truth
column. Point estimates cover the whole grid; a shortlist (the paper preset, the best variant per
block, alpha "auto", the supernet loss and accuracy) gets bootstrap CIs through
:func:`genas.analysis.correlation.correlate`, plus a paired bootstrap of its tau minus the supernet
loss's tau (same resamples), which is what "beats the loss proxy beyond the CIs" has to mean.
Choosing the best of ~200 variants on the same data is optimistic; :func:`held_out_selection` measures
what that choice is worth by picking on one random half of the architectures and scoring on the other.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from ..errors import GenasError
from ..io import read_jsonl, save_json
from ..proxies.flatness import auto_alpha, flatness_terms
from .correlation import correlate

ALPHAS: tuple = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, "auto")
DEPTHS = ("sigma1", "zero")
PAPER = ("absolute/all", (0.001, 0.003, 0.006), 1.0, "sigma1")


def sigma_lists(stds: Sequence[float]) -> list[tuple[float, ...]]:
    """The sigma lists a block offers: doubling triples (s, 2s, 4s) and paper-ratio triples (s, 3s, 6s)."""
    have = {round(s, 12): s for s in stds}
    out = []
    for ratios in ((1, 2, 4), (1, 3, 6)):
        for s in sorted(stds):
            triple = tuple(have.get(round(s * r, 12)) for r in ratios)
            if all(v is not None for v in triple):
                out.append(triple)
    return out


def _terms(row: dict, block: str, stds: tuple, depth_at: str) -> tuple[float, float]:

    b = row["blocks"][block]
    index = {round(s, 12): i for i, s in enumerate(b["stds"])}
    losses = [b["losses"][index[round(s, 12)]] for s in stds]
    return flatness_terms(losses, stds, row["loss0"] if depth_at == "zero" else None)


def variant_scores(rows: Sequence[dict], block: str, stds: tuple, alpha, depth_at: str,
                   eps: float = 1e-5) -> tuple[np.ndarray, float]:
    """Flatness score per row for one variant, and the numeric alpha used ("auto": over these rows)."""
    terms = [_terms(r, block, stds, depth_at) for r in rows]
    a = auto_alpha(terms) if alpha == "auto" else float(alpha)
    scores = [1.0 / (s + a * d + eps) if math.isfinite(s) and math.isfinite(d) else 0.0 for s, d in terms]
    return np.array(scores), a


def _label(block: str, stds: tuple, alpha, depth_at: str) -> str:
    a = alpha if alpha == "auto" else f"{alpha:g}"
    return f"{block} s={'/'.join(f'{s:g}' for s in stds)} a={a} depth={depth_at}"


def _truth_table(truth_rows: Sequence[dict], columns: Sequence[str]) -> dict[str, list[float]]:
    """genotype -> mean of each column over the rows that have it (e.g. two training seeds)."""
    acc: dict[str, list[list[float]]] = {}
    for r in truth_rows:
        if r.get("disconnected"):
            continue
        vals = acc.setdefault(r["genotype"], [[] for _ in columns])
        for i, c in enumerate(columns):
            v = r.get(c)
            if isinstance(v, (int, float)) and math.isfinite(v):
                vals[i].append(float(v))
    return {g: [float(np.mean(v)) if v else math.nan for v in vals] for g, vals in acc.items()}


def _tau(x, y) -> float:
    return float(stats.kendalltau(x, y).statistic)


def held_out_selection(scores: dict[str, np.ndarray], references: dict[str, np.ndarray], gt: np.ndarray,
                       splits: int = 200, seed: int = 0) -> dict:
    """What picking the best variant is worth on architectures it was not picked on.

    For each of ``splits`` seeded random halvings of the architectures: choose the variant with the
    highest tau on half A, then measure its tau, and every reference's (e.g. supernet loss, paper
    preset), on half B. Returns the mean held-out tau of the chosen variant and of each reference, the
    mean and 2.5-97.5 % spread over splits of (chosen - reference), the fraction of splits where the
    chosen variant wins, and how often each variant was chosen. The halves overlap across splits, so the
    spread is a stability range, not a confidence interval.
    """
    m = np.isfinite(gt)
    names = list(scores)
    x = {n: scores[n][m] for n in names}
    refs = {n: v[m] for n, v in references.items()}
    y = gt[m]
    rng = np.random.default_rng(seed)
    chosen_tau, ref_tau, picks = [], {n: [] for n in refs}, {}
    for _ in range(splits):
        perm = rng.permutation(len(y))
        a, b = perm[: len(y) // 2], perm[len(y) // 2:]
        taus = [_tau(x[n][a], y[a]) for n in names]
        best = names[int(np.nanargmax(taus))]
        picks[best] = picks.get(best, 0) + 1
        chosen_tau.append(_tau(x[best][b], y[b]))
        for n, v in refs.items():
            ref_tau[n].append(_tau(v[b], y[b]))
    chosen = np.array(chosen_tau)
    out = dict(splits=splits, seed=seed, architectures=int(len(y)), chosen_tau=float(np.nanmean(chosen)),
               vs={}, picked=dict(sorted(picks.items(), key=lambda kv: -kv[1])[:10]))
    for n, t in ref_tau.items():
        d = chosen - np.array(t)
        out["vs"][n] = dict(tau=float(np.nanmean(t)), delta=float(np.nanmean(d)),
                            spread=np.nanpercentile(d, [2.5, 97.5]).tolist(), wins=float(np.nanmean(d > 0)))
    return out


def _joined_rows(grid_rows: Sequence[dict], truth: dict[str, list[float]]) -> list[dict]:
    """Grid rows of the first grid seed that have ground truth, sorted by genotype (GenasError if < 3)."""
    first_seed = min(r["seed"] for r in grid_rows)  # one row per genotype: other grid seeds are other studies
    by_genotype = {r["genotype"]: r for r in grid_rows if r["seed"] == first_seed}
    rows = [by_genotype[g] for g in sorted(by_genotype) if g in truth]
    if len(rows) < 3:
        raise GenasError(f"only {len(rows)} architectures are in both the noise grid and the ground truth (need >= 3)")
    return rows


def _score_variants(rows: Sequence[dict], blocks: dict, alphas: Sequence, gt: np.ndarray,
                    truth_columns: Sequence[str]) -> list[tuple[dict, np.ndarray]]:
    """(entry with τ and ρ per truth column, scores) for every block x sigma list x depth x alpha."""
    variants = []
    for block, stds in blocks.items():
        for triple in sigma_lists(stds):
            for depth_at in DEPTHS:
                for alpha in alphas:
                    scores, a = variant_scores(rows, block, triple, alpha, depth_at)
                    entry = dict(label=_label(block, triple, alpha, depth_at), block=block, stds=list(triple),
                                 alpha=alpha, alpha_value=a, depth_at=depth_at,
                                 passes=len(triple) + (1 if depth_at == "zero" else 0))
                    for j, col in enumerate(truth_columns):
                        m = np.isfinite(gt[:, j])
                        entry[f"tau_{col}"] = _tau(scores[m], gt[m, j])
                        entry[f"rho_{col}"] = float(stats.spearmanr(scores[m], gt[m, j]).statistic)
                    variants.append((entry, scores))
    return variants


def _best(variants: Sequence[tuple[dict, np.ndarray]], main: str, pred) -> tuple[dict, np.ndarray] | None:
    """The variant with the highest τ on ``main`` among those whose entry satisfies ``pred`` (None if none)."""
    cands = [v for v in variants if pred(v[0])]
    return max(cands, key=lambda v: v[0][f"tau_{main}"]) if cands else None


def _shortlist(variants: Sequence[tuple[dict, np.ndarray]], blocks: dict, main: str) -> dict:
    """Paper preset, and the best variant per block with fixed and with "auto" alpha (chosen on ``main``)."""
    shortlist = {}
    paper = _best(variants, main, lambda e: (e["block"], tuple(e["stds"]), e["alpha"], e["depth_at"]) == PAPER)
    if paper:
        shortlist["paper"] = paper
    for block in blocks:
        for alpha_kind in ("fixed", "auto"):
            v = _best(variants, main,
                      lambda e, b=block, k=alpha_kind: e["block"] == b and ((e["alpha"] == "auto") == (k == "auto")))
            if v:
                shortlist[f"best {block} ({'alpha auto' if alpha_kind == 'auto' else 'alpha fixed'})"] = v
    return shortlist


def _correlation_tables(rows: Sequence[dict], shortlist: dict, baselines: dict, gt: np.ndarray,
                        truth_columns: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """Ground-truth rows and proxy rows (shortlist + supernet baselines) for ``correlate``."""
    proxy_rows = []
    for i, r in enumerate(rows):
        row = {"genotype": r["genotype"], **{n: float(shortlist[n][1][i]) for n in shortlist},
               **{f"supernet {k}": float(v[i]) for k, v in baselines.items()}}
        proxy_rows.append(row)
    gt_rows = [{"genotype": r["genotype"], **{c: float(gt[i, j]) for j, c in enumerate(truth_columns)}}
               for i, r in enumerate(rows)]
    return gt_rows, proxy_rows


def _held_out_all(variants: Sequence[tuple[dict, np.ndarray]], baselines: dict, shortlist: dict, gt: np.ndarray,
                  truth_columns: Sequence[str], splits: int, seed: int) -> dict:
    """``held_out_selection`` per truth column, against the supernet baselines and the paper preset."""
    if not splits:
        return {}
    return {col: held_out_selection({e["label"]: sc for e, sc in variants},
                                    {"supernet loss": baselines["loss"], "supernet accuracy": baselines["accuracy"],
                                     **({"paper": shortlist["paper"][1]} if "paper" in shortlist else {})},
                                    gt[:, j], splits, seed)
            for j, col in enumerate(truth_columns)}


def calibrate(grid_rows: Sequence[dict], truth_rows: Sequence[dict], truth_columns: Sequence[str],
              out_dir: str | Path, bootstrap: int = 1000, seed: int = 0, alphas: Sequence = ALPHAS,
              plots: bool = True, splits: int = 200) -> dict:
    """Score every variant, correlate with the ground truth, write calibration.{json,md} and plots."""
    if splits < 0:
        raise GenasError(f"--splits must be >= 0, got {splits}")
    truth = _truth_table(truth_rows, truth_columns)
    rows = _joined_rows(grid_rows, truth)
    gt = np.array([truth[r["genotype"]] for r in rows])
    blocks = {name: rows[0]["blocks"][name]["stds"] for name in rows[0]["blocks"]}
    images = rows[0].get("images")

    variants = _score_variants(rows, blocks, alphas, gt, truth_columns)
    baselines = {"loss": -np.array([r["loss0"] for r in rows]), "accuracy": np.array([r["accuracy0"] for r in rows])}
    # shortlist: paper preset, best variant per block (on the first truth column), alpha=auto best, baselines
    shortlist = _shortlist(variants, blocks, truth_columns[0])
    short_names = list(shortlist)
    gt_rows, proxy_rows = _correlation_tables(rows, shortlist, baselines, gt, truth_columns)
    out_dir = Path(out_dir)
    corr = correlate(gt_rows, proxy_rows, list(truth_columns), short_names + [f"supernet {k}" for k in baselines],
                     out_dir=out_dir / "shortlist", bootstrap=bootstrap, seed=seed, plots=plots,
                     split="ground truth: mean over training seeds where several exist")
    paired = {ref: _paired_delta({n: shortlist[n][1] for n in short_names}
                                 | {f"supernet {k}": v for k, v in baselines.items() if k != ref},
                                 baselines[ref], gt, truth_columns, bootstrap, seed) for ref in baselines}
    result = dict(
        architectures=len(rows), validation_images=images, truth_columns=list(truth_columns),
        blocks={k: list(v) for k, v in blocks.items()}, alphas=[a for a in alphas],
        variants=[e for e, _ in variants],
        shortlist={n: shortlist[n][0] for n in short_names},
        baselines={f"supernet {k}": {f"tau_{c}": corr["results"][c][f"supernet {k}"]["kendall_tau"]
                                     for c in truth_columns} for k in baselines},
        shortlist_ci={n: {c: corr["results"][c][n]["kendall_tau"] for c in truth_columns} for n in short_names},
        paired_vs_loss=paired["loss"], paired_vs_accuracy=paired["accuracy"],
        held_out_selection=_held_out_all(variants, baselines, shortlist, gt, truth_columns, splits, seed),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    save_json(result, out_dir / "calibration.json")
    (out_dir / "calibration.md").write_text(_markdown(result))
    if plots:
        _plot_tau_vs_alpha(result, out_dir / "tau_vs_alpha.png")
    return result


def _paired_delta(scores: dict[str, np.ndarray], base: np.ndarray, gt: np.ndarray, columns: Sequence[str],
                  bootstrap: int, seed: int) -> dict:
    """tau(variant) - tau(base), e.g. the supernet loss, with a percentile CI over shared bootstrap resamples."""
    out = {}
    for j, col in enumerate(columns):
        m = np.isfinite(gt[:, j])
        y, ref = gt[m, j], base[m]
        rng = np.random.default_rng(seed)
        idx = [rng.integers(0, len(y), len(y)) for _ in range(bootstrap)]
        out[col] = {}
        for name, s in scores.items():
            x = s[m]
            diffs = [_tau(x[i], y[i]) - _tau(ref[i], y[i]) for i in idx]
            diffs = [d for d in diffs if math.isfinite(d)]
            lo, hi = (np.percentile(diffs, [2.5, 97.5]).tolist() if diffs else (None, None))
            out[col][name] = dict(delta_tau=_tau(x, y) - _tau(ref, y), ci95=[lo, hi])
    return out


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def _markdown(result: dict) -> str:
    cols = result["truth_columns"]
    lines = [f"# Flatness calibration ({result['architectures']} architectures, "
             f"{result['validation_images']} validation images)", "",
             "Kendall τ-b with a 95 % percentile-bootstrap CI; Δτ vs loss = τ(proxy) − τ(supernet loss) on the "
             "same bootstrap resamples (paired CI), likewise vs the supernet accuracy. Passes = full validation "
             "passes per candidate (BN recalibration is common to all). alpha 'auto' is computed over these "
             "architectures.", "",
             "| proxy | " + " | ".join(f"τ {c} [CI]" for c in cols) + " | "
             + " | ".join(f"Δτ vs {ref} {c} [CI]" for ref in ("loss", "accuracy") for c in cols) + " | passes |",
             "|---|" + "---|" * (3 * len(cols) + 1)]
    for name, entry in list(result["shortlist"].items()) + [(k, None) for k in result["baselines"]]:
        ci = result["shortlist_ci"].get(name) or result["baselines"][name]
        taus = []
        for c in cols:
            m = ci[c] if name in result["shortlist_ci"] else ci[f"tau_{c}"]
            lo, hi = (m.get("ci") or [None, None])
            taus.append(f"{_fmt(m['estimate'])} [{_fmt(lo)}, {_fmt(hi)}]")
        deltas = []
        for key, c in ((k, c) for k in ("paired_vs_loss", "paired_vs_accuracy") for c in cols):
            d = result[key][c].get(name)
            deltas.append("–" if d is None else f"{_fmt(d['delta_tau'])} [{_fmt(d['ci95'][0])}, {_fmt(d['ci95'][1])}]")
        label = f"{name}: `{entry['label']}`" if entry else name
        passes = entry["passes"] if entry else 1
        lines.append(f"| {label} | " + " | ".join(taus) + " | " + " | ".join(deltas) + f" | {passes} |")
    if result.get("held_out_selection"):
        lines += ["", "## Held-out selection: what picking the best variant is worth", "",
                  "Each split: the variant with the highest τ on a random half of the architectures is chosen and "
                  "measured on the other half, next to the references on that same half (mean over splits; the "
                  "spread is the 2.5–97.5 % range over splits, not a CI: halves overlap).", "",
                  "| truth | splits | chosen variant τ (held out) | reference | reference τ | Δτ mean [spread] | "
                  "chosen wins |", "|---|---:|---:|---|---:|---|---:|"]
        for c, h in result["held_out_selection"].items():
            for ref, v in h["vs"].items():
                lines.append(f"| {c} | {h['splits']} | {_fmt(h['chosen_tau'])} | {ref} | {_fmt(v['tau'])} | "
                             f"{_fmt(v['delta'])} [{_fmt(v['spread'][0])}, {_fmt(v['spread'][1])}] | "
                             f"{100 * v['wins']:.0f} % |")
        for c, h in result["held_out_selection"].items():
            picks = ", ".join(f"`{k}` ({v})" for k, v in list(h["picked"].items())[:5])
            lines.append(f"\nMost often chosen on {c}: {picks}.")
    main = cols[0]
    top = sorted(result["variants"], key=lambda e: -e[f"tau_{main}"])[:15]
    lines += ["", f"## Top 15 variants by τ vs {main} (point estimates; selection on the same data is "
                  "optimistic)", "", "| variant | alpha used | " + " | ".join(f"τ {c}" for c in cols) + " | passes |",
              "|---|---|" + "---|" * (len(cols) + 1)]
    for e in top:
        lines.append(f"| `{e['label']}` | {e['alpha_value']:.4g} | "
                     + " | ".join(_fmt(e[f"tau_{c}"]) for c in cols) + f" | {e['passes']} |")
    return "\n".join(lines) + "\n"


def _plot_tau_vs_alpha(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = result["truth_columns"]
    fixed = [a for a in result["alphas"] if a != "auto"]
    xs = {a: (i) for i, a in enumerate(fixed)}
    fig, axes = plt.subplots(1, len(cols), figsize=(6 * len(cols), 4.5), squeeze=False)
    for ax, col in zip(axes[0], cols):
        for b_i, block in enumerate(result["blocks"]):
            color = f"C{b_i}"
            cands = [e for e in result["variants"] if e["block"] == block and e["alpha"] != "auto"]
            if not cands:
                continue
            best = max(cands, key=lambda e: e[f"tau_{cols[0]}"])
            for depth_at, style in (("sigma1", "-"), ("zero", "--")):
                line = [e for e in cands if e["stds"] == best["stds"] and e["depth_at"] == depth_at]
                line.sort(key=lambda e: xs[e["alpha"]])
                ax.plot([xs[e["alpha"]] for e in line], [e[f"tau_{col}"] for e in line], style, color=color,
                        marker="o", ms=3,
                        label=f"{block} s={'/'.join(f'{s:g}' for s in best['stds'])} depth={depth_at}")
        for name, ls in (("supernet loss", ":"), ("supernet accuracy", "-.")):
            m = result["baselines"][name][f"tau_{col}"]
            if m["estimate"] is not None:
                ax.axhline(m["estimate"], color="k", ls=ls, lw=1, label=name)
        ax.set_xticks(range(len(fixed)), [f"{a:g}" for a in fixed], rotation=45)
        ax.set_xlabel("alpha (weight of the depth term)")
        ax.set_ylabel(f"Kendall τ vs {col}")
        ax.set_title(f"τ vs alpha, per noise scaling ({result['architectures']} archs)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_grid(path: str | Path) -> list[dict]:

    path = Path(path)
    if not path.is_file():
        raise GenasError(f"noise grid {path} not found")
    rows = read_jsonl(path)
    if not rows or not all(isinstance(r, dict) and "blocks" in r and "loss0" in r for r in rows):
        raise GenasError(f"{path} is not a noise grid made by `genas noise-grid`")
    return rows
