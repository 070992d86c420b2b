"""Pure persistence helpers (no torch): atomic fsync'd writes, JSON, and JSONL logs.

Every durable write goes through :func:`atomic_write` (temp file, fsync, rename), so a kill at any
moment leaves either the old or the new file, never a torn one. JSONL logs are appended one
flushed line at a time under an exclusive ``flock``, so several processes may share a log.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import GenasError


def _durable(path: Path) -> None:
    """Called after every durable write (a rename into place, an fsync'd append). A no-op; the
    fault-injection tests replace it to kill a run right after each write."""


def atomic_write(path: Path, write: Callable) -> None:
    """Write ``path`` through ``write(binary_file)`` into a temp file that is fsync'd and renamed."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # full disk, unwritable folder: the path and the reason, the old file intact
        _remove(tmp)
        raise GenasError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise
    _durable(path)


def _remove(tmp: str | None) -> None:
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, inf) replaced by ``None``: strict JSON has no NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """Strict JSON (non-finite floats become null)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def save_json(obj: Any, path: Path) -> None:
    data = (dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


def load_json(path: Path) -> dict:
    """A JSON file as a dict; a missing or malformed file is a one-line :class:`GenasError`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GenasError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GenasError(f"{path} is not valid JSON: {exc}") from None


def _complete_end(f, end: int, window: int = 1 << 20) -> int:
    """Offset just after the last newline of an open binary file of size ``end`` (``end`` itself when
    the file ends with a newline, or when no newline is found in the last ``window`` bytes)."""
    if end == 0:
        return 0
    f.seek(end - 1)
    if f.read(1) == b"\n":  # the usual case: one byte read, not the tail
        return end
    start = max(0, end - window)
    f.seek(start)
    tail = f.read()
    if tail.endswith(b"\n"):
        return end
    i = tail.rfind(b"\n")
    if i >= 0:
        return start + i + 1
    return 0 if start == 0 else end


def append_jsonl(record: dict, path: Path) -> None:
    """Append one JSON line under an exclusive lock and flush it to disk (a crash loses at most
    the line being written; concurrent writers never interleave). A torn tail left by a crash
    (bytes after the last newline) is cut off first, so it never glues onto the new line."""
    line = (dumps(record) + "\n").encode()
    try:
        _append(path, line)
    except OSError as exc:
        raise GenasError(f"cannot append to {path}: {exc.strerror or exc}") from None
    _durable(path)


def _append(path: Path, line: bytes) -> None:
    with open(path, "ab+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            end = f.seek(0, os.SEEK_END)
            cut = _complete_end(f, end)
            if cut < end:
                f.truncate(cut)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_jsonl(records: Iterable[dict], path: Path) -> None:
    """Atomically replace a JSONL file with ``records``."""
    data = "".join(dumps(r) + "\n" for r in records).encode()
    atomic_write(path, lambda f: f.write(data))


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL log. Only a torn last line (no final newline: a crash mid-append) is dropped;
    any other damage is a one-line :class:`GenasError` naming the file and line, so a resume never
    silently cuts a log."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise GenasError(f"cannot read {path}: {exc}") from None
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline, else the torn tail
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise GenasError(f"{path}: line {number} is not valid JSON (a damaged record); nothing was changed: "
                             f"repair or remove that line")
        out.append(record)
    del torn  # a record cut by a crash belongs to a step that is redone; append_jsonl cuts it off
    return out


__all__ = ["atomic_write", "dumps", "json_safe", "save_json", "load_json", "append_jsonl", "write_jsonl", "read_jsonl"]
