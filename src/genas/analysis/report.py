"""Human-readable search report: Markdown with PNG plots, written next to ``result.json``."""
from __future__ import annotations

from pathlib import Path

from ..io import read_jsonl
from ..io import load_json
from ..search import LOG, RESULT
from ..spaces import get_space
from .plots import draw_nb201_cell, plot_best_per_generation, plot_loss_vs_sigma


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_search_report(out_dir: str | Path, retrain: dict | None = None, top: int = 10) -> Path:
    """Write ``report.md`` (+ PNGs) for the search in ``out_dir``; returns the report path."""
    out_dir = Path(out_dir)
    result = load_json(out_dir / RESULT)
    space = get_space(result["space"])
    metric = result.get("metric", "score")
    best = result["best"]
    lines = [f"# Search report: {metric} ({result['strategy']})", "",
             f"- space: `{result['space']}`, seed {result['config']['seed']}, "
             f"{result['evaluations']} candidates evaluated",
             f"- best: `{best['genotype']}` with {metric} = {_fmt(best['score'])}"]
    if "supernet" in result:
        lines.append(f"- supernet: `final.pt` sha256 `{result['supernet'][:16]}…`")
    elif "supernet_run" in result:  # folders made before the digest
        lines.append(f"- supernet: `{result['supernet_run']}`")
    if "oracle" in result:
        lines.append(f"- oracle: `{result['oracle']['csv']}` column `{result['oracle']['column']}`")
    lines.append("")

    figs = [("Best score per generation", plot_best_per_generation(
        result["best_per_generation"], out_dir / "best_per_generation.png", metric))]
    log = {r["genotype"]: r for r in read_jsonl(out_dir / LOG)}
    curves = [(r["genotype"] if len(r["genotype"]) < 70 else f"#{i + 1}", r["raw"]["stds"], r["raw"]["losses"])
              for i, t in enumerate(result["topk"][:top])
              if isinstance((r := log.get(t["genotype"], {})).get("raw"), dict) and "losses" in r["raw"]]
    if curves:
        figs.append(("Validation loss vs noise std, top candidates", plot_loss_vs_sigma(curves, out_dir / "loss_vs_sigma.png")))
    from .cells import draw_cell, graphviz_available

    if graphviz_available() and space.name in ("nb201", "darts"):  # a user's own space has no cell diagram
        png, _svg = draw_cell(space, best["genotype"], out_dir / "best_cell")
        figs.append(("Winning cell", png))
    elif space.name == "nb201":  # no graphviz `dot`: matplotlib drawing
        ops = [space.ops[i] for i in space.parse(best["genotype"])]
        figs.append(("Winning cell", draw_nb201_cell(ops, space.edges, out_dir / "best_cell.png", best["genotype"])))

    raw_keys = []
    for t in result["topk"][:top]:
        raw = log.get(t["genotype"], {}).get("raw") or {}
        raw_keys += [k for k, v in raw.items() if isinstance(v, (int, float)) and k not in raw_keys]
    lines += ["## Top candidates", "", "| rank | genotype | score | " + " | ".join(raw_keys) + " |",
              "|---:|---|---:|" + "---:|" * len(raw_keys)]
    for i, t in enumerate(result["topk"][:top], 1):
        raw = log.get(t["genotype"], {}).get("raw") or {}
        lines.append(f"| {i} | `{t['genotype']}` | {_fmt(t['score'])} | "
                     + " | ".join(_fmt(raw.get(k, "")) for k in raw_keys) + " |")
    lines.append("")
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
