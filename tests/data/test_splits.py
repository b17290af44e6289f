"""Splits: the held-out part the training monitor measures."""

import numpy as np
import pytest

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


def test_a_split_by_folder_keeps_each_patient_on_one_side(tmp_path):
    """A patient's slices are near copies: split by item, the test part holds slices whose
    neighbours in the fit part are the same patient's, and measures memory."""
    from PIL import Image

    from selfsup.data.image_folder import ImageFolderSource
    from selfsup.modalities import train_test_sources

    rows = ["file,label"]
    for p in range(10):
        for s in range(6):
            path = tmp_path / "scans" / f"P{p:02d}" / f"IM{s:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (8, 8), 20 * p).save(path)
            rows.append(f"P{p:02d}/IM{s:04d}.png,{'nodule' if p % 3 == 0 else 'normal'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    source = ImageFolderSource(tmp_path / "scans", labels_file=tmp_path / "labels.csv")
    fit, test = train_test_sources(source, split_by="folder")
    patients = [{i.split("/")[0] for i in part.ids} for part in (fit, test)]
    assert not patients[0] & patients[1] and len(patients[1]) == 2  # 2 of 10 patients
    assert len(fit) + len(test) == 60 and len(test) == 12
    by_item = train_test_sources(source)  # the default: items, patients on both sides
    assert {i.split("/")[0] for i in by_item[0].ids} & {i.split("/")[0] for i in by_item[1].ids}
    loose = ArraySource(np.zeros((10, 4, 4), dtype=np.uint8), labels=np.arange(10) % 2)
    with pytest.raises(ValueError, match="'0' lies in no folder"):
        train_test_sources(loose, split_by="folder")
    with pytest.raises(ValueError, match="--split-by folder splits the data when no test"):
        train_test_sources(source, loose, split_by="folder")
