"""A stack of pre-norm transformer encoder layers, as the sequence backbones (the series patch
transformer, the text transformer) build it from PyTorch's own layers.

Example:
    >>> import torch
    >>> layers = pre_norm_transformer(dim=16, depth=2, heads=4)
    >>> layers(torch.randn(3, 5, 16)).shape
    torch.Size([3, 5, 16])
"""

from __future__ import annotations

from torch import nn


def pre_norm_transformer(
    dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0
) -> nn.TransformerEncoder:
    """``depth`` batch-first pre-norm layers (LayerNorm before attention and feed-forward, as
    in ViT) with GELU feed-forward blocks of width ``mlp_ratio * dim``."""
    layer = nn.TransformerEncoderLayer(
        dim,
        heads,
        int(dim * mlp_ratio),
        dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    # Nested tensors would skip padded tokens' outputs, which the masked poolings read as 0.
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
