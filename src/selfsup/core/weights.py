"""Reading safetensors files (an encoder's weights, a head) with errors that name the file.

safetensors never runs code, but a damaged file raises the library's own error types, and
weights that do not fit the model raise PyTorch's multi-line message; both become one line
here.

Example:
    >>> import tempfile, pathlib
    >>> from safetensors.torch import save_file
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> save_file({"weight": torch.ones(2, 3)}, str(path))
    >>> layer = nn.Linear(3, 2, bias=False)
    >>> load_weights_into(layer, path)
    >>> float(layer.weight.detach().sum())
    6.0
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import torch
from torch import nn


class WeightsError(ValueError):
    """A weights file that cannot be read, or that does not fit the model."""


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (an encoder's weights, a head).

    Raises:
        FileNotFoundError: no file at ``path``.
        WeightsError: a damaged, truncated or foreign file; the message names it.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "head.safetensors"
        >>> _ = path.write_bytes(b"cut short")
        >>> try:
        ...     load_weights(path)
        ... except WeightsError as err:
        ...     print(str(err).split(": ", 1)[1].split(" (")[0])
        not a readable safetensors file
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such weights file", str(path))
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise WeightsError(
            f"{path}: not a readable safetensors file ({str(err).strip() or type(err).__name__});"
            f" was it cut short or replaced?"
        ) from None


def load_weights_into(module: nn.Module, path: str | os.PathLike) -> None:
    """Load the safetensors file ``path`` into ``module``.

    Raises:
        FileNotFoundError, WeightsError: as :func:`load_weights`, or weights that do not
            fit the module (names or shapes), named with the file.
    """
    state = load_weights(path)
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()
        detail = " ".join(r.strip() for r in reason)[:300]
        raise WeightsError(f"{path}: the weights do not fit the model ({detail})") from None
