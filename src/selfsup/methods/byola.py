"""BYOL-A: BYOL for audio, on log-mel spectrograms with mixup and random resize crops.

Niizumi, Takeuchi, Ohishi, Harada and Kashino, "BYOL for Audio: Self-Supervised Learning for
General-Purpose Audio Representation", IJCNN 2021. https://arxiv.org/abs/2103.06695

The objective is BYOL's (Grill et al. 2020, Eq. 2, symmetrized): ``2 - 2 cos(q(z), z')``
between the online prediction of one view and the momentum target's projection of the other,
with the target following the online network by EMA (``selfsup.methods.byol``). What BYOL-A
adds is the input and the views: two views of the same clip's log-mel, each made by
log-mixup-exp with another clip (ratio 0.4) and a random resize crop (``byola`` recipe of
``selfsup.views.audio``), no other audio in the clip's positive pair; the encoder is the
AudioNTT2020 CNN (``byola-cnn``) with a 256-d projection through a 4096-unit MLP and EMA
decay 0.99 (the paper's section 4.1).

The loss is a mean of per-clip terms and mixup is part of the views, so under DDP two
processes of B clips train as one of 2B (``tests/methods/test_ddp_equivalence.py``).

Example:
    >>> import torch
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.modalities.audio import build_audio_encoder
    >>> encoder = build_audio_encoder("byola-cnn", 64, 96, feature_dim=32, width=8)
    >>> method = BYOLA(encoder, projection_dim=16, hidden_dim=32)
    >>> loss = method([torch.randn(4, 1, 64, 96), torch.randn(4, 1, 64, 96)])
    >>> loss.ndim, 0.0 <= loss.item() <= 8.0
    (0, True)
"""

from __future__ import annotations

from typing import ClassVar

from selfsup.encoder import Encoder
from selfsup.methods.byol import BYOL


class BYOLA(BYOL):
    """BYOL on audio with BYOL-A's views and head sizes; the loss and EMA are BYOL's.

    Args:
        encoder: the online network, kept after training (an audio encoder).
        projection_dim: output size of projector and predictor (BYOL-A: 256).
        hidden_dim: hidden size of projector and predictor (BYOL-A: 4096).
        base_momentum: EMA momentum of the target at the start of training (BYOL-A: 0.99).
    """

    name = "byola"
    paper = "Niizumi et al. 2021, https://arxiv.org/abs/2103.06695"
    modalities: ClassVar[tuple[str, ...]] = ("audio",)
    view_recipes: ClassVar[dict[str, str]] = {"audio": "byola"}

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 256,
        hidden_dim: int = 4096,
        base_momentum: float = 0.99,
    ) -> None:
        super().__init__(encoder, projection_dim, hidden_dim, base_momentum)
