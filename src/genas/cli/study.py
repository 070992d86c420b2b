"""The proxy-study commands: ``bench``, ``score``, ``noise-grid``, ``calibrate``, ``combine``,
``share``, ``outcome`` and ``correlate``."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import GenasError
from ..run_folder import check_new_output
from .options import (add_config_options, add_scoring_options, comma_list, config_values, name_option,
                      plain_values, progress_of, scoring_config, shared)

# the ScoringConfig fields that `genas noise-grid` measures with (the noise itself is its grid)
MEASUREMENT = ("bn_images", "bn_batch_size", "bn_mode", "val_images", "batch_size")
SEEDS = comma_list(int)


# --- bench ------------------------------------------------------------------------------------------

def _read_genotypes(path: str) -> list[str]:
    """One genotype per line ('#' starts a comment), checked against the space when the bench starts."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GenasError(f"cannot read --genotypes {path}: {exc}") from None
    genotypes = [ln.split("#", 1)[0].strip() for ln in lines]
    genotypes = [g for g in genotypes if g]
    if not genotypes:
        raise GenasError(f"--genotypes {path} lists no architecture")
    return genotypes


def cmd_bench(args: argparse.Namespace) -> int:
    from ..groundtruth import run_bench

    summary = run_bench(args.output, _bench_config(args), workers=args.workers, resume=args.resume,
                        device=args.device, progress=progress_of(args))
    if os.environ.get("RANK", "0") == "0":
        print(f"{summary['rows']}/{summary['target']} architectures in {Path(args.output, 'results.jsonl')} "
              f"({summary['total_train_seconds']} s of training)")
    return 0


def _bench_config(args: argparse.Namespace):
    """The recipe and sample: the options passed (``genotypes``: a file of them, or the list of a
    --config file such as a bench folder's config.json)."""
    from ..groundtruth import BenchConfig
    from ..options import from_dict

    values = config_values(args, BenchConfig)
    if isinstance(args.genotypes, list):
        values["genotypes"] = args.genotypes
    elif args.genotypes:
        values["genotypes"] = _read_genotypes(args.genotypes)
    return from_dict(BenchConfig, values)


def _print_bench_config(args: argparse.Namespace) -> dict:
    """--print-config: the config.json the bench folder would have, and --workers."""
    from ..options import to_dict

    return {**to_dict(_bench_config(args)), "workers": args.workers}


def _scoring_printer(parser):
    """--print-config of a command with proxy scoring: its own options, the resolved proxy settings
    under ``scoring`` (the section of a search's scoring.json)."""
    from ..options import to_dict
    from ..proxies.config import ScoringConfig

    def resolved(args: argparse.Namespace) -> dict:
        out = plain_values(parser, args, skip=getattr(args, "_config_fields", {}).get(ScoringConfig.__name__, []))
        out["scoring"] = to_dict(scoring_config(args, getattr(args, "seed", 0) or 0))
        return out

    return resolved


def _add_bench(sub) -> None:
    from ..groundtruth import BenchConfig

    common = shared("benchmark folder", resume="continue (or extend with a larger --num-archs) a benchmark",
                    device="cpu", progress="hide progress bars")
    p = sub.add_parser("bench", parents=[common],
                       help="train a seeded sample of architectures stand-alone (ground truth)",
                       description="Train a seeded sample of architectures with one fixed recipe and append one "
                                   "row per architecture to DIR/results.jsonl (test, search-validation and "
                                   "distribution-shifted accuracy, params, MACs, seconds). Resumable and "
                                   "append-only; --workers N or torchrun ranks share the work without duplicates.")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--genotypes", help="file with one architecture per line to train instead of the seeded sample "
                                       "(e.g. search winners); a later, longer file extends the same folder")
    add_config_options(p.add_argument_group("recipe and sample"), BenchConfig)
    p.set_defaults(func=cmd_bench, config_of=_print_bench_config)


# --- score and noise-grid ---------------------------------------------------------------------------

def _bench_genotypes(bench: str, connected_only: bool = False) -> list[str]:
    from ..analysis.correlation import load_table
    from ..groundtruth.runner import RESULTS

    rows = load_table(Path(bench) / RESULTS, key="genotype")
    return [r["genotype"] for r in rows if not (connected_only and r.get("disconnected"))]


def cmd_score(args: argparse.Namespace) -> int:
    from ..groundtruth.runner import CONFIG, BenchConfig
    from ..io import load_json
    from ..options import from_dict
    from ..workflows import score_archs

    bench = from_dict(BenchConfig, load_json(Path(args.bench) / CONFIG))
    n = score_archs(_bench_genotypes(args.bench), args.metrics, args.output, args.seeds or [0],
                    scoring_config(args, args.seed), run=args.run,
                    network=dict(channels=bench.channels, cells_per_stage=bench.cells_per_stage),
                    data_args=dict(name=bench.dataset, data_dir=bench.data_dir, split_seed=bench.split_seed),
                    noise_modes=tuple(args.noise_modes or ()) or ("independent",), device=args.device,
                    progress=progress_of(args), space=bench.space)
    print(f"{n} rows appended to {args.output}" if n else f"nothing to do: every row is already in {args.output}")
    return 0


def _add_score(sub) -> None:
    from ..proxies.perturb import NOISE_MODES
    from ..proxies.registry import PROXIES

    common = shared("JSONL file to append rows to", device="auto", progress="hide the progress bar")
    p = sub.add_parser("score", parents=[common],
                       help="score the architectures of a bench folder with proxies (several seeds)",
                       description="Compute proxies for every architecture in a `genas bench` folder and append one "
                                   "JSONL row per (architecture, seed). Supernet metrics need --run; zero-cost "
                                   "metrics use fresh networks of the bench recipe's size. Resumable.")
    p.add_argument("--bench", required=True, help="a `genas bench` folder (its architectures are scored)")
    p.add_argument("--run", help="a finished supernet run folder (for flatness, angle, accuracy, loss, combined)")
    p.add_argument("--metrics", required=True, type=comma_list(choices=PROXIES.names, what=PROXIES.what),
                   help=f"comma-separated proxies of {', '.join(PROXIES.names())}")
    p.add_argument("--noise-modes", type=comma_list(choices=NOISE_MODES, what="noise mode"),
                   help=f"comma-separated flatness noise modes to score, of {', '.join(NOISE_MODES)} "
                        "(default independent)")
    p.add_argument("--seeds", type=SEEDS, default="0", help="comma-separated proxy seeds (default 0)")
    p.add_argument("--independent-noise", action="store_true",
                   help="fresh noise per candidate instead of common random numbers")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    add_scoring_options(p.add_argument_group("proxy scoring"))
    p.set_defaults(func=cmd_score, config_of=_scoring_printer(p))


def cmd_noise_grid(args: argparse.Namespace) -> int:
    from ..workflows.noise_grid import noise_grid, parse_grid

    grid = parse_grid(args.grid)
    n = noise_grid(_bench_genotypes(args.bench, connected_only=True), args.run, args.output, args.seeds or [0],
                   scoring_config(args), grid, device=args.device, progress=progress_of(args))
    print(f"{n} rows appended to {args.output}" if n else f"nothing to do: every row is already in {args.output}")
    return 0


def _add_noise_grid(sub) -> None:
    common = shared("JSONL file to append rows to", device="auto", progress="hide the progress bar")
    p = sub.add_parser("noise-grid", parents=[common],
                       help="losses of bench architectures over a grid of noise settings (calibration)",
                       description="For every architecture of a `genas bench` folder, measure on the supernet the "
                                   "unperturbed validation loss and the losses under independent, common-random-"
                                   "number noise for each block of a grid (noise scaling / perturbed parameters / "
                                   "stds). Every flatness variant is then scored offline by `genas calibrate`. "
                                   "Appends one JSONL row per architecture; resumable.")
    p.add_argument("--bench", required=True, help="a `genas bench` folder (its architectures are measured)")
    p.add_argument("--run", required=True, help="a finished supernet run folder")
    p.add_argument("--grid", help="blocks SCALING/PARAMS:S1,S2,...;... (default: absolute/all, absolute/weights, "
                                  "element/all, filter/weights on doubling ladders, see genas/workflows/noise_grid.py)")
    p.add_argument("--seeds", type=SEEDS, default="0", help="comma-separated noise seeds (default 0)")
    add_scoring_options(p.add_argument_group("measurement"), only=MEASUREMENT, presets=False)
    p.set_defaults(func=cmd_noise_grid, config_of=_scoring_printer(p))


# --- offline analyses -------------------------------------------------------------------------------

def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..analysis.calibration import calibrate, load_grid
    from ..analysis.correlation import load_tables

    check_new_output(args.output, args.force, [args.grid, *args.truth])
    result = calibrate(load_grid(args.grid), load_tables(args.truth, key="genotype"),
                       args.truth_columns or ["test_accuracy", "shifted_accuracy"], args.output,
                       bootstrap=args.bootstrap, seed=args.seed, splits=args.splits)
    print(f"{len(result['variants'])} flatness variants over {result['architectures']} architectures -> "
          f"{Path(args.output) / 'calibration.md'}")
    return 0


def _add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", parents=[shared("output folder", force=True)],
                       help="score every flatness variant from a noise grid and rank-correlate them",
                       description="Offline: from `genas noise-grid` rows, score each flatness variant (noise "
                                   "scaling, perturbed parameters, sigma list, alpha incl. auto, depth at sigma_1 "
                                   "or 0) and correlate it with the ground truth (several --truth files: the mean "
                                   "over training seeds). Writes calibration.json/.md, tau_vs_alpha.png and a "
                                   "shortlist correlation with bootstrap CIs.")
    p.add_argument("--grid", required=True, help="noise-grid JSONL from `genas noise-grid`")
    p.add_argument("--truth", required=True, nargs="+", help="ground-truth tables (bench results.jsonl), averaged")
    p.add_argument("--truth-columns", type=comma_list(),
                   help="comma-separated ground-truth columns (default test_accuracy,shifted_accuracy)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and split seed (default 0)")
    p.add_argument("--splits", type=int, default=200,
                   help="random halvings for the held-out check of picking the best variant (default 200; 0 = off)")
    p.set_defaults(func=cmd_calibrate)


def cmd_combine(args: argparse.Namespace) -> int:
    import math

    from ..analysis.correlation import load_table
    from ..io import write_jsonl
    from ..proxies.combined import combine

    check_new_output(args.output, args.force, [args.scores])
    rows = load_table(args.scores, key="genotype")
    suffix = f"_{args.noise_mode}" if args.noise_mode else ""
    flat_col = f"flatness{suffix}"
    out = []
    for r in rows:
        row = {"genotype": r["genotype"], "seed": r.get("seed")}
        for base, col in (("angle", "angle+flatness"), ("accuracy", "accuracy+flatness")):
            if r.get(base) is None or r.get(flat_col) is None:
                raise GenasError(f"{args.scores}: a row lacks {base!r} or {flat_col!r}; score both first")
            value = r[base] / math.pi if base == "angle" else r[base]
            row[col + suffix], _, row[f"{col}_share{suffix}"] = combine(value, r[flat_col], args.gamma, args.s1)
        out.append(row)
    write_jsonl(out, args.output)
    print(f"{len(out)} rows with angle+flatness{suffix}, accuracy+flatness{suffix} -> {args.output}")
    return 0


def _add_combine(sub) -> None:
    from ..proxies.config import ScoringConfig
    from ..proxies.perturb import NOISE_MODES

    gamma, s1 = ScoringConfig.gamma, ScoringConfig.stds[0]
    p = sub.add_parser("combine", parents=[shared("JSONL file to write", force=True)],
                       help="derive angle+flatness / accuracy+flatness from recorded scores",
                       description="From `genas score` rows that hold angle, accuracy and flatness, compute the "
                                   "GeNAS combined metrics (angle/pi + gamma/s1*F, accuracy + gamma/s1*F) with the "
                                   "same function the proxies use, without measuring again. Writes a new JSONL.")
    p.add_argument("--scores", required=True, help="`genas score` JSONL with angle, accuracy and flatness columns")
    name_option(p, "--noise-mode", NOISE_MODES, "noise mode",
                "use the flatness_<MODE> column (when scored with several --noise-modes)")
    p.add_argument("--gamma", type=float, default=gamma, help=f"weight of flatness (default {gamma:g}, GeNAS README)")
    p.add_argument("--s1", type=float, default=s1, help=f"first noise std the scores used (default {s1:g})")
    p.set_defaults(func=cmd_combine)


def cmd_share(args: argparse.Namespace) -> int:
    """The flatness share of angle+flatness (or accuracy+flatness) per gamma, and the gammas that give
    target shares, from recorded scores (the collaborative-effect study's levels)."""
    import math

    from ..analysis.correlation import load_table
    from ..io import save_json
    from ..proxies.combined import gamma_for_share, mean_share

    if args.output:
        check_new_output(args.output, args.force, [args.scores])
    rows = load_table(args.scores, key="genotype")
    flat_col = "flatness" + (f"_{args.noise_mode}" if args.noise_mode else "")
    if not rows or any(r.get(args.base) is None or r.get(flat_col) is None for r in rows):
        raise GenasError(f"{args.scores}: every row needs {args.base!r} and {flat_col!r} columns; score both first")
    base = [r[args.base] / math.pi if args.base == "angle" else r[args.base] for r in rows]
    flat = [r[flat_col] for r in rows]
    try:
        targets = [dict(target_share=t, gamma=gamma_for_share(base, flat, t, args.s1)) for t in args.target_shares]
    except ValueError as exc:
        raise GenasError(str(exc)) from None
    for t in targets:
        t["mean_share"] = mean_share(base, flat, t["gamma"], args.s1)
    levels = [dict(gamma=g, mean_share=mean_share(base, flat, g, args.s1)) for g in args.gammas]
    print(f"{args.base}+{flat_col} over {len(rows)} rows of {args.scores} (s1 = {args.s1:g})")
    print(f"{'gamma':>12}  {'mean share %':>12}")
    for r in levels + targets:
        label = f"  (target {r['target_share']:g} %)" if "target_share" in r else ""
        print(f"{r['gamma']:>12.6g}  {r['mean_share']:>12.2f}{label}")
    if args.output:
        save_json(dict(scores=str(args.scores), base=args.base, flatness_column=flat_col, s1=args.s1, rows=len(rows),
                       gammas=levels, targets=targets), args.output)
    return 0


def _add_share(sub) -> None:
    from ..proxies.config import ScoringConfig
    from ..proxies.perturb import NOISE_MODES

    gamma, s1 = ScoringConfig.gamma, ScoringConfig.stds[0]
    p = sub.add_parser("share", parents=[shared("JSON file to write the table to", output_required=False, force=True)],
                       help="flatness share of angle+flatness per gamma, and the gamma of a target share",
                       description="From `genas score` rows with angle (or accuracy) and flatness, the mean share in "
                                   "% of the flatness term gamma/s1*F in angle/pi + gamma/s1*F (the poster's "
                                   "'Flatness (%)') for each --gammas value, and the gamma that gives each "
                                   "--target-shares value. Prints a table; -o also writes it as JSON.")
    p.add_argument("--scores", required=True, help="`genas score` JSONL with angle/accuracy and flatness columns")
    p.add_argument("--base", choices=("angle", "accuracy"), default="angle",
                   help="the conventional score flatness is added to (default angle)")
    name_option(p, "--noise-mode", NOISE_MODES, "noise mode",
                "use the flatness_<MODE> column (when scored with several --noise-modes)")
    p.add_argument("--gammas", type=comma_list(float), default=[0.0, gamma],
                   help=f"comma-separated gammas to report (default 0,{gamma:g})")
    p.add_argument("--target-shares", type=comma_list(float), default=[],
                   help="comma-separated mean shares in %% to find the gamma of, e.g. 0,20,45,75,90")
    p.add_argument("--s1", type=float, default=s1, help=f"first noise std the scores used (default {s1:g})")
    p.set_defaults(func=cmd_share)


def cmd_outcome(args: argparse.Namespace) -> int:
    from ..analysis.correlation import load_tables
    from ..analysis.outcome import search_outcome

    check_new_output(args.output, args.force, [*args.searches, *args.truth])
    result = search_outcome(args.searches, load_tables(args.truth, key="genotype"), args.output)
    print(f"{len(result['searches'])} searches, {len(result['missing'])} winner(s) without ground truth -> "
          f"{Path(args.output) / 'outcome.md'}")
    return 0


def _add_outcome(sub) -> None:
    p = sub.add_parser("outcome", parents=[shared("output folder", force=True)],
                       help="look search winners up in the ground truth (per metric, mean ± std)",
                       description="For finished searches, report each winner's test and shifted-test accuracy from "
                                   "`genas bench` tables, and per metric the mean ± std over seeds. Winners without "
                                   "a ground-truth row go to OUT/missing.txt for `genas bench --genotypes`.")
    p.add_argument("--searches", required=True, nargs="+", help="search folders (RUN/search-NAME)")
    p.add_argument("--truth", required=True, nargs="+", help="ground-truth tables (bench results.jsonl)")
    p.set_defaults(func=cmd_outcome)


def cmd_correlate(args: argparse.Namespace) -> int:
    from ..analysis.correlation import correlate, load_table, load_tables

    check_new_output(args.output, args.force, [args.truth, *args.proxies])
    truth = load_table(args.truth, key=args.key)
    proxies = load_tables(args.proxies, key=args.key)
    result = correlate(truth, proxies, args.truth_columns or None, args.proxy_columns or None,
                       key=args.key, out_dir=args.output, bootstrap=args.bootstrap, seed=args.seed,
                       negate=args.negate or [], split=args.split or "", top_fraction=args.top_fraction,
                       sources=dict(truth=str(args.truth), proxies=[str(p) for p in args.proxies]))
    inputs = result["inputs"]
    print(f"correlations of {len(inputs['proxy_columns'])} proxies with {len(inputs['ground_truth_columns'])} "
          f"ground-truth columns over {inputs['joined']} architectures -> {Path(args.output) / 'correlation.md'}")
    return 0


def _add_correlate(sub) -> None:
    p = sub.add_parser("correlate", parents=[shared("output folder", force=True)],
                       help="rank correlation of proxies with ground truth (Kendall, Spearman, P@10%%)",
                       description="Kendall tau-b, Spearman rho and precision@top-10% with bootstrap 95% CIs for every "
                                   "proxy column against every ground-truth column, plus proxies pairwise. Writes "
                                   "correlation.json, correlation.md, scatter plots and a pairwise-tau heat map.")
    p.add_argument("--truth", required=True, help="ground-truth table (.jsonl or .csv), e.g. BENCH/results.jsonl")
    p.add_argument("--proxies", required=True, nargs="+",
                   help="proxy tables (.jsonl/.csv); rows sharing a key are averaged over seeds")
    p.add_argument("--key", default="genotype", help="column joining the tables (default genotype)")
    p.add_argument("--truth-columns", type=comma_list(),
                   help="comma-separated ground-truth columns (default: all numeric)")
    p.add_argument("--proxy-columns", type=comma_list(), help="comma-separated proxy columns (default: all numeric)")
    p.add_argument("--negate", type=comma_list(),
                   help="comma-separated columns where lower is better (their sign is flipped)")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples for the 95%% CIs (default 1000; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--top-fraction", type=float, default=0.1, help="fraction for precision@k (default 0.1)")
    p.add_argument("--split", help="free-text label of the ground truth's split, recorded in the outputs")
    p.set_defaults(func=cmd_correlate)


# subcommand -> the function that adds its parser
COMMANDS = {"bench": _add_bench, "score": _add_score, "noise-grid": _add_noise_grid, "calibrate": _add_calibrate,
            "combine": _add_combine, "share": _add_share, "outcome": _add_outcome, "correlate": _add_correlate}

__all__ = ["COMMANDS", "cmd_bench", "cmd_calibrate", "cmd_combine", "cmd_correlate", "cmd_noise_grid",
           "cmd_outcome", "cmd_score", "cmd_share"]
