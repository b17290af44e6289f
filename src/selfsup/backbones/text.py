"""Text backbones: transformer encoders over token ids, mean-pooled into sentence embeddings.

Both backbones take int64 token ids ``(n, L)`` with 0 as padding and give ``(n, dim)``: the
mean of the last layer's outputs over the non-padding tokens (the pooling of Sentence-BERT,
Reimers and Gurevych 2019, which SimCSE also reports). They expose ``token_embedding`` (the
``nn.Embedding`` of the ids) and ``tokens(ids)`` (the per-token outputs ``(n, L, dim)``) for
masked language modelling and token attributions.

- ``text-transformer`` (4 layers of width 256) and ``text-transformer-small`` (2 layers of
  width 128, about 3 times faster on a CPU): our own pre-norm transformer encoder (token plus
  learned position embeddings, ``nn.TransformerEncoder`` layers, a final layer norm). Its
  dropout is what SimCSE uses as noise.
- ``bert``: Hugging Face's ``BertModel`` built from a ``BertConfig`` (random weights, nothing
  downloaded), post-norm as in BERT, with the same interface.
- ``text-bag``: no layers, the mean of the tokens' own vectors (fastText and Sent2Vec's
  sentence encoder), for ``--method sent2vec``.

Example:
    >>> import torch
    >>> net = build_text_backbone("text-transformer", vocab_size=100, max_length=16, dim=32,
    ...                           depth=1, heads=2)
    >>> ids = torch.tensor([[5, 6, 7, 0], [8, 0, 0, 0]])
    >>> net(ids).shape, net.tokens(ids).shape
    (torch.Size([2, 32]), torch.Size([2, 4, 32]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from selfsup.backbones.transformer import pre_norm_transformer
from selfsup.data.tokenizer import PAD_ID

#: Sizes of the text backbone presets (options override them).
TEXT_PRESETS: dict[str, dict[str, Any]] = {
    "text-transformer": {"dim": 256, "depth": 4, "heads": 4, "mlp_ratio": 4.0, "dropout": 0.1},
    "text-transformer-small": {
        "dim": 128,
        "depth": 2,
        "heads": 4,
        "mlp_ratio": 4.0,
        "dropout": 0.1,
    },
    "bert": {"dim": 256, "depth": 4, "heads": 4, "mlp_ratio": 4.0, "dropout": 0.1},
    "text-bag": {"dim": 256},
}


def padding_mask(ids: torch.Tensor) -> torch.Tensor:
    """True at padding positions; a row of padding only keeps its first position unmasked,
    so attention and pooling stay defined for empty texts.

    Example:
        >>> padding_mask(torch.tensor([[3, 0], [0, 0]])).tolist()
        [[False, True], [False, True]]
    """
    pad = ids == PAD_ID
    empty = pad.all(dim=1)
    pad[:, 0] &= ~empty
    return pad


def mean_pool(tokens: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Mean of ``tokens`` (n, L, D) over the positions where ``pad`` (n, L) is False.

    Example:
        >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
        >>> mean_pool(x, torch.tensor([[False, False, True]])).tolist()
        [[2.0]]
    """
    keep = (~pad).unsqueeze(-1).to(tokens.dtype)
    return (tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


class TextTransformer(nn.Module):
    """A pre-norm transformer encoder over token ids with mean pooling.

    Args:
        vocab_size: tokens in the vocabulary (id 0 is padding).
        max_length: the longest input, in tokens (the position embeddings' count).
        dim: width of the token vectors and of the output.
        depth: transformer layers.
        heads: attention heads per layer.
        mlp_ratio: hidden width of the feed-forward block, as a multiple of ``dim``.
        dropout: dropout in attention, feed-forward and on the embeddings.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.feature_dim = dim
        self.max_length = max_length
        self.token_embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.position_embedding = nn.Parameter(torch.zeros(1, max_length, dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)
        self.embedding_dropout = nn.Dropout(dropout)
        self.layers = pre_norm_transformer(dim, depth, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim)

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        layers = list(self.layers.layers)
        return [self.token_embedding, *layers[:-1], nn.ModuleList([layers[-1], self.norm])]

    def _encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids[:, : self.max_length].long()
        pad = padding_mask(ids)
        x = self.token_embedding(ids) + self.position_embedding[:, : ids.shape[1]]
        x = self.layers(self.embedding_dropout(x), src_key_padding_mask=pad)
        return self.norm(x), pad

    def tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token outputs ``(n, L, dim)`` of ids ``(n, L)``."""
        return self._encode(ids)[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings ``(n, dim)``: the mean over the non-padding tokens."""
        x, pad = self._encode(ids)
        return mean_pool(x, pad)


class TextBag(nn.Module):
    """A bag of token vectors: the sentence embedding is the mean of its tokens' embeddings,
    less ``center``.

    ``center`` (a buffer, 0 at first) is the mean sentence vector of the training texts, which
    Sent2Vec keeps up to date: averaged word vectors share one large common component (Arora,
    Liang and Ma 2017, https://openreview.net/forum?id=SyK00v5xx), which would otherwise
    dominate every embedding, make cosine neighbours meaningless and look like a collapse to
    the label-free monitor.

    No order and no layers: the encoder of fastText-style sentence models (Sent2Vec,
    Pagliardini et al. 2018, https://arxiv.org/abs/1703.02507), which train the token vectors
    so that their average is a good sentence vector (``--method sent2vec``). About a
    hundred times cheaper per text than a transformer on a CPU. Word2vec's initialization:
    uniform in +-0.5 / dim.

    Args:
        vocab_size: tokens in the vocabulary (id 0 is padding).
        max_length: the longest input, in tokens (longer inputs are cut).
        dim: width of the token vectors and of the output.

    Example:
        >>> net = TextBag(vocab_size=10, max_length=8, dim=4)
        >>> ids = torch.tensor([[3, 5, 0]])
        >>> torch.allclose(net(ids), net.token_embedding.weight[[3, 5]].mean(0))
        True
    """

    def __init__(self, vocab_size: int, max_length: int, dim: int = 256) -> None:
        super().__init__()
        self.feature_dim = dim
        self.max_length = max_length
        self.token_embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        nn.init.uniform_(self.token_embedding.weight, -0.5 / dim, 0.5 / dim)
        with torch.no_grad():
            self.token_embedding.weight[PAD_ID].zero_()
        self.register_buffer("center", torch.zeros(dim))

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        return [self.token_embedding]

    def tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token vectors ``(n, L, dim)`` of ids ``(n, L)`` (each token's own embedding)."""
        return self.token_embedding(ids[:, : self.max_length].long())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings ``(n, dim)``: the mean over the non-padding tokens, less
        ``center``."""
        return self.sentence_vectors(ids) - self.center

    def sentence_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """The plain means of the token vectors ``(n, dim)``, v_S of Sent2Vec."""
        ids = ids[:, : self.max_length].long()
        return mean_pool(self.token_embedding(ids), padding_mask(ids))


class BertEncoder(nn.Module):
    """Hugging Face's ``BertModel`` from a config (random weights) with mean pooling.

    Args:
        vocab_size: tokens in the vocabulary (id 0 is padding).
        max_length: the longest input, in tokens.
        dim: hidden size.
        depth: layers.
        heads: attention heads.
        mlp_ratio: intermediate size as a multiple of ``dim``.
        dropout: hidden and attention dropout.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=dim,
            num_hidden_layers=depth,
            num_attention_heads=heads,
            intermediate_size=int(dim * mlp_ratio),
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            max_position_embeddings=max_length,
            pad_token_id=PAD_ID,
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        self.feature_dim = dim
        self.max_length = max_length

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        return [self.bert.embeddings, *self.bert.encoder.layer]

    @property
    def token_embedding(self) -> nn.Embedding:
        """The embedding of the token ids."""
        return self.bert.embeddings.word_embeddings

    def _encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids[:, : self.max_length].long()
        pad = padding_mask(ids)
        out = self.bert(input_ids=ids, attention_mask=(~pad).long())
        return out.last_hidden_state, pad

    def tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token outputs ``(n, L, dim)`` of ids ``(n, L)``."""
        return self._encode(ids)[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings ``(n, dim)``: the mean over the non-padding tokens."""
        x, pad = self._encode(ids)
        return mean_pool(x, pad)


_TEXT_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "text-transformer": TextTransformer,
    "text-transformer-small": TextTransformer,
    "bert": BertEncoder,
    "text-bag": TextBag,
}


def text_backbone_names() -> list[str]:
    """The names ``build_text_backbone`` accepts.

    Example:
        >>> text_backbone_names()
        ['text-transformer', 'text-transformer-small', 'bert', 'text-bag']
    """
    return list(_TEXT_BUILDERS)


def build_text_backbone(name: str, vocab_size: int, max_length: int, **options: Any) -> nn.Module:
    """Build a text backbone by name, its preset's sizes overridden by ``options`` (``dim``,
    ``depth``, ``heads``, ``mlp_ratio``, ``dropout``).

    Raises:
        ValueError: ``name`` is not a text backbone.

    Example:
        >>> build_text_backbone("bert", 100, 16, dim=32, depth=1, heads=2).feature_dim
        32
    """
    if name not in _TEXT_BUILDERS:
        raise ValueError(f"unknown text backbone {name!r}; known: {', '.join(_TEXT_BUILDERS)}")
    return _TEXT_BUILDERS[name](vocab_size, max_length, **{**TEXT_PRESETS[name], **options})
