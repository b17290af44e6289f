"""The training engine: loop, optimizers and schedules, checkpoints, metrics, monitoring."""

from selfsup.engine.checkpoint import load_checkpoint, save_checkpoint
from selfsup.engine.optim import LARS, build_optimizer, warmup_cosine
from selfsup.engine.train import TrainState, fit

__all__ = [
    "LARS",
    "TrainState",
    "build_optimizer",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "warmup_cosine",
]
