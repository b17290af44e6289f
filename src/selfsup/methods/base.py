"""The shared base of every self-supervised method.

A method owns an encoder (the network kept after training) plus whatever heads or momentum
networks its objective needs, and turns a list of augmented views into one loss. It knows
nothing about files, data sources or the training loop.

Example:
    >>> import torch
    >>> from selfsup.backbones import build_backbone
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.methods import build_method
    >>> encoder = Encoder(build_backbone("small-cnn", in_channels=1, image_size=16, width=8))
    >>> method = build_method("simclr", encoder)
    >>> loss = method([torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)])
    >>> loss.ndim
    0
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from selfsup.encoder import Encoder


@dataclass(frozen=True)
class OnceWork:
    """Work a method's training steps do once per item and keep (``Method.once_work``).

    Attributes:
        seconds: time spent on it by the training steps so far (part of their time).
        items: items it was done for (now kept).
        limit: the most items it is kept for; items beyond cost it on every visit.

    Example:
        >>> OnceWork(seconds=12.0, items=3000, limit=200_000).per_item
        0.004
    """

    seconds: float
    items: int
    limit: int

    @property
    def per_item(self) -> float:
        """Seconds per item done so far (0 before any)."""
        return self.seconds / self.items if self.items else 0.0


class Method(nn.Module, abc.ABC):
    """Base class: subclasses define ``loss(views)`` and may define ``on_step_end``.

    Class attributes:
        name: the method id used on the command line (``--method``).
        paper: the reference of the objective.
        view_recipes: the augmentation recipe the objective wants on each modality (image:
            ``simclr``, ``byol``, ``masked``, ``swav``, ``dino``; series, text, tables and audio:
            ``none`` for objectives that take the batch as it is, ``scarf``, ``byola``); a
            modality left out gets that modality's generic recipe.
        backbones: the backbone the objective needs on a modality when ``--backbone`` is not
            given (MAE and I-JEPA: a ViT; Sent2Vec: ``text-bag``); a modality left out picks
            its own default.
        needs_pretrained: the objective adapts a pretrained encoder and learns nothing from
            random weights (MSF with its frozen target): a run needs ``--backbone hf:...``,
            ``--init RUN`` or a module of the user's.
        num_views: how many full-size (global) views of each item the objective consumes.
        num_local_views: how many extra small (local) multi-crop views it takes by default
            (SwAV, DINO); they follow the global views in the list passed to ``loss``.
        modalities: the kinds of items the objective works on.
        batch_coupling: how the loss couples the items of a batch (negatives drawn from it,
            statistics over it), or "" when it is a mean of per-item terms. Such a loss sees
            each batch of ``--batch-size`` on its own under gradient accumulation; under DDP,
            SimCLR, MoCo v3, VICReg, Barlow Twins, NNCLR, SimCSE and SCARF gather the
            projections of every process (``selfsup.methods.distributed``), SwAV and DINO
            all-reduce their batch sums, so they see the global batch.
        select_by: the epoch a run keeps when ``--select-by`` is ``auto``: ``last``, or
            ``heldout_loss`` for objectives whose loss on held-out items says how well the
            encoder generalizes (distillation: the student's distance from its teacher).
    """

    name: ClassVar[str]
    paper: ClassVar[str]
    view_recipes: ClassVar[dict[str, str]] = {}
    backbones: ClassVar[dict[str, str]] = {}
    num_views: ClassVar[int] = 2
    needs_pretrained: ClassVar[bool] = False
    num_local_views: ClassVar[int] = 0
    modalities: ClassVar[tuple[str, ...]] = ("image", "series", "tabular", "text", "audio")
    batch_coupling: ClassVar[str] = ""
    select_by: ClassVar[str] = "last"

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    @abc.abstractmethod
    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """The objective on a list of views of the same batch of items."""

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Return the loss; the training loop calls the method through ``forward`` (for DDP)."""
        return self.loss(views)

    def project(self, features: torch.Tensor) -> torch.Tensor | None:
        """The embedding the loss acts on (the projection head's output) for backbone features.

        Used to watch the projection for collapse during training; None when the method has
        no such head. Methods whose head is not ``self.projection`` override this.
        """
        head = getattr(self, "projection", None)
        return None if head is None else head(features)

    def heldout_loss(self, views: list[torch.Tensor]) -> torch.Tensor | None:
        """The objective on views of held-out items, leaving the method as it was (no queue,
        bank or centre updated); None where it has no such loss (the default): a loss over
        random negatives or a moving target says little about the encoder on its own."""
        return None

    def export_encoder(self) -> Encoder:
        """The encoder kept after training: the online one, or a momentum teacher for
        methods whose papers evaluate the teacher (DINO, I-JEPA)."""
        return self.encoder

    def once_work(self) -> OnceWork | None:
        """What training steps spent so far on work done once per item and then kept
        (a distillation teacher's targets of texts), so the pace of later steps is not taken
        for that of the first epoch's; None (the default): every step costs alike."""
        return None

    def fill_items(self) -> int:
        """Items whose views the method wants to read before the first step (MSF fills its
        memory bank with them); 0 for most methods."""
        return 0

    def fill(self, batches: Iterable[torch.Tensor]) -> int:
        """Read views of items before the first step (see ``fill_items``); the items read."""
        return 0

    def on_step_end(self, progress: float) -> None:
        """Called after each optimizer step with the fraction of training done (EMA updates)."""

    @contextlib.contextmanager
    def largest_step(self) -> Iterator[None]:
        """While open, the sizes a step draws at random (TS2Vec's crop length) take their
        largest values, so that the memory plan measures the most a step can need. Methods
        whose steps are all one size keep this default, which changes nothing."""
        yield

    def options(self) -> dict[str, Any]:
        """The method's hyperparameters, saved with the run."""
        return {}
