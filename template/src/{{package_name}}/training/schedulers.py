"""Learning-rate schedules, as functions of the optimizer step (configs/scheduler/).

Each takes the optimizer and the run's total number of optimizer steps and returns a LambdaLR,
so its state (the step count) is saved in checkpoints like any other scheduler's.
"""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_with_warmup(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Linear warmup from ~0 over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr``."""
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return min_lr_ratio + (1.0 - min_lr_ratio) * cosine

    return LambdaLR(optimizer, factor)


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    """The optimizer's learning rate, unchanged."""
    return LambdaLR(optimizer, lambda step: 1.0)
