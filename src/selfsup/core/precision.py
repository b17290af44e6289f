"""Choosing the numeric precision: bf16 autocast where the hardware runs it fast.

Example:
    >>> resolve_precision("fp32", "cpu")
    '32-true'
"""

from __future__ import annotations

import torch


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, accelerator: str) -> str:
    """Map ``auto``/``bf16``/``fp32`` to a Lightning Fabric precision string."""
    if precision == "fp32":
        return "32-true"
    if precision == "bf16":
        return "bf16-mixed"
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"
