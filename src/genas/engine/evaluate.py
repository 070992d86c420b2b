"""The one evaluation: loss, top-1 and top-5 of a model over batches, one host sync at the end."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable, device: torch.device) -> dict:
    """Mean per-image cross-entropy, top-1 (``accuracy``) and top-5 of ``forward`` over ``batches``.

    ``sums`` holds the summed loss, top-1 and top-5 hits and the image count, for adding up shards
    across distributed ranks (:func:`metrics_from_sums`). ``top5`` is ``None`` with fewer than 5
    classes.
    """
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    hits = torch.zeros(2, dtype=torch.int64, device=device)
    n, classes = 0, 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = forward(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        classes = logits.shape[1]
        match = logits.topk(min(5, classes), dim=1).indices == y[:, None]
        hits[0] += match[:, 0].sum()
        hits[1] += match.any(1).sum()
        n += len(y)
    sums = [loss_sum.item(), int(hits[0].item()), int(hits[1].item()), n]
    return dict(metrics_from_sums(sums, classes), sums=sums)


def metrics_from_sums(sums: list[float], num_classes: int) -> dict:
    """``loss``/``accuracy``/``top5``/``images`` from summed (loss, top-1, top-5, count)."""
    loss, top1, top5, n = sums
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "top5": None, "images": 0}
    return {"loss": loss / n, "accuracy": top1 / n, "top5": top5 / n if num_classes >= 5 else None, "images": int(n)}


__all__ = ["evaluate", "metrics_from_sums"]
