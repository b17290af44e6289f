"""Few-shot adaptation: a calibrated classifier from a few labels on top of a run's encoder.

Two heads on frozen embeddings, both reading embeddings standardized with the statistics of
all the labelled data's embeddings (no label used for those):

- ``prototype``: nearest class mean (Snell et al., "Prototypical Networks for Few-shot
  Learning", NeurIPS 2017) with squared Euclidean distance. ``-||z - p_c||^2`` equals
  ``2 p_c . z - ||p_c||^2`` up to a term that is the same for every class, so the head is a
  linear layer with weights ``2 p_c`` and biases ``-||p_c||^2``.
- ``linear``: multinomial logistic regression (the few-shot protocol's fit,
  :func:`selfsup.evaluation.linear.fit_logistic_regression`).
- ``propagation``: the labels spread over a k-NN graph of the labelled and unlabelled
  embeddings (label spreading, Zhou et al. 2004, as Iscen et al. 2019 pseudo-label with it;
  see :mod:`selfsup.tools.propagation`), then the same logistic regression on every item with
  its pseudo-label, weighted by certainty and class size. It is a linear head like the
  others once fitted; it needs unlabelled items, taken from the labelled data's items outside
  the drawn shots and from ``unlabeled`` data.

Optionally the last ``N`` blocks of an image backbone are fine-tuned with the head
(cross-entropy, AdamW with a small learning rate, no augmentation, batch-norm statistics
kept). Probabilities are calibrated by temperature scaling (Guo et al. 2017, see
:mod:`selfsup.tools.calibration`): on a held-out stratified fifth of the labels
(``temperature``), or on cross-validated logits when labels are few (``cv``).

A model folder holds ``model.json`` (run folder, head kind, classes, temperature, shots,
metrics), ``head.safetensors`` and, when fine-tuned, ``encoder.safetensors``.

Example:
    >>> import tempfile
    >>> from selfsup.run import pretrain
    >>> run = pretrain("digits", epochs=1, batch_size=128, out=tempfile.mkdtemp(),
    ...                backbone_options={"width": 8}, show_progress=False)
    >>> model = adapt(run, "digits", shots=5, head="prototype")
    >>> model.predict_proba("digits:test").shape
    (359, 10)
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from sklearn.model_selection import StratifiedKFold
from torch import nn

from selfsup.core.files import atomic_path, write_json
from selfsup.core.progress import TrainingProgress
from selfsup.data.base import Source
from selfsup.data.splits import SubsetSource, stratified_split
from selfsup.embedding import embed_source
from selfsup.encoder import Encoder
from selfsup.evaluation.fewshot import FEW_SHOT_WEIGHT_DECAY
from selfsup.evaluation.linear import fit_logistic_regression
from selfsup.modalities import get_modality, load_encoder
from selfsup.run import Run, as_run
from selfsup.tools.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from selfsup.tools.propagation import NEIGHBOURS, knn_graph, propagated_head

MODEL_FILE = "model.json"
HEAD_FILE = "head.safetensors"
ENCODER_FILE = "encoder.safetensors"
HEADS = ("prototype", "linear", "propagation")
#: The heads fitted on labelled embeddings alone (:func:`fit_head`).
LABELLED_HEADS = ("prototype", "linear")
#: The most unlabelled items the propagation graph holds (a seeded random subset beyond it).
MAX_UNLABELLED = 100_000
CALIBRATIONS = ("temperature", "cv")
#: With fewer labels than this in the smallest class, ``calibration=None`` picks ``cv``.
HELD_OUT_MIN_PER_CLASS = 20
#: The share of each class held out for temperature scaling.
HELD_OUT_FRACTION = 0.2


class EmbeddingHead(nn.Module):
    """Standardize embeddings with fixed statistics, then a linear layer to class logits.

    Args:
        mean: per-feature mean subtracted, shape ``(d,)``.
        std: per-feature standard deviation dividing, shape ``(d,)``.
        weight: ``(classes, d)`` weights.
        bias: ``(classes,)`` biases.

    Example:
        >>> head = EmbeddingHead(torch.zeros(2), torch.ones(2), torch.eye(2), torch.zeros(2))
        >>> head(torch.tensor([[3.0, 1.0]])).tolist()
        [[3.0, 1.0]]
    """

    def __init__(
        self, mean: torch.Tensor, std: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        """Embeddings with the fixed statistics applied."""
        return (z - self.mean) / self.std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, classes)`` of embeddings ``(n, d)``."""
        return self.linear(self.standardize(z))


def embedding_statistics(reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation (1 for a constant feature), as in
    :func:`selfsup.evaluation.linear.standardize`."""
    std = reference.std(dim=0)
    return reference.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std))


def fit_head(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    kind: str,
    statistics: tuple[torch.Tensor, torch.Tensor],
    weight_decay: float = FEW_SHOT_WEIGHT_DECAY,
) -> EmbeddingHead:
    """Fit a ``prototype`` or ``linear`` head on labelled embeddings.

    Args:
        embeddings: ``(n, d)`` float32 embeddings of the labelled items.
        labels: ``(n,)`` int64 labels in ``[0, num_classes)``; the prototype head needs every
            class present (a linear head never predicts a class without labels).
        num_classes: number of classes.
        kind: ``prototype`` (nearest class mean) or ``linear`` (logistic regression).
        statistics: the ``(mean, std)`` the head standardizes with.
        weight_decay: the L2 penalty of the linear head.

    Example:
        >>> z = torch.tensor([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0]])
        >>> stats = (torch.zeros(2), torch.ones(2))
        >>> head = fit_head(z, torch.tensor([0, 0, 1, 1]), 2, "prototype", stats)
        >>> head(torch.tensor([[1.0, 1.0], [3.0, 1.0]])).argmax(1)
        tensor([0, 1])
    """
    if kind not in LABELLED_HEADS:
        raise ValueError(f"unknown head {kind!r}; known: {', '.join(LABELLED_HEADS)}")
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing and kind == "prototype":
        raise ValueError(f"classes {missing} have no labelled example")
    mean, std = statistics
    x = (embeddings - mean) / std
    if kind == "prototype":
        prototypes = torch.stack([x[labels == c].mean(dim=0) for c in range(num_classes)])
        weight, bias = 2 * prototypes, -prototypes.square().sum(dim=1)
    else:
        linear = fit_logistic_regression(x, labels, num_classes, weight_decay)
        weight, bias = linear.weight, linear.bias
    return EmbeddingHead(mean, std, weight.detach(), bias.detach())


def backbone_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The parameterized blocks of a backbone, input to output (its ``block_list()``).

    Raises:
        ValueError: a custom backbone without ``block_list()`` (the command line prints it).

    Example:
        >>> from selfsup.backbones import build_backbone
        >>> len(backbone_blocks(build_backbone("small-cnn", in_channels=1, image_size=8, width=4)))
        4
    """
    blocks = getattr(backbone, "block_list", None)
    if blocks is None:
        raise ValueError(
            f"{type(backbone).__name__} does not list its blocks (a block_list() method); "
            "adapt without --finetune-blocks"
        )
    return blocks()


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

    def embed(self, data: str | os.PathLike | Source, show_progress: bool = False) -> np.ndarray:
        """Embeddings of ``data`` in fp32 (so predictions do not depend on the CPU's bf16)."""
        source = self.run.open(data)
        return embed_source(self.encoder, source, precision="fp32", show_progress=show_progress)

    def predict_proba_embeddings(self, z: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n, classes)`` of precomputed embeddings (NaN rows stay NaN).

        Example:
            >>> head = EmbeddingHead(torch.zeros(1), torch.ones(1), torch.tensor([[1.0], [-1.0]]),
            ...                      torch.zeros(2))
            >>> model = AdaptedModel(".", ["a", "b"], "linear", head, temperature=2.0)
            >>> model.predict_proba_embeddings(np.array([[0.0]])).round(2)
            array([[0.5, 0.5]])
        """
        with torch.no_grad():
            logits = self.head(torch.as_tensor(np.asarray(z), dtype=torch.float32)).double()
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
            "run": str(self.run_path),
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
        description = json.loads((folder / MODEL_FILE).read_text())
        run_path = Path(description["run"])
        if not run_path.exists():
            raise FileNotFoundError(
                f"{folder / MODEL_FILE}: its run folder {run_path} does not exist any more"
            )
        state = load_file(str(folder / HEAD_FILE))
        head = EmbeddingHead(
            state["mean"], state["std"], state["linear.weight"], state["linear.bias"]
        )
        encoder = None
        if description.get("finetuned"):
            encoder = load_encoder(run_path)
            encoder.load_state_dict(load_file(str(folder / ENCODER_FILE)))
        return cls(
            run_path,
            description["classes"],
            description["head"],
            head,
            description["temperature"],
            description.get("shots"),
            description.get("metrics"),
            encoder,
        )


def _argmax_or_missing(probs: np.ndarray) -> np.ndarray:
    readable = ~np.isnan(probs).any(axis=1)
    out = np.full(len(probs), -1, dtype=np.int64)
    out[readable] = probs[readable].argmax(axis=1)
    return out


def draw_shots(labels: np.ndarray, shots: int, seed: int, classes: list[str]) -> np.ndarray:
    """``shots`` random indices per class (sorted), drawn by a generator seeded with ``seed``.

    Raises:
        ValueError: a class with fewer than ``shots`` items; the message names it.

    Example:
        >>> draw_shots(np.array([0, 1, 0, 1, 0]), 2, 0, ["a", "b"]).size
        4
    """
    rng = np.random.default_rng(seed)
    picks = []
    for code, name in enumerate(classes):
        members = np.flatnonzero(labels == code)
        if len(members) < shots:
            raise ValueError(
                f"class {name!r} has {len(members)} labelled items, fewer than {shots}"
            )
        picks.append(rng.choice(members, shots, replace=False))
    return np.sort(np.concatenate(picks))


def out_of_fold_logits(
    embeddings: torch.Tensor,
    labels: np.ndarray,
    num_classes: int,
    fit_on: Callable[[np.ndarray], EmbeddingHead],
    seed: int,
) -> np.ndarray:
    """Logits of each labelled item from ``fit_on(rows)``, a head fitted on the rows outside
    its fold (stratified k-fold, ``k`` = min(5, smallest class count))."""
    folds = min(5, int(np.bincount(labels, minlength=num_classes).min()))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    logits = np.zeros((len(labels), num_classes))
    for fit, held in splitter.split(np.zeros(len(labels)), labels):
        head = fit_on(fit)
        with torch.no_grad():
            logits[held] = head(embeddings[held]).double().numpy()
    return logits


def propagation_fitter(
    labelled: np.ndarray,
    labels: np.ndarray,
    unlabelled: np.ndarray,
    num_classes: int,
    statistics: tuple[torch.Tensor, torch.Tensor],
    weight_decay: float,
) -> tuple[Callable[[np.ndarray], EmbeddingHead], dict[str, Any]]:
    """The k-NN graph of labelled and unlabelled embeddings, built once, and a function
    fitting the ``propagation`` head on any subset of the labelled rows.

    Args:
        labelled: ``(n, d)`` embeddings of the labelled items; labels: their labels.
        unlabelled: ``(m, d)`` embeddings of unlabelled items (``m >= 1``).
        num_classes: number of classes.
        statistics: the ``(mean, std)`` the head standardizes with (and the graph compares).
        weight_decay: L2 penalty of the logistic regression.

    Returns:
        ``fit_on(rows)`` giving the head fitted from the labels of ``labelled[rows]`` spread
        over all nodes, and a dict the last fit's spreading statistics are written into.
    """
    mean, std = statistics
    nodes = torch.from_numpy(np.concatenate([labelled, unlabelled]).astype(np.float32))
    standardized = (nodes - mean) / std
    graph = knn_graph(standardized, min(NEIGHBOURS, len(nodes) - 1))
    info: dict[str, Any] = {"unlabelled": len(unlabelled), "neighbours": NEIGHBOURS}

    def fit_on(rows: np.ndarray) -> EmbeddingHead:
        layer, spread = propagated_head(
            standardized, rows, labels[rows], num_classes, weight_decay, graph
        )
        info.update(spread)
        return EmbeddingHead(mean, std, layer.weight.detach(), layer.bias.detach())

    return fit_on, info


def _labelled_source(run: Run, data: str | os.PathLike | Source) -> tuple[Source, list[str]]:
    source = run.open(data)
    if source.labels is None:
        raise ValueError(f"{source.name}: adaptation needs labelled data, and this data has none")
    classes = source.classes or [str(c) for c in range(int(source.labels.max()) + 1)]
    return source, [str(c) for c in classes]


def finetune_encoder(
    encoder: Encoder,
    head: EmbeddingHead,
    source: Source,
    indices: np.ndarray,
    labels: np.ndarray,
    blocks: int,
    epochs: int = 30,
    lr: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    show_progress: bool = False,
) -> tuple[Encoder, EmbeddingHead]:
    """Fine-tune the last ``blocks`` blocks of an image encoder together with the head.

    Cross-entropy on the labelled items as they are (no augmentation), AdamW with ``lr`` for
    the encoder's blocks and ten times it for the head; batch-norm layers keep their
    pretrained statistics (the encoder stays in eval mode), since a few labelled items would
    give poor batch statistics.

    Returns:
        Copies of the encoder and head, fine-tuned; the inputs are left unchanged.
    """
    available = backbone_blocks(encoder.backbone)
    if not 1 <= blocks <= len(available):
        raise ValueError(f"--finetune-blocks must be in [1, {len(available)}], got {blocks}")
    # Standard layout, as a reloaded encoder has (a training run's may be channels-last, whose
    # kernels round differently): predictions must not change when the model is reloaded.
    encoder = copy.deepcopy(encoder).to(memory_format=torch.contiguous_format)
    head = copy.deepcopy(head)
    encoder.requires_grad_(False)
    trainable = [
        p for block in backbone_blocks(encoder.backbone)[-blocks:] for p in block.parameters()
    ]
    for parameter in trainable:
        parameter.requires_grad_(True)
    head.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": trainable, "lr": lr}, {"params": head.parameters(), "lr": 10 * lr}],
        weight_decay=1e-4,
    )
    generator = torch.Generator().manual_seed(seed)
    label_of = dict(zip(indices.tolist(), labels.tolist(), strict=True))
    classifier = CalibratedClassifier(encoder, head, 1.0)
    encoder.eval()
    steps_per_epoch = (len(indices) + batch_size - 1) // batch_size
    with TrainingProgress(epochs * steps_per_epoch, "fine-tuning", enabled=show_progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(indices), generator=generator).numpy()
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = source.read_batch(indices[rows].tolist())
                target = torch.as_tensor([label_of[i] for i in batch.indices])
                probs = classifier(batch.items.to(encoder.device))
                loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), target.to(encoder.device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.advance(1, len(rows), loss.item())
    return encoder.requires_grad_(False), head.requires_grad_(False).eval()


def adapt(
    run: Run | str | os.PathLike,
    labeled: str | os.PathLike | Source,
    *,
    shots: int | None = None,
    head: str = "linear",
    finetune_blocks: int = 0,
    calibration: str | None = None,
    seed: int = 0,
    weight_decay: float = FEW_SHOT_WEIGHT_DECAY,
    finetune_epochs: int = 30,
    finetune_lr: float = 1e-4,
    show_progress: bool = False,
    embeddings: np.ndarray | None = None,
    unlabeled: str | os.PathLike | Source | None = None,
    unlabeled_embeddings: np.ndarray | None = None,
) -> AdaptedModel:
    """Fit a calibrated classifier on a run's encoder from labelled data.

    Args:
        run: a :class:`selfsup.run.Run` or its folder.
        labeled: labelled data the run can read (a path, dataset name or Source).
        shots: draw this many items per class from ``labeled`` (seeded by ``seed``); None
            uses every labelled item. The standardization statistics always come from the
            embeddings of all of ``labeled``, without their labels.
        head: ``prototype`` (nearest class mean), ``linear`` (logistic regression) or
            ``propagation`` (labels spread over a k-NN graph that also holds unlabelled items,
            then logistic regression on the pseudo-labels; frozen encoder only).
        finetune_blocks: fine-tune the encoder's last this many blocks (image backbones).
        calibration: ``temperature`` (fit the head on 80% of each class, the temperature on
            the rest), ``cv`` (head on all labels, temperature on cross-validated logits), or
            None: ``cv`` when the smallest class has fewer than 20 labels and nothing is
            fine-tuned, else ``temperature``.
        seed: seeds the draw of shots, the held-out split, folds and fine-tuning.
        weight_decay: L2 penalty of the linear head.
        finetune_epochs: passes over the labelled items when fine-tuning.
        finetune_lr: learning rate of the fine-tuned blocks (the head's is ten times it).
        show_progress: draw progress bars.
        embeddings: the run's embeddings of all of ``labeled`` (as
            ``embed_source(run.encoder, source, precision="fp32")`` gives them), to adapt
            many times without embedding again; None embeds here.
        unlabeled: more unlabelled data for the ``propagation`` head (any data the run reads;
            labels in it are ignored). Its unlabelled items are the items of ``labeled``
            outside the drawn shots plus these, at most 100,000 (a seeded random subset).
        unlabeled_embeddings: the run's embeddings of ``unlabeled``, as for ``embeddings``.

    Returns:
        The adapted model; ``metrics`` holds NLL and ECE on the calibration labels before and
        after temperature scaling.

    Raises:
        ValueError: unlabelled data, a class with too few labels, an unknown head or
            calibration, ``cv`` with fine-tuning, or ``propagation`` with fine-tuning or
            without unlabelled items.
    """
    run = as_run(run)
    if calibration is not None and calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r}; known: {', '.join(CALIBRATIONS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
    if finetune_blocks and head == "propagation":
        raise ValueError("the propagation head works on frozen embeddings: no --finetune-blocks")
    if finetune_blocks and calibration == "cv":
        raise ValueError(
            "fine-tuning is calibrated on held-out labels: use --calibration temperature"
        )
    source, classes = _labelled_source(run, labeled)
    num_classes = len(classes)
    if embeddings is None:
        embeddings = embed_source(
            run.encoder, source, precision="fp32", show_progress=show_progress
        )
    all_embeddings = embeddings
    if len(all_embeddings) != len(source):
        raise ValueError(f"{len(all_embeddings)} embeddings given for {len(source)} items")
    readable = ~np.isnan(all_embeddings).any(axis=1)
    statistics = embedding_statistics(torch.from_numpy(all_embeddings[readable]))
    chosen = (
        draw_shots(np.where(readable, source.labels, -1), shots, seed, classes)
        if shots is not None
        else np.flatnonzero(readable)
    )
    labels = np.asarray(source.labels)[chosen].astype(np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    if counts.min() == 0:
        raise ValueError(f"{source.name}: class {classes[int(counts.argmin())]!r} has no label")
    if calibration is None:
        few = counts.min() < HELD_OUT_MIN_PER_CLASS and not finetune_blocks
        calibration = "cv" if few else "temperature"
    if counts.min() < 2:
        raise ValueError(
            f"{source.name}: class {classes[int(counts.argmin())]!r} has one label; "
            "calibration needs at least two per class"
        )
    z = torch.from_numpy(all_embeddings[chosen])
    y = torch.from_numpy(labels)
    metrics: dict[str, Any] = {
        "labelled": len(chosen),
        "data": source.name,
        "calibration": calibration,
        "weight_decay": weight_decay if head != "prototype" else None,
        "seed": seed,
    }
    if head == "propagation":
        others = np.setdiff1d(np.flatnonzero(readable), chosen)
        pool = _unlabelled_pool(
            run, all_embeddings[others], unlabeled, unlabeled_embeddings, seed, show_progress
        )
        fit_on, spread = propagation_fitter(
            z.numpy(), labels, pool, num_classes, statistics, weight_decay
        )
        metrics["propagation"] = spread
    else:

        def fit_on(rows: np.ndarray) -> EmbeddingHead:
            return fit_head(z[rows], y[rows], num_classes, head, statistics, weight_decay)

    encoder = None
    if calibration == "cv":
        calibration_logits = out_of_fold_logits(z, labels, num_classes, fit_on, seed)
        fitted = fit_on(np.arange(len(labels)))  # last, so the metrics describe this fit
        calibration_labels = labels
    else:
        rng = np.random.default_rng(seed)
        fit, held = stratified_split(labels, HELD_OUT_FRACTION, rng, at_least_one=True)
        fitted = fit_on(fit)
        if finetune_blocks:
            encoder, fitted = finetune_encoder(
                run.encoder, fitted, source, chosen[fit], labels[fit], finetune_blocks,
                finetune_epochs, finetune_lr, seed=seed, show_progress=show_progress,
            )  # fmt: skip
            held_out = SubsetSource(source, chosen[held], f"{source.name}[held out]")
            held_embeddings = embed_source(encoder, held_out, precision="fp32")
            metrics["finetune"] = {
                "blocks": finetune_blocks,
                "epochs": finetune_epochs,
                "lr": finetune_lr,
            }
        else:
            held_embeddings = z[held].numpy()
        with torch.no_grad():
            calibration_logits = fitted(torch.from_numpy(held_embeddings)).double().numpy()
        calibration_labels = labels[held]
        metrics.update(fit_labels=len(fit), held_out_labels=len(held))
    temperature = fit_temperature(calibration_logits, calibration_labels)
    before = torch.softmax(torch.from_numpy(calibration_logits), dim=1).numpy()
    after = torch.softmax(torch.from_numpy(calibration_logits / temperature), dim=1).numpy()
    metrics.update(
        calibration_accuracy=float((before.argmax(1) == calibration_labels).mean()),
        nll_before=negative_log_likelihood(calibration_logits, calibration_labels),
        nll_after=negative_log_likelihood(calibration_logits, calibration_labels, temperature),
        ece_before=expected_calibration_error(before, calibration_labels),
        ece_after=expected_calibration_error(after, calibration_labels),
    )
    return AdaptedModel(run.path, classes, head, fitted, temperature, shots, metrics, encoder)


def _unlabelled_pool(
    run: Run,
    outside_shots: np.ndarray,
    unlabeled: str | os.PathLike | Source | None,
    unlabeled_embeddings: np.ndarray | None,
    seed: int,
    show_progress: bool,
) -> np.ndarray:
    """The propagation head's unlabelled embeddings: the labelled data's items outside the
    shots, then ``unlabeled``'s readable items; at most :data:`MAX_UNLABELLED`."""
    parts = [outside_shots]
    if unlabeled is not None or unlabeled_embeddings is not None:
        if unlabeled_embeddings is None:
            extra_source = run.open(unlabeled)
            unlabeled_embeddings = embed_source(
                run.encoder, extra_source, precision="fp32", show_progress=show_progress
            )
        parts.append(unlabeled_embeddings[~np.isnan(unlabeled_embeddings).any(axis=1)])
    pool = np.concatenate(parts)
    if len(pool) == 0:
        raise ValueError(
            "the propagation head needs unlabelled items: pass unlabelled data (--unlabeled) "
            "or draw --shots from labelled data that has more items"
        )
    if len(pool) > MAX_UNLABELLED:
        keep = np.random.default_rng(seed).choice(len(pool), MAX_UNLABELLED, replace=False)
        pool = pool[np.sort(keep)]
    return pool


def write_predictions(
    model: AdaptedModel,
    data: str | os.PathLike | Source,
    out: str | os.PathLike,
    show_progress: bool = False,
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
