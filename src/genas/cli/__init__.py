"""Command line: parse arguments, then call one function per command.

The options are generated from the config dataclasses (:mod:`.options`); the commands live in
:mod:`.pipeline` (train-supernet, search, run, retrain, export) and :mod:`.study` (bench, score,
noise-grid, calibrate, combine, outcome, correlate). User errors (:class:`~genas.errors.GenasError`,
bad values) print one line ``genas: error: ...`` and exit with code 2.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import GenasError
from .options import Parser

# the order `genas --help` lists the commands in
ORDER = ("train-supernet", "search", "run", "bench", "score", "noise-grid", "calibrate", "combine", "outcome",
         "correlate", "retrain", "export")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__, proxies  # noqa: F401  (importing the proxies registers the metrics)
    from . import pipeline, study

    parser = Parser(prog="genas",
                    description="Neural architecture search with flatness-based scoring (GeNAS). Every command "
                                "writes into a run folder (config JSON, checkpoints, JSONL logs, results).")
    parser.add_argument("--version", action="version", version=f"genas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {**pipeline.COMMANDS, **study.COMMANDS}
    for name in ORDER:
        commands[name](sub)
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
    except OSError as exc:  # unwritable folder, full disk, unreadable file: the path and the reason
        where = f" {exc.filename}" if exc.filename else ""
        print(f"genas: error: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genas: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
