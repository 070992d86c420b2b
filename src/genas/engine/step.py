"""One optimisation step, shared by supernet and stand-alone training."""
from __future__ import annotations

import torch


def sgd_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params, grad_clip: float, scaler=None) -> None:
    """Backward, optional gradient-norm clipping, and the optimizer step; with an fp16 ``scaler``
    (``torch.amp.GradScaler``) the loss is scaled, gradients unscaled before clipping, and a step
    with non-finite gradients skipped."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        return
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()
