"""MAE: mask most patches of an image, encode the rest, reconstruct the missing pixels.

He et al. "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022.
https://arxiv.org/abs/2111.06377

A random ``mask_ratio`` (75%) of each image's patches is dropped (Sec. 3, "Masking"); the ViT
encoder sees only the visible patches; a light transformer decoder receives the encoded visible
patches plus a shared learned mask token at every masked position, all with fixed 2-D sin-cos
position embeddings, and predicts each patch's pixels. The loss is the mean squared error on the
masked patches only, against targets normalized by each patch's own mean and variance
(``norm_pix_loss``, Sec. 3 "Reconstruction target" and Table 1d):

    L = 1 / |M| * sum_{i in M} mean_k (pred_ik - (x_ik - mean_i) / sqrt(var_i + 1e-6))^2

where M is the set of masked patches and k runs over a patch's pixels. The encoder keeps the
cls token the ViT prepends; the representation used downstream is ``encoder(x)``, that cls token.
Every image has the same number of masked patches, so the loss is a mean over images and two
DDP processes of B train as one of 2B (with the same masks; each process draws its own).
MAE's encoder has fixed sin-cos position embeddings too: build the ViT with
``backbone_options={"pos_embed": "sincos"}`` for the paper's encoder (the default ViT learns its
own, as ViT and DINO do).

Example:
    >>> import torch
    >>> patchify(torch.arange(16.0).view(1, 1, 4, 4), patch_size=2)[0, 1]
    tensor([2., 3., 6., 7.])
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from selfsup.backbones.vit import Block, VisionTransformer, sincos_pos_embed_2d
from selfsup.encoder import Encoder
from selfsup.methods.base import Method


def vit_backbone(encoder: Encoder, method: str) -> VisionTransformer:
    """The encoder's ViT, or a ValueError naming ``method``: masked objectives drop patches.

    Example:
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=12, width=4)
        >>> vit_backbone(enc, "MAE")
        Traceback (most recent call last):
        ...
        ValueError: MAE needs a ViT backbone (e.g. --backbone vit-tiny), got SmallCNN
    """
    if not isinstance(encoder.backbone, VisionTransformer):
        raise ValueError(
            f"{method} needs a ViT backbone (e.g. --backbone vit-tiny), got "
            f"{type(encoder.backbone).__name__}"
        )
    return encoder.backbone


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images (B, C, H, W) into flattened patches (B, N, patch_size² * C), row-major.

    Patch ``i * (W / p) + j`` is the square at row ``i``, column ``j``; its pixels are ordered
    (row, column, channel), as MAE's ``patchify``.

    Example:
        >>> patchify(torch.zeros(2, 3, 8, 8), patch_size=4).shape
        torch.Size([2, 4, 48])
    """
    b, c, h, w = images.shape
    p = patch_size
    if h % p != 0 or w % p != 0:
        raise ValueError(f"{h}x{w} images do not divide into {p}x{p} patches")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def visible_count(num_patches: int, mask_ratio: float) -> int:
    """How many of ``num_patches`` stay visible: ``round((1 - mask_ratio) * num_patches)``.

    Raises:
        ValueError: that leaves no visible or no masked patch.

    Example:
        >>> visible_count(49, 0.75)
        12
    """
    n_keep = round((1 - mask_ratio) * num_patches)
    if not 0 < n_keep < num_patches:
        raise ValueError(
            f"mask_ratio {mask_ratio} keeps {n_keep} of {num_patches} patches; MAE needs at "
            "least one visible and one masked patch"
        )
    return n_keep


def random_masking(
    batch_size: int,
    num_patches: int,
    mask_ratio: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample uniform random masking (MAE Sec. 3): which patches each image keeps.

    Args:
        batch_size: number of images B.
        num_patches: patches per image N.
        mask_ratio: fraction of patches to drop; ``round((1 - mask_ratio) * N)`` are kept.
        device: where to create the tensors.
        generator: optional random generator (on ``device``).

    Returns:
        ``keep``: (B, n_keep) indices of the visible patches, in random order;
        ``mask``: (B, N) bool, True where a patch is masked (to be reconstructed).

    Example:
        >>> keep, mask = random_masking(2, 16, 0.75)
        >>> keep.shape, mask.sum(dim=1).tolist()
        (torch.Size([2, 4]), [12, 12])
    """
    n_keep = visible_count(num_patches, mask_ratio)
    noise = torch.rand(batch_size, num_patches, device=device, generator=generator)
    keep = noise.argsort(dim=1)[:, :n_keep]
    mask = torch.ones(batch_size, num_patches, dtype=torch.bool, device=device)
    return keep, mask.scatter(1, keep, False)


def mae_loss(
    pred: torch.Tensor, target_patches: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True
) -> torch.Tensor:
    """Mean squared error on the masked patches only (MAE Sec. 3).

    Args:
        pred: predicted pixels (B, N, P).
        target_patches: true pixels (B, N, P), e.g. from ``patchify``.
        mask: (B, N), 1 (True) where a patch was masked; visible patches do not count.
        norm_pix: normalize each target patch by its own mean and (unbiased) variance, as
            MAE's ``norm_pix_loss``. Patches of a single value (one gray pixel, as a ViT on
            8-pixel images has) have no variance and are left as they are.

    Example:
        >>> pred, target = torch.zeros(1, 2, 2), torch.tensor([[[1.0, 1.0], [3.0, 3.0]]])
        >>> float(mae_loss(pred, target, torch.tensor([[0, 1]]), norm_pix=False))
        9.0
    """
    target = target_patches.float()
    if norm_pix and target.shape[-1] > 1:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    per_patch = ((pred.float() - target) ** 2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum()


class MAE(Method):
    """MAE: a ViT encoder on the visible patches and a light decoder reconstructing pixels.

    Args:
        encoder: an encoder whose backbone is a ``VisionTransformer``, kept after training.
        mask_ratio: fraction of each image's patches hidden from the encoder.
        decoder_dim: token size of the decoder (divisible by 4 and by ``decoder_heads``).
        decoder_depth: number of decoder transformer blocks.
        decoder_heads: attention heads of the decoder.
        norm_pix_loss: reconstruct per-patch normalized pixels (the paper's default).

    Raises:
        ValueError: the backbone is not a ViT.
    """

    name = "mae"
    paper = "He et al. 2022, https://arxiv.org/abs/2111.06377"
    view_recipes: ClassVar[dict[str, str]] = {"image": "masked"}
    backbones: ClassVar[dict[str, str]] = {"image": "vit-tiny"}
    num_views = 1
    modalities = ("image",)

    def __init__(
        self,
        encoder: Encoder,
        mask_ratio: float = 0.75,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__(encoder)
        vit = vit_backbone(encoder, "MAE")
        visible_count(vit.num_patches, mask_ratio)  # fail now, not at the first step
        grid = vit.image_size // vit.patch_size
        pixels_per_patch = vit.patch_size**2 * vit.patch_embed.in_channels
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.decoder_embed = nn.Linear(vit.dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        # Fixed, not learned (as MAE's code); derived from the grid, so not saved.
        self.register_buffer(
            "decoder_pos_embed", sincos_pos_embed_2d(decoder_dim, grid)[None], persistent=False
        )
        self.decoder_blocks = nn.Sequential(
            *(Block(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, pixels_per_patch)
        self._options = {
            "mask_ratio": mask_ratio,
            "decoder_dim": decoder_dim,
            "decoder_depth": decoder_depth,
            "decoder_heads": decoder_heads,
            "norm_pix_loss": norm_pix_loss,
        }

    def decode(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Predict every patch's pixels (B, N, P) from the encoder's tokens (B, 1 + n_keep, D).

        Visible tokens go back to their positions and a mask token fills every other one; the
        cls token stays first, without a position embedding (MAE gives it a zero one).
        """
        x = self.decoder_embed(tokens)
        b, _, dim = x.shape
        full = self.mask_token.to(x.dtype).expand(b, self.decoder_pos_embed.shape[1], dim)
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, dim), x[:, 1:])
        x = torch.cat([x[:, :1], full + self.decoder_pos_embed], dim=1)
        x = self.decoder_norm(self.decoder_blocks(x))
        return self.decoder_pred(x[:, 1:])

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        vit = self.encoder.backbone
        images = (views[0] - self.encoder.mean) / self.encoder.std
        keep, mask = random_masking(
            images.shape[0], vit.num_patches, self.mask_ratio, device=images.device
        )
        pred = self.decode(vit.forward_tokens(images, keep), keep)
        return mae_loss(pred, patchify(images, vit.patch_size), mask, self.norm_pix_loss)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
