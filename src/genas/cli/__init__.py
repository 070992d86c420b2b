"""Command line: parse arguments, then call one function per command.

The options are generated from the config dataclasses (:mod:`.options`); the commands live in
:mod:`.pipeline` (train-supernet, search, run, retrain, export) and :mod:`.study` (bench, score,
noise-grid, calibrate, combine, outcome, correlate). User errors (:class:`~genas.errors.GenasError`,
bad values) print one line ``genas: error: ...`` and exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import GenasError
from .options import Parser, add_common, apply_config_file, resolved_config

# the order `genas --help` lists the commands in
ORDER = ("train-supernet", "search", "run", "bench", "score", "noise-grid", "calibrate", "combine", "share", "outcome",
         "correlate", "retrain", "export", "tensorboard", "detect")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__, proxies  # noqa: F401  (importing the proxies registers the metrics)
    from . import detect, interop, pipeline, study

    parser = Parser(prog="genas",
                    description="Neural architecture search with flatness-based scoring (GeNAS). Every command "
                                "writes into a run folder (config JSON, checkpoints, JSONL logs, results).")
    parser.add_argument("--version", action="version", version=f"genas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {**pipeline.COMMANDS, **study.COMMANDS, **interop.COMMANDS, **detect.COMMANDS}
    for name in ORDER:
        commands[name](sub)
    for command in {id(p): p for p in sub.choices.values()}.values():
        add_common(command)
    return parser


def _subcommands(parser: argparse.ArgumentParser):
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` chose: ``genas search`` or ``genas detect train``."""
    while (sub := _subcommands(parser)) is not None and getattr(args, sub.dest, None) in sub.choices:
        parser = sub.choices[getattr(args, sub.dest)]
    return parser


def _all_parsers(parser: argparse.ArgumentParser):
    sub = _subcommands(parser)
    for child in (sub.choices.values() if sub is not None else ()):
        yield child
        yield from _all_parsers(child)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse; with ``--config FILE``, parse again with the file's settings as the command's defaults
    (so options given override the file, and the file overrides the presets)."""
    required = [a for p in _all_parsers(parser) for a in p._actions if a.required]
    for action in required:  # first pass: find the command and its --config (the file may supply these)
        action.required = False
    try:
        args = parser.parse_args(argv)
    finally:
        for action in required:
            action.required = True
    if getattr(args, "config", None):
        command = _command_parser(parser, args)
        extra = apply_config_file(command, args.config)
        args = parser.parse_args(argv)
        args._config_extra = extra
    elif required:
        args = parser.parse_args(argv)
    if not getattr(args, "print_config", False) and getattr(args, "_output_required", False) and not args.output:
        _command_parser(parser, args).error("the following arguments are required: -o/--output")
    return args


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    """One command: ``--print-config`` and exit, or run it with stderr logging (and ``genas.log`` in
    every run folder it opens); a fresh output folder gets ``env.json`` after success."""
    from .. import envinfo, logs, run_folder

    if getattr(args, "print_config", False):
        print(json.dumps(resolved_config(_command_parser(parser, args), args), indent=2))
        return 0
    envinfo.set_context(["genas", *argv], getattr(args, "device", None))
    cublas_was_set = "CUBLAS_WORKSPACE_CONFIG" in os.environ
    if getattr(args, "deterministic", False):
        from ..engine.precision import cublas_for_determinism

        cublas_for_determinism()  # before the command's first cuBLAS call
    try:
        with logs.session(getattr(args, "log_level", "info")):
            try:
                code = args.func(args)
            finally:
                run_folder.release_all()
        if code == 0 and getattr(args, "_fresh_output", False) and args.output and Path(args.output).is_dir():
            run_folder.record_env(args.output)
        return code
    finally:
        envinfo.set_context()
        if not cublas_was_set:  # a command sets it for itself only
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parse(parser, argv)
    except GenasError as exc:
        print(f"genas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return _run(parser, args, argv)
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
