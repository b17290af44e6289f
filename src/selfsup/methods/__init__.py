"""Self-supervised objectives, one per file, registered by their ``--method`` id.

Example:
    >>> sorted(METHODS)  # doctest: +NORMALIZE_WHITESPACE
    ['barlowtwins', 'byol', 'byola', 'dino', 'distill', 'ijepa', 'mae', 'mlm', 'mocov3',
     'msf', 'nnclr', 'scarf', 'sent2vec', 'simclr', 'simcse', 'simsiam', 'swav', 'ts2vec', 'vicreg',
     'vime']
"""

from __future__ import annotations

from typing import Any

from selfsup.core.options import check_options
from selfsup.encoder import Encoder
from selfsup.methods.barlowtwins import BarlowTwins, barlow_twins_loss
from selfsup.methods.base import Method
from selfsup.methods.byol import BYOL, byol_loss
from selfsup.methods.byola import BYOLA
from selfsup.methods.dino import DINO, dino_loss
from selfsup.methods.distill import Distill, distill_loss
from selfsup.methods.ijepa import IJEPA, ijepa_loss
from selfsup.methods.mae import MAE, mae_loss
from selfsup.methods.mlm import MLM, mlm_loss
from selfsup.methods.mocov3 import MoCoV3, mocov3_loss
from selfsup.methods.msf import MeanShift, mean_shift_targets
from selfsup.methods.nnclr import NNCLR, nnclr_loss
from selfsup.methods.scarf import SCARF, scarf_loss
from selfsup.methods.sent2vec import Sent2Vec, sent2vec_loss
from selfsup.methods.simclr import SimCLR, nt_xent_loss
from selfsup.methods.simcse import SimCSE, simcse_loss
from selfsup.methods.simsiam import SimSiam, simsiam_loss
from selfsup.methods.swav import SwAV, sinkhorn_knopp, swapped_prediction_loss
from selfsup.methods.ts2vec import TS2Vec, hierarchical_contrastive_loss
from selfsup.methods.vicreg import VICReg, vicreg_loss
from selfsup.methods.vime import VIME, vime_loss

METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (
        SimCLR,
        BYOL,
        VICReg,
        BarlowTwins,
        MoCoV3,
        SimSiam,
        NNCLR,
        MAE,
        IJEPA,
        SwAV,
        DINO,
        TS2Vec,
        SCARF,
        VIME,
        BYOLA,
        SimCSE,
        MLM,
        Sent2Vec,
        Distill,
        MeanShift,
    )
}


def build_method(name: str, encoder: Encoder, **options: Any) -> Method:
    """Build the method ``name`` around ``encoder`` with its hyperparameter ``options``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    check_options(f"{name} method", METHODS[name], options, skip=("encoder",))
    return METHODS[name](encoder, **options)


__all__ = [
    "BYOL",
    "BYOLA",
    "DINO",
    "IJEPA",
    "MAE",
    "METHODS",
    "MLM",
    "NNCLR",
    "SCARF",
    "VIME",
    "BarlowTwins",
    "Distill",
    "MeanShift",
    "Method",
    "MoCoV3",
    "Sent2Vec",
    "SimCLR",
    "SimCSE",
    "SimSiam",
    "SwAV",
    "TS2Vec",
    "VICReg",
    "barlow_twins_loss",
    "build_method",
    "byol_loss",
    "dino_loss",
    "distill_loss",
    "hierarchical_contrastive_loss",
    "ijepa_loss",
    "mae_loss",
    "mean_shift_targets",
    "mlm_loss",
    "mocov3_loss",
    "nnclr_loss",
    "nt_xent_loss",
    "scarf_loss",
    "sent2vec_loss",
    "simcse_loss",
    "simsiam_loss",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
    "vicreg_loss",
    "vime_loss",
]
