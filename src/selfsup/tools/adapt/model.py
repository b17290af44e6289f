"""An adapted model on disk and in use: ``model.json`` with the head (and a fine-tuned encoder),
probabilities and predictions, and the module that maps raw items to probabilities."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import save_file
from torch import nn

from selfsup.config import validation_problems
from selfsup.core.files import atomic_path, read_json_object, write_json
from selfsup.core.progress import ShowProgress
from selfsup.core.weights import load_weights, load_weights_into
from selfsup.data.base import Source
from selfsup.embedding import embed_source, embeddings_tensor
from selfsup.encoder import Encoder
from selfsup.modalities import get_modality, load_encoder
from selfsup.run import Run, as_run
from selfsup.tools.adapt.heads import EmbeddingHead, _argmax_or_missing

MODEL_FILE = "model.json"
HEAD_FILE = "head.safetensors"
ENCODER_FILE = "encoder.safetensors"


class ModelFile(BaseModel):
    """What ``model.json`` may hold, with bounds: checked before anything is built from it.

    Example:
        >>> ModelFile(run="../run", head="linear", classes=["a", "b"], temperature=1.5).head
        'linear'
    """

    model_config = ConfigDict(extra="forbid")

    run: str = Field(min_length=1)
    head: Literal["prototype", "linear", "propagation"]
    classes: list[str] = Field(min_length=2, max_length=100_000)
    temperature: float = Field(gt=0, le=1e4, allow_inf_nan=False)
    shots: int | None = Field(default=None, ge=1)
    finetuned: bool = False
    metrics: dict[str, Any] | None = None


def read_model_file(path: Path) -> ModelFile:
    """``model.json`` at ``path``, validated.

    Raises:
        ValueError: not JSON, or a key missing, unknown or out of range (named with the file).
    """
    data = read_json_object(path, "an adapted model")
    try:
        return ModelFile.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path}: {validation_problems(err)}") from None


class CalibratedClassifier(nn.Module):
    """Raw items -> calibrated class probabilities: encoder, head, temperature, softmax.

    Images are resized and converted to the encoder's size and channels first, as
    :func:`selfsup.embedding.embed_source` does.
    """

    def __init__(self, encoder: Encoder, head: EmbeddingHead, temperature: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(n, classes)`` of a batch of raw items."""
        x = get_modality(self.encoder.modality).prepare_input(x, self.encoder.spec or {})
        return torch.softmax(self.head(self.encoder(x)) / self.temperature, dim=1)


#: Rows of embeddings a prediction puts through the head at once.
PREDICT_BLOCK = 65_536


class AdaptedModel:
    """A calibrated classifier on a run's encoder; made by :func:`adapt`, kept in a folder.

    Attributes:
        run_path: the run folder of the encoder.
        classes: class names, indexed by the predicted class.
        head_kind: ``prototype``, ``linear`` or ``propagation``.
        head: the head on embeddings.
        temperature: the calibration temperature dividing the logits.
        shots: labelled items per class the head was fitted on (None: all given).
        metrics: what adaptation measured (label counts, NLL and ECE before and after
            calibration, fine-tuning settings).
        finetuned_encoder: the fine-tuned encoder, or None when the run's is used as it is.
    """

    def __init__(
        self,
        run_path: str | os.PathLike,
        classes: list[str],
        head_kind: str,
        head: EmbeddingHead,
        temperature: float,
        shots: int | None = None,
        metrics: dict[str, Any] | None = None,
        finetuned_encoder: Encoder | None = None,
    ) -> None:
        self.run_path = Path(run_path).resolve()
        self.classes = list(classes)
        self.head_kind = head_kind
        self.head = head.eval()
        self.temperature = float(temperature)
        self.shots = shots
        self.metrics = dict(metrics or {})
        self.finetuned_encoder = finetuned_encoder

    def __repr__(self) -> str:
        return (
            f"AdaptedModel({str(self.run_path)!r}, head={self.head_kind!r}, "
            f"classes={len(self.classes)}, temperature={self.temperature:.3f})"
        )

    @cached_property
    def run(self) -> Run:
        """The run, with the fine-tuned encoder in place of its own when there is one."""
        run = as_run(self.run_path)
        if self.finetuned_encoder is not None:
            run.encoder = self.finetuned_encoder
        return run

    @property
    def encoder(self) -> Encoder:
        """The encoder the head reads (the fine-tuned one when there is one)."""
        return self.run.encoder

    def embed(
        self, data: str | os.PathLike | Source, show_progress: ShowProgress = "auto"
    ) -> np.ndarray:
        """Embeddings of ``data``: the run's (:meth:`selfsup.run.Run.embeddings`, kept in
        the run for large data read from files, so predicting 200,000 photos after ``embed``,
        ``select`` or ``adapt`` on them reads them back instead of embedding them again), or
        the fine-tuned encoder's."""
        source = self.run.open(data)
        if self.finetuned_encoder is None:
            return self.run.embeddings(source, show_progress)
        return embed_source(self.encoder, source, show_progress=show_progress)

    def predict_proba_embeddings(self, z: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n, classes)`` of precomputed embeddings (NaN rows stay NaN).

        Example:
            >>> head = EmbeddingHead(torch.zeros(1), torch.ones(1), torch.tensor([[1.0], [-1.0]]),
            ...                      torch.zeros(2))
            >>> model = AdaptedModel(".", ["a", "b"], "linear", head, temperature=2.0)
            >>> model.predict_proba_embeddings(np.array([[0.0]])).round(2)
            array([[0.5, 0.5]])
        """
        # A block of rows at a time: two million kept 256-d embeddings (mapped read-only)
        # standardized at once took 7.4 GB.
        blocks = range(0, max(len(z), 1), PREDICT_BLOCK)  # no rows: one empty block
        with torch.no_grad():
            logits = torch.cat(
                [self.head(embeddings_tensor(z[a : a + PREDICT_BLOCK])).double() for a in blocks]
            )
        return torch.softmax(logits / self.temperature, dim=1).numpy()

    def predict_proba(self, data: str | os.PathLike | Source) -> np.ndarray:
        """Calibrated probabilities ``(n, classes)`` of ``data`` (anything the run opens);
        rows of unreadable items are NaN."""
        return self.predict_proba_embeddings(self.embed(data))

    def predict(self, data: str | os.PathLike | Source) -> np.ndarray:
        """Predicted class indices ``(n,)`` of ``data``; -1 for unreadable items."""
        return _argmax_or_missing(self.predict_proba(data))

    def module(self) -> nn.Module:
        """A module mapping a batch of raw items (as the source yields them) to calibrated
        probabilities: encoder, head and temperature (for attribution methods)."""
        return CalibratedClassifier(self.encoder, self.head, self.temperature).eval()

    def save(self, path: str | os.PathLike) -> None:
        """Write ``model.json``, ``head.safetensors`` (and ``encoder.safetensors`` when
        fine-tuned) into the folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(folder / HEAD_FILE))
        if self.finetuned_encoder is not None:
            weights = {k: v.contiguous() for k, v in self.finetuned_encoder.state_dict().items()}
            save_file(weights, str(folder / ENCODER_FILE))
        elif (folder / ENCODER_FILE).exists():
            (folder / ENCODER_FILE).unlink()  # a stale fine-tuned encoder would be reloaded
        description = {
            "run": str(Path(self.run_path).resolve()),  # not relative to where it ran
            "head": self.head_kind,
            "classes": self.classes,
            "temperature": self.temperature,
            "shots": self.shots,
            "finetuned": self.finetuned_encoder is not None,
            "metrics": self.metrics,
        }
        write_json(folder / MODEL_FILE, description)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AdaptedModel:
        """Rebuild a model from a folder written by :meth:`save`.

        Raises:
            FileNotFoundError: no ``model.json`` in ``path``, or its run folder is gone.
        """
        folder = Path(path)
        if not (folder / MODEL_FILE).exists():
            raise FileNotFoundError(f"{folder}: not an adapted model folder (no {MODEL_FILE})")
        d = read_model_file(folder / MODEL_FILE)
        run_path = (folder / d.run).resolve()  # a relative run path is the model folder's
        if not run_path.exists():
            raise FileNotFoundError(
                f"{folder / MODEL_FILE}: its run folder {run_path} does not exist any more"
            )
        state = load_weights(folder / HEAD_FILE)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        weight = shapes.get("linear.weight", ())
        if (
            len(weight) != 2
            or weight[0] != len(d.classes)
            or shapes.get("linear.bias") != (weight[0],)
        ):
            raise ValueError(
                f"{folder / HEAD_FILE}: the head ({weight}) does not match the {len(d.classes)} "
                f"classes of {folder / MODEL_FILE}"
            )
        head = EmbeddingHead(
            state["mean"], state["std"], state["linear.weight"], state["linear.bias"]
        )
        encoder = None
        if d.finetuned:
            encoder = load_encoder(run_path)
            load_weights_into(encoder, folder / ENCODER_FILE)
        return cls(run_path, d.classes, d.head, head, d.temperature, d.shots, d.metrics, encoder)


def write_predictions(
    model: AdaptedModel,
    data: str | os.PathLike | Source,
    out: str | os.PathLike,
    show_progress: ShowProgress = "auto",
) -> pd.DataFrame:
    """Write ``id``, ``predicted`` (class name) and one ``p_<class>`` column per class to CSV.

    Unreadable items get an empty prediction and NaN probabilities.

    Returns:
        The table written.
    """
    source = model.run.open(data)
    probs = model.predict_proba_embeddings(model.embed(source, show_progress))
    predicted = _argmax_or_missing(probs)
    table = pd.DataFrame(
        {
            "id": list(source.ids),
            "predicted": [model.classes[p] if p >= 0 else "" for p in predicted],
            **{f"p_{name}": probs[:, c] for c, name in enumerate(model.classes)},
        }
    )
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return table
