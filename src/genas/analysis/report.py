"""Human-readable search report: Markdown with PNG plots, written next to ``result.json``."""
from __future__ import annotations

from pathlib import Path

from ..io import read_jsonl
from ..io import load_json
from ..search import LOG, RESULT
from ..spaces import get_space, winner_genotype
from .plots import draw_nb201_cell, plot_best_per_generation, plot_loss_vs_sigma, plot_score_vs_cost


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def distinct_top(rows: list[dict], space, rule: str, top: int) -> list[tuple[dict, int]]:
    """The ``top`` best scored candidates of distinct functions, each with the number of strings of
    its function the search met (scored or proposed as copies): (log row, strings).

    Rows rank by score, earlier first on ties, as the search's own top-k.
    """
    strings: dict[str, int] = {}
    for r in rows:
        key = space.canonical(space.parse(r["genotype"]), rule)
        strings[key] = strings.get(key, 0) + 1
    scored = sorted((r for r in rows if "copy_of" not in r), key=lambda r: -r["score"])  # stable: earlier first
    out, seen = [], set()
    for r in scored:
        key = space.canonical(space.parse(r["genotype"]), rule)
        if key not in seen:
            seen.add(key)
            out.append((r, strings[key]))
        if len(out) == top:
            break
    return out


def write_search_report(out_dir: str | Path, retrain: dict | None = None, top: int = 10) -> Path:
    """Write ``report.md`` (+ PNGs) for the search in ``out_dir``; returns the report path."""
    out_dir = Path(out_dir)
    result = load_json(out_dir / RESULT)
    space = get_space(result["space"])
    metric = result.get("metric", "score")
    best = result["best"]
    dedup = result["config"].get("dedup", "off")
    rows = read_jsonl(out_dir / LOG)
    saved = f", {result['copies']} equivalent strings not re-scored" if "copies" in result else ""
    lines = [f"# Search report: {metric} ({result['strategy']})", "",
             f"- space: `{result['space']}`, seed {result['config']['seed']}, "
             f"{result['evaluations']} candidates evaluated (dedup: {dedup}{saved})",
             f"- best: `{best['genotype']}` with {metric} = {_fmt(best['score'])}"]
    trained = retrain["genotype"] if retrain and retrain.get("genotype") else winner_genotype(result)
    if trained != best["genotype"]:
        verb = "retrained as" if retrain else "`genas retrain --result` trains"
        lines.append(f"- {verb} `{trained}`: the same function without the ops that cannot reach the cell's output")
    limits = [f"{k.replace('_', ' ')} {result['config'][k]:g}" for k in ("min_params", "max_params", "min_macs",
                                                                          "max_macs") if result["config"].get(k) is not None]
    if limits:
        lines.append(f"- resource limits (evaluation network): {', '.join(limits)}")
    if "supernet" in result:
        lines.append(f"- supernet: `final.pt` sha256 `{result['supernet'][:16]}…`")
    elif "supernet_run" in result:  # folders made before the digest
        lines.append(f"- supernet: `{result['supernet_run']}`")
    if "oracle" in result:
        lines.append(f"- oracle: `{result['oracle']['csv']}` column `{result['oracle']['column']}`")
    lines.append("")

    figs = [("Best score per generation", plot_best_per_generation(
        result["best_per_generation"], out_dir / "best_per_generation.png", metric))]
    ranked = distinct_top(rows, space, "default" if dedup == "off" else dedup, top)
    curves = [(r["genotype"] if len(r["genotype"]) < 70 else f"#{i + 1}", r["raw"]["stds"], r["raw"]["losses"])
              for i, (r, _) in enumerate(ranked) if isinstance(r.get("raw"), dict) and "losses" in r["raw"]]
    if curves:
        figs.append(("Validation loss vs noise std, top candidates", plot_loss_vs_sigma(curves, out_dir / "loss_vs_sigma.png")))
    costed = [r for r in rows if "copy_of" not in r and "macs" in r]
    if costed:
        figs.append((f"{metric} vs MACs, Pareto front", plot_score_vs_cost(
            [r["macs"] for r in costed], [r["score"] for r in costed], out_dir / "score_vs_macs.png", metric)))
    from .cells import draw_cell, graphviz_available

    if graphviz_available() and space.name in ("nb201", "darts"):  # a user's own space has no cell diagram
        png, _svg = draw_cell(space, best["genotype"], out_dir / "best_cell")
        figs.append(("Winning cell", png))
    elif space.name == "nb201":  # no graphviz `dot`: matplotlib drawing
        ops = [space.ops[i] for i in space.parse(best["genotype"])]
        figs.append(("Winning cell", draw_nb201_cell(ops, space.edges, out_dir / "best_cell.png", best["genotype"])))

    raw_keys = []
    for r, _ in ranked:
        raw_keys += [k for k, v in (r.get("raw") or {}).items() if isinstance(v, (int, float)) and k not in raw_keys]
    costs = [k for k in ("params", "macs") if any(k in r for r, _ in ranked)]
    lines += ["## Top candidates (distinct functions)", "",
              "| rank | genotype | strings | score | " + " | ".join(costs + raw_keys) + " |",
              "|---:|---|---:|---:|" + "---:|" * len(costs + raw_keys)]
    for i, (r, n) in enumerate(ranked, 1):
        raw = r.get("raw") or {}
        lines.append(f"| {i} | `{r['genotype']}` | ×{n} | {_fmt(r['score'])} | "
                     + " | ".join([_fmt(r.get(k, "")) for k in costs] + [_fmt(raw.get(k, "")) for k in raw_keys]) + " |")
    lines += ["", "*strings*: how many strings of that function the search met (scored or proposed again as an "
                  "equivalent); equal canonical forms compute the same function.", ""]
    if retrain:
        top5 = retrain.get("final_top5")
        lines += ["## Stand-alone retraining of the winner", "",
                  f"- test top-1 {retrain['final_top1']:.4f}" + (f", top-5 {top5:.4f}" if top5 is not None else "")
                  + (f", test loss {retrain['final_test_loss']:.4f}" if retrain.get("final_test_loss") else ""),
                  f"- {retrain['params'] / 1e6:.4f} M parameters, {retrain['macs'] / 1e6:.2f} M MACs; "
                  f"{retrain['train_images']} training images x {retrain['epochs']} epochs "
                  f"(`{retrain['preset']}` recipe), {retrain['seconds']} s", ""]
    for title, path in figs:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
