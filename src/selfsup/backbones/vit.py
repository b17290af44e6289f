"""A Vision Transformer image backbone in plain torch.

Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale", ICLR 2021 (https://arxiv.org/abs/2010.11929). The image is cut into non-overlapping
patches, each linearly embedded; a learnable cls token is prepended, a learned positional
embedding added, and the sequence goes through pre-norm transformer blocks. The feature is the
cls token after the final LayerNorm.

``forward_tokens`` can encode only a subset of the patches, as the MAE and I-JEPA encoders do:
positional embeddings are added before the subset is taken, so every kept patch still knows
where it came from.

Images of another size than ``image_size`` (multi-crop's small local views, SwAV and DINO) are
encoded too when their sides are multiples of the patch size: the learned position embedding
of the patch grid is resized bicubically to their grid, as DINO's ``interpolate_pos_encoding``
(Caron et al. 2021, https://arxiv.org/abs/2104.14294).

Example:
    >>> import torch
    >>> net = VisionTransformer(image_size=32, patch_size=4, in_channels=3, dim=48, depth=2,
    ...                         heads=3)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 48])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sincos_pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings of a ``grid`` x ``grid`` patch grid, (grid², dim).

    As in MAE's code: half of the channels encode the column and half the row, each as
    ``[sin(pos * w_k), cos(pos * w_k)]`` with frequencies ``w_k = 10000^(-k / (dim / 4))``.
    Patches are numbered row-major, like ``VisionTransformer.forward_tokens``' indices.

    Example:
        >>> sincos_pos_embed_2d(8, 3).shape
        torch.Size([9, 8])
    """
    if dim % 4 != 0:
        raise ValueError(f"sin-cos position embeddings need a dim divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    parts = []
    for pos in (cols.flatten(), rows.flatten()):
        angles = pos[:, None].double() * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


def dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (..., N, d) tensors, by the fastest kernel for the input.

    ``F.scaled_dot_product_attention`` picks a flash-attention kernel on CPU, which is fast
    in fp32 but 2-7x slower than two plain matmuls in bf16 for the short sequences (16 to 64
    tokens) of small images, backward included (measured with torch 2.13 on an AMX CPU: a
    ViT-Tiny I-JEPA step of batch 256 went from 1.2 s to 0.65 s). Low-precision CPU tensors
    therefore take the explicit matmul-softmax-matmul path; everything else the fused kernel.

    Example:
        >>> q = torch.randn(2, 3, 5, 8)
        >>> out = dot_product_attention(q.bfloat16(), q.bfloat16(), q.bfloat16())
        >>> torch.allclose(out.float(), F.scaled_dot_product_attention(q, q, q), atol=0.05)
        True
    """
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        return scores.softmax(dim=-1).to(v.dtype) @ v
    return F.scaled_dot_product_attention(q, k, v)


class Attention(nn.Module):
    """Multi-head self-attention (``dot_product_attention``).

    Args:
        dim: token size; must be divisible by ``heads``.
        heads: number of attention heads.

    Example:
        >>> import torch
        >>> Attention(dim=32, heads=4)(torch.zeros(2, 5, 32)).shape
        torch.Size([2, 5, 32])
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map tokens (B, N, dim) to tokens (B, N, dim)."""
        B, N, D = x.shape
        # (B, N, 3 * D) -> three tensors of shape (B, heads, N, D / heads).
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        out = dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """A pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    Args:
        dim: token size.
        heads: number of attention heads.
        mlp_ratio: hidden size of the MLP relative to ``dim``.

    Example:
        >>> import torch
        >>> Block(dim=32, heads=4)(torch.zeros(2, 5, 32)).shape
        torch.Size([2, 5, 32])
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map tokens (B, N, dim) to tokens (B, N, dim)."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """A ViT encoder whose feature is the final cls token, or the mean of the patch tokens.

    Args:
        image_size: side of the square images the position embedding is learned for; must be
            divisible by ``patch_size``. Other sizes work too (``forward_tokens``).
        patch_size: side of the square patches.
        in_channels: channels of the input images (1 for gray, 3 for RGB).
        dim: token size.
        depth: number of transformer blocks.
        heads: number of attention heads.
        mlp_ratio: hidden size of the MLPs relative to ``dim``.
        pool: the feature ``forward`` returns: ``"cls"``, the final cls token (ViT, DINO), or
            ``"mean"``, the average of the final patch tokens (the global pooling of MAE's
            fine-tuning and I-JEPA's linear evaluation, whose objectives never train the cls
            token).
        pool_blocks: how many of the last blocks the feature pools: each block's tokens go
            through the final LayerNorm and are pooled as ``pool`` says, and the results are
            concatenated (DINO's linear evaluation of ViTs, Caron et al. 2021, pools the last
            4 blocks). 1, the default, is the final block alone.
        pos_embed: ``"learned"`` (ViT, DeiT, DINO: a trained parameter) or ``"sincos"``
            (fixed 2-D sin-cos embeddings, a buffer that is never trained, as MAE's and
            I-JEPA's encoders: with a trained one, a masked-prediction objective can lower its
            loss by making tokens more about position and less about content).

    Attributes:
        feature_dim: size of the output vector, ``dim * pool_blocks``.
        dim: token size.
        num_patches: patches per image, ``(image_size // patch_size) ** 2``.
        patch_size: side of the square patches.

    Example:
        >>> import torch
        >>> net = VisionTransformer(image_size=28, patch_size=7, in_channels=1, dim=32,
        ...                         depth=1, heads=2)
        >>> net.num_patches, net(torch.zeros(2, 1, 28, 28)).shape
        (16, torch.Size([2, 32]))
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        pool: str = "cls",
        pool_blocks: int = 1,
        pos_embed: str = "learned",
    ) -> None:
        super().__init__()
        if pos_embed not in ("learned", "sincos"):
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {pos_embed!r}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        if not 1 <= pool_blocks <= depth:
            raise ValueError(
                f"pool_blocks must be between 1 and depth ({depth}), got {pool_blocks}"
            )
        if image_size % patch_size != 0:
            raise ValueError(
                f"image_size ({image_size}) must be divisible by patch_size ({patch_size})"
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.pool = pool
        self.pool_blocks = pool_blocks
        self.num_patches = (image_size // patch_size) ** 2
        self.dim = dim
        self.feature_dim: int = dim * pool_blocks
        # A conv with kernel = stride = patch size is the linear embedding of each patch.
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed_kind = pos_embed
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, dim))
        else:
            # Fixed, not trained; the cls token's position is 0 (MAE's and I-JEPA's code).
            grid = sincos_pos_embed_2d(dim, image_size // patch_size)
            self.register_buffer("pos_embed", F.pad(grid, (0, 0, 1, 0))[None])
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init_weights()

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        blocks: list[nn.Module] = [self.patch_embed, *self.blocks]
        blocks[-1] = nn.ModuleList([blocks[-1], self.norm])  # the last block with the norm
        return blocks

    def _init_weights(self) -> None:
        if self.pos_embed_kind == "learned":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        # Initialise the patch embedding like a linear layer on the flattened patch (as MAE).
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.dim, -1))
        nn.init.zeros_(self.patch_embed.bias)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_tokens(
        self, x: torch.Tensor, keep: torch.Tensor | None = None, last_blocks: int = 1
    ) -> torch.Tensor:
        """Encode images and return every output token, cls token first.

        Args:
            x: images (B, in_channels, H, W), H and W multiples of ``patch_size``; the native
                ``image_size`` uses the position embedding as learned, other sizes an
                interpolation of it (``patch_positions``).
            keep: optional (B, n_keep) integer tensor of patch indices (row-major, in
                ``[0, num_patches)``) to encode; the other patches are dropped before the
                transformer. None encodes all patches. Native-size images only.
            last_blocks: return the tokens of the last this many blocks, each through the
                final LayerNorm, concatenated along the token size (input to output order).

        Returns:
            Tokens after the final LayerNorm, (B, 1 + n_keep, dim), or (B, 1 + patches, dim)
            when ``keep`` is None; token 0 is the cls token and the others follow the order of
            ``keep``.

        Raises:
            ValueError: a side is not a multiple of the patch size, or ``keep`` is given for
                images of another size than ``image_size``.

        Example:
            >>> import torch
            >>> net = VisionTransformer(image_size=16, patch_size=4, in_channels=1, dim=8,
            ...                         depth=1, heads=2)
            >>> keep = torch.tensor([[0, 5, 9], [15, 1, 2]])
            >>> net.forward_tokens(torch.zeros(2, 1, 16, 16), keep).shape
            torch.Size([2, 4, 8])
        """
        height, width = x.shape[-2:]
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"expected images whose sides are multiples of the patch size {p} (native "
                f"{self.image_size}x{self.image_size}), got {height}x{width}"
            )
        native = (height, width) == (self.image_size, self.image_size)
        if keep is not None and not native:
            raise ValueError(
                f"keep works on native {self.image_size}x{self.image_size} images only, got "
                f"{height}x{width}"
            )
        pos = self.pos_embed[:, 1:] if native else self.patch_positions(height // p, width // p)
        patches = self.patch_embed(x).flatten(2).transpose(1, 2) + pos
        if keep is not None:
            index = keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1])
            patches = torch.gather(patches, 1, index)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(patches.shape[0], -1, -1)
        tokens = torch.cat([cls, patches], dim=1)
        if last_blocks == 1:
            return self.norm(self.blocks(tokens))
        outputs = []
        for block in self.blocks:
            tokens = block(tokens)
            outputs.append(tokens)
        return torch.cat([self.norm(t) for t in outputs[-last_blocks:]], dim=-1)

    def patch_positions(self, rows: int, columns: int) -> torch.Tensor:
        """The patch position embedding resized to a ``rows`` x ``columns`` grid, (1, rows *
        columns, dim), row-major.

        Bicubic interpolation of the learned native grid, as DINO's ``interpolate_pos_encoding``
        (which passes a scale factor of about ``new / native``; this asks for the target grid
        directly). The cls token's position embedding is used as it is at every size.

        Example:
            >>> net = VisionTransformer(image_size=16, patch_size=4, in_channels=1, dim=8,
            ...                         depth=1, heads=2)
            >>> net.patch_positions(2, 3).shape
            torch.Size([1, 6, 8])
        """
        grid = self.image_size // self.patch_size
        native = self.pos_embed[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        resized = F.interpolate(
            native.float(), size=(rows, columns), mode="bicubic", align_corners=False
        )
        return resized.to(native.dtype).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (B, in_channels, H, W) to features (B, feature_dim) as ``pool`` and
        ``pool_blocks`` say; see ``forward_tokens``.

        Example:
            >>> import torch
            >>> net = VisionTransformer(16, 4, 1, dim=8, depth=1, heads=2, pool="mean")
            >>> x = torch.rand(2, 1, 16, 16)
            >>> torch.allclose(net(x), net.forward_tokens(x)[:, 1:].mean(dim=1))
            True
        """
        tokens = self.forward_tokens(x, last_blocks=self.pool_blocks)
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)


#: Size presets of the DeiT paper (Touvron et al., 2021, https://arxiv.org/abs/2012.12877),
#: as keyword arguments of ``VisionTransformer``.
VIT_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"dim": 192, "depth": 12, "heads": 3},
    "small": {"dim": 384, "depth": 12, "heads": 6},
}
