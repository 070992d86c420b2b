"""The pipeline commands: ``train-supernet``, ``search``, ``run``, ``retrain`` and ``export``."""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from ..errors import GenasError
from .interop import add_tensorboard_option, check_tensorboard, write_tensorboard
from .options import (add_config_options, add_scoring_options, config_values, name_option, plain_values,
                      progress_of, resumed_config, scoring_config, shared)

STRATEGY = "strategy"  # config_values key of the search-strategy options (the fields of every strategy's config)


# --- train-supernet ---------------------------------------------------------------------------------

def _supernet_config(args: argparse.Namespace):
    """The config to train: ``--preset`` (default ``default``) plus the options passed; on ``--resume``
    the run's stored config, which the options passed may not contradict."""
    from ..options import to_dict
    from ..supernet.config import SupernetConfig, supernet_config
    from ..supernet.run import CONFIG, load_run_config

    overrides = config_values(args, SupernetConfig)
    run = Path(args.output or ".")
    if not (args.resume and args.output and (run / CONFIG).exists()):
        cfg = supernet_config(args.preset or "default", **overrides)
        nulls = {k: None for k, v in overrides.items() if v is None}  # a file's null beats the preset's value
        return dataclasses.replace(cfg, **nulls).resolved().validate() if nulls else cfg
    return resumed_config(SupernetConfig, to_dict(load_run_config(run)), overrides, run, args.preset)


def cmd_train_supernet(args: argparse.Namespace) -> int:
    from ..supernet.train import train_supernet

    cfg = _supernet_config(args)
    check_tensorboard(args)
    summary = train_supernet(cfg, args.output, resume=args.resume, device=args.device, progress=progress_of(args))
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(f"supernet run folder: {Path(args.output).resolve()}  "
          f"(final sampled-subnet val acc {summary['final_val_acc']}, {summary['images_per_s']} img/s)")
    write_tensorboard(args, args.output)
    return 0


def _add_train_supernet(sub) -> None:
    from ..supernet.config import SPACE_PRESETS, SUPERNET_PRESETS, SupernetConfig

    common = shared("run folder to create (or to continue with --resume)",
                    resume="continue a killed run from its last checkpoint", device="auto",
                    progress="hide the progress bar")
    p = sub.add_parser("train-supernet", parents=[common], help="train a SPOS weight-sharing supernet",
                       description="Train a SPOS supernet with uniform single-path sampling. Keeps the "
                                   "epoch-0 and final weights (init.pt, final.pt), a resumable checkpoint "
                                   "after every epoch, and a per-epoch JSONL log. Works under torchrun (DDP).")
    name_option(p, "--preset", sorted(SUPERNET_PRESETS), "preset",
                "quick (about a minute on 2 CPU cores), default, or paper (the GeNAS recipe, 250 epochs); default: default")
    add_config_options(p.add_argument_group("supernet training (defaults from --preset)"), SupernetConfig,
                       presets=SUPERNET_PRESETS, space_presets=SPACE_PRESETS)
    add_tensorboard_option(p)
    p.set_defaults(func=cmd_train_supernet, config_of=_print_supernet_config)


def _print_supernet_config(args: argparse.Namespace) -> dict:
    """--print-config: the config.json this run would have."""
    from ..options import to_dict

    return to_dict(_supernet_config(args))


# --- search -----------------------------------------------------------------------------------------

def _search_config(args: argparse.Namespace):
    """The strategy config: its defaults plus the options passed; resuming a search, the stored
    config (a search made before a setting existed ran with its legacy value, e.g. ``--dedup off``),
    which the options passed may not contradict."""
    from ..options import to_dict
    from ..search import STATE, make_config, read_search_config

    passed = config_values(args, STRATEGY) | ({} if args.seed is None else {"seed": args.seed})
    folder = args.output if args.oracle is not None else (
        args.run and Path(args.run, f"search-{args.name or args.metric}"))
    if args.resume and folder and Path(folder, STATE).exists():
        saved_strategy, saved = read_search_config(folder)
        if saved_strategy == args.strategy:  # (another strategy: the search driver names both)
            return resumed_config(type(saved), to_dict(saved), passed, folder)
    return make_config(args.strategy, **{"seed": 0, **passed})


def cmd_search(args: argparse.Namespace) -> int:
    from ..workflows import search_oracle, search_supernet

    if (args.run is None) == (args.oracle is None):
        raise GenasError("give exactly one of --run RUN (score on a trained supernet) or --oracle CSV (table look-up)")
    cfg = _search_config(args)
    check_tensorboard(args)
    if args.oracle is not None:
        if not args.oracle_column or not args.output:
            raise GenasError("--oracle needs --oracle-column COLUMN and -o DIR")
        result, out_dir = search_oracle(args.oracle, args.oracle_column, args.output, args.strategy, cfg, args.space,
                                        resume=args.resume, progress=progress_of(args))
    else:
        if args.output:
            raise GenasError("-o is for --oracle searches; a supernet search writes RUN/search-<name>/ (see --name)")
        result, out_dir = search_supernet(args.run, args.metric, args.strategy, cfg, scoring_config(args, cfg.seed),
                                          name=args.name, resume=args.resume, device=args.device,
                                          progress=progress_of(args))
        if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 alone writes the report
            return 0
    from ..analysis.html_report import write_html_report
    from ..analysis.report import write_search_report

    report = write_search_report(out_dir)
    html = write_html_report(out_dir)
    print(f"best {result['best']['genotype']}  score {result['best']['score']:.6g}  "
          f"({result['evaluations']} evaluated)\nresult: {out_dir / 'result.json'}\nreport: {html}  (Markdown: {report})")
    write_tensorboard(args, out_dir)
    return 0


def _add_strategy_options(group) -> None:
    """The fields of every strategy's config, each once; one that not every strategy has says whose it is."""
    import dataclasses

    from ..search import STRATEGIES

    configs = {name: cfg_cls for name, (_, cfg_cls) in STRATEGIES.items()}
    owners: dict[str, list[str]] = {}
    for name, cfg_cls in configs.items():
        for f in dataclasses.fields(cfg_cls):
            owners.setdefault(f.name, []).append(name)
    done: set[str] = set()
    for cfg_cls in configs.values():
        for f in dataclasses.fields(cfg_cls):
            if f.name in done:
                continue
            done.add(f.name)
            tag = "" if len(owners[f.name]) == len(configs) else f"{'/'.join(owners[f.name])} only"
            add_config_options(group, cfg_cls, only=[f.name], tag=tag, key=STRATEGY)


def _add_search(sub) -> None:
    from ..proxies.registry import PROXIES
    from ..search import STRATEGIES
    from ..spaces import SPACES

    common = shared("output folder of an --oracle search", output_required=False,
                    resume="continue a killed search from its last generation", device="auto",
                    progress="hide the progress bar")
    p = sub.add_parser("search", parents=[common],
                       help="search architectures with a proxy on a supernet, or on a tabular oracle",
                       description="Evolutionary (GeNAS defaults) or random search. With --run, candidates are "
                                   "scored on the trained supernet by --metric and results go to "
                                   "RUN/search-<name>/; with --oracle, by look-up in a CSV table into -o DIR. "
                                   "State is saved after every generation: --resume continues a killed search.")
    p.add_argument("--run", help="a finished train-supernet run folder")
    name_option(p, "--metric", PROXIES.names, PROXIES.what, "proxy to maximise (default flatness)", default="flatness")
    p.add_argument("--name", help="search folder name under RUN (default: the metric)")
    p.add_argument("--oracle", help="CSV table to score by look-up instead of a supernet (e.g. NB201 results)")
    p.add_argument("--oracle-column", help="column of --oracle to maximise")
    name_option(p, "--space", SPACES.names, SPACES.what, "search space of an --oracle search (default nb201)",
                default="nb201")
    name_option(p, "--strategy", list(STRATEGIES), "search strategy", "search strategy (default evolution)",
                default="evolution")
    p.add_argument("--seed", type=int, default=None,
                   help="search seed: candidates, and the noise of the proxies (default 0)")
    p.add_argument("--independent-noise", action="store_true",
                   help="draw fresh noise per candidate instead of common random numbers (official behaviour)")
    _add_strategy_options(p.add_argument_group("search strategy (defaults: GeNAS)"))
    add_scoring_options(p.add_argument_group("proxy scoring"))
    add_tensorboard_option(p)
    p.set_defaults(func=cmd_search, config_of=lambda args: _print_search_config(p, args))


def _print_search_config(parser, args: argparse.Namespace) -> dict:
    """--print-config: the command's own options, the strategy's resolved config, and under
    ``scoring`` the resolved proxy settings (the section of scoring.json)."""
    from ..options import to_dict
    from ..proxies.config import ScoringConfig

    cfg = _search_config(args)
    scoring_fields = getattr(args, "_config_fields", {}).get(ScoringConfig.__name__, [])
    out = plain_values(parser, args, skip=[*scoring_fields, *getattr(args, "_config_fields", {}).get(STRATEGY, [])])
    out.update(to_dict(cfg), seed=cfg.seed)
    out["scoring"] = to_dict(scoring_config(args, cfg.seed)) if args.oracle is None else None
    return out


# --- run --------------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from ..supernet.config import SupernetConfig
    from ..workflows import run_pipeline

    check_tensorboard(args)
    summary = run_pipeline(args.preset, args.output, metric=args.metric, seed=args.seed,
                           **config_values(args, SupernetConfig), resume=args.resume, device=args.device,
                           progress=progress_of(args), search_options=config_values(args, "run-search"),
                           detect=args.detect, detect_data=args.detect_data)
    pruned = summary.get("retrained_genotype", summary["best"]["genotype"])
    print(f"best {summary['best']['genotype']}  test accuracy {summary['test_accuracy']:.4f}  "
          f"({summary['params'] / 1e6:.3f} M params{', retrained as ' + pruned if pruned != summary['best']['genotype'] else ''})")
    print(f"run folder: {Path(args.output).resolve()}\nreport: {summary.get('report_html', summary['report'])}  "
          f"(Markdown: {summary['report']})")
    if "detection" in summary:
        m = summary["detection"]["metrics"]
        print(f"detection AP {m['AP']:.2f}  AP50 {m['AP50']:.2f}  ->  {summary['detection']['folder']}")
    write_tensorboard(args, args.output)
    return 0


# the search settings `genas run` takes (the rest come from its preset)
RUN_SEARCH_OPTIONS = ("dedup", "min_params", "max_params", "min_macs", "max_macs")


def _add_run(sub) -> None:
    from ..proxies.registry import PROXIES
    from ..search.strategy import SearchConfig
    from ..supernet.config import SupernetConfig
    from ..workflows import RUN_PRESETS

    common = shared("run folder", resume="continue an interrupted run", device="auto", progress="hide progress bars")
    p = sub.add_parser("run", parents=[common], help="end to end: train supernet, search, retrain the winner, report",
                       description="train-supernet -> flatness search -> short stand-alone training of the winner "
                                   "-> report, all in one run folder. --preset quick takes 3-5 minutes on 2 CPU "
                                   "cores (measured: supernet ~70 s, search ~100 s, retraining ~2 min).")
    name_option(p, "--preset", list(RUN_PRESETS), "run preset", "size of every step (default quick)", default="quick")
    name_option(p, "--metric", PROXIES.names, PROXIES.what, "search proxy (default flatness)", default="flatness")
    p.add_argument("--seed", type=int, default=0, help="seed of every step (default 0)")
    add_config_options(p, SupernetConfig, only=("space", "dataset", "data_dir"))
    add_config_options(p.add_argument_group("search"), SearchConfig, only=RUN_SEARCH_OPTIONS, key="run-search")
    p.add_argument("--detect", metavar="PRESET", help="end with detection transfer: train a `genas detect` preset "
                   "(tiny, quick, coco) on the retrained winner's weights (into RUN/detect)")
    p.add_argument("--detect-data", metavar="DIR", help="a `genas detect make-data` folder for --detect (default: "
                   "the embedded scenes, made into RUN/detect-data)")
    add_tensorboard_option(p)
    p.set_defaults(func=cmd_run)


# --- retrain ----------------------------------------------------------------------------------------

def _retrain_config(args: argparse.Namespace):
    """The recipe of ``--preset`` plus the options passed; ``None`` to resume with the stored one."""
    from ..train.recipes import RetrainConfig, retrain_config

    if args.resume and args.genotype is None and args.result is None:
        return None
    if args.genotype is None and args.result is None and getattr(args, "init_from_supernet", None):
        from ..train.finetune import found_genotype

        args.genotype = found_genotype(args.init_from_supernet)  # the run's own search winner
    if (args.genotype is None) == (args.result is None):
        raise GenasError("give exactly one of --genotype (string or published name) or --result RESULT.json")
    values = config_values(args, RetrainConfig)
    genotype = args.genotype
    if args.result is not None:
        from ..io import load_json

        found = load_json(args.result)
        if "best" not in found or "space" not in found:
            raise GenasError(f"{args.result} is not a search result.json (no 'best'/'space')")
        from ..spaces import winner_genotype

        stored = Path(args.output) / "config.json" if args.resume and args.output else None
        saved = load_json(stored) if stored is not None and stored.exists() else None
        started = saved.get("genotype") if isinstance(saved, dict) else None
        values["space"], genotype = found["space"], winner_genotype(found, started)
    return retrain_config(args.preset, genotype=genotype, **values)


def cmd_retrain(args: argparse.Namespace) -> int:
    from ..train.retrain import retrain, summary_line

    cfg = _retrain_config(args)
    check_tensorboard(args)
    result = retrain(cfg, args.output, resume=args.resume, device=args.device, progress=progress_of(args))
    if os.environ.get("RANK", "0") == "0":
        print(f"{summary_line(result)}  ->  {Path(args.output).resolve()}")
        write_tensorboard(args, args.output)
    return 0


def _add_retrain(sub) -> None:
    from ..spaces.darts_genotypes import PUBLISHED
    from ..train.recipes import RETRAIN_PRESETS, SPACE_PRESETS, RetrainConfig

    common = shared("output folder", resume="continue from last.pt", device="auto", progress="hide progress bars")
    p = sub.add_parser("retrain", parents=[common],
                       help="train a found architecture stand-alone (DARTS/NB201 evaluation recipes)",
                       description="Train a genotype from scratch with a recipe preset: quick (Fashion-MNIST, "
                                   "minutes), cifar (DARTS protocol: 600 epochs, C=36, 20 cells, cutout, drop path, "
                                   "auxiliary 0.4) or imagenet (GeNAS protocol), or fine-tune it from its supernet weights "
                                   "(--init-from-supernet RUN). Writes config.json, log.jsonl, last.pt (full state for "
                                   "--resume), best.pt (selected on held-out training images; where the recipe holds "
                                   "none out, the best test epoch, labelled optimistic) and result.json (final-epoch "
                                   "top-1/top-5 first, params, MACs). Works under torchrun (DDP).")
    p.add_argument("--genotype", help=f"genotype string, or a published DARTS name: {', '.join(PUBLISHED.names())}")
    p.add_argument("--result", help="a search result.json whose best genotype to train")
    name_option(p, "--preset", list(RETRAIN_PRESETS), "retrain preset", "recipe (default quick)", default="quick")
    add_config_options(p, RetrainConfig, only=("space", "auxiliary"), include=("space", "auxiliary"),
                       negatable=("auxiliary",), presets=RETRAIN_PRESETS, space_presets=SPACE_PRESETS)
    add_config_options(p.add_argument_group("recipe overrides"), RetrainConfig, skip=("space", "auxiliary"),
                       presets=RETRAIN_PRESETS, space_presets=SPACE_PRESETS)
    add_tensorboard_option(p)
    p.set_defaults(func=cmd_retrain, config_of=_print_retrain_config)


def _print_retrain_config(args: argparse.Namespace) -> dict:
    """--print-config: the config.json this retraining would have (a resumed one: its stored one)."""
    from ..io import load_json
    from ..options import to_dict

    cfg = _retrain_config(args)
    return to_dict(cfg) if cfg is not None else load_json(Path(args.output) / "config.json")


# --- export -----------------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from ..export import MODEL, export_run

    out = export_run(args.run, args.output, force=args.force, onnx=args.onnx)
    print(f"exported {out / MODEL} (load with torch.export.load(path).module(); no genas needed) and "
          f"{out / 'genotype.json'}" + (f"; ONNX: {out / 'model.onnx'}" if args.onnx else ""))
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", parents=[shared("output folder", force=True)],
                       help="export the found, retrained network for plain PyTorch",
                       description="Write the winner of a `genas run` folder, with its retrained weights, as a "
                                   "torch.export program (model.pt2) that loads without genas, plus genotype.json "
                                   "(genotype, network arguments, input shape, normalisation).")
    p.add_argument("--run", required=True, help="a finished `genas run` or `genas retrain` folder")
    p.add_argument("--onnx", action="store_true",
                   help="also write model.onnx (dynamic batch; needs the onnx extra: pip install 'genas[onnx]')")
    p.set_defaults(func=cmd_export)


# subcommand -> the function that adds its parser
COMMANDS = {"train-supernet": _add_train_supernet, "search": _add_search, "run": _add_run, "retrain": _add_retrain,
            "export": _add_export}

__all__ = ["COMMANDS", "cmd_export", "cmd_retrain", "cmd_run", "cmd_search", "cmd_train_supernet"]
