"""A corrupt image is skipped and listed in the run folder, and fails the run under --strict."""

import numpy as np
import pytest
from PIL import Image

from selfsup.data.base import ItemReadError
from selfsup.embedding import embed_source
from selfsup.modalities import open_source
from selfsup.run import pretrain

OPTIONS = {"epochs": 2, "batch_size": 8, "backbone_options": {"width": 4}, "show_progress": False}


def test_corrupt_image_is_skipped_and_listed(folder_with_corrupt_image, tmp_path) -> None:
    run = pretrain(folder_with_corrupt_image, out=tmp_path / "run", **OPTIONS)
    listed = (run.path / "skipped.txt").read_text().splitlines()
    assert len(listed) == 1  # listed once, although seen in both epochs
    assert listed[0].startswith("dogs/broken.png\t")
    assert run.summary["steps"] == 2 * (41 // 8)


def test_corrupt_image_fails_the_run_under_strict(folder_with_corrupt_image, tmp_path) -> None:
    with pytest.raises(ItemReadError, match=r"dogs/broken\.png"):
        pretrain(folder_with_corrupt_image, out=tmp_path / "run", strict=True, **OPTIONS)


def test_embedding_a_corrupt_image_gives_a_nan_row(folder_with_corrupt_image, tmp_path) -> None:
    run = pretrain(folder_with_corrupt_image, out=tmp_path / "run", **OPTIONS)
    source = open_source(folder_with_corrupt_image)
    embeddings = embed_source(run.encoder, source)
    broken = list(source.ids).index("dogs/broken.png")
    assert np.isnan(embeddings[broken]).all()
    assert np.isfinite(np.delete(embeddings, broken, axis=0)).all()


def test_every_unreadable_item_is_listed_once_and_counted(tmp_path, capsys) -> None:
    """Ten broken files among forty: all ten listed once (trained batches, statistics and
    the monitor all count), the summary says ten, and the screen says so in one line."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):
        pixels = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    for i in range(10):
        (folder / f"{i:02d}-broken.png").write_bytes(b"\x89PNG truncated")
    options = {**OPTIONS, "show_progress": True, "epochs": 1}
    run = pretrain(folder, out=tmp_path / "run", **options)
    listed = (run.path / "skipped.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == [
        f"{i:02d}-broken.png" for i in range(10)
    ]
    assert run.summary["skipped_items"] == 10
    shown = capsys.readouterr().out
    assert "10 unreadable items skipped" in shown and "skipped.txt" in shown
