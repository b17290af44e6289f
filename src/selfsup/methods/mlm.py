"""Masked language modelling: predict the tokens hidden from a text, BERT-style.

Devlin, Chang, Lee and Toutanova, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding", NAACL 2019. https://arxiv.org/abs/1810.04805

15% of each text's tokens are chosen (Sec. 3.1, "Task #1"); of those, 80% become ``[MASK]``,
10% a random token and 10% stay as they are. The encoder's per-token outputs at the chosen
positions go through a head (dense, GELU, layer norm, then a decoder onto the vocabulary
whose weights are the token embedding's, tied as in BERT) and the loss is the cross-entropy of
the original tokens there:

    L = -1 / |M| * sum_{i in M} log softmax(head(h_i))[x_i]

Under DDP each process chooses its own tokens and averages over them; the mean of the
processes' means weights a chosen token by its process's count, which differs from one
process's mean over all tokens by the spread of those counts (a fraction of a percent).

where M is the set of chosen positions. Each non-empty text has at least one chosen position,
so short texts (a few tokens) take part too.

Example:
    >>> import torch
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.modalities.text import build_text_encoder
    >>> encoder = build_text_encoder("text-transformer", 300, 16, dim=32, depth=1, heads=2)
    >>> MLM(encoder)([torch.randint(3, 300, (4, 10))]).ndim
    0
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.data.tokenizer import MASK_ID, PAD_ID, SPECIAL_TOKENS
from selfsup.encoder import Encoder
from selfsup.methods.base import Method

#: The target of positions that are not predicted (cross-entropy's ``ignore_index``).
IGNORE = -100


def mask_tokens(
    ids: torch.Tensor, vocab_size: int, rate: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of token ids ``(n, L)`` (padding 0 never chosen).

    Returns:
        The corrupted ids, and the targets: the original id at chosen positions,
        ``IGNORE`` (-100) elsewhere.

    Example:
        >>> ids = torch.tensor([[5, 6, 7, 0]])
        >>> inputs, targets = mask_tokens(ids, vocab_size=10, rate=1.0)
        >>> targets.tolist(), inputs[0, 3].item()
        ([[5, 6, 7, -100]], 0)
    """
    present = ids != PAD_ID
    chosen = (torch.rand(ids.shape, device=ids.device) < rate) & present
    # A text with nothing chosen gets one random token of its own chosen.
    none = ~chosen.any(dim=1) & present.any(dim=1)
    if none.any():
        scores = torch.rand(ids.shape, device=ids.device).masked_fill(~present, -1.0)
        one = F.one_hot(scores.argmax(dim=1), ids.shape[1]).bool()
        chosen |= one & none[:, None]
    targets = torch.where(chosen, ids, IGNORE)
    draw = torch.rand(ids.shape, device=ids.device)
    random_ids = torch.randint(len(SPECIAL_TOKENS), vocab_size, ids.shape, device=ids.device)
    inputs = torch.where(chosen & (draw < 0.8), MASK_ID, ids)
    inputs = torch.where(chosen & (draw >= 0.8) & (draw < 0.9), random_ids, inputs)
    return inputs, targets


def mlm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the ``logits`` (m, vocab) of the chosen positions against their
    original ``targets`` (m,).

    Example:
        >>> logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
        >>> round(mlm_loss(logits, torch.tensor([1])).item(), 4)  # -log 0.25
        1.3863
    """
    return F.cross_entropy(logits.float(), targets)


def text_backbone(encoder: Encoder, method: str) -> nn.Module:
    """The encoder's backbone, or a ValueError naming ``method`` when it has no per-token
    outputs (``tokens``) and ``token_embedding``."""
    backbone = encoder.backbone
    if not (hasattr(backbone, "tokens") and hasattr(backbone, "token_embedding")):
        raise ValueError(
            f"{method} needs a text backbone with per-token outputs (text-transformer or "
            f"bert), got {type(backbone).__name__}"
        )
    return backbone


class MaskedTokenHead(nn.Module):
    """BERT's prediction head: dense, GELU, layer norm, then logits over the vocabulary
    with the token embedding's weights as decoder (``tied``, BERT's choice) or a decoder of
    its own.

    Args:
        dim: width of the per-token outputs.
        vocab_size: tokens in the vocabulary.
        tied: decode with the token embedding passed to ``forward``.
    """

    def __init__(self, dim: int, vocab_size: int, tied: bool = True) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.decoder = None if tied else nn.Linear(dim, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor, embedding: nn.Embedding) -> torch.Tensor:
        """Logits (..., vocab) of per-token outputs (..., dim)."""
        weight = embedding.weight if self.decoder is None else self.decoder.weight
        return F.linear(self.transform(hidden), weight, self.bias)


def masked_lm_loss(
    backbone: nn.Module, head: MaskedTokenHead, ids: torch.Tensor, rate: float
) -> torch.Tensor:
    """Corrupt ``ids``, encode them, and score the head's predictions at the chosen
    positions (shared by :class:`MLM` and SimCSE's auxiliary objective)."""
    embedding = backbone.token_embedding
    inputs, targets = mask_tokens(ids, embedding.num_embeddings, rate)
    chosen = targets != IGNORE
    hidden = backbone.tokens(inputs)
    return mlm_loss(head(hidden[chosen], embedding), targets[chosen])


class MLM(Method):
    """Masked language modelling on a text encoder.

    Args:
        encoder: a text encoder (``text-transformer`` or ``bert`` backbone).
        mask_rate: fraction of tokens chosen for prediction (BERT: 0.15).
        tied: decode with the token embedding's weights (BERT) rather than a separate matrix.
    """

    name: ClassVar[str] = "mlm"
    paper: ClassVar[str] = "Devlin et al. 2019, https://arxiv.org/abs/1810.04805"
    num_views: ClassVar[int] = 1
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    view_recipes: ClassVar[dict[str, str]] = {"text": "none"}

    def __init__(self, encoder: Encoder, mask_rate: float = 0.15, tied: bool = True) -> None:
        super().__init__(encoder)
        vocab_size, dim = text_backbone(encoder, "MLM").token_embedding.weight.shape
        self.head = MaskedTokenHead(dim, vocab_size, tied)
        self.mask_rate = mask_rate
        self.tied = tied

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the original tokens at the masked positions of the batch."""
        return masked_lm_loss(self.encoder.backbone, self.head, views[0], self.mask_rate)

    def options(self) -> dict[str, Any]:
        return {"mask_rate": self.mask_rate, "tied": self.tied}
