"""Commands and options that connect run folders to other tools: ``genas tensorboard`` and the
``--tensorboard`` option of the pipeline commands (both run :func:`genas.analysis.tensorboard.convert`,
so the live option and the later conversion give the same event files)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_tensorboard_option(parser) -> None:
    """``--tensorboard``: convert the command's JSONL logs to TensorBoard event files when it ends."""
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files of the logs into OUT/tensorboard/ (needs the "
                             "tensorboard extra: pip install 'genas[tensorboard]')")


def check_tensorboard(args: argparse.Namespace) -> None:
    """With ``--tensorboard``, fail before any work if the extra is missing."""
    if getattr(args, "tensorboard", False):
        from ..analysis.tensorboard import require_tensorboard

        require_tensorboard()


def write_tensorboard(args: argparse.Namespace, folder: str | Path) -> Path | None:
    """With ``--tensorboard``, convert ``folder`` (rank 0 only); returns the event folder."""
    if not getattr(args, "tensorboard", False) or os.environ.get("RANK", "0") != "0":
        return None
    from ..analysis.tensorboard import convert

    out = convert(folder)
    print(f"tensorboard: {out.resolve()}  (tensorboard --logdir {out})")
    return out


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from ..analysis.tensorboard import convert

    out = convert(args.run, args.output)
    print(f"tensorboard event files: {Path(out).resolve()}  (view: tensorboard --logdir {out})")
    return 0


def _add_tensorboard(sub) -> None:
    p = sub.add_parser("tensorboard", help="convert a run folder's JSONL logs to TensorBoard event files",
                       description="Write TensorBoard event files of every log.jsonl (supernet, retrain) and "
                                   "candidates.jsonl (search) in RUN and its step folders, one TensorBoard run per "
                                   "step; the values are exactly the logs' (doubles). Rewrites an earlier "
                                   "conversion. Needs the tensorboard extra: pip install 'genas[tensorboard]'.")
    p.add_argument("run", metavar="RUN", help="a run folder (train-supernet, search, retrain or genas run)")
    p.add_argument("-o", "--output", default=None, help="event folder (default RUN/tensorboard)")
    p.set_defaults(func=cmd_tensorboard)


COMMANDS = {"tensorboard": _add_tensorboard}

__all__ = ["COMMANDS", "add_tensorboard_option", "check_tensorboard", "cmd_tensorboard", "write_tensorboard"]
