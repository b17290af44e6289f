"""Shared fixtures: tiny synthetic image data that a small CNN can learn from in seconds."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# Tiny tests run fastest on one thread, and subprocesses (DDP, the killed run) inherit this, so
# two processes do not oversubscribe two cores; the resumed-run test relies on equal threads.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


def make_clusters(n_per_class: int = 64, classes: int = 4, size: int = 12, seed: int = 0):
    """Gray images of ``classes`` shapes (bars at different places) plus noise, with labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(classes):
        base = np.zeros((size, size), dtype=np.float32)
        if c % 2 == 0:
            base[:, (c * size) // (2 * classes) : (c * size) // (2 * classes) + size // 4] = 1.0
        else:
            base[(c * size) // (2 * classes) : (c * size) // (2 * classes) + size // 4, :] = 1.0
        for _ in range(n_per_class):
            noisy = np.clip(base * rng.uniform(0.6, 1.0) + rng.normal(0, 0.15, base.shape), 0, 1)
            images.append((noisy * 255).astype(np.uint8))
            labels.append(c)
    order = rng.permutation(len(images))
    return np.stack(images)[order], np.array(labels)[order]


@pytest.fixture
def clusters_npz(tmp_path: Path) -> Path:
    """A .npz of 256 labelled 12x12 gray images in 4 classes."""
    x, y = make_clusters()
    path = tmp_path / "clusters.npz"
    np.savez(path, X=x, y=y)
    return path


@pytest.fixture(scope="module")
def clusters_npz_module(tmp_path_factory) -> Path:
    """``clusters_npz``, made once for a module (for runs several tests share)."""
    x, y = make_clusters()
    path = tmp_path_factory.mktemp("clusters") / "clusters.npz"
    np.savez(path, X=x, y=y)
    return path


@pytest.fixture
def folder_with_corrupt_image(tmp_path: Path) -> Path:
    """A folder of 40 small PNGs in two class folders and one corrupt ``dogs/broken.png``."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i:02d}.png")
    (tmp_path / "images" / "dogs" / "broken.png").write_bytes(b"\x89PNG not really")
    return tmp_path / "images"
