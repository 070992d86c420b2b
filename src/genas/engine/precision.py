"""Numeric precision of training and scoring: mixed precision where it is safe, exact fp32 where not.

Training (``--precision``, ``--channels-last``, ``--deterministic``) may trade rounding for speed:

* :func:`check_precision` -- the one check of a precision against a device (one line on error:
  fp16 needs CUDA, because its gradient scaler and fp16 autocast are GPU-only; bf16 runs on CPU too);
* :func:`autocast` -- the forward's autocast context (a no-op for fp32, so fp32 keeps today's bits);
* :func:`make_scaler` -- a ``GradScaler`` for fp16 on CUDA, else ``None``;
* :class:`TrainPrecision` -- the three together with the memory format, what the shared epoch loop
  (:func:`genas.engine.loop.train_one_epoch`) takes; :func:`to_channels_last` for models and inputs;
* :func:`deterministic_mode` -- deterministic algorithms and cuDNN flags for a run, restored after;
  :func:`numerics_record` says what was in force, for the run folder.

Scoring may not: FBS measures loss differences of about 0.5 % caused by weight noise of std 0.001,
below what TF32 (10 mantissa bits, cuDNN convolutions use it by default) or bf16 (8 bits) resolve.
:func:`exact_fp32` runs a block in plain fp32 -- TF32 off for cuDNN convolutions and CUDA matmuls,
autocast off -- whatever the global settings, and restores them afterwards;
:func:`check_scoring_precision` refuses reduced-precision scoring with the reason.

Detection training uses the same API: ``check_precision(p, device)``, then
``TrainPrecision.make(p, device, channels_last)`` (or ``autocast(device, p)`` and
``make_scaler(device, p)`` directly).

TF32 is switched through PyTorch's ``fp32_precision`` settings only (``torch.backends.cudnn.conv``,
``torch.backends.cuda.matmul``; oneDNN's on CPU when set to anything but IEEE): reading the legacy
``allow_tf32`` flags after the new API was used raises in current PyTorch, so they are never read.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import GenasError
from . import PRECISIONS

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CUBLAS_WORKSPACE = ":4096:8"  # what CUDA's docs require for deterministic cuBLAS

# (settings object, attribute path) whose fp32_precision exact_fp32 pins to IEEE
_CUDA_FLAGS = (("cudnn.conv", ("cudnn", "conv")), ("cudnn.rnn", ("cudnn", "rnn")),
               ("cuda.matmul", ("cuda", "matmul")))
_TF32_FLAGS = (_CUDA_FLAGS[0], _CUDA_FLAGS[2])  # convolutions and matmuls
_CPU_FLAGS = (("mkldnn.conv", ("mkldnn", "conv")), ("mkldnn.matmul", ("mkldnn", "matmul")))
SCORING_REFUSAL = ("flatness measures loss changes of ~0.5 % caused by weight noise of std 0.001; bf16 (8 "
                   "mantissa bits, a step of ~5e-4 on a weight of 0.1) cannot represent that noise, fp16 resolves "
                   "those loss changes only to a few per cent, and no measurement in this repository shows "
                   "reduced-precision scoring ranking like fp32 (Kendall tau >= 0.99 on 100 candidates); scoring "
                   "runs in fp32 with TF32 off")


def _device(device) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def check_precision(precision: str, device, flag: str = "--precision") -> str:
    """``precision`` if ``device`` can train in it; otherwise a one-line :class:`GenasError`."""
    if precision not in PRECISIONS:
        raise GenasError(f"unknown {flag} {precision!r}; available: {', '.join(PRECISIONS)}")
    device = _device(device)
    if precision == "fp16" and device.type != "cuda":
        raise GenasError(f"{flag} fp16 needs a CUDA device (fp16 autocast and its gradient scaler are GPU-only); "
                         f"use bf16 or fp32 on {device.type}")
    return precision


def autocast(device, precision: str):
    """The autocast context of ``precision`` on ``device``; fp32 is a no-op (today's exact ops)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(_device(device).type, dtype=_DTYPES[precision])


def make_scaler(device, precision: str) -> "torch.amp.GradScaler | None":
    """A gradient scaler for fp16 on CUDA (fp16 gradients underflow without it); ``None`` otherwise."""
    check_precision(precision, device)
    return torch.amp.GradScaler("cuda") if precision == "fp16" else None


def to_channels_last(obj):
    """A module (in place) or a 4-D tensor in NHWC memory format; anything else unchanged."""
    if isinstance(obj, torch.nn.Module):
        return obj.to(memory_format=torch.channels_last)
    if isinstance(obj, torch.Tensor) and obj.dim() == 4:
        return obj.contiguous(memory_format=torch.channels_last)
    return obj


@dataclass
class TrainPrecision:
    """How a training loop computes: autocast dtype, gradient scaler (fp16 only), memory format.

    The scaler's state (its loss scale) is part of a run's state: save :meth:`state_dict` with the
    checkpoint and restore it with :meth:`load_state_dict`, so a resumed fp16 run matches.
    """

    precision: str = "fp32"
    device: torch.device = torch.device("cpu")
    channels_last: bool = False
    scaler: "torch.amp.GradScaler | None" = None

    @classmethod
    def make(cls, precision: str, device, channels_last: bool = False) -> "TrainPrecision":
        device = _device(device)
        return cls(check_precision(precision, device), device, bool(channels_last), make_scaler(device, precision))

    @property
    def exact(self) -> bool:
        """fp32 in NCHW: the loop runs exactly the operations it ran before these options existed."""
        return self.precision == "fp32" and not self.channels_last

    def autocast(self):
        return autocast(self.device, self.precision)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return to_channels_last(x) if self.channels_last else x

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in this memory format (in place)."""
        return to_channels_last(model) if self.channels_last else model

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


FP32 = TrainPrecision()


def _flag_objects(flags) -> Iterator[tuple[str, object]]:
    for name, (module, op) in flags:
        backend = getattr(torch.backends, module, None)
        obj = getattr(backend, op, None) if backend is not None else None
        if obj is not None and hasattr(obj, "fp32_precision"):
            yield name, obj


@contextlib.contextmanager
def _pinned(flags, value: str, leave: tuple[str, ...] = ()) -> Iterator[None]:
    """Set ``fp32_precision`` of ``flags`` to ``value`` (skipping those already in ``leave``), restore after."""
    saved = []
    try:
        for name, obj in _flag_objects(flags):
            before = obj.fp32_precision
            if before != value and before not in leave:
                obj.fp32_precision = value
                saved.append((obj, before))
        yield
    finally:
        for obj, before in reversed(saved):
            obj.fp32_precision = before


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for cuDNN convolutions and CUDA matmuls on (``"tf32"``) or off (``"ieee"``) while the block
    runs; the previous settings are restored after. Benchmarks use it to measure what TF32 changes."""
    with _pinned(_TF32_FLAGS, "tf32" if enabled else "ieee"):
        yield


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """Run the block in plain fp32 whatever the global settings: TF32 off for cuDNN (conv, rnn) and
    CUDA matmuls, oneDNN reduced fp32 precision off on CPU, autocast off; all restored afterwards.

    On CPU with default settings nothing changes (bitwise the same results as without it).
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(_pinned(_CUDA_FLAGS, "ieee"))
        stack.enter_context(_pinned(_CPU_FLAGS, "ieee", leave=("none",)))
        if torch.is_autocast_enabled("cpu"):
            stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.is_autocast_enabled("cuda"):
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


def tf32_state() -> dict:
    """The TF32 settings in force (new API, never the legacy flags), e.g. for a run's record."""
    return {name: obj.fp32_precision for name, obj in _flag_objects(_CUDA_FLAGS)}


def check_scoring_precision(precision: str, flag: str = "--scoring-precision") -> str:
    """Scoring runs in fp32 only: bf16/fp16 are refused with the reason (one line)."""
    if precision not in PRECISIONS:
        raise GenasError(f"unknown {flag} {precision!r}; available: {', '.join(PRECISIONS)}")
    if precision != "fp32":
        raise GenasError(f"{flag} {precision} is refused: {SCORING_REFUSAL}")
    return precision


def cublas_for_determinism() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` (unless set) before any cuBLAS handle exists: the command line
    calls it before running a command with ``--deterministic`` (a ``genas run`` scores on the GPU
    before it retrains, so setting it when retraining starts would be too late)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[dict]:
    """Deterministic algorithms and cuDNN flags while the block runs (``enabled``), restored after;
    yields :func:`numerics_record`.

    ``torch.use_deterministic_algorithms(True, warn_only=True)``: ops with a deterministic kernel use
    it; the few without one warn instead of stopping the run (on CUDA the backward of
    ``adaptive_avg_pool2d``, the global pooling of every network here, would otherwise raise).
    cuDNN: ``deterministic=True, benchmark=False``. ``CUBLAS_WORKSPACE_CONFIG`` is set to
    ``:4096:8`` unless already set; cuBLAS reads it when the process creates its first handle, so
    the command line sets it before a command with ``--deterministic`` runs
    (:func:`cublas_for_determinism`), and from Python set it before the first GPU matrix product.
    """
    if not enabled:
        yield numerics_record(False)
        return
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.deterministic, cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield numerics_record(True)
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.deterministic, cudnn.benchmark = saved[2], saved[3]
        if saved[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def numerics_record(deterministic: bool | None = None) -> dict:
    """What decides rounding and algorithm choice right now: deterministic mode, cuDNN flags, TF32."""
    cudnn = torch.backends.cudnn
    return dict(deterministic=torch.are_deterministic_algorithms_enabled() if deterministic is None else deterministic,
                deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
                warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
                cudnn_deterministic=bool(cudnn.deterministic), cudnn_benchmark=bool(cudnn.benchmark),
                cublas_workspace_config=os.environ.get("CUBLAS_WORKSPACE_CONFIG"), tf32=tf32_state())


__all__ = ["CUBLAS_WORKSPACE", "FP32", "PRECISIONS", "SCORING_REFUSAL", "TrainPrecision", "autocast",
           "check_precision", "cublas_for_determinism", "check_scoring_precision", "deterministic_mode", "exact_fp32", "make_scaler",
           "numerics_record", "tf32", "tf32_state", "to_channels_last"]
