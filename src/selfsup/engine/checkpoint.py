"""Atomic checkpoints, read back without unpickling code.

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed
over the old one, so a crash while writing leaves the previous checkpoint intact. It is read
with ``torch.load(weights_only=True)``: only tensors, numbers, strings and containers of them
come back, so a checkpoint file carrying a pickled payload (a run folder from someone else, or
a tampered one) is refused instead of running code.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "last.ckpt"
    >>> save_checkpoint(path, {"step": 3})
    >>> load_checkpoint(path)["step"]
    3
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfsup.core.files import atomic_path


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read safely: damaged, empty or carrying code."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` to ``path`` atomically (``selfsup.core.files.atomic_path``).

    On any failure the temporary file is removed and the previous checkpoint stays as it was.

    Raises:
        OSError: the disk is full (PyTorch's writer says only "unexpected pos"), read-only...
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except RuntimeError as err:
        free = shutil.disk_usage(path.parent).free
        if free < module_bytes(state):
            raise OSError(
                errno.ENOSPC,
                "No space left on device (the previous checkpoint is kept: free some space, "
                "then --resume)",
                str(path),
            ) from err
        raise


def module_bytes(state: nn.Module | dict[str, Any]) -> int:
    """The bytes of the tensors in a module's state (or in a checkpoint's nested state).

    Example:
        >>> module_bytes(nn.Linear(3, 2))  # 6 weights and 2 biases, float32
        32
    """
    if isinstance(state, nn.Module):
        state = state.state_dict()
    total, stack = 0, [state]
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return total


def checkpoint_bytes(model: nn.Module) -> int:
    """About the size of a checkpoint of ``model``: its weights and buffers, plus two
    optimizer moments per trainable weight (Adam's; LARS and SGD keep fewer).

    Example:
        >>> checkpoint_bytes(nn.Linear(3, 2))
        96
    """
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return module_bytes(model) + 2 * trainable


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``, never unpickling objects.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is empty, damaged, or holds anything but tensors, numbers,
            strings and containers (a pickled object or code); the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint is empty (0 bytes); delete it or start anew")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: the checkpoint holds something other than tensors and numbers "
            "(a pickled object, possibly code), or is not a checkpoint; selfsup never unpickles "
            "objects, so start a new run"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: the checkpoint is damaged or truncated ({reason}); delete it or start anew"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a selfsup checkpoint (holds {type(state).__name__})")
    return state
