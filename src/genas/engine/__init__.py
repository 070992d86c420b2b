"""What every training and scoring loop needs, independent of any search space: the optimiser
step, one epoch loop, the one evaluation (top-1/top-5), params/MACs, BN recalibration, torch
checkpoints and torchrun/DDP set-up."""

# the training precisions of genas.engine.precision, here so that configs can name them without torch
PRECISIONS = ("fp32", "bf16", "fp16")


def precision_option(evaluation: str = "evaluation stays fp32"):
    """The ``precision`` setting of a training config (``evaluation``: what stays exact, for the help)."""
    from ..options import option

    return option("fp32", f"training arithmetic: fp32, bf16 (autocast) or fp16 (autocast + gradient scaler, CUDA "
                          f"only); {evaluation}", choices=PRECISIONS)


def channels_last_option():
    """The ``channels_last`` setting of a training config."""
    from ..options import option

    return option(False, "train in NHWC memory format (faster on GPU; changes rounding only)")


def deterministic_option():
    """The ``deterministic`` setting of a training config (see :func:`genas.engine.precision.deterministic_mode`)."""
    from ..options import option

    return option(False, "deterministic algorithms and cuDNN flags (slower on GPU; see genas.engine.precision)")
