"""Sent2Vec: train token vectors so that their average predicts each token of the text.

Pagliardini, Gupta and Jaggi, "Unsupervised Learning of Sentence Embeddings using
Compositional n-Gram Features", NAACL 2018. https://arxiv.org/abs/1703.02507

A sentence S is represented by the mean of its tokens' source vectors, v_S (the ``text-bag``
backbone computes exactly this). Each token w_t of S is then predicted from the mean of the
other tokens, v_{S \\ w_t}, against negatives drawn from the vocabulary, with output vectors u
(Eq. 2, a CBOW whose window is the whole sentence):

    L = sum_S sum_{w_t in S} [ l(u_{w_t} . v_{S \\ w_t})
                               + sum_{w' in N_{w_t}} l(-u_{w'} . v_{S \\ w_t}) ]

with l(x) = log(1 + exp(-x)), averaged here over the predicted tokens. As in the paper, a
token is a target with probability min(1, sqrt(t / f_w) + t / f_w) (frequent tokens are
subsampled, threshold t) and negatives are drawn with probability proportional to sqrt(f_w).
The frequencies f_w are counted over the training batches seen so far (a buffer saved with
checkpoints), so no pass over the corpus is needed before training. Departures: the
tokens are the run's BPE tokens, without the paper's extra word bigrams or their dropout.
Under DDP each process draws its own targets and negatives and counts the frequencies of its
own batches (a mean of per-token terms: the processes average the same objective, not bit for
bit).

Because the trained quantity is the mean of token vectors, the sentence embedding is learned
directly: the tokens of texts that share words end up near each other, which carries topic
and sentiment from co-occurrence alone.

Example:
    >>> import torch
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.modalities.text import build_text_encoder
    >>> encoder = build_text_encoder("text-bag", 50, 16, dim=8)
    >>> Sent2Vec(encoder)([torch.randint(5, 50, (4, 10))]).ndim
    0
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones.text import TextBag, mean_pool
from selfsup.data.tokenizer import PAD_ID, SPECIAL_TOKENS
from selfsup.encoder import Encoder
from selfsup.methods.base import Method


def sent2vec_loss(
    context: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    count: int | None = None,
) -> torch.Tensor:
    """Negative-sampling loss of context vectors against their target and negative outputs.

    Args:
        context: (m, D), v_{S \\ w_t} of each predicted token.
        positive: (m, D), u_{w_t}, the output vector of each predicted token.
        negatives: (m, K, D), the output vectors of its K negatives.
        count: only the first ``count`` rows are tokens (the rest pad m to a bucket);
            all m when None.

    Returns:
        mean over the predicted tokens of softplus(-u . v) + sum_k softplus(u_k . v).

    Example:
        >>> v, u = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
        >>> neg = torch.tensor([[[0.0, 1.0]]])
        >>> round(sent2vec_loss(v, u, neg).item(), 4)  # log(1 + e^-2) + log(1 + e^0)
        0.8201
    """
    context = context.float()
    positive_score = (context * positive.float()).sum(dim=-1)
    negative_score = torch.einsum("md,mkd->mk", context, negatives.float())
    per_token = F.softplus(-positive_score) + F.softplus(negative_score).sum(dim=-1)
    return per_token[:count].mean()


def leave_one_out_means(vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """For each position of each text, the mean of the text's other present vectors.

    Args:
        vectors: (n, L, D) token vectors.
        present: (n, L) bool, True at real (non-padding) tokens.

    Returns:
        (n, L, D); rows of texts with a single token are 0.

    Example:
        >>> x = torch.tensor([[[1.0], [2.0], [6.0], [9.0]]])
        >>> leave_one_out_means(x, torch.tensor([[True, True, True, False]]))[0, :3, 0].tolist()
        [4.0, 3.5, 1.5]
    """
    keep = present.unsqueeze(-1).to(vectors.dtype)
    total = (vectors * keep).sum(dim=1, keepdim=True)
    others = (present.sum(dim=1) - 1).clamp_min(1).to(vectors.dtype)
    return (total - vectors * keep) / others[:, None, None]


def keep_probability(counts: torch.Tensor, threshold: float) -> torch.Tensor:
    """word2vec's subsampling: the chance each token is kept, min(1, sqrt(t / f) + t / f),
    from token counts (f = count / total; unseen tokens are kept).

    Example:
        >>> [round(p, 3) for p in keep_probability(torch.tensor([96.0, 4.0]), 0.01).tolist()]
        [0.112, 0.75]
    """
    frequency = (counts / counts.sum().clamp_min(1)).clamp_min(1e-12)
    ratio = threshold / frequency
    return (ratio.sqrt() + ratio).clamp(max=1.0)


def padded_count(count: int) -> int:
    """``count`` rounded up to a multiple of an eighth of its octave's start (1, 2, ... 8,
    9, 10, ... 16, 18, ... 32, 36...): at most an eighth more, eight sizes an octave.

    Example:
        >>> [padded_count(n) for n in (5, 17, 1000, 1025, 3000)]
        [5, 18, 1024, 1152, 3072]
    """
    step = 1 << max(0, count.bit_length() - 4)
    return -(-count // step) * step


class Sent2Vec(Method):
    """Sent2Vec on a ``text-bag`` encoder.

    Args:
        encoder: a text encoder with the ``text-bag`` backbone, whose output is the trained
            v_S less its running mean.
        negatives: K, negatives per predicted token (paper: 10).
        subsample: t, the frequency threshold of target subsampling (paper: 1e-5 on
            Wikipedia; the default is word2vec's usual 1e-4, for corpora far smaller).
        negative_power: negatives are drawn with probability proportional to f_w to this
            power (paper: 0.5; word2vec: 0.75).
        center_momentum: the backbone's ``center`` follows the batches' mean sentence vector
            as an exponential moving average with this momentum; it shifts the encoder's
            output only, not the loss.

    Raises:
        ValueError: the backbone is not ``text-bag``, or options are out of range.
    """

    name: ClassVar[str] = "sent2vec"
    paper: ClassVar[str] = "Pagliardini et al. 2018, https://arxiv.org/abs/1703.02507"
    num_views: ClassVar[int] = 1
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    view_recipes: ClassVar[dict[str, str]] = {"text": "none"}
    backbones: ClassVar[dict[str, str]] = {"text": "text-bag"}

    def __init__(
        self,
        encoder: Encoder,
        negatives: int = 10,
        subsample: float = 1e-4,
        negative_power: float = 0.5,
        center_momentum: float = 0.5,
    ) -> None:
        super().__init__(encoder)
        if not isinstance(encoder.backbone, TextBag):
            # A transformer's layers would get no gradient: the loss reads token vectors only.
            raise ValueError(
                "sent2vec trains the text-bag backbone (--backbone text-bag), whose output is "
                f"the mean of the token vectors it learns; got {type(encoder.backbone).__name__}"
            )
        embedding = encoder.backbone.token_embedding
        if negatives < 1 or subsample <= 0 or negative_power < 0:
            raise ValueError(
                f"sent2vec needs negatives >= 1, subsample > 0 and negative_power >= 0, got "
                f"{negatives}, {subsample} and {negative_power}"
            )
        vocab_size, dim = embedding.weight.shape
        self.output = nn.Embedding(vocab_size, dim)
        nn.init.zeros_(self.output.weight)  # word2vec's output vectors start at 0
        self.register_buffer("counts", torch.zeros(vocab_size, dtype=torch.float64))
        self.negatives = negatives
        self.subsample = subsample
        self.negative_power = negative_power
        self.center_momentum = center_momentum

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        backbone = self.encoder.backbone
        ids = views[0][:, : backbone.max_length].long()
        present = ids != PAD_ID
        predictable = present & (present.sum(dim=1) >= 2)[:, None]  # a lone token has no context
        with torch.no_grad():
            self.counts += torch.bincount(ids[present], minlength=len(self.counts)).double()
            keep = keep_probability(self.counts, self.subsample)
            chosen = predictable & (torch.rand(ids.shape, device=ids.device) < keep[ids])
            if not chosen.any():
                chosen = predictable
            weights = self.counts.pow(self.negative_power)
            weights[: len(SPECIAL_TOKENS)] = 0.0  # padding, [MASK]... are never negatives
        vectors = backbone.token_embedding(ids)
        texts = present.any(dim=1)
        if texts.any():  # the encoder's output is centred on the running mean v_S
            with torch.no_grad():
                mean = mean_pool(vectors[texts].float(), ~present[texts]).mean(dim=0)
                backbone.center.lerp_(mean, 1.0 - self.center_momentum)
        if not chosen.any():  # no text of two tokens in the batch: nothing to predict
            return vectors.sum() * 0.0
        # The predicted tokens, their count rounded up (by at most an eighth) to one of
        # eight sizes an octave by repeating the first one with no weight: a step's largest
        # tensors (m x K x D negatives) take one of a few sizes, which the allocator reuses,
        # instead of a new size every step, which left 14 GB of freed blocks held after 500
        # steps of batches of 256 (a million support tickets).
        where = chosen.flatten().nonzero().squeeze(1)
        count = len(where)
        padded = padded_count(count)
        where = torch.cat([where, where[:1].expand(padded - count)])
        context = leave_one_out_means(vectors, present).flatten(0, 1)[where]
        targets = ids.flatten()[where]
        drawn = torch.multinomial(weights.float(), padded * self.negatives, True)
        negatives = self.output(drawn.view(padded, self.negatives))
        return sent2vec_loss(context, self.output(targets), negatives, count)

    def options(self) -> dict[str, Any]:
        return {
            "negatives": self.negatives,
            "subsample": self.subsample,
            "negative_power": self.negative_power,
            "center_momentum": self.center_momentum,
        }
