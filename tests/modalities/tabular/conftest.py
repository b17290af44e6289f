"""Tiny synthetic tables: the class shows in two numeric columns and a categorical one."""

import numpy as np
import pandas as pd


def make_table(n: int = 240, seed: int = 0, missing: float = 0.05) -> pd.DataFrame:
    """Three classes; numeric columns a, b, noise; categorical color; label column y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    xy = centers[y] + rng.normal(0, 0.7, (n, 2))
    colors = np.array(["red", "green", "blue"])[
        np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, n))
    ]
    frame = pd.DataFrame(
        {
            "a": xy[:, 0] * 100,
            "b": xy[:, 1],
            "noise": rng.normal(0, 1, n),
            "color": colors,
            "y": np.array(["x", "y", "z"])[y],
        }
    )
    holes = rng.random((n, 2)) < missing
    frame.loc[holes[:, 0], "a"] = np.nan
    frame.loc[holes[:, 1], "color"] = None
    return frame
