"""Choosing the device and the numeric precision: a GPU when one is present (``--accelerator
auto``, the default), bf16 autocast where the hardware runs it fast.

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


def uses_gpu(accelerator: str) -> bool:
    """Whether ``--accelerator`` means training on a GPU: ``gpu``, or ``auto`` where CUDA is
    present.

    Example:
        >>> uses_gpu("cpu"), uses_gpu("gpu")
        (False, True)
    """
    return accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())


def embedding_device(device: str | torch.device = "auto") -> torch.device:
    """The device to embed on: ``auto`` is the first CUDA GPU when one is present, else the
    CPU; any other value is taken as a torch device.

    Example:
        >>> embedding_device("cpu")
        device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if uses_gpu("auto") else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, accelerator: str) -> str:
    """Map ``auto``/``bf16``/``fp32`` to a Lightning Fabric precision string: ``auto`` is bf16
    autocast on a GPU that has bf16 (fp16 with loss scaling on older ones) and on a CPU with
    native bf16 instructions, else fp32."""
    if precision == "fp32":
        return "32-true"
    if precision == "bf16":
        return "bf16-mixed"
    if uses_gpu(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"
