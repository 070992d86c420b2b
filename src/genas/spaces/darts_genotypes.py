"""Published DARTS-space genotypes as 28-gene index tuples (14 normal + 14 reduce).

GeNAS (``retrain_architecture/genotypes.py`` of the official code) ships
its searched cells as index encodings; the baselines are the DARTS ``Genotype`` strings of their
own repositories (DARTS: quark0/darts ``genotypes.py``; PC-DARTS: yuhuixu1993/PC-DARTS
``PC_DARTS_cifar``; RLDARTS: megvii-model/RLNAS, whose comment gives its index encoding
``[[5,4,6,0,5,4,0,0,7,0,7,6,0,0], [5,6,4,0,5,0,6,0,4,0,1,5,0,0]]``), parsed into the same
encoding. Pure Python: no torch import.
"""
from __future__ import annotations

from ..registry import Registry
from .base import Genotype
from .darts import DARTSSpace

_SPACE = DARTSSpace()

# --- GeNAS searched cells (official index encodings) -----------------------------------------------
FLATNESS_CIFAR10: Genotype = (3, 6, 0, 4, 4, 0, 6, 6, 0, 0, 0, 0, 4, 3,
                              5, 2, 0, 6, 4, 0, 3, 0, 6, 0, 0, 5, 0, 7)
ANGLE_FLATNESS_CIFAR10: Genotype = (5, 4, 4, 4, 0, 4, 5, 0, 0, 4, 0, 0, 0, 4,
                                    7, 7, 2, 3, 0, 4, 1, 0, 0, 0, 0, 0, 5, 6)
FLATNESS_CIFAR100: Genotype = (3, 5, 0, 4, 4, 0, 0, 4, 5, 0, 4, 0, 0, 7,
                               6, 3, 2, 0, 5, 0, 5, 0, 7, 0, 1, 1, 0, 0)
ANGLE_FLATNESS_CIFAR100: Genotype = (3, 5, 1, 4, 0, 0, 4, 0, 4, 0, 4, 0, 0, 5,
                                     6, 4, 0, 7, 2, 1, 3, 0, 0, 0, 4, 0, 0, 7)
# in the official file; probably the ABS (angle-only) search with ground-truth labels
RLDARTS_OURS_GT: Genotype = (5, 5, 2, 5, 0, 4, 4, 0, 0, 0, 4, 0, 0, 4,
                             3, 3, 0, 3, 2, 3, 7, 0, 0, 3, 0, 0, 0, 4)

# --- baselines, as published DARTS Genotype strings ----------------------------------------------
GENOTYPE_STRINGS: dict[str, str] = {
    "DARTS_V1": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
        "reduce_concat=[2, 3, 4, 5])"),
    "DARTS_V2": (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"),
    "PC_DARTS": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
        "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
        "normal_concat=range(2, 6), "
        "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], "
        "reduce_concat=range(2, 6))"),
    "RLDARTS": (
        "Genotype(normal=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 0), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('dil_conv_5x5', 3), ('dil_conv_5x5', 1), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('sep_conv_5x5', 0), ('dil_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2), "
        "('dil_conv_3x3', 1), ('sep_conv_3x3', 3), ('max_pool_3x3', 1), ('sep_conv_5x5', 2)], "
        "reduce_concat=[2, 3, 4, 5])"),
}

DARTS_V1: Genotype = _SPACE.parse(GENOTYPE_STRINGS["DARTS_V1"])
DARTS_V2: Genotype = _SPACE.parse(GENOTYPE_STRINGS["DARTS_V2"])
PC_DARTS: Genotype = _SPACE.parse(GENOTYPE_STRINGS["PC_DARTS"])
RLDARTS: Genotype = _SPACE.parse(GENOTYPE_STRINGS["RLDARTS"])

GENOTYPES: dict[str, Genotype] = {
    "FLATNESS_CIFAR10": FLATNESS_CIFAR10,
    "ANGLE_FLATNESS_CIFAR10": ANGLE_FLATNESS_CIFAR10,
    "FLATNESS_CIFAR100": FLATNESS_CIFAR100,
    "ANGLE_FLATNESS_CIFAR100": ANGLE_FLATNESS_CIFAR100,
    "RLDARTS_OURS_GT": RLDARTS_OURS_GT,
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "PC_DARTS": PC_DARTS,
    "RLDARTS": RLDARTS,
}

# ImageNet init_channels of the GeNAS models (README; argparse default 48) and the published
# parameter counts (M, auxiliary head excluded) at those widths, 14 cells, 1000 classes
IMAGENET_CHANNELS: dict[str, int] = {
    "FLATNESS_CIFAR10": 52,
    "ANGLE_FLATNESS_CIFAR10": 44,
    "FLATNESS_CIFAR100": 46,
    "ANGLE_FLATNESS_CIFAR100": 48,
    "DARTS_V2": 48,
}
IMAGENET_PARAMS_M: dict[str, float] = {
    "FLATNESS_CIFAR10": 5.56,
    "ANGLE_FLATNESS_CIFAR10": 5.34,
    "FLATNESS_CIFAR100": 5.20,
    "ANGLE_FLATNESS_CIFAR100": 5.41,
    "DARTS_V2": 4.72,
}


# the registry of published architectures (``--genotype NAME``), in the table's order of names
PUBLISHED: Registry[Genotype] = Registry("published DARTS genotype")
for _name, _genotype in GENOTYPES.items():
    PUBLISHED.register(_name, _genotype)


def list_genotypes() -> list[str]:
    return list(GENOTYPES)


def get_genotype(name: str) -> Genotype:
    """The 28-gene genotype of a published architecture (names as in :func:`list_genotypes`,
    case-insensitive); an unknown name is a one-line GenasError."""
    return PUBLISHED.get(name.upper() if isinstance(name, str) else name)


def published_name(genotype) -> str | None:
    """The name of a published architecture equal to ``genotype``, if any."""
    g = tuple(genotype)
    return next((name for name, value in GENOTYPES.items() if value == g), None)


__all__ = ["GENOTYPES", "GENOTYPE_STRINGS", "IMAGENET_CHANNELS", "IMAGENET_PARAMS_M", "PUBLISHED", "get_genotype",
           "list_genotypes", "published_name"] + list(GENOTYPES)
