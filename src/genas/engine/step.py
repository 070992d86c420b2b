"""One optimisation step, shared by supernet and stand-alone training."""
from __future__ import annotations

import torch


def sgd_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params, grad_clip: float) -> None:
    """Backward, optional gradient-norm clipping, and the optimizer step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
