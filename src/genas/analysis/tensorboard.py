"""TensorBoard event files made from a run folder's JSONL records (the optional ``tensorboard`` extra).

The JSONL logs stay the one record of a run; the event files are a view of them, rebuilt from them
on every conversion, so ``--tensorboard`` during a command and ``genas tensorboard RUN`` afterwards
give the same scalars: every numeric value of every record (nested values as ``raw/losses/0``),
step = the record's epoch (``log.jsonl``) or its 1-based evaluation number (``candidates.jsonl``),
stored as doubles so they equal the JSON values exactly. A ``genas run`` folder gives one
TensorBoard run per step: ``supernet``, ``search-<name>``, ``retrain``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import GenasError
from ..io import read_jsonl
from ..run_folder import FileLock

OUT = "tensorboard"
MARK = ".genas-tensorboard.json"  # in an output folder: the run whose logs it holds
INSTALL_HINT = "TensorBoard output needs the tensorboard extra: pip install 'genas[tensorboard]'"
LOGS = ("log.jsonl", "candidates.jsonl")


def require_tensorboard():
    """torch's ``SummaryWriter``, or one line saying how to install the extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GenasError(INSTALL_HINT) from None
    return SummaryWriter


def scalars(record: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(tag, value) of every number in ``record``, nested dicts and lists flattened with ``/``;
    ``epoch`` (the step) and ``time`` (the wall time) are not scalars; strings and None are skipped."""
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if not prefix and key in ("epoch", "time"):
            continue
        if isinstance(value, bool):
            yield tag, float(value)
        elif isinstance(value, (int, float)):
            yield tag, float(value)
        elif isinstance(value, dict):
            yield from scalars(value, tag + "/")
        elif isinstance(value, list):
            yield from scalars({str(i): v for i, v in enumerate(value)}, tag + "/")


def _kind(folder: Path, log: str) -> str:
    if log == "candidates.jsonl":
        return "search"
    if (folder / "init.pt").exists() or (folder / "summary.json").exists():
        return "supernet"
    if (folder / "last.pt").exists() or (folder / "result.json").exists():
        return "retrain"
    return folder.name or "run"


def sources(run: str | Path) -> list[tuple[str, Path]]:
    """(TensorBoard run name, JSONL file) of the folder and its step subfolders (``search-*``,
    ``retrain``); the folder's own logs are named by kind (``supernet``, ``search``, ``retrain``)."""
    run = Path(run)
    found = [(_kind(run, log), run / log) for log in LOGS if (run / log).is_file()]
    for sub in sorted(p for p in run.iterdir() if p.is_dir() and p.name != OUT) if run.is_dir() else ():
        found += [(sub.name, sub / log) for log in LOGS if (sub / log).is_file()]
    return found


def _step(index: int, record: dict) -> int:
    return int(record["epoch"]) if "epoch" in record and isinstance(record["epoch"], int) else index + 1


def _claim(out: Path, run: Path, names: list[str]) -> None:
    """``out`` holds this run's conversion only (``MARK`` names the run): a folder with other files,
    or another run's conversion, is refused, so converting never deletes what it did not write."""
    from ..io import load_json, save_json

    mark = out / MARK
    if mark.exists():
        if Path(load_json(mark).get("run", "")) != run.resolve():
            raise GenasError(f"{out} holds the TensorBoard files of {load_json(mark).get('run')}; choose another -o")
    elif out.exists() and any(out.iterdir()):
        raise GenasError(f"{out} is not empty and was not written by `genas tensorboard`; choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    save_json(dict(run=str(run.resolve()), logs=names), mark)


def convert(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the event files of ``run``'s JSONL logs into ``out`` (default ``RUN/tensorboard``),
    replacing what an earlier conversion wrote there; returns ``out``."""
    SummaryWriter = require_tensorboard()
    run = Path(run)
    if not run.is_dir():
        raise GenasError(f"{run} is not a folder")
    found = sources(run)
    if not found:
        raise GenasError(f"{run} holds no log.jsonl or candidates.jsonl (not a genas run folder?)")
    names = [name for name, _ in found]
    if len(set(names)) != len(names):
        raise GenasError(f"{run}: two logs map to one TensorBoard name ({', '.join(sorted(names))})")
    out = Path(out) if out is not None else run / OUT
    with FileLock(out):
        _claim(out, run, names)
        for name, path in found:
            target = out / name
            for old in target.glob("events.out.tfevents.*"):  # rebuilt from the records: an old file
                old.unlink()                                   # would show every point twice
            writer = SummaryWriter(log_dir=str(target))
            try:
                scored = [r for r in read_jsonl(path) if "copy_of" not in r]  # a copy is not an evaluation
                for i, record in enumerate(scored):
                    wall = record.get("time")
                    for tag, value in scalars(record):
                        writer.add_scalar(tag, value, _step(i, record), new_style=True, double_precision=True,
                                          walltime=float(wall) if isinstance(wall, (int, float)) else None)
            finally:
                writer.close()
    return out


__all__ = ["INSTALL_HINT", "OUT", "convert", "require_tensorboard", "scalars", "sources"]
