"""Loss and accuracy of a model over batches, with one host sync at the end (not per batch)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable, device: torch.device) -> dict:
    """Mean per-image cross-entropy and top-1 accuracy of ``forward`` over ``batches``."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = forward(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "images": 0}
    return {"loss": loss_sum.item() / n, "accuracy": correct.item() / n, "images": n}
