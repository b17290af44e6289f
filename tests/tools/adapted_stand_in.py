"""A stand-in for ``selfsup.tools.adapt.AdaptedModel`` with the contract audit and explain use:
``load(path)``, ``classes``, ``run_path``, ``predict_proba(data)``,
``predict_proba_embeddings(z)`` and ``module()`` (raw items -> class probabilities)."""

import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from selfsup.data.base import Source


class StandInAdaptedModel:
    """An encoder with a softmax head, registered by folder name for ``load``."""

    saved: ClassVar[dict[str, "StandInAdaptedModel"]] = {}

    def __init__(self, encoder: nn.Module, head: nn.Module, classes: list[str], run_path: Path):
        self.encoder, self.head = encoder, head
        self.classes = classes
        self.run_path = Path(run_path)

    @classmethod
    def load(cls, path) -> "StandInAdaptedModel":
        return cls.saved[str(path)]

    def module(self) -> nn.Module:
        return nn.Sequential(self.encoder, self.head, nn.Softmax(dim=1))

    def predict_proba_embeddings(self, z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.head(torch.as_tensor(z).float()), dim=1).numpy()

    def predict_proba(self, data: Source) -> np.ndarray:
        items = data.read_batch(list(range(len(data)))).items
        with torch.no_grad():
            return self.module()(items).numpy()


def install(monkeypatch) -> type[StandInAdaptedModel]:
    """Make ``from selfsup.tools.adapt import AdaptedModel`` give the stand-in."""
    module = types.ModuleType("selfsup.tools.adapt")
    module.AdaptedModel = StandInAdaptedModel
    monkeypatch.setitem(sys.modules, "selfsup.tools.adapt", module)
    return StandInAdaptedModel
