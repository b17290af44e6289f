"""Splits: the held-out part the training monitor measures."""

import numpy as np

from selfsup.data.arrays import ArraySource
from selfsup.data.splits import hold_out


def test_hold_out_is_disjoint_repeatable_and_capped_at_a_tenth() -> None:
    source = ArraySource(np.zeros((500, 4, 4), dtype=np.uint8), labels=np.arange(500) % 5)
    rest, held = hold_out(source, items=2048, seed=3)
    assert len(held) == 50 and len(rest) == 450  # capped at a tenth
    assert not set(held.indices) & set(rest.indices)
    assert list(hold_out(source, items=2048, seed=3)[1].indices) == list(held.indices)
    assert list(held.labels) == list(source.labels[held.indices])
    assert hold_out(ArraySource(np.zeros((100, 4, 4), dtype=np.uint8)), 64)[1] is None
