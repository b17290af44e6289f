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


def test_the_embedding_batch_is_lowered_to_what_memory_allows(monkeypatch) -> None:
    """512 clips of two-minute recordings through a wav2vec2-base took 8.8 GB in one batch:
    the batch is planned from the measured memory of an item's forward pass."""
    import selfsup.embedding as embedding
    from selfsup.data.arrays import ArraySource
    from selfsup.modalities.image import build_image_encoder

    encoder = build_image_encoder("small-cnn", 1, 32, width=16)
    pixels = np.random.default_rng(0).integers(0, 255, (40, 32, 32), np.uint8)
    source = ArraySource(pixels)
    # Well within memory: on a CPU, the batch that runs fastest (benchmarks/embed_batch.py).
    assert embedding.embed_batch(encoder, source, precision="fp32") == embedding.CPU_BATCH_ITEMS
    everything = embed_source(encoder, source, precision="fp32")
    # The first convolution's output alone holds 16 x 32 x 32 floats (64 kB) an item.
    monkeypatch.setattr(embedding, "EMBED_BATCH_BYTES", 10 * 64 * 1024)
    assert embedding.embed_batch(encoder, source, precision="fp32") == 64  # planned once
    source = ArraySource(pixels)  # the same items opened again: planned again
    lowered = embedding.embed_batch(encoder, source, precision="fp32")
    assert 1 <= lowered < 10
    calls = []
    real = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda x: calls.append(len(x)) or real(x))
    np.testing.assert_allclose(
        embed_source(encoder, source, precision="fp32"), everything, atol=1e-5
    )
    assert max(calls) == lowered
