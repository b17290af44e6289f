"""MAE and I-JEPA train on one block's tokens whatever the ViT's feature pooling."""

import torch

from selfsup.methods import METHODS
from selfsup.modalities.image import build_image_encoder


def test_mae_and_ijepa_train_a_vit_that_pools_several_blocks() -> None:
    for name in ("mae", "ijepa"):
        torch.manual_seed(0)
        encoder = build_image_encoder(
            "vit-tiny", in_channels=1, image_size=16, patch_size=4, dim=16, depth=3,
            heads=2, pool="mean", pool_blocks=2,
        )  # fmt: skip
        assert encoder.feature_dim == 32
        method = METHODS[name](encoder)
        x = torch.rand(4, 1, 16, 16)
        method([x, x]).backward()
        assert encoder.backbone.patch_embed.weight.grad.abs().sum() > 0
        assert encoder(x).shape == (4, 32)
