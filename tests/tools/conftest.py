"""A tiny image run on the clustered test images, shared by the tools' tests."""

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import make_clusters

from selfsup.run import pretrain


@pytest.fixture(scope="package")
def clusters_data(tmp_path_factory) -> tuple[Path, Path]:
    """Train and test .npz files of 12x12 gray images in 4 classes (64 and 16 per class)."""
    folder = tmp_path_factory.mktemp("clusters")
    x, y = make_clusters(n_per_class=64, seed=0)
    xt, yt = make_clusters(n_per_class=16, seed=1)
    np.savez(folder / "train.npz", X=x, y=y)
    np.savez(folder / "test.npz", X=xt, y=yt)
    return folder / "train.npz", folder / "test.npz"


@pytest.fixture(scope="package")
def clusters_run(tmp_path_factory, clusters_data):
    """A small-cnn SimCLR run of two epochs on the train images."""
    out = tmp_path_factory.mktemp("runs") / "clusters"
    return pretrain(str(clusters_data[0]), epochs=2, batch_size=64, out=str(out),
                    backbone_options={"width": 4}, monitor_items=0,
                    show_progress=False)  # fmt: skip
