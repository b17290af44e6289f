"""The training engine: loop, optimizers and schedules, checkpoints, metrics, monitoring.

``fit`` and ``TrainState`` are imported on first use: the loop depends on the evaluation
package (label-free monitoring), which itself uses the engine's small precision and progress
modules.
"""

from typing import Any

from selfsup.engine.checkpoint import load_checkpoint, save_checkpoint
from selfsup.engine.optim import LARS, build_optimizer, warmup_cosine

__all__ = [
    "LARS",
    "TrainState",
    "build_optimizer",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "warmup_cosine",
]


def __getattr__(name: str) -> Any:
    if name in ("fit", "TrainState"):
        from selfsup.engine import train

        return getattr(train, name)
    raise AttributeError(f"module 'selfsup.engine' has no attribute {name!r}")
