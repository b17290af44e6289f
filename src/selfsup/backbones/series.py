"""Series backbones: TS2Vec's dilated convolutions and a patch transformer.

Both take series ``(B, channels, length)`` of any length, treat NaN time steps (missing values,
the padding of shorter series) as absent, and give features per time step
(``forward_timestamps``, ``(B, length, D)``) and per series (``forward``, ``(B, D)``: the
maximum over the present time steps for the convolutions, the mean for the transformer).

Example:
    >>> import torch
    >>> net = DilatedConvEncoder(in_channels=2, hidden=8, out_dim=16, depth=3)
    >>> x = torch.randn(4, 2, 30)
    >>> net(x).shape, net.forward_timestamps(x).shape
    (torch.Size([4, 16]), torch.Size([4, 30, 16]))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones.transformer import pre_norm_transformer


def present_steps(x: torch.Tensor) -> torch.Tensor:
    """A boolean mask ``(B, length)``: time steps where no channel is NaN.

    Example:
        >>> present_steps(torch.tensor([[[1.0, float("nan"), 2.0]]])).tolist()
        [[True, False, True]]
    """
    return ~torch.isnan(x).any(dim=1)


def masked_max(h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Max over time of ``h`` (B, T, D) counting only the ``present`` (B, T) steps."""
    filled = h.masked_fill(~present[..., None], float("-inf"))
    out = filled.max(dim=1).values
    return torch.where(torch.isinf(out), torch.zeros_like(out), out)


def masked_mean(h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over time of ``h`` (B, T, D) counting only the ``present`` (B, T) steps."""
    weight = present[..., None].to(h.dtype)
    return (h * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)


class SamePadConv(nn.Module):
    """A dilated 1-d convolution whose output is as long as its input."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int
    ) -> None:
        super().__init__()
        field = (kernel_size - 1) * dilation + 1
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, padding=field // 2, dilation=dilation
        )
        self.remove = 1 if field % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out[:, :, : -self.remove] if self.remove else out


class ConvBlock(nn.Module):
    """Two GELU + dilated convolutions with a residual connection (TS2Vec's block)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, final: bool
    ) -> None:
        super().__init__()
        self.conv1 = SamePadConv(in_channels, out_channels, kernel_size, dilation)
        self.conv2 = SamePadConv(out_channels, out_channels, kernel_size, dilation)
        needs_projection = in_channels != out_channels or final
        self.projector = nn.Conv1d(in_channels, out_channels, 1) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.projector is None else self.projector(x)
        x = self.conv2(F.gelu(self.conv1(F.gelu(x))))
        return x + residual


class DilatedConvEncoder(nn.Module):
    """TS2Vec's encoder (Yue et al. 2022, "TS2Vec: Towards Universal Representation of Time
    Series", AAAI): a linear input projection, then ``depth`` residual blocks of dilated
    convolutions with dilation 2^i and a final block to ``out_dim``; dropout 0.1 on the output.

    NaN time steps are zeroed after the input projection, as are the steps a training-time
    ``mask`` hides (TS2Vec's timestamp masking).

    Args:
        in_channels: channels of the input series.
        hidden: channels of the hidden blocks (TS2Vec: 64).
        out_dim: feature size per time step (TS2Vec: 320).
        depth: hidden blocks (TS2Vec: 10).
        kernel_size: convolution width (TS2Vec: 3).
        dropout: dropout on the output features.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int = 64,
        out_dim: int = 320,
        depth: int = 10,
        kernel_size: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.feature_dim = out_dim
        self.input_fc = nn.Linear(in_channels, hidden)
        widths = [hidden] * depth + [out_dim]
        self.blocks = nn.Sequential(
            *[
                ConvBlock(
                    widths[i - 1] if i > 0 else hidden,
                    widths[i],
                    kernel_size,
                    dilation=2**i,
                    final=i == len(widths) - 1,
                )
                for i in range(len(widths))
            ]
        )
        self.dropout = nn.Dropout(dropout)

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        return [self.input_fc, *self.blocks]

    def forward_timestamps(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features per time step ``(B, length, out_dim)``.

        Args:
            x: series ``(B, channels, length)``, NaN where absent.
            mask: optional boolean ``(B, length)``; False hides a time step (TS2Vec's
                training-time timestamp masking).
        """
        present = present_steps(x)
        h = self.input_fc(torch.nan_to_num(x, nan=0.0).transpose(1, 2))  # (B, T, hidden)
        keep = present if mask is None else present & mask
        h = h * keep[..., None].to(h.dtype)
        h = self.blocks(h.transpose(1, 2)).transpose(1, 2)
        return self.dropout(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features per series ``(B, out_dim)``: the max over present time steps."""
        return masked_max(self.forward_timestamps(x), present_steps(x))


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The transformer's fixed sine/cosine position codes ``(length, dim)``."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    scale = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * scale)
    codes[:, 1::2] = torch.cos(position * scale[: dim // 2])
    return codes


class PatchTransformer(nn.Module):
    """A transformer over patches of time steps (as in PatchTST, Nie et al. 2023, "A Time
    Series is Worth 64 Words", ICLR), for series of any length.

    Each patch of ``patch_len`` steps (all channels) is embedded linearly; fixed sinusoidal
    positions let it run on any length. Patches with no present step are ignored by attention
    and pooling. Features per time step repeat their patch's token.

    Args:
        in_channels: channels of the input series.
        patch_len: time steps per patch.
        dim: token width.
        depth: transformer layers.
        heads: attention heads.
        mlp_ratio: hidden width of the feed-forward layers over ``dim``.
        dropout: dropout inside the layers.

    Example:
        >>> net = PatchTransformer(in_channels=3, patch_len=4, dim=16, depth=1, heads=2)
        >>> net(torch.randn(2, 3, 10)).shape, net.forward_timestamps(torch.randn(2, 3, 10)).shape
        (torch.Size([2, 16]), torch.Size([2, 10, 16]))
    """

    def __init__(
        self,
        in_channels: int,
        patch_len: int = 8,
        dim: int = 128,
        depth: int = 3,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.feature_dim = dim
        self.patch_len = patch_len
        self.embed = nn.Linear(in_channels * patch_len, dim)
        self.blocks = pre_norm_transformer(dim, depth, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim)

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        return [
            self.embed,
            *self.blocks.layers[:-1],
            nn.ModuleList([self.blocks.layers[-1], self.norm]),
        ]

    def _tokens(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, t = x.shape
        present = present_steps(x)
        if mask is not None:
            present = present & mask
        pad = (-t) % self.patch_len
        x = torch.nan_to_num(x, nan=0.0) * present[:, None].to(x.dtype)
        x = F.pad(x, (0, pad))
        present = F.pad(present, (0, pad), value=False)
        n = x.shape[-1] // self.patch_len
        patches = x.reshape(b, c, n, self.patch_len).permute(0, 2, 1, 3).reshape(b, n, -1)
        patch_present = present.reshape(b, n, self.patch_len).any(dim=-1)
        tokens = self.embed(patches) + sinusoidal_positions(n, self.embed.out_features, x.device)
        # A series with no present patch keeps its first one so attention has a key.
        patch_present[:, 0] |= ~patch_present.any(dim=1)
        tokens = self.norm(self.blocks(tokens, src_key_padding_mask=~patch_present))
        return tokens, patch_present

    def forward_timestamps(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features per time step ``(B, length, dim)`` (each step gets its patch's token)."""
        tokens, _ = self._tokens(x, mask)
        return tokens.repeat_interleave(self.patch_len, dim=1)[:, : x.shape[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features per series ``(B, dim)``: the mean over patches with a present step."""
        tokens, patch_present = self._tokens(x, None)
        return masked_mean(tokens, patch_present)
