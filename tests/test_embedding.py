"""Embedding a folder of files reads it ahead in worker processes: the same rows, the same
unreadable files recorded, and no more batches in flight than a quarter of the memory holds;
the raw-input baseline reads the same way."""

import numpy as np

from selfsup.data.loading import affordable_workers
from selfsup.embedding import embed_source
from selfsup.modalities import open_source
from selfsup.modalities.image import ImageModality
from selfsup.run import pretrain

OPTIONS = {"epochs": 1, "batch_size": 8, "backbone_options": {"width": 4}, "show_progress": False}


def test_folders_embed_read_ahead_by_workers_the_same_rows(
    folder_with_corrupt_image, tmp_path, monkeypatch
) -> None:
    run = pretrain(folder_with_corrupt_image, out=tmp_path / "run", **OPTIONS)
    embedded = {}
    for workers in (0, 2):
        monkeypatch.setattr(ImageModality, "default_workers", lambda *a, w=workers, **k: w)
        source = open_source(folder_with_corrupt_image)
        embedded[workers] = embed_source(run.encoder, source, batch_size=8, precision="fp32")
        # A worker's unreadable file is recorded here too, as reading it here would.
        assert list(source.unreadable) == ["dogs/broken.png"]
    np.testing.assert_allclose(embedded[2], embedded[0], atol=1e-6, equal_nan=True)
    assert np.isnan(embedded[2]).any(axis=1).sum() == 1


def test_read_ahead_keeps_its_batches_within_a_quarter_of_the_memory(
    folder_with_corrupt_image, monkeypatch
) -> None:
    source = open_source(folder_with_corrupt_image)
    batch_bytes = 4 * source.first_item().numel() * 100
    for batches, workers in [(100, 6), (4 * 9, 4), (4 * 3, 1), (4 * 2, 0)]:
        monkeypatch.setattr(
            "selfsup.data.loading.available_memory", lambda device, b=batches: b * batch_bytes
        )
        assert affordable_workers(source, 100, 6) == workers


def test_raw_inputs_read_ahead_by_workers_are_the_same(
    folder_with_corrupt_image, monkeypatch
) -> None:
    image = ImageModality()
    found = {}
    for workers in (0, 2):
        monkeypatch.setattr(ImageModality, "default_workers", lambda *a, w=workers, **k: w)
        source = open_source(folder_with_corrupt_image)
        found[workers] = image.raw_features(source, batch_size=8)
        assert list(source.unreadable) == ["dogs/broken.png"]
    np.testing.assert_array_equal(found[2], found[0])
    assert np.isnan(found[2]).any(axis=1).sum() == 1
