"""Distillation: a frozen teacher (a pretrained model or an earlier run) teaches a student.

Beyer, Zhai, Royer, Markeeva, Anil and Kolesnikov, "Knowledge distillation: A good teacher is
patient and consistent", CVPR 2022. https://arxiv.org/abs/2106.05237
Reimers and Gurevych, "Making Monolingual Sentence Embeddings Multilingual using Knowledge
Distillation", EMNLP 2020. https://arxiv.org/abs/2004.09813

The teacher and the student see the *same* augmented view of each item (Beyer et al.'s
"consistent" teaching: the teacher's target is computed on exactly what the student sees),
and the student learns to reproduce the teacher's embedding of it, as Reimers and Gurevych
train a student sentence encoder to reproduce a teacher's sentence embeddings. Without labels
there are no logits to match, so the targets are the teacher's embeddings: the student's
features go through a linear projection to the teacher's dimension and the loss is the mean
squared distance between the two embeddings made unit length,

    L = mean_i || s_i / ||s_i|| - t_i / ||t_i|| ||^2 = mean_i (2 - 2 cos(s_i, t_i)),

which, unlike raw MSE, does not depend on the scale of the teacher's features (what
LightlyTrain's distillation also normalizes away). The projection is used in training only;
the student's own features are what is kept. The loss is a mean over items, so two DDP
processes of B train as one of 2B (``tests/methods/test_ddp_equivalence.py``).

The teacher reads each view as its own inputs need: images are resized and converted to its
side and channels; text must be tokenized with the teacher's tokenizer, which the run does
(the student reads the same ids; a ``text-bag`` student over them is Sent2Vec's encoder). A
text student whose token table has the teacher's shape starts from the teacher's token
vectors (``init_tokens``), as DistilBERT (Sanh et al. 2019) starts from its teacher's layers.

Example:
    >>> s = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    >>> t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> round(distill_loss(s, t).item(), 4)  # (0 + 2) / 2: one match, one orthogonal pair
    1.0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoder import Encoder
from selfsup.methods.base import Method, OnceWork


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the squared distance between unit-length student and teacher
    embeddings (N, D): ``2 - 2 cos`` per row."""
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher.float(), dim=1)
    return (s - t).pow(2).sum(dim=1).mean()


class Distill(Method):
    """A student encoder regresses a frozen teacher's embeddings of the same views.

    Args:
        encoder: the student.
        teacher: the frozen teacher (an ``Encoder`` of the same modality); it stays in eval
            mode and never trains.
        init_tokens: start a text student's token vectors from the teacher's, when both
            have a token table of the same shape.
        cache_targets: keep the teacher's embedding of up to this many distinct token-id
            inputs (texts, which their views leave as they are), so a large teacher runs once
            per text rather than once per epoch; 0 turns it off. The teacher is frozen and
            deterministic, so a kept embedding is what it would compute again. Float inputs
            (images' random crops, which never repeat) are not kept.
    """

    name: ClassVar[str] = "distill"
    paper: ClassVar[str] = (
        "Beyer et al. 2022, https://arxiv.org/abs/2106.05237; Reimers and Gurevych 2020, "
        "https://arxiv.org/abs/2004.09813"
    )
    num_views: ClassVar[int] = 1
    view_recipes: ClassVar[dict[str, str]] = {"text": "none"}
    backbones: ClassVar[dict[str, str]] = {"text": "text-bag"}
    # A student that sees the same texts for many epochs learns their targets by heart and
    # drifts from its teacher elsewhere: keep the epoch closest to it on held-out items.
    select_by: ClassVar[str] = "heldout_loss"

    def __init__(
        self,
        encoder: Encoder,
        teacher: Encoder | None = None,
        init_tokens: bool = True,
        cache_targets: int = 200_000,
    ) -> None:
        super().__init__(encoder)
        if teacher is None:
            raise ValueError("--method distill needs a teacher (--teacher RUN or hf:PATH)")
        if teacher.modality != encoder.modality:
            raise ValueError(
                f"the teacher reads {teacher.modality} and the student {encoder.modality}; "
                "distillation needs both of the same modality"
            )
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.projection = nn.Linear(encoder.feature_dim, teacher.feature_dim)
        self.init_tokens = init_tokens and copy_token_vectors(encoder.backbone, teacher.backbone)
        self.cache_targets = int(cache_targets)
        self.kept = KeptTargets(self._teach, self.cache_targets)
        self._once_seconds, self._once_items = 0.0, 0

    def train(self, mode: bool = True) -> Distill:
        """Train the student and its projection; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's embeddings of a batch of views, read as its inputs need (token ids
        seen before: the kept embeddings, see ``cache_targets``); in training, the time and
        items of the newly kept ones add up in ``once_work``."""
        if not self.training:
            return self.kept(x)
        seconds, items = self.kept.seconds, len(self.kept.kept)
        targets = self.kept(x)
        self._once_seconds += self.kept.seconds - seconds
        self._once_items += len(self.kept.kept) - items
        return targets

    def once_work(self) -> OnceWork | None:
        """The teacher's work on the texts the training steps met first (each kept, up to
        ``cache_targets``); None for float inputs (crops), which are never kept.

        Example:
            >>> from selfsup.modalities.text import build_text_encoder
            >>> teacher = build_text_encoder("text-transformer", 50, 8, dim=8, depth=1, heads=2)
            >>> method = Distill(build_text_encoder("text-bag", 50, 8, dim=4), teacher)
            >>> _ = method.train().loss([torch.tensor([[5, 6], [7, 0]])])
            >>> work = method.once_work()
            >>> work.items, work.limit, work.seconds > 0
            (2, 200000, True)
        """
        if self.cache_targets <= 0 or not self.kept.keeps_any:
            return None
        return OnceWork(self._once_seconds, self._once_items, self.cache_targets)

    def _teach(self, x: torch.Tensor) -> torch.Tensor:
        return teach(self.teacher, x)

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Distance between the projected student and the teacher on the same view."""
        x = views[0]
        return distill_loss(self.projection(self.encoder(x)), self.targets(x))

    def heldout_loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """The loss on held-out items: how far the student is from its teacher on texts (or
        views) it does not train on.

        Example:
            >>> from selfsup.modalities.tabular import build_tabular_encoder
            >>> teacher = build_tabular_encoder(4, hidden=16, depth=1)
            >>> student = build_tabular_encoder(4, hidden=8, depth=1)
            >>> method = Distill(student, teacher)
            >>> loss = method.heldout_loss([torch.randn(5, 4)])
            >>> 0.0 <= loss.item() <= 4.0
            True
        """
        return self.loss(views)

    def options(self) -> dict[str, Any]:
        spec = self.teacher.spec or {}
        return {
            "teacher": spec.get("backbone"),
            "teacher_dim": self.teacher.feature_dim,
            "init_tokens": self.init_tokens,
            "cache_targets": self.cache_targets,
        }


def teach(teacher: Encoder, x: torch.Tensor) -> torch.Tensor:
    """A frozen encoder's fp32 embeddings of a batch of views, read as its inputs need
    (images resized and converted to its side and channels)."""
    from selfsup.modalities import get_modality

    ready = get_modality(teacher.modality).prepare_input(x, teacher.spec or {})
    return teacher(ready).float()


class KeptTargets:
    """A frozen, deterministic encoder's embeddings of up to ``limit`` distinct token-id
    inputs, kept so that it runs once per text rather than once per epoch; float inputs
    (random crops, which never repeat) are computed every time.

    Args:
        compute: the embeddings of a batch of inputs (no gradients are needed).
        limit: the most inputs kept; 0 keeps none.

    Example:
        >>> calls = []
        >>> kept = KeptTargets(lambda x: calls.append(len(x)) or x.float(), limit=10)
        >>> ids = torch.tensor([[5, 6, 0], [7, 0, 0]])
        >>> torch.equal(kept(ids), kept(ids)), calls  # the second call computes nothing
        (True, [2])
    """

    def __init__(self, compute: Callable[[torch.Tensor], torch.Tensor], limit: int) -> None:
        self.compute = compute
        self.limit = int(limit)
        self.kept: dict[bytes, torch.Tensor] = {}
        #: Seconds spent computing the rows now kept.
        self.seconds = 0.0
        #: Whether any input so far could be kept (token ids, not float crops).
        self.keeps_any = False

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The embeddings of the rows of ``x``."""
        if self.limit <= 0 or x.is_floating_point():
            return self.compute(x)
        self.keeps_any = True
        keys = [row_key(row) for row in x.cpu().numpy()]
        missing = [i for i, key in enumerate(keys) if key not in self.kept]
        found: dict[int, torch.Tensor] = {}
        if missing:
            before = len(self.kept)
            begun = time.perf_counter()
            computed = self.compute(x[missing])
            elapsed = time.perf_counter() - begun
            for i, vector in zip(missing, computed, strict=True):
                found[i] = vector
                if len(self.kept) < self.limit:
                    self.kept[keys[i]] = vector.cpu()
            # The share spent on the rows now kept (rows beyond the limit cost it every time).
            self.seconds += elapsed * (len(self.kept) - before) / len(missing)
        out = [found[i] if i in found else self.kept[keys[i]].to(x.device) for i in range(len(x))]
        return torch.stack(out)


def row_key(row: np.ndarray) -> bytes:
    """One input's ids without the padding after it, as bytes (a batch pads to its longest)."""
    nonzero = np.flatnonzero(row)
    return row[: nonzero[-1] + 1].tobytes() if len(nonzero) else b""


@torch.no_grad()
def copy_token_vectors(student: nn.Module, teacher: nn.Module) -> bool:
    """Copy the teacher's token vectors into the student's token table, row by selfsup id
    (a pretrained model's rows are reordered by its ``to_model`` map); whether it could.

    Example:
        >>> a, b = nn.Module(), nn.Module()
        >>> a.token_embedding, b.token_embedding = nn.Embedding(5, 3), nn.Embedding(5, 3)
        >>> copy_token_vectors(a, b)
        True
        >>> torch.equal(a.token_embedding.weight, b.token_embedding.weight)
        True
    """
    mine = getattr(student, "token_embedding", None)
    theirs = getattr(teacher, "token_embedding", None)
    if not isinstance(mine, nn.Embedding) or not isinstance(theirs, nn.Embedding):
        return False
    weight = theirs.weight
    to_model = getattr(teacher, "to_model", None)
    if to_model is not None:
        if int(to_model.max()) >= len(weight):
            return False
        weight = weight[to_model]
    if weight.shape != mine.weight.shape:
        return False
    mine.weight.copy_(weight)
    return True
