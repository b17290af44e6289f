"""I-JEPA: from one context block of an image, predict the representations of target blocks.

Assran et al. "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023. https://arxiv.org/abs/2301.08243

A target encoder, the EMA of the context encoder, encodes the full image; its patch tokens,
layer-normalized, are the targets s_y. M = 4 target blocks B_i (scale 0.15-0.2 of the patch
grid, aspect ratio 0.75-1.5) and one context block (scale 0.85-1.0) are sampled, and the target
patches are removed from the context (Sec. 3, Fig. 4). The context encoder (the online ViT)
encodes only the context patches; a narrow transformer predictor gets its tokens plus one mask
token per target patch, carrying that patch's position embedding, and predicts s_y there.
Eq. (1), with the paper's L2 distance:

    L = 1 / M * sum_i sum_{j in B_i} || s_hat_y(j) - s_y(j) ||_2^2

computed here as the mean over blocks, patches, batch and channels, i.e. Eq. (1) divided by
the constant |B_i| * D (all blocks of a batch share one size). The official code uses a smooth
L1 loss instead. Only the context encoder and predictor get gradients; the target follows by
EMA with momentum rising from 0.996 to 1.

Masks are sampled once per batch and shared by its images (the official collator samples the
block sizes once per batch but positions per image, then truncates every context to the
shortest one); sharing keeps every context whole and the tensors rectangular without
truncation. Each DDP process draws its own masks.

The ViT here keeps its cls token (the official I-JEPA ViT has none): it is encoded with the
context and passed to the predictor, so the feature used downstream, ``encoder(x)``, takes part
in the prediction. The official encoders have fixed 2-D sin-cos position embeddings: build the
ViT with ``backbone_options={"pos_embed": "sincos"}`` for them. A learned position embedding lets
the encoder make every token more about its position and less about its content, which the
predictor can then match from the mask tokens' positions alone; in 3-minute Fashion-MNIST runs
its features fell below a random ViT's, while with sin-cos they stayed at that level.

Example:
    >>> context, targets = sample_block_masks(7, torch.Generator().manual_seed(0))
    >>> targets.shape[0], bool(set(context.tolist()) & set(targets.flatten().tolist()))
    (4, False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones.vit import Block, sincos_pos_embed_2d
from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.mae import vit_backbone
from selfsup.methods.momentum import cosine_momentum, ema_update, momentum_copy


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand(1, generator=generator).item()


def _block_size(
    grid: int, scale: Sequence[float], aspect_ratio: Sequence[float], generator: torch.Generator
) -> tuple[int, int]:
    """A block's (height, width) in patches: area ``scale * grid²``, height / width ``ratio``."""
    area = _uniform(scale[0], scale[1], generator) * grid * grid
    ratio = _uniform(aspect_ratio[0], aspect_ratio[1], generator)
    height = min(max(round(math.sqrt(area * ratio)), 1), grid)
    width = min(max(round(math.sqrt(area / ratio)), 1), grid)
    return height, width


def _place_block(
    grid: int, height: int, width: int, generator: torch.Generator | None
) -> torch.Tensor:
    """A (grid, grid) bool mask of one block at a uniformly random position inside the grid."""
    top = int(torch.randint(grid - height + 1, (1,), generator=generator))
    left = int(torch.randint(grid - width + 1, (1,), generator=generator))
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    mask[top : top + height, left : left + width] = True
    return mask


def sample_block_masks(
    grid: int,
    generator: torch.Generator | None = None,
    num_targets: int = 4,
    target_scale: Sequence[float] = (0.15, 0.2),
    target_aspect_ratio: Sequence[float] = (0.75, 1.5),
    context_scale: Sequence[float] = (0.85, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """I-JEPA's multi-block masks on a ``grid`` x ``grid`` patch grid (patches row-major).

    The target size is drawn once and shared by the ``num_targets`` blocks (as the official
    collator); each block then gets its own position. The context block is square (aspect
    ratio 1, as in the paper) and loses every target patch. Blocks are at least 1x1; targets
    are shrunk until together they cannot cover the grid, and if the context block happens to
    be covered anyway the context becomes every non-target patch, so it is never empty.

    Args:
        grid: patches per side.
        generator: the random generator (CPU); None uses torch's global one.
        num_targets: M, the number of target blocks.
        target_scale: range of a target block's area, as a fraction of the grid.
        target_aspect_ratio: range of a target block's height / width.
        context_scale: range of the context block's area, as a fraction of the grid.

    Returns:
        ``context``: (n_context,) sorted patch indices, disjoint from the targets;
        ``targets``: (num_targets, block_height * block_width) patch indices of each block.

    Raises:
        ValueError: the grid has no more patches than ``num_targets``.

    Example:
        >>> context, targets = sample_block_masks(3, torch.Generator().manual_seed(0))
        >>> len(context) > 0, targets.shape[0]
        (True, 4)
    """
    if grid * grid <= num_targets:
        raise ValueError(f"a {grid}x{grid} patch grid is too small for {num_targets} targets")
    height, width = _block_size(grid, target_scale, target_aspect_ratio, generator)
    while num_targets * height * width >= grid * grid:
        if height >= width:
            height -= 1
        else:
            width -= 1
    blocks = [_place_block(grid, height, width, generator) for _ in range(num_targets)]
    covered = torch.stack(blocks).any(dim=0)
    side, _ = _block_size(grid, context_scale, (1.0, 1.0), generator)
    context = _place_block(grid, side, side, generator) & ~covered
    if not context.any():
        context = ~covered
    targets = torch.stack([b.flatten().nonzero().squeeze(1) for b in blocks])
    return context.flatten().nonzero().squeeze(1), targets


def ijepa_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between predicted and target tokens, averaged over all entries.

    Args:
        predictions: predicted tokens, e.g. (B, M, T, D) for M target blocks of T patches.
        targets: the target encoder's layer-normalized tokens, same shape.

    Example:
        >>> float(ijepa_loss(torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 1.0], [3.0, 1.0]]]])))
        3.0
    """
    return F.mse_loss(predictions.float(), targets.float())


class Predictor(nn.Module):
    """I-JEPA's narrow ViT predictor: context tokens plus positional mask tokens in, targets out.

    Each target block gets its own sequence (the context followed by its mask tokens), so the
    blocks do not see each other, as in the official predictor. Position embeddings are fixed
    2-D sin-cos (as the official code); the cls token gets none.

    Args:
        dim: token size of the encoders (input and output).
        predictor_dim: token size inside the predictor (divisible by 4 and by ``heads``).
        depth: number of transformer blocks.
        heads: attention heads.
        grid: patches per side of the image.

    Example:
        >>> net = Predictor(dim=16, predictor_dim=8, depth=1, heads=2, grid=3)
        >>> tokens = torch.zeros(2, 1 + 4, 16)  # cls + 4 context patches
        >>> net(tokens, torch.tensor([0, 1, 2, 3]), torch.tensor([[4, 5], [7, 8]])).shape
        torch.Size([2, 2, 2, 16])
    """

    def __init__(self, dim: int, predictor_dim: int, depth: int, heads: int, grid: int) -> None:
        super().__init__()
        self.embed = nn.Linear(dim, predictor_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(predictor_dim, grid), persistent=False
        )
        self.blocks = nn.Sequential(*(Block(predictor_dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(predictor_dim, eps=1e-6)
        self.proj = nn.Linear(predictor_dim, dim)

    def forward(
        self, tokens: torch.Tensor, context: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Predict (B, M, T, dim) from the context encoder's tokens.

        Args:
            tokens: (B, 1 + n_context, dim), the cls token then the context patches.
            context: (n_context,) patch indices of the context tokens.
            targets: (M, T) patch indices of the target blocks.
        """
        b = tokens.shape[0]
        m, t = targets.shape
        x = self.embed(tokens)
        x = torch.cat([x[:, :1], x[:, 1:] + self.pos_embed[context]], dim=1)
        # Sequence b * M + i holds image b's context and the mask tokens of its block i.
        queries = (self.mask_token + self.pos_embed[targets]).repeat(b, 1, 1)
        x = torch.cat([x.repeat_interleave(m, dim=0), queries], dim=1)
        x = self.norm(self.blocks(x))
        return self.proj(x[:, -t:]).view(b, m, t, -1)


class IJEPA(Method):
    """I-JEPA: context encoder (kept) + predictor, EMA target encoder on the full image.

    Args:
        encoder: an encoder whose backbone is a ``VisionTransformer``, kept after training.
        num_targets: M, target blocks per image.
        target_scale: range of a target block's area, as a fraction of the patch grid.
        target_aspect_ratio: range of a target block's height / width.
        context_scale: range of the context block's area, as a fraction of the patch grid.
        predictor_dim: token size inside the predictor (divisible by 4 and by
            ``predictor_heads``).
        predictor_depth: number of predictor transformer blocks.
        predictor_heads: attention heads of the predictor.
        base_momentum: EMA momentum of the target encoder at the start of training.

    Raises:
        ValueError: the backbone is not a ViT, or its patch grid is too small for the targets.
    """

    name = "ijepa"
    paper = "Assran et al. 2023, https://arxiv.org/abs/2301.08243"
    view_recipe = "masked"
    num_views = 1
    modalities = ("image",)

    def __init__(
        self,
        encoder: Encoder,
        num_targets: int = 4,
        target_scale: Sequence[float] = (0.15, 0.2),
        target_aspect_ratio: Sequence[float] = (0.75, 1.5),
        context_scale: Sequence[float] = (0.85, 1.0),
        predictor_dim: int = 96,
        predictor_depth: int = 3,
        predictor_heads: int = 4,
        base_momentum: float = 0.996,
    ) -> None:
        super().__init__(encoder)
        vit = vit_backbone(encoder, "I-JEPA")
        self.grid = vit.image_size // vit.patch_size
        self.mask_options = {
            "num_targets": num_targets,
            "target_scale": tuple(target_scale),
            "target_aspect_ratio": tuple(target_aspect_ratio),
            "context_scale": tuple(context_scale),
        }
        # Fail now, not at the first step, if the grid is too small for the targets.
        sample_block_masks(self.grid, torch.Generator(), **self.mask_options)
        self.target = momentum_copy(encoder)
        self.predictor = Predictor(
            vit.dim, predictor_dim, predictor_depth, predictor_heads, self.grid
        )
        self.base_momentum = base_momentum
        self._options = {
            **self.mask_options,
            "predictor_dim": predictor_dim,
            "predictor_depth": predictor_depth,
            "predictor_heads": predictor_heads,
            "base_momentum": base_momentum,
        }

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        images = (views[0] - self.encoder.mean) / self.encoder.std
        context, targets = sample_block_masks(self.grid, **self.mask_options)
        context, targets = context.to(images.device), targets.to(images.device)
        with torch.no_grad():
            # The target encoder sees every patch; its patch tokens (not cls) are normalized.
            s_y = self.target.backbone.forward_tokens(images)[:, 1:]
            s_y = F.layer_norm(s_y, s_y.shape[-1:])[:, targets]
        keep = context.expand(images.shape[0], -1)
        s_x = self.encoder.backbone.forward_tokens(images, keep)
        return ijepa_loss(self.predictor(s_x, context, targets), s_y)

    def on_step_end(self, progress: float) -> None:
        ema_update(self.target, self.encoder, cosine_momentum(progress, self.base_momentum))

    def export_encoder(self) -> Encoder:
        """The target encoder, which the paper evaluates (Section 5)."""
        return self.target

    def options(self) -> dict[str, Any]:
        return dict(self._options)
