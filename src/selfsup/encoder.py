"""The encoder: input normalization plus a backbone, saved as safetensors with a JSON spec.

The encoder is what a run keeps: it maps a batch of raw items (images as floats in [0, 1]) to
feature vectors. ``encoder.json`` holds everything needed to rebuild it from the registry.

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

from selfsup.backbones import build_backbone

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
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int | None = None,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.25,),
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = int(feature_dim or backbone.feature_dim)
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))
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

    @property
    def device(self) -> torch.device:
        """The device of the encoder's weights; inputs to ``forward`` must be moved there.

        Example:
            >>> Encoder.build("small-cnn", in_channels=1, image_size=8, width=4).device
            device(type='cpu')
        """
        return self.mean.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (n, D) of a batch of raw inputs."""
        return self.backbone((x - self.mean) / self.std)

    def describe(self) -> dict[str, Any]:
        """The JSON spec: the backbone's recipe, normalization and feature size."""
        return {
            **(self.spec or {"backbone": "custom"}),
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
            encoder = cls(backbone, spec["feature_dim"], spec["mean"], spec["std"])
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
