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
    ("space", str, "search space (nb201)"),
    ("dataset", str, "dataset: fashion-mnist (default), cifar10, cifar100, imagefolder, synthetic"),
    ("data_dir", str, "folder with the dataset files (fashion-mnist default: /usr/share/datasets/fashion-mnist)"),
    ("split_seed", int, "seed of the supernet-train / search-validation split of the training set (default 0)"),
    ("val_fraction", float, "share of the training set held out for search validation (default 0.5)"),
    ("channels", int, "channels C of the first stage"),
    ("cells_per_stage", int, "cells N per stage (NB201 uses 5)"),
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


def _add_supernet_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("supernet training (defaults from --preset)")
    for name, typ, help_text in SUPERNET_OPTIONS:
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=help_text)
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
