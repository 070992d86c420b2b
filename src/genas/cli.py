"""Command line: parse arguments, then call one function per command.

User errors (:class:`~genas.errors.GenasError`, bad values) print one line and exit with code 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import SUPERNET_PRESETS, SupernetConfig
from .errors import GenasError

# (config field, type, help) for every supernet-training option; defaults come from the preset
SUPERNET_OPTIONS = [
    ("space", str, "search space: nb201 (default) or darts"),
    ("dataset", str, "dataset: fashion-mnist (default), cifar10, cifar100, imagefolder, synthetic"),
    ("data_dir", str, "folder with the dataset files (fashion-mnist default: /usr/share/datasets/fashion-mnist)"),
    ("split_seed", int, "seed of the supernet-train / search-validation split of the training set (default 0)"),
    ("val_fraction", float, "share of the training set held out for search validation (default 0.5)"),
    ("channels", int, "channels C of the first stage"),
    ("cells_per_stage", int, "NB201: cells N per stage (NB201 uses 5)"),
    ("layers", int, "DARTS: cells in the supernet, 2 of them reductions (GeNAS: 8)"),
    ("epochs", int, "training epochs"),
    ("batch_size", int, "global batch size (split across torchrun ranks)"),
    ("lr", float, "initial SGD learning rate (cosine-annealed)"),
    ("lr_min", float, "final learning rate of the cosine schedule"),
    ("momentum", float, "SGD momentum"),
    ("weight_decay", float, "weight decay (default 5e-4 for nb201, 3e-4 otherwise)"),
    ("grad_clip", float, "gradient-norm clip; 0 disables"),
    ("seed", int, "run seed: initial weights, data order, sampled paths"),
    ("max_train_images", int, "use only the first K images of the supernet-train half"),
    ("val_images", int, "search-validation images for the per-epoch sampled-subnet accuracy"),
    ("save_every", int, "keep a weights snapshot every K epochs"),
    ("workers", int, "data-loading processes (image folders only)"),
]


def _add_table_options(p: argparse.ArgumentParser, title: str, table) -> argparse._ArgumentGroup:
    g = p.add_argument_group(title)
    for name, typ, help_text in table:
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=help_text)
    return g


def _add_supernet_options(p: argparse.ArgumentParser) -> None:
    g = _add_table_options(p, "supernet training (defaults from --preset)", SUPERNET_OPTIONS)
    g.add_argument("--affine", dest="affine", action="store_true", default=None,
                   help="learn affine parameters in the supernet's cell BatchNorms (NB201 search nets do not)")
    g.add_argument("--nesterov", dest="nesterov", action="store_true", default=None, help="Nesterov momentum")


def _supernet_overrides(args: argparse.Namespace) -> dict:
    names = [n for n, _, _ in SUPERNET_OPTIONS] + ["affine", "nesterov"]
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _resolve_supernet_config(args: argparse.Namespace) -> SupernetConfig:
    from .config import supernet_config
    from .supernet.train import CONFIG, load_run_config

    overrides = _supernet_overrides(args)
    run = Path(args.output)
    if args.resume and (run / CONFIG).exists():
        saved = load_run_config(run)
        for key, value in overrides.items():
            if getattr(saved, key) != value:
                raise GenasError(f"{run} was started with {key}={getattr(saved, key)!r}; "
                                 f"cannot resume with {key}={value!r}")
        if args.preset is not None and args.preset != saved.preset:
            raise GenasError(f"{run} was started with preset {saved.preset!r}; cannot resume with {args.preset!r}")
        return saved
    return supernet_config(args.preset or "default", **overrides)


def cmd_train_supernet(args: argparse.Namespace) -> int:
    from .supernet.train import train_supernet

    cfg = _resolve_supernet_config(args)
    summary = train_supernet(cfg, args.output, resume=args.resume, device=args.device,
                             progress=False if args.no_progress else None)
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(f"supernet run folder: {Path(args.output).resolve()}  "
          f"(final sampled-subnet val acc {summary['final_val_acc']}, {summary['images_per_s']} img/s)")
    return 0


SEARCH_OPTIONS = [
    ("population", int, "candidates per generation (GeNAS: 50)"),
    ("topk", int, "parents kept for mutation/crossover (GeNAS: 10)"),
    ("generations", int, "generations (GeNAS: 20)"),
    ("max_evaluations", int, "stop after this many scored candidates"),
    ("mutations", int, "mutated children per generation (evolution; GeNAS: 25)"),
    ("crossovers", int, "crossover children per generation (evolution; GeNAS: 25)"),
    ("mutation_prob", float, "per-gene mutation probability (evolution; GeNAS: 0.1)"),
]
SCORING_OPTIONS = [
    ("bn_images", int, "supernet-train images for BatchNorm recalibration (default 896 = 14 batches of 64)"),
    ("bn_batch_size", int, "batch size of BN recalibration (default 64)"),
    ("bn_mode", str, "BN recalibration: exact (cumulative average, default) or official (EMA 0.1 after reset)"),
    ("val_images", int, "search-validation images per measurement (default 3000, chosen in results/flatness-stability; 0 = the whole half)"),
    ("eval_batch_size", int, "evaluation batch size (default 500; does not change results)"),
    ("stds", str, "comma-separated increasing noise stds for flatness (default 0.001,0.003,0.006)"),
    ("alpha", str, "weight of the depth term |L(s1)/s1| in flatness (default 1; 0 = pure flatness; auto = "
                   "balance depth and slopes by their spread on a seeded sample)"),
    ("alpha_auto_archs", int, "architectures in the seeded sample that fixes --alpha auto (default 20)"),
    ("depth_at", str, "where flatness measures depth: sigma1 (GeNAS, |L(s1)/s1|) or zero (unperturbed loss)"),
    ("noise_mode", str, "independent (default: theta + N(0, s_k^2)) or cumulative (official code)"),
    ("noise_scaling", str, "absolute (default, GeNAS), element (std relative to |w|) or filter "
                           "(filter-normalized, Li et al. 2018)"),
    ("noise_params", str, "parameters the noise perturbs: all (default, GeNAS) or weights (conv/linear weights "
                          "only)"),
    ("noise_samples", int, "noise draws per std, averaged (default 1)"),
    ("gamma", float, "weight of flatness in angle+flatness / accuracy+flatness (default 16)"),
]


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    from .proxies.context import FLATNESS_PRESETS

    g = _add_table_options(p, "proxy scoring", SCORING_OPTIONS)
    g.add_argument("--flatness-preset", default=None, choices=sorted(FLATNESS_PRESETS),
                   help="named flatness settings, overridden by explicit options: paper (GeNAS as published) or "
                        "official (its code: cumulative noise, EMA BN, per-candidate noise)")


def _scoring_config(args: argparse.Namespace):
    from .proxies.context import scoring_config

    values = {n: getattr(args, n, None) for n, _, _ in SCORING_OPTIONS if getattr(args, n, None) is not None}
    if "stds" in values:
        try:
            values["stds"] = tuple(float(s) for s in values["stds"].split(",") if s.strip())
        except ValueError:
            raise GenasError(f"--stds must be comma-separated numbers, got {args.stds!r}") from None
    if "eval_batch_size" in values:
        values["batch_size"] = values.pop("eval_batch_size")
    if values.get("val_images") == 0:
        values["val_images"] = None
    if getattr(args, "independent_noise", False):
        values["common_noise"] = False
    return scoring_config(getattr(args, "flatness_preset", None), seed=getattr(args, "seed", 0), **values)


def cmd_search(args: argparse.Namespace) -> int:
    from .search import make_config, read_search_config
    from .workflows import search_oracle, search_supernet

    if (args.run is None) == (args.oracle is None):
        raise GenasError("give exactly one of --run RUN (score on a trained supernet) or --oracle CSV (table look-up)")
    overrides = {n: getattr(args, n) for n, _, _ in SEARCH_OPTIONS}
    cfg = make_config(args.strategy, seed=args.seed, **overrides)
    progress = False if args.no_progress else None
    if args.oracle is not None:
        if not args.oracle_column or not args.output:
            raise GenasError("--oracle needs --oracle-column COLUMN and -o DIR")
        if args.resume and Path(args.output, "state.json").exists():
            saved_strategy, saved = read_search_config(args.output)
            cfg = saved if not any(v is not None for v in overrides.values()) else cfg
        result, out_dir = search_oracle(args.oracle, args.oracle_column, args.output, args.strategy, cfg,
                                        args.space, resume=args.resume, progress=progress)
    else:
        if args.output:
            raise GenasError("-o is for --oracle searches; a supernet search writes RUN/search-<name>/ (see --name)")
        result, out_dir = search_supernet(args.run, args.metric, args.strategy, cfg, _scoring_config(args),
                                          name=args.name, resume=args.resume, device=args.device, progress=progress)
        if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 alone writes the report
            return 0
    from .analysis.report import write_search_report

    report = write_search_report(out_dir)
    print(f"best {result['best']['genotype']}  score {result['best']['score']:.6g}  "
          f"({result['evaluations']} evaluated)\nresult: {out_dir / 'result.json'}\nreport: {report}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .workflows import run_pipeline

    summary = run_pipeline(args.preset, args.output, metric=args.metric, seed=args.seed, space=args.space,
                           dataset=args.dataset,
                           data_dir=args.data_dir, resume=args.resume, device=args.device,
                           progress=False if args.no_progress else None)
    print(f"best {summary['best']['genotype']}  test accuracy {summary['test_accuracy']:.4f}  "
          f"({summary['params'] / 1e6:.3f} M params)")
    print(f"run folder: {Path(args.output).resolve()}\nreport: {summary['report']}")
    return 0


BENCH_OPTIONS = [
    ("dataset", str, "dataset (default fashion-mnist)"),
    ("data_dir", str, "folder with the dataset files"),
    ("split_seed", int, "seed of the supernet-train / search-validation split (default 0)"),
    ("num_archs", int, "architectures to train (default 100; raising it later extends the same sample)"),
    ("sample_seed", int, "seed of the architecture sample (default 0)"),
    ("seed", int, "training seed: initial weights and data order (default 0)"),
    ("channels", int, "channels C of the stand-alone networks (default 8)"),
    ("cells_per_stage", int, "cells N per stage (default 1)"),
    ("epochs", int, "training epochs (default 3)"),
    ("batch_size", int, "batch size (default 128)"),
    ("lr", float, "initial learning rate, cosine to 0 (default 0.05)"),
    ("weight_decay", float, "weight decay (default 5e-4)"),
    ("max_train_images", int, "supernet-train images used for training (default 10000)"),
    ("val_images", int, "search-validation images evaluated (default 5000)"),
    ("shifted_images", int, "test images in the distribution-shifted set (default 2000)"),
]


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchConfig, run_bench

    values = {n: getattr(args, n) for n, _, _ in BENCH_OPTIONS if getattr(args, n) is not None}
    if args.genotypes:
        values["genotypes"] = _read_genotypes(args.genotypes)
    summary = run_bench(args.output, BenchConfig(**values), workers=args.workers, resume=args.resume,
                        device=args.device, progress=False if args.no_progress else None)
    if os.environ.get("RANK", "0") == "0":
        print(f"{summary['rows']}/{summary['target']} architectures in {Path(args.output, 'results.jsonl')} "
              f"({summary['total_train_seconds']} s of training)")
    return 0


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


def _split_list(text: str | None, cast=str) -> list:
    return [cast(t.strip()) for t in text.split(",") if t.strip()] if text else []


def cmd_score(args: argparse.Namespace) -> int:
    from .analysis.correlation import load_table
    from .bench.runner import BenchConfig, CONFIG, RESULTS
    from .config import from_dict, load_json
    from .workflows import score_archs

    bench = from_dict(BenchConfig, load_json(Path(args.bench) / CONFIG))
    genotypes = [r["genotype"] for r in load_table(Path(args.bench) / RESULTS, key="genotype")]
    try:
        seeds = _split_list(args.seeds, int)
    except ValueError:
        raise GenasError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    n = score_archs(genotypes, _split_list(args.metrics), args.output, seeds or [0], _scoring_config(args),
                    run=args.run, network_kwargs=dict(channels=bench.channels, cells_per_stage=bench.cells_per_stage),
                    data_args=dict(name=bench.dataset, data_dir=bench.data_dir, split_seed=bench.split_seed),
                    noise_modes=tuple(_split_list(args.noise_modes)) or ("independent",), device=args.device,
                    progress=False if args.no_progress else None, space=bench.space)
    print(f"{n} rows appended to {args.output}")
    return 0


def cmd_noise_grid(args: argparse.Namespace) -> int:
    from .analysis.correlation import load_table
    from .bench.runner import RESULTS
    from .calibration import noise_grid, parse_grid

    grid = parse_grid(args.grid)
    genotypes = [r["genotype"] for r in load_table(Path(args.bench) / RESULTS, key="genotype")
                 if not r.get("disconnected")]
    try:
        seeds = _split_list(args.seeds, int)
    except ValueError:
        raise GenasError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    n = noise_grid(genotypes, args.run, args.output, seeds or [0], _scoring_config(args), grid,
                   device=args.device, progress=False if args.no_progress else None)
    print(f"{n} rows appended to {args.output}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .analysis.calibration import calibrate, load_grid
    from .analysis.correlation import load_tables

    result = calibrate(load_grid(args.grid), load_tables(args.truth, key="genotype"),
                       _split_list(args.truth_columns) or ["test_accuracy", "shifted_accuracy"], args.output,
                       bootstrap=args.bootstrap, seed=args.seed, splits=args.splits)
    print(f"{len(result['variants'])} flatness variants over {result['architectures']} architectures -> "
          f"{Path(args.output) / 'calibration.md'}")
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    import math

    from .checkpoint import write_jsonl
    from .analysis.correlation import load_table
    from .proxies.combined import combine

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


def cmd_outcome(args: argparse.Namespace) -> int:
    from .analysis.correlation import load_tables
    from .analysis.outcome import search_outcome

    result = search_outcome(args.searches, load_tables(args.truth, key="genotype"), args.output)
    print(f"{len(result['searches'])} searches, {len(result['missing'])} winner(s) without ground truth -> "
          f"{Path(args.output) / 'outcome.md'}")
    return 0


def cmd_correlate(args: argparse.Namespace) -> int:
    from .analysis.correlation import correlate, load_table, load_tables

    truth = load_table(args.truth, key=args.key)
    proxies = load_tables(args.proxies, key=args.key)
    result = correlate(truth, proxies, _split_list(args.truth_columns) or None, _split_list(args.proxy_columns) or None,
                       key=args.key, out_dir=args.output, bootstrap=args.bootstrap, seed=args.seed,
                       negate=_split_list(args.negate), split=args.split or "", top_fraction=args.top_fraction,
                       sources=dict(truth=str(args.truth), proxies=[str(p) for p in args.proxies]))
    inputs = result["inputs"]
    print(f"correlations of {len(inputs['proxy_columns'])} proxies with {len(inputs['ground_truth_columns'])} "
          f"ground-truth columns over {inputs['joined']} architectures -> {Path(args.output) / 'correlation.md'}")
    return 0


RETRAIN_OPTIONS = [
    ("dataset", str, "dataset (preset default: quick fashion-mnist, cifar cifar10, imagenet imagefolder)"),
    ("data_dir", str, "folder with the dataset files"),
    ("channels", int, "initial channels C"),
    ("layers", int, "DARTS: number of cells"),
    ("cells_per_stage", int, "NB201: cells per stage"),
    ("epochs", int, "training epochs"),
    ("batch_size", int, "global batch size (split across torchrun ranks)"),
    ("lr", float, "initial learning rate"),
    ("weight_decay", float, "weight decay"),
    ("schedule", str, "cosine or linear (GeNAS ImageNet) learning-rate schedule"),
    ("warmup_epochs", int, "linear warm-up epochs"),
    ("label_smoothing", float, "label smoothing of the training loss"),
    ("aux_weight", float, "weight of the auxiliary head's loss (DARTS)"),
    ("drop_path", float, "final drop-path probability, increased linearly over epochs (DARTS)"),
    ("cutout", int, "cutout square side in pixels (0 = off)"),
    ("max_train_images", int, "use only this many training images"),
    ("seed", int, "training seed"),
]


def cmd_retrain(args: argparse.Namespace) -> int:
    from .train.retrain import retrain, retrain_config

    if args.resume and args.genotype is None and args.result is None:
        cfg = None  # the stored config
    else:
        if (args.genotype is None) == (args.result is None):
            raise GenasError("give exactly one of --genotype (string or published name) or --result RESULT.json")
        space, genotype = args.space, args.genotype
        if args.result is not None:
            from .config import load_json

            found = load_json(args.result)
            if "best" not in found or "space" not in found:
                raise GenasError(f"{args.result} is not a search result.json (no 'best'/'space')")
            space, genotype = found["space"], found["best"]["genotype"]
        values = {n: getattr(args, n) for n, _, _ in RETRAIN_OPTIONS}
        if args.auxiliary is not None:
            values["auxiliary"] = args.auxiliary
        cfg = retrain_config(args.preset, space=space, genotype=genotype, **values)
    result = retrain(cfg, args.output, resume=args.resume, device=args.device,
                     progress=False if args.no_progress else None)
    if os.environ.get("RANK", "0") == "0":
        top5 = result.get("best_top5")
        print(f"best top-1 {result.get('best_top1')}" + (f", top-5 {top5}" if top5 is not None else "")
              + f"  ->  {Path(args.output).resolve()}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import MODEL, export_run

    out = export_run(args.run, args.output)
    print(f"exported {out / MODEL} (load with torch.export.load(path).module(); no genas needed) and "
          f"{out / 'genotype.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genas",
        description="Neural architecture search with flatness-based scoring (GeNAS). Every command writes "
                    "into a run folder (config JSON, checkpoints, JSONL logs, results).")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"genas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train-supernet", help="train a SPOS weight-sharing supernet",
                       description="Train a SPOS supernet with uniform single-path sampling. Keeps the "
                                   "epoch-0 and final weights (init.pt, final.pt), a resumable checkpoint "
                                   "after every epoch, and a per-epoch JSONL log. Works under torchrun (DDP).")
    p.add_argument("-o", "--output", required=True, help="run folder to create (or to continue with --resume)")
    p.add_argument("--preset", choices=sorted(SUPERNET_PRESETS), default=None,
                   help="quick (a few CPU minutes), default, or paper (the GeNAS recipe, 250 epochs); default: default")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_supernet_options(p)
    p.set_defaults(func=cmd_train_supernet)

    from .proxies.registry import list_proxies
    from . import proxies  # noqa: F401  (registers the metrics)

    p = sub.add_parser("search", help="search architectures with a proxy on a supernet, or on a tabular oracle",
                       description="Evolutionary (GeNAS defaults) or random search. With --run, candidates are "
                                   "scored on the trained supernet by --metric and results go to "
                                   "RUN/search-<name>/; with --oracle, by look-up in a CSV table into -o DIR. "
                                   "State is saved after every generation: --resume continues a killed search.")
    p.add_argument("--run", help="a finished train-supernet run folder")
    p.add_argument("--metric", default="flatness", help=f"proxy to maximise: {', '.join(list_proxies())} (default flatness)")
    p.add_argument("--name", help="search folder name under RUN (default: the metric)")
    p.add_argument("--oracle", help="CSV table to score by look-up instead of a supernet (e.g. NB201 results)")
    p.add_argument("--oracle-column", help="column of --oracle to maximise")
    p.add_argument("-o", "--output", help="output folder of an --oracle search")
    p.add_argument("--space", default="nb201", help="search space of an --oracle search (default nb201)")
    p.add_argument("--strategy", default="evolution", choices=["evolution", "random"], help="search strategy (default evolution)")
    p.add_argument("--seed", type=int, default=0, help="search seed: candidates, and the noise of the proxies (default 0)")
    p.add_argument("--resume", action="store_true", help="continue a killed search from its last generation")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--independent-noise", action="store_true",
                   help="draw fresh noise per candidate instead of common random numbers (official behaviour)")
    _add_table_options(p, "search strategy (defaults: GeNAS)", SEARCH_OPTIONS)
    _add_scoring_options(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("run", help="end to end: train supernet, search, retrain the winner, report",
                       description="train-supernet -> flatness search -> short stand-alone training of the winner "
                                   "-> report, all in one run folder. --preset quick takes about 10 minutes on 2 "
                                   "CPU cores.")
    p.add_argument("-o", "--output", required=True, help="run folder")
    p.add_argument("--preset", default="quick", choices=["quick", "default", "paper"], help="size of every step (default quick)")
    p.add_argument("--metric", default="flatness", help=f"search proxy: {', '.join(list_proxies())} (default flatness)")
    p.add_argument("--seed", type=int, default=0, help="seed of every step (default 0)")
    p.add_argument("--space", default="nb201", choices=["nb201", "darts"], help="search space (default nb201)")
    p.add_argument("--dataset", default=None, help="dataset (default fashion-mnist)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset files")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="train a seeded sample of architectures stand-alone (ground truth)",
                       description="Train a seeded sample of architectures with one fixed recipe and append one "
                                   "row per architecture to DIR/results.jsonl (test, search-validation and "
                                   "distribution-shifted accuracy, params, MACs, seconds). Resumable and "
                                   "append-only; --workers N or torchrun ranks share the work without duplicates.")
    p.add_argument("-o", "--output", required=True, help="benchmark folder")
    p.add_argument("--resume", action="store_true", help="continue (or extend with a larger --num-archs) a benchmark")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--genotypes", help="file with one architecture per line to train instead of the seeded sample "
                                       "(e.g. search winners); a later, longer file extends the same folder")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_table_options(p, "recipe and sample", BENCH_OPTIONS)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("score", help="score the architectures of a bench folder with proxies (several seeds)",
                       description="Compute proxies for every architecture in a `genas bench` folder and append one "
                                   "JSONL row per (architecture, seed). Supernet metrics need --run; zero-cost "
                                   "metrics use fresh networks of the bench recipe's size. Resumable.")
    p.add_argument("--bench", required=True, help="a `genas bench` folder (its architectures are scored)")
    p.add_argument("--run", help="a finished supernet run folder (for flatness, angle, accuracy, loss, combined)")
    p.add_argument("--metrics", required=True, help="comma-separated proxies, e.g. flatness,angle,accuracy,synflow")
    p.add_argument("--noise-modes", help="comma-separated flatness noise modes to score (default independent)")
    p.add_argument("--seeds", default="0", help="comma-separated proxy seeds (default 0)")
    p.add_argument("-o", "--output", required=True, help="JSONL file to append rows to")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--independent-noise", action="store_true", help="fresh noise per candidate instead of common random numbers")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    _add_scoring_options(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("noise-grid", help="losses of bench architectures over a grid of noise settings (calibration)",
                       description="For every architecture of a `genas bench` folder, measure on the supernet the "
                                   "unperturbed validation loss and the losses under independent, common-random-"
                                   "number noise for each block of a grid (noise scaling / perturbed parameters / "
                                   "stds). Every flatness variant is then scored offline by `genas calibrate`. "
                                   "Appends one JSONL row per architecture; resumable.")
    p.add_argument("--bench", required=True, help="a `genas bench` folder (its architectures are measured)")
    p.add_argument("--run", required=True, help="a finished supernet run folder")
    p.add_argument("-o", "--output", required=True, help="JSONL file to append rows to")
    p.add_argument("--grid", help="blocks SCALING/PARAMS:S1,S2,...;... (default: absolute/all, absolute/weights, "
                                  "element/all, filter/weights on doubling ladders, see genas/calibration.py)")
    p.add_argument("--seeds", default="0", help="comma-separated noise seeds (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_table_options(p, "measurement", [o for o in SCORING_OPTIONS if o[0] in
                                          ("bn_images", "bn_batch_size", "bn_mode", "val_images", "eval_batch_size")])
    p.set_defaults(func=cmd_noise_grid)

    p = sub.add_parser("calibrate", help="score every flatness variant from a noise grid and rank-correlate them",
                       description="Offline: from `genas noise-grid` rows, score each flatness variant (noise "
                                   "scaling, perturbed parameters, sigma list, alpha incl. auto, depth at sigma_1 "
                                   "or 0) and correlate it with the ground truth (several --truth files: the mean "
                                   "over training seeds). Writes calibration.json/.md, tau_vs_alpha.png and a "
                                   "shortlist correlation with bootstrap CIs.")
    p.add_argument("--grid", required=True, help="noise-grid JSONL from `genas noise-grid`")
    p.add_argument("--truth", required=True, nargs="+", help="ground-truth tables (bench results.jsonl), averaged")
    p.add_argument("--truth-columns", help="comma-separated ground-truth columns (default test_accuracy,shifted_accuracy)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and split seed (default 0)")
    p.add_argument("--splits", type=int, default=200,
                   help="random halvings for the held-out check of picking the best variant (default 200; 0 = off)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("combine", help="derive angle+flatness / accuracy+flatness from recorded scores",
                       description="From `genas score` rows that hold angle, accuracy and flatness, compute the "
                                   "GeNAS combined metrics (angle/pi + gamma/s1*F, accuracy + gamma/s1*F) with the "
                                   "same function the proxies use, without measuring again. Writes a new JSONL.")
    p.add_argument("--scores", required=True, help="`genas score` JSONL with angle, accuracy and flatness columns")
    p.add_argument("-o", "--output", required=True, help="JSONL file to write")
    p.add_argument("--noise-mode", help="use the flatness_<MODE> column (when scored with several --noise-modes)")
    p.add_argument("--gamma", type=float, default=16.0, help="weight of flatness (default 16, GeNAS README)")
    p.add_argument("--s1", type=float, default=0.001, help="first noise std the scores used (default 0.001)")
    p.set_defaults(func=cmd_combine)

    p = sub.add_parser("outcome", help="look search winners up in the ground truth (per metric, mean ± std)",
                       description="For finished searches, report each winner's test and shifted-test accuracy from "
                                   "`genas bench` tables, and per metric the mean ± std over seeds. Winners without "
                                   "a ground-truth row go to OUT/missing.txt for `genas bench --genotypes`.")
    p.add_argument("--searches", required=True, nargs="+", help="search folders (RUN/search-NAME)")
    p.add_argument("--truth", required=True, nargs="+", help="ground-truth tables (bench results.jsonl)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_outcome)

    p = sub.add_parser("correlate", help="rank correlation of proxies with ground truth (Kendall, Spearman, P@10%%)",
                       description="Kendall tau-b, Spearman rho and precision@top-10% with bootstrap 95% CIs for every "
                                   "proxy column against every ground-truth column, plus proxies pairwise. Writes "
                                   "correlation.json, correlation.md, scatter plots and a pairwise-tau heat map.")
    p.add_argument("--truth", required=True, help="ground-truth table (.jsonl or .csv), e.g. BENCH/results.jsonl")
    p.add_argument("--proxies", required=True, nargs="+", help="proxy tables (.jsonl/.csv); rows sharing a key are averaged over seeds")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--key", default="genotype", help="column joining the tables (default genotype)")
    p.add_argument("--truth-columns", help="comma-separated ground-truth columns (default: all numeric)")
    p.add_argument("--proxy-columns", help="comma-separated proxy columns (default: all numeric)")
    p.add_argument("--negate", help="comma-separated columns where lower is better (their sign is flipped)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (default 1000; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--top-fraction", type=float, default=0.1, help="fraction for precision@k (default 0.1)")
    p.add_argument("--split", help="free-text label of the ground truth's split, recorded in the outputs")
    p.set_defaults(func=cmd_correlate)

    p = sub.add_parser("retrain", help="train a found architecture stand-alone (DARTS/NB201 evaluation recipes)",
                       description="Train a genotype from scratch with a recipe preset: quick (Fashion-MNIST, "
                                   "minutes), cifar (DARTS protocol: 600 epochs, C=36, 20 cells, cutout, drop path, "
                                   "auxiliary 0.4) or imagenet (GeNAS protocol). Writes config.json, log.jsonl, "
                                   "last.pt (full state for --resume), best.pt and result.json (top-1/top-5, params, "
                                   "MACs). Works under torchrun (DDP).")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--genotype", help="genotype string, or a published DARTS name such as FLATNESS_CIFAR100")
    p.add_argument("--result", help="a search result.json whose best genotype to train")
    p.add_argument("--space", default="darts", help="space of --genotype: darts (default) or nb201")
    p.add_argument("--preset", default="quick", choices=["quick", "cifar", "imagenet"], help="recipe (default quick)")
    p.add_argument("--auxiliary", action=argparse.BooleanOptionalAction, default=None,
                   help="use the auxiliary head (DARTS)")
    p.add_argument("--resume", action="store_true", help="continue from last.pt")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_table_options(p, "recipe overrides", RETRAIN_OPTIONS)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("export", help="export the found, retrained network for plain PyTorch",
                       description="Write the winner of a `genas run` folder, with its retrained weights, as a "
                                   "torch.export program (model.pt2) that loads without genas, plus genotype.json "
                                   "(genotype, network arguments, input shape, normalisation).")
    p.add_argument("--run", required=True, help="a finished `genas run` or `genas retrain` folder")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except GenasError as exc:
        print(f"genas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("genas: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
