"""The environment record of a run folder (``env.json``): what software and machine produced it.

Bitwise equality of a resumed run with an uninterrupted one holds only with the same versions of
genas, torch, numpy, Python and CUDA/cuDNN, on the same kind of device with the same thread count,
so a run folder records them when it starts and ``--resume`` warns when they differ
(:func:`differences`). Pure Python: torch is asked only if the process has already imported it
(the torch-free search over a table records the installed versions from package metadata).
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

ENV = "env.json"
# the keys whose difference can change what a resumed run computes (compared on --resume)
COMPARED = ("genas", "git_commit", "python", "torch", "torchvision", "numpy", "cuda", "cudnn", "gpu", "threads",
            "platform")

_context: dict[str, Any] = {}  # argv and device of the command now running (set by the command line)


def set_context(argv: Sequence[str] | None = None, device: str | None = None) -> None:
    """Record the command line and requested device of this process's command (``None``: forget it)."""
    _context.clear()
    if argv is not None:
        _context["argv"] = list(argv)
    if device is not None:
        _context["device"] = device


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=None)
def git_commit(where: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout that holds the genas source files, not of the current
    folder: ``(None, None)`` when genas is not a git checkout (an installed wheel, or a virtual
    environment inside someone else's repository, whose files git does not track)."""
    pkg = Path(where) if where is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(pkg), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "__init__.py") is None:  # genas's own files are not tracked here
        return None, None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return commit, (bool(status) if status is not None else None)


def _torch_facts(requested: str | None) -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is None:
        return dict(device=requested, cuda=None, cudnn=None, gpu=None, gpu_count=None, threads=None)
    cuda_ok = torch.cuda.is_available()
    device = requested
    if requested in (None, "auto"):
        device = "cuda" if cuda_ok else "cpu"
    on_gpu = cuda_ok and str(device).startswith("cuda")  # a CPU run records no GPU (and starts no CUDA)
    index = int(str(device).split(":")[1]) if on_gpu and ":" in str(device) else (
        int(os.environ.get("LOCAL_RANK", 0)) if on_gpu else None)  # torchrun: each rank's own GPU
    gpu = torch.cuda.get_device_name(index) if on_gpu else None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return dict(device=device, cuda=torch.version.cuda, cudnn=cudnn, gpu=gpu,
                gpu_count=torch.cuda.device_count() if cuda_ok else 0, threads=torch.get_num_threads())


def collect() -> dict[str, Any]:
    """The environment of this process now (JSON-ready)."""
    commit, dirty = git_commit()
    info = dict(genas=_version("genas"), git_commit=commit, modified=dirty, git_dirty=dirty,
                python=platform.python_version(),
                implementation=platform.python_implementation(), torch=_version("torch"),
                torchvision=_version("torchvision"), numpy=_version("numpy"), platform=platform.platform(),
                machine=platform.machine(), cpu_count=os.cpu_count())
    info.update(_torch_facts(_context.get("device")))
    info["thread_env"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    info["argv"] = _context.get("argv", list(sys.argv))
    info["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return info


def differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``key A -> B`` for every compared key that differs; a key either side did not record (None,
    e.g. CUDA facts of a torch-free process) is not a difference."""
    out = []
    for key in COMPARED:
        a, b = saved.get(key), now.get(key)
        if a is not None and b is not None and a != b:
            out.append(f"{key} {a} -> {b}")
    return out


__all__ = ["COMPARED", "ENV", "collect", "differences", "git_commit", "set_context"]
