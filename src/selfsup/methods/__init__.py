"""Self-supervised objectives, one per file, registered by their ``--method`` id.

Example:
    >>> sorted(METHODS)
    ['barlowtwins', 'byol', 'simclr', 'vicreg']
"""

from __future__ import annotations

from typing import Any

from selfsup.encoder import Encoder
from selfsup.methods.barlowtwins import BarlowTwins, barlow_twins_loss
from selfsup.methods.base import Method
from selfsup.methods.byol import BYOL, byol_loss
from selfsup.methods.simclr import SimCLR, nt_xent_loss
from selfsup.methods.vicreg import VICReg, vicreg_loss

METHODS: dict[str, type[Method]] = {m.name: m for m in (SimCLR, BYOL, VICReg, BarlowTwins)}


def build_method(name: str, encoder: Encoder, **options: Any) -> Method:
    """Build the method ``name`` around ``encoder`` with its hyperparameter ``options``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name](encoder, **options)


__all__ = [
    "BYOL",
    "METHODS",
    "BarlowTwins",
    "Method",
    "SimCLR",
    "VICReg",
    "barlow_twins_loss",
    "build_method",
    "byol_loss",
    "nt_xent_loss",
    "vicreg_loss",
]
