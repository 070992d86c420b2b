"""Atomic, safe persistence: temp file + rename; tensors via torch.save, metadata as JSON.

Loading always uses ``torch.load(weights_only=True)``, so a checkpoint can never run code.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import GenasError


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, map_location="cpu") -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise GenasError(f"checkpoint {path} not found") from None
    except Exception as exc:  # corrupt or untrusted content: never a traceback for the user
        raise GenasError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None


def save_json(obj: Any, path: Path) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    _atomic_write(path, lambda f: f.write(data))


def append_jsonl(record: dict, path: Path) -> None:
    """Append one JSON line and flush it to disk (a crash loses at most the line being written)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(records: list[dict], path: Path) -> None:
    """Atomically replace a JSONL file with ``records``."""
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    _atomic_write(path, lambda f: f.write(data))


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL log, ignoring a torn last line left by a crash."""
    if not Path(path).exists():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names and raw bytes (bitwise identity check)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
