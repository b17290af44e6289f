"""Tiny synthetic series: classes differ in the frequency of a noisy sine wave."""

import numpy as np
import pytest


def make_waves(
    n_per_class: int = 32, classes: int = 3, length: int = 48, channels: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(n, channels, length) float32 series and their labels."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    series, labels = [], []
    for c in range(classes):
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * (2 + 3 * c) * t + phase)
            noisy = wave[None] * rng.uniform(0.8, 1.2, (channels, 1))
            series.append(noisy + rng.normal(0, 0.2, (channels, length)))
            labels.append(c)
    order = rng.permutation(len(series))
    return np.asarray(series, dtype=np.float32)[order], np.asarray(labels)[order]


@pytest.fixture
def waves() -> tuple[np.ndarray, np.ndarray]:
    return make_waves()


def write_ts(path, series, labels, classes) -> None:
    """Write series (list of (channels, length)) as a labelled .ts file."""
    lines = [
        "# synthetic",
        "@problemName waves",
        "@timeStamps false",
        f"@univariate {'true' if series[0].shape[0] == 1 else 'false'}",
        "@equalLength false",
        f"@classLabel true {' '.join(classes)}",
        "@data",
    ]
    for s, y in zip(series, labels, strict=True):
        channels = [",".join("?" if np.isnan(v) else f"{v:.5f}" for v in row) for row in s]
        lines.append(":".join(channels) + f":{classes[y]}")
    path.write_text("\n".join(lines) + "\n")
