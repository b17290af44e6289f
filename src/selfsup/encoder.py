"""The encoder: input normalization plus a backbone, saved as safetensors with a JSON spec.

The encoder is what a run keeps: it maps a batch of raw items (images as floats in [0, 1],
series as ``(n, channels, length)`` with NaN where absent) to feature vectors.
``encoder.json`` holds everything needed to rebuild it from the registry.

Example:
    >>> import tempfile, torch
    >>> enc = Encoder.build("small-cnn", in_channels=1, image_size=16, width=8)
    >>> folder = tempfile.mkdtemp()
    >>> enc.save(folder)
    >>> again = Encoder.load(folder)
    >>> torch.equal(enc(torch.ones(1, 1, 16, 16)), again(torch.ones(1, 1, 16, 16)))
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from selfsup.backbones import (
    TabularMLP,
    build_audio_backbone,
    build_backbone,
    build_series_backbone,
    build_text_backbone,
)

WEIGHTS_FILE = "encoder.safetensors"
SPEC_FILE = "encoder.json"
#: Shape of the normalization statistics per modality (they broadcast over the batch).
_STAT_SHAPES = {
    "image": (1, -1, 1, 1),
    "series": (1, -1, 1),
    "tabular": (1, -1),
    "audio": (1, -1, 1, 1),
    "text": (1, -1),
}


class Encoder(nn.Module):
    """Normalizes the input with fixed per-channel statistics, then runs the backbone.

    Args:
        backbone: any module mapping a batch (n, C, H, W) to features (n, D).
        feature_dim: D; read from ``backbone.feature_dim`` when not given.
        mean: per-channel mean subtracted from the input.
        std: per-channel standard deviation dividing the input.
        spec: how to rebuild the backbone (name, in_channels, image_size, options); None for a
            custom module passed from Python.
        modality: ``image`` (statistics per channel of (n, C, H, W)), ``series`` (per
            channel of (n, C, length)) or ``tabular`` (per column of (n, columns); tables come
            standardized by their preprocessor, so these stay 0 and 1), ``text`` (token
            ids, passed through unnormalized) or ``audio`` (log-mels (n, 1, n_mels, frames),
            normalized by the dataset's mean and std as BYOL-A's pre-normalization).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int | None = None,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.25,),
        spec: dict[str, Any] | None = None,
        modality: str = "image",
    ) -> None:
        super().__init__()
        if modality not in _STAT_SHAPES:
            raise ValueError(f"unknown encoder modality {modality!r}; known: {list(_STAT_SHAPES)}")
        self.backbone = backbone
        self.modality = modality
        self.feature_dim = int(feature_dim or backbone.feature_dim)
        shape = _STAT_SHAPES[modality]
        self.register_buffer("mean", torch.tensor(list(mean)).view(shape))
        self.register_buffer("std", torch.tensor(list(std)).view(shape))
        self.spec = spec

    @classmethod
    def build(
        cls,
        backbone: str,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **options: Any,
    ) -> Encoder:
        """Build an encoder from a registered backbone name and its options."""
        module = build_backbone(backbone, in_channels=in_channels, image_size=image_size, **options)
        spec = {
            "modality": "image",
            "backbone": backbone,
            "in_channels": in_channels,
            "image_size": image_size,
            "options": options,
        }
        mean = mean if mean is not None else [0.5] * in_channels
        std = std if std is not None else [0.25] * in_channels
        return cls(module, mean=mean, std=std, spec=spec)

    @classmethod
    def build_series(
        cls,
        backbone: str,
        in_channels: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **options: Any,
    ) -> Encoder:
        """Build a series encoder from a registered series backbone name and its options.

        Example:
            >>> enc = Encoder.build_series("ts2vec", in_channels=2, out_dim=8, depth=1)
            >>> enc(torch.randn(3, 2, 20)).shape, enc.timestamps(torch.randn(3, 2, 20)).shape
            (torch.Size([3, 8]), torch.Size([3, 20, 8]))
        """
        module = build_series_backbone(backbone, in_channels=in_channels, **options)
        spec = {
            "modality": "series",
            "backbone": backbone,
            "in_channels": in_channels,
            "options": options,
        }
        mean = mean if mean is not None else [0.0] * in_channels
        std = std if std is not None else [1.0] * in_channels
        return cls(module, mean=mean, std=std, spec=spec, modality="series")

    @classmethod
    def build_tabular(
        cls, numeric: int, cardinalities: Sequence[int] = (), backbone: str = "mlp", **options: Any
    ) -> Encoder:
        """Build a tabular encoder (the ``mlp`` backbone) for rows encoded by a
        ``TablePreprocessor`` with ``numeric`` numeric columns and these categorical
        ``cardinalities``.

        Example:
            >>> enc = Encoder.build_tabular(numeric=2, cardinalities=[3], hidden=8, depth=1)
            >>> enc(torch.tensor([[0.5, -0.5, 2.0], [0.0, 1.0, 0.0]])).shape
            torch.Size([2, 8])
        """
        if backbone != "mlp":
            raise ValueError(f"unknown tabular backbone {backbone!r}; known: mlp")
        module = TabularMLP(numeric, list(cardinalities), **options)
        spec = {
            "modality": "tabular",
            "backbone": backbone,
            "numeric": numeric,
            "cardinalities": list(cardinalities),
            "options": options,
        }
        width = module.in_features
        return cls(module, mean=[0.0] * width, std=[1.0] * width, spec=spec, modality="tabular")

    @classmethod
    def build_text(cls, backbone: str, vocab_size: int, max_length: int, **options: Any) -> Encoder:
        """Build a text encoder (``text-transformer`` or ``bert``) for token ids of a
        tokenizer with ``vocab_size`` tokens and at most ``max_length`` tokens per text.

        Example:
            >>> enc = Encoder.build_text("text-transformer", 300, 16, dim=32, depth=1, heads=2)
            >>> enc(torch.tensor([[5, 6, 0], [7, 0, 0]])).shape
            torch.Size([2, 32])
        """
        module = build_text_backbone(backbone, vocab_size, max_length, **options)
        spec = {
            "modality": "text",
            "backbone": backbone,
            "vocab_size": vocab_size,
            "max_length": max_length,
            "options": options,
        }
        return cls(module, mean=[0.0], std=[1.0], spec=spec, modality="text")

    @classmethod
    def build_audio(
        cls,
        backbone: str,
        n_mels: int,
        frames: int,
        mean: float = 0.0,
        std: float = 1.0,
        **options: Any,
    ) -> Encoder:
        """Build an audio encoder on log-mels (n, 1, n_mels, frames) from a registered audio
        backbone name and its options, normalizing with the dataset's log-mel ``mean`` and
        ``std``.

        Example:
            >>> enc = Encoder.build_audio("byola-cnn", 64, 96, -6.0, 4.0, feature_dim=32)
            >>> enc(torch.zeros(2, 1, 64, 96)).shape
            torch.Size([2, 32])
        """
        module = build_audio_backbone(backbone, n_mels, frames, **options)
        spec = {
            "modality": "audio",
            "backbone": backbone,
            "n_mels": n_mels,
            "frames": frames,
            "options": options,
        }
        return cls(module, mean=[float(mean)], std=[float(std)], spec=spec, modality="audio")

    @property
    def device(self) -> torch.device:
        """The device of the encoder's weights; inputs to ``forward`` must be moved there.

        Example:
            >>> Encoder.build("small-cnn", in_channels=1, image_size=8, width=4).device
            device(type='cpu')
        """
        return self.mean.device

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The input with the fixed per-channel statistics applied (NaN stays NaN); token
        ids pass unchanged."""
        if self.modality == "text":
            return x
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (n, D) of a batch of raw inputs."""
        return self.backbone(self.normalize(x))

    def timestamps(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features per time step (n, length, D) of series, for backbones that have them.

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
        return {
            **(self.spec or {"backbone": "custom", "modality": self.modality}),
            "feature_dim": self.feature_dim,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
            "parameters": sum(p.numel() for p in self.parameters()),
        }

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``encoder.safetensors`` and ``encoder.json`` into ``folder`` atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = folder / (WEIGHTS_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, folder / WEIGHTS_FILE)
        tmp = folder / (SPEC_FILE + ".tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2))
        os.replace(tmp, folder / SPEC_FILE)

    @classmethod
    def load(cls, folder: str | os.PathLike, backbone: nn.Module | None = None) -> Encoder:
        """Rebuild an encoder from a folder written by ``save``.

        Args:
            folder: the folder holding ``encoder.safetensors`` and ``encoder.json``.
            backbone: the module to load the weights into when the encoder was built from a
                custom module (``encoder.json`` then says ``"backbone": "custom"``).
        """
        folder = Path(folder)
        spec_path = folder / SPEC_FILE
        if not spec_path.exists():
            raise FileNotFoundError(f"{spec_path}: no encoder spec here (is this a run folder?)")
        spec = json.loads(spec_path.read_text())
        if spec["backbone"] == "custom":
            if backbone is None:
                raise ValueError(
                    f"{spec_path}: the encoder was trained with a custom backbone; pass the "
                    "same module as `backbone=` to load its weights"
                )
            modality = spec.get("modality", "image")
            encoder = cls(backbone, spec["feature_dim"], spec["mean"], spec["std"], None, modality)
        elif spec.get("modality") == "text":
            encoder = cls.build_text(
                spec["backbone"], spec["vocab_size"], spec["max_length"], **spec["options"]
            )
        elif spec.get("modality") == "tabular":
            encoder = cls.build_tabular(
                spec["numeric"], spec["cardinalities"], spec["backbone"], **spec["options"]
            )
        elif spec.get("modality") == "audio":
            encoder = cls.build_audio(
                spec["backbone"],
                spec["n_mels"],
                spec["frames"],
                spec["mean"][0],
                spec["std"][0],
                **spec["options"],
            )
        elif spec.get("modality", "image") == "series":
            encoder = cls.build_series(
                spec["backbone"], spec["in_channels"], spec["mean"], spec["std"], **spec["options"]
            )
        else:
            encoder = cls.build(
                spec["backbone"],
                spec["in_channels"],
                spec["image_size"],
                mean=spec["mean"],
                std=spec["std"],
                **spec["options"],
            )
        encoder.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return encoder
