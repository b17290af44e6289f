"""The encoder: input normalization plus a backbone, saved as safetensors with a JSON spec.

The encoder is what a run keeps: it maps a batch of raw items (images as floats in [0, 1],
series as ``(n, channels, length)`` with NaN where absent) to feature vectors.
``encoder.json`` holds everything needed to rebuild it: each modality builds its encoders
(``selfsup.modalities``) and ``selfsup.modalities.load_encoder`` rebuilds them.

Example:
    >>> import tempfile, torch
    >>> enc = Encoder(nn.Flatten(), feature_dim=4, mean=[0.5], std=[0.25])
    >>> enc(torch.full((1, 1, 2, 2), 0.75)).tolist()
    [[1.0, 1.0, 1.0, 1.0]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import save_file
from torch import nn

from selfsup.core.files import atomic_path, read_json_object, write_json

WEIGHTS_FILE = "encoder.safetensors"
SPEC_FILE = "encoder.json"


class Encoder(nn.Module):
    """Normalizes the input with fixed per-channel statistics, then runs the backbone.

    Args:
        backbone: any module mapping a batch (n, C, H, W) to features (n, D).
        feature_dim: D; read from ``backbone.feature_dim`` when not given.
        mean: per-channel mean subtracted from the input.
        std: per-channel standard deviation dividing the input.
        spec: how to rebuild the backbone (name, in_channels, image_size, options); None for a
            custom module passed from Python.
        modality: the name of the items' modality, recorded in ``encoder.json``.
        stat_dims: trailing singleton dimensions of the statistics: 2 for per-channel
            statistics of (n, C, H, W), 1 for (n, C, length), 0 for per-column (n, columns).
        normalize: False passes the input unchanged (token ids).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int | None = None,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.25,),
        spec: dict[str, Any] | None = None,
        modality: str = "image",
        *,
        stat_dims: int = 2,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.modality = modality
        self.normalizes_input = normalize
        self.feature_dim = int(feature_dim or backbone.feature_dim)
        shape = (1, -1) + (1,) * stat_dims
        self.register_buffer("mean", torch.tensor(list(mean)).view(shape))
        self.register_buffer("std", torch.tensor(list(std)).view(shape))
        # The embedding subtracted from every output (set_center): kept in encoder.json,
        # not among the weights, so runs saved without one load as they were.
        self.register_buffer("center", None, persistent=False)
        self.spec = spec

    @property
    def device(self) -> torch.device:
        """The device of the encoder's weights; inputs to ``forward`` must be moved there.

        Example:
            >>> Encoder(nn.Flatten(), feature_dim=4).device
            device(type='cpu')
        """
        return self.mean.device

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The input with the fixed per-channel statistics applied (NaN stays NaN); token
        ids pass unchanged."""
        if not self.normalizes_input:
            return x
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (n, D) of a batch of raw inputs (less the center, where one is set)."""
        features = self.backbone(self.normalize(x))
        return features if self.center is None else features - self.center.to(features.dtype)

    def set_center(self, center: Sequence[float] | torch.Tensor | None) -> None:
        """Subtract ``center`` (D values: the mean embedding of the training items) from
        every embedding from now on; None removes it. Embeddings that all point one way
        (every cosine similarity near 1) then spread around the origin, and cosine neighbours
        are told apart by what differs between items (see
        ``selfsup.modalities.base.Modality.centers_embeddings``).

        Raises:
            ValueError: not D finite values.

        Example:
            >>> enc = Encoder(nn.Flatten(), feature_dim=2, stat_dims=0, normalize=False)
            >>> enc.set_center([1.0, 1.0])
            >>> enc(torch.tensor([[1.0, 3.0]])), enc.describe()["center"]
            (tensor([[0., 2.]]), [1.0, 1.0])
        """
        if center is None:
            self.center = None
            return
        values = torch.as_tensor(center, dtype=torch.float32).detach().reshape(-1)
        if len(values) != self.feature_dim or not torch.isfinite(values).all():
            raise ValueError(
                f"the center must be {self.feature_dim} finite values, got {len(values)}"
            )
        self.center = values.to(self.device).view(1, -1)

    def timestamps(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features per time step (n, length, D) of series, for backbones that have them
        (the backbone's own: the center is of whole-series embeddings, not of steps).

        Args:
            x: series (n, channels, length), NaN where absent.
            mask: optional boolean (n, length); False hides a step (training-time masking).

        Raises:
            TypeError: the backbone gives no per-step features.
        """
        step_features = getattr(self.backbone, "forward_timestamps", None)
        if step_features is None:
            raise TypeError(f"{type(self.backbone).__name__} gives no features per time step")
        return step_features(self.normalize(x), mask)

    def describe(self) -> dict[str, Any]:
        """The JSON spec: the backbone's recipe, normalization and feature size."""
        spec = self.spec or {"backbone": "custom", "modality": self.modality}
        return {
            **{k: v for k, v in spec.items() if k != "center"},  # the center set now, if any
            "feature_dim": self.feature_dim,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
            "parameters": sum(p.numel() for p in self.parameters()),
            **({} if self.center is None else {"center": self.center.flatten().tolist()}),
        }

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``encoder.safetensors`` and ``encoder.json`` into ``folder`` atomically (LoRA
        adapters merged into the weights, so the file is the plain model)."""
        folder = Path(folder)
        from selfsup.backbones.hf import without_adapters

        plain = without_adapters(self)  # LoRA adapters merged into the weights
        state = {k: v.detach().contiguous().cpu() for k, v in plain.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        write_json(folder / SPEC_FILE, self.describe())


class EncoderSpec(BaseModel):
    """The fields every ``encoder.json`` holds, with bounds, checked before an encoder is built
    from it; the backbone's own fields (sizes, options) are checked by building it.

    Example:
        >>> EncoderSpec(modality="image", backbone="small-cnn", feature_dim=8, mean=[0.5],
        ...             std=[0.2]).feature_dim
        8
    """

    model_config = ConfigDict(extra="allow")

    modality: str = Field(min_length=1, max_length=32)
    backbone: str = Field(min_length=1)
    feature_dim: int = Field(ge=1, le=1_000_000)
    mean: list[float] = Field(max_length=100_000)
    std: list[float] = Field(max_length=100_000)


def read_encoder_spec(path: str | os.PathLike) -> dict[str, Any]:
    """``encoder.json`` at ``path``, checked against :class:`EncoderSpec` (finite mean, std
    above 0).

    Raises:
        FileNotFoundError: no file.
        ValueError: not JSON, or a field missing or out of range (named with the file).
    """
    from selfsup.config import validation_problems

    data = read_json_object(path, "an encoder spec")
    try:
        spec = EncoderSpec.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path}: {validation_problems(err)}") from None
    values = torch.tensor([*spec.mean, *spec.std], dtype=torch.float64)
    if not torch.isfinite(values).all() or any(v <= 0 for v in spec.std):
        raise ValueError(f"{path}: mean and std must be finite numbers, std above 0")
    return data
