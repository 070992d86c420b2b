"""Evolution (GeNAS defaults) vs random search on the NAS-Bench-201 tabular oracle.

For every column and seed, each strategy runs once up to the largest budget and we read the
best-so-far score after B evaluations for every budget B. That equals a separate run capped at B
evaluations, because a strategy's candidate order depends only on its seed and the scores before
(a cap only truncates the last generation; tests/test_search.py checks this). The search optimises
the same column it reports, i.e. the oracle answers with the test accuracy itself: this measures the
search algorithm in isolation, not a realistic NAS pipeline.

    .venv/bin/python benchmarks/tabular_strategies.py --seeds 100 --budgets 100 200 500 1000
    # distinct-function budgets (each function scored once, by the mean of its strings' table values):
    .venv/bin/python benchmarks/tabular_strategies.py --dedup default --out results/tabular-search/dedup-default
    # under a resource limit (the q-th percentile of the evaluation network's parameters), with dedup:
    .venv/bin/python benchmarks/tabular_strategies.py --dedup default --max-params-percentile 10 \
        --columns CIFAR10TestAccuracy200Epochs --budgets 1000 --out results/tabular-search/constrained-p10
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from genas.search import TabularOracle, make_config, make_strategy
from genas.spaces import get_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared/data/nb201/nats_tss_test_acc_200ep.csv"
COLUMNS = ("CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs")
STRATEGIES = ("evolution", "random")


def best_so_far(strategy: str, oracle: TabularOracle, seed: int, budget: int, population: int, dedup: str = "off",
                max_params: float | None = None, cost=None) -> tuple[np.ndarray, int]:
    """Running best score after each evaluation of one in-memory search run, and the proposals
    not scored because their function already was (copies)."""
    generations = math.ceil(budget / population)  # = 20, the GeNAS default, for 1000 queries
    cfg = make_config(strategy, seed=seed, population=population, generations=generations, max_evaluations=budget,
                      dedup=dedup, max_params=max_params)
    strat = make_strategy(strategy, oracle.space, cfg, cost)
    while not strat.done:
        batch = strat.pending()
        strat.tell(batch, oracle(batch))
    if max_params is not None and any(cost(g)["params"] > max_params for g in strat.visited):
        raise SystemExit(f"{strategy} seed {seed}: a scored candidate is over --max-params {max_params:g}")
    trace = np.maximum.accumulate(np.fromiter(strat.visited.values(), float))
    if len(trace) < budget:  # the (constrained) space ran out: the best stays
        trace = np.concatenate([trace, np.full(budget - len(trace), trace[-1])])
    return trace, len(strat.copies)


def summarise(values: np.ndarray, optimum: float) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()),
            "hit_rate": float(np.mean(np.isclose(values, optimum, rtol=0, atol=1e-9)))}


def run(csv: Path, columns, seeds: int, budgets: list[int], population: int, dedup: str = "off",
        max_params_percentile: float | None = None) -> dict:
    space = get_space("nb201")
    top = max(budgets)
    out = {"csv": csv.name, "seeds": list(range(seeds)), "budgets": budgets, "population": population,
           "std": "sample std (ddof=1) over seeds", "dedup": dedup, "columns": {}}
    cost = max_params = None
    if max_params_percentile is not None:
        from genas.engine.cost import cost_model

        cost = cost_model(space)
        max_params = float(np.percentile([cost(g)["params"] for g in itertools.product(
            range(len(space.ops)), repeat=space.num_genes)], max_params_percentile))
        out["max_params"] = {"percentile": max_params_percentile, "limit": max_params,
                             "network": cost.describe()}
    for column in columns:
        oracle = TabularOracle(csv, column, space, canonical_rule=dedup)
        feasible = {g: v for g, v in oracle.scores.items() if max_params is None or cost(g)["params"] <= max_params}
        opt_g = max(feasible, key=feasible.get)
        opt = feasible[opt_g]
        col = {"optimum": opt, "optimum_genotype": space.format(opt_g), "strategies": {},
               "feasible_strings": len(feasible),
               "feasible_functions": len({space.canonical(g, "default" if dedup == "off" else dedup) for g in feasible})}
        for strategy in STRATEGIES:
            t0 = time.perf_counter()
            runs = [best_so_far(strategy, oracle, s, top, population, dedup, max_params, cost) for s in range(seeds)]
            traces = np.stack([t for t, _ in runs])
            col["strategies"][strategy] = {
                "copies_mean": float(np.mean([c for _, c in runs])),
                "budgets": {str(b): {**summarise(traces[:, b - 1], opt), "per_seed": traces[:, b - 1].tolist()}
                            for b in budgets},
                "mean_curve": np.round(traces.mean(0), 4).tolist(),  # mean best-so-far after 1..max(budgets) evaluations
                "seconds": round(time.perf_counter() - t0, 2),
            }
            print(f"{column:32s} {strategy:9s} " + "  ".join(
                f"B={b}: {traces[:, b - 1].mean():.3f}±{traces[:, b - 1].std(ddof=1) if seeds > 1 else 0:.3f}"
                for b in budgets), flush=True)
        out["columns"][column] = col
    return out


def markdown(res: dict) -> str:
    scope = f"dedup {res.get('dedup', 'off')}"
    if "max_params" in res:
        scope += (f"; params <= {res['max_params']['limit']:.0f} (percentile {res['max_params']['percentile']:g} "
                  f"of {res['max_params']['network']})")
    lines = [f"Best {res['csv']} score found (mean ± std over {len(res['seeds'])} seeds; "
             f"share of seeds that found the (feasible) table optimum in brackets; {scope}).", "",
             "| column (optimum) | queries | evolution | random | evolution − random |", "|---|---:|---|---|---:|"]
    for column, col in res["columns"].items():
        for b in res["budgets"]:
            e, r = (col["strategies"][s]["budgets"][str(b)] for s in STRATEGIES)
            lines.append(f"| {column} ({col['optimum']:.4f}) | {b} | {e['mean']:.3f} ± {e['std']:.3f} "
                         f"[{e['hit_rate']:.0%}] | {r['mean']:.3f} ± {r['std']:.3f} [{r['hit_rate']:.0%}] "
                         f"| {e['mean'] - r['mean']:+.3f} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res["columns"]), figsize=(5 * len(res["columns"]), 3.6), squeeze=False)
    for ax, (column, col) in zip(axes[0], res["columns"].items()):
        for strategy in STRATEGIES:
            curve = np.asarray(col["strategies"][strategy]["mean_curve"])
            ax.plot(np.arange(1, len(curve) + 1), curve, label=strategy)
        ax.axhline(col["optimum"], color="grey", ls="--", lw=0.8, label="table optimum")
        start = min(50, len(curve))  # from the end of the shared random first generation
        lo = min(col["strategies"][s]["mean_curve"][start - 1] for s in STRATEGIES)
        ax.set(xscale="log", xlim=(start, len(curve)), ylim=(lo - 0.5, col["optimum"] + 0.2),
               xlabel="queries", ylabel="mean best test accuracy (%)", title=column)
        ticks = sorted({start, *res["budgets"]})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100, help="number of seeds, run as 0..N-1 (default 100)")
    p.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 500, 1000], help="query budgets")
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="NB201 table (default: %(default)s)")
    p.add_argument("--columns", nargs="+", default=list(COLUMNS), help="score columns to search and report")
    p.add_argument("--population", type=int, default=50, help="population / batch size (GeNAS default 50)")
    p.add_argument("--out", type=Path, default=ROOT / "results/tabular-search", help="output folder")
    p.add_argument("--dedup", choices=("off", "default", "strict"), default="off",
                   help="score each function once (budgets count distinct functions; scores are class means)")
    p.add_argument("--max-params-percentile", type=float, default=None,
                   help="limit parameters to this percentile of the space's evaluation networks")
    args = p.parse_args(argv)
    if args.seeds < 1 or min(args.budgets) < 1:
        p.error("--seeds and --budgets must be >= 1")

    t0 = time.perf_counter()
    res = run(args.csv, args.columns, args.seeds, sorted(set(args.budgets)), args.population, args.dedup,
              args.max_params_percentile)
    res["machine"] = {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(res))
    plot(res, args.out / "best_so_far.png")
    print(markdown(res))
    print(f"wrote {args.out} in {res['seconds']} s")


if __name__ == "__main__":
    main()
