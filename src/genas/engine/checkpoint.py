"""Torch checkpoints: state dicts written atomically (temp file + rename, via :mod:`genas.io`) and
always loaded with ``torch.load(weights_only=True)``, so a checkpoint can never run code."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import GenasError
from ..io import atomic_write


def save_torch(obj: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, map_location="cpu") -> Any:
    """A tensor-only checkpoint; anything else (missing, empty, corrupt, or holding objects other
    than tensors) is a one-line :class:`GenasError` naming the file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise GenasError(f"checkpoint {path} not found") from None
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a pickled object: refuse (never take torch's advice to unpickle)
            raise GenasError(f"refusing to load {path}: it contains objects other than tensors") from None
        raise GenasError(f"cannot load checkpoint {path}: not a tensor checkpoint (corrupt or truncated)") from None
    except Exception as exc:  # corrupt or truncated content: never a traceback for the user
        raise GenasError(f"cannot load checkpoint {path}: {_first_line(exc)}") from None


def load_checkpoint(path: Path, keys: tuple[str, ...]) -> dict:
    """A training-state checkpoint: a dict with (at least) ``keys``, else a one-line error."""
    state = load_torch(path)
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise GenasError(f"{path} is not a genas training checkpoint (missing {', '.join(missing)}); "
                         f"start a new run or restore the file")
    return state


def load_into(module: torch.nn.Module, state: dict, path: Path, what: str = "the network") -> None:
    """``module.load_state_dict(state)`` (strict), or one line naming ``path`` and the first bad key."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, AttributeError) as exc:
        raise GenasError(f"cannot load {path}: it does not match {what} ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else f"{type(exc).__name__} (the file is empty or truncated)"


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names and raw bytes (bitwise identity check)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


__all__ = ["save_torch", "load_torch", "load_checkpoint", "load_into", "state_digest"]
