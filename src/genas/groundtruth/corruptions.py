"""A fixed, seeded distribution-shifted copy of the test set (in the spirit of CIFAR-10-C /
Hendrycks & Dietterich 2019): Gaussian noise, Gaussian blur and reduced contrast at fixed
severities. Built once per study from a fixed seed, so every architecture sees the same images."""
from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as TF

from ..data.images import TensorImageSet

# (name, severity): noise std on the 0-1 scale, blur sigma in pixels, contrast factor (1 = unchanged)
DEFAULT_CORRUPTIONS = (("gaussian_noise", 0.1), ("gaussian_noise", 0.2), ("gaussian_blur", 0.8),
                       ("gaussian_blur", 1.2), ("contrast", 0.7), ("contrast", 0.5))


def corrupt(x: torch.Tensor, name: str, severity: float, seed: int = 0) -> torch.Tensor:
    """Corrupt uint8 images (N, C, H, W); returns uint8 images."""
    img = x.float() / 255.0
    if name == "gaussian_noise":
        gen = torch.Generator().manual_seed(seed)
        img = img + severity * torch.randn(img.shape, generator=gen)
    elif name == "gaussian_blur":
        k = 2 * math.ceil(3 * severity) + 1
        img = TF.gaussian_blur(img, kernel_size=[k, k], sigma=[severity, severity])
    elif name == "contrast":
        img = TF.adjust_contrast(img, severity)
    else:
        raise ValueError(f"unknown corruption {name!r}; use gaussian_noise, gaussian_blur or contrast")
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def shifted_sets(test: TensorImageSet, n_images: int, corruptions=DEFAULT_CORRUPTIONS,
                 seed: int = 0) -> dict[str, TensorImageSet]:
    """``{"<name>@<severity>": image set}`` over the first ``n_images`` test images."""
    x, y = test.x[:n_images], test.y[:n_images]
    return {f"{name}@{sev:g}": TensorImageSet(corrupt(x, name, sev, seed + i), y, test.mean, test.std)
            for i, (name, sev) in enumerate(corruptions)}
