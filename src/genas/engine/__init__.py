"""What every training and scoring loop needs, independent of any search space: the optimiser
step, one epoch loop, the one evaluation (top-1/top-5), params/MACs, BN recalibration, torch
checkpoints and torchrun/DDP set-up."""

# the training precisions of genas.engine.precision, here so that configs can name them without torch
PRECISIONS = ("fp32", "bf16", "fp16")
