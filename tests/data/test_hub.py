"""Hugging Face datasets of images: Hub Parquet folders, ``to_parquet`` files and
``save_to_disk`` folders, read as image data by every command."""

from __future__ import annotations

import numpy as np
import pytest
from tests.hub_datasets import image_rows, write_parquet, write_saved

from selfsup.data import hub
from selfsup.data.hub import HubImageSource, hub_files, hub_test_split
from selfsup.modalities import infer_modality, open_source, train_test_sources


def value_of(source, index):
    """The gray value an item was written with (its pixels, read back)."""
    return round(float(source.read(index).mean()) * 255)


@pytest.fixture
def hub_folder(tmp_path):
    """A Hub download: two train files (one sorted by class, as imagefolder exports are) and
    a test file, each in row groups of 4."""
    root = tmp_path / "photos"
    write_parquet(
        root / "data/train-00000-of-00002.parquet", image_rows([10, 20, 30, 40, 50], [0] * 5)
    )
    write_parquet(root / "data/train-00001-of-00002.parquet", image_rows([60, 70, 80], [1] * 3))
    write_parquet(
        root / "data/test-00000-of-00001.parquet", image_rows([90, 100, 110, 120], [0, 1, 0, 1])
    )
    (root / "README.md").write_text("---\nlicense: cc\n---\n")
    return root


def test_a_hub_folder_reads_its_train_split_with_class_names_and_file_names(hub_folder):
    assert infer_modality(str(hub_folder)) == "image"
    source = open_source(str(hub_folder))
    assert isinstance(source, HubImageSource) and len(source) == 8
    assert source.classes == ["cat", "dog"] and source.labels.tolist() == [0] * 5 + [1] * 3
    assert list(source.ids) == [f"img_{v:03d}.png" for v in (10, 20, 30, 40, 50, 60, 70, 80)]
    assert [value_of(source, i) for i in (0, 4, 5, 7)] == [10, 50, 60, 80]  # across groups
    assert "split train" in source.index_note and f"{hub_folder}:test" in source.index_note
    test = open_source(f"{hub_folder}:test")
    assert len(test) == 4 and value_of(test, 3) == 120 and test.labels.tolist() == [0, 1, 0, 1]


def test_evaluation_scores_on_the_datasets_own_test_split(hub_folder):
    fit, test = train_test_sources(str(hub_folder))
    assert (len(fit), len(test), test.name) == (8, 4, f"{hub_folder}:test")


def test_a_test_split_without_labels_is_not_the_evaluation_split(tmp_path):
    rows = image_rows(list(range(10, 90, 10)), [0, 1] * 4)
    unlabelled = image_rows([5, 6, 7], [-1, -1, -1])  # as GLUE-style test splits hold them
    root = write_saved(tmp_path / "saved", {"train": rows, "test": unlabelled})
    assert hub_test_split(str(root)) is None
    test = open_source(f"{root}:test")
    assert test.labels is None and test.partial_labels is None  # no label at all
    fit, held = train_test_sources(str(root))  # a stratified split of train instead
    assert len(fit) + len(held) == 8 and held.name != f"{root}:test"


def test_save_to_disk_folders_and_single_files(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "ROWS_PER_GROUP", 2)  # record batches of 5 cut into groups of 2
    rows = image_rows([10, 20, 30, 40, 50, 60, 70], [0, 1, 0, 1, -1, 0, 1], paths=False)
    saved = write_saved(tmp_path / "dd", {"train": rows})
    source = open_source(str(saved))
    assert len(source) == 7 and list(source.ids) == [str(i) for i in range(7)]  # no paths
    assert [value_of(source, i) for i in range(7)] == [10, 20, 30, 40, 50, 60, 70]
    assert source.labels is None and source.partial_labels.rows.tolist() == [0, 1, 2, 3, 5, 6]
    assert "1 of 7 items has no label" in source.warning
    single = write_parquet(tmp_path / "photos.parquet", rows[:3], names=None)
    assert infer_modality(str(single)) == "image"
    one = open_source(str(single))
    assert len(one) == 3 and one.labels is None and one.index_note.startswith("a Hugging Face")


def test_rows_without_a_readable_image_are_skipped_with_their_reason(tmp_path):
    rows = image_rows([10, 20, 30, 40, 50], [0, 1, 0, 1, 0])
    rows[1]["image"] = {"bytes": rows[1]["image"]["bytes"][:40], "path": "cut.png"}
    rows[2]["image"] = None
    rows[3]["image"] = {"bytes": None, "path": "gone/x.png"}
    (tmp_path / "beside").mkdir()
    (tmp_path / "beside/y.png").write_bytes(image_rows([77])[0]["image"]["bytes"])
    rows[4]["image"] = {"bytes": None, "path": "beside/y.png"}  # beside the dataset's file
    source = open_source(str(write_parquet(tmp_path / "train.parquet", rows)))
    batch = source.read_batch(range(5))
    assert batch.indices == [0, 4] and value_of(source, 4) == 77
    reasons = {s.item_id: s.reason for s in batch.skipped}  # a row without a path: row ids
    assert reasons["1"].startswith("cannot read image")
    assert reasons["2"] == "no image in the row"
    assert reasons["3"] == "the image file gone/x.png does not exist"


def test_options_and_splits_a_dataset_cannot_take_are_refused_in_one_line(hub_folder):
    with pytest.raises(
        ValueError, match=r"photos:valid: .*photos has no split 'valid' \(splits: train, test\)"
    ):
        open_source(f"{hub_folder}:valid")
    with pytest.raises(ValueError, match="--labels is for a folder's files"):
        open_source(str(hub_folder), labels="labels.csv")
    with pytest.raises(
        ValueError, match=r"--label-column 'stars' is not a column of .*\(columns: image, label\)"
    ):
        open_source(str(hub_folder), label_column="stars")


def test_a_row_group_too_large_to_read_is_refused_before_reading(hub_folder, monkeypatch):
    monkeypatch.setattr(hub, "GROUP_MEMORY_SHARE", 1e-9)
    with pytest.raises(
        ValueError, match=r"row group 0 holds .* GiB, read whole .* row_group_size=100"
    ):
        HubImageSource(str(hub_folder))


def test_tables_with_a_binary_column_are_not_taken_for_images(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"amount": [1.0, 2.0], "blob": [b"x", b"y"], "label": [0, 1]})
    frame.to_parquet(tmp_path / "tx.parquet")
    assert hub_files(tmp_path / "tx.parquet") is None
    assert infer_modality(str(tmp_path / "tx.parquet")) == "tabular"


def test_a_run_trains_evaluates_and_embeds_a_hub_dataset(hub_folder, tmp_path):
    import selfsup

    run = selfsup.pretrain(
        str(hub_folder), method="simclr", backbone="small-cnn", steps=2, batch_size=4,
        image_size=12, out=str(tmp_path / "run"),
    )  # fmt: skip
    result = run.evaluate(str(hub_folder), protocols=["knn"])
    assert result.test_data == f"{hub_folder}:test"
    embeddings = selfsup.load(tmp_path / "run").embed(f"{hub_folder}:test")
    assert embeddings.shape[0] == 4 and np.isfinite(embeddings).all()


def _write_frame(path, frame, features):
    """A DataFrame as a Parquet file of a Hugging Face dataset with ``features``."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    pq.write_table(table.replace_schema_metadata(meta), path)


SENTIMENT = {
    "idx": {"dtype": "int32", "_type": "Value"},
    "sentence": {"dtype": "string", "_type": "Value"},
    "label": {"names": ["negative", "positive"], "_type": "ClassLabel"},
}


def test_a_hub_dataset_of_texts_is_text_with_its_class_names_and_test_split(tmp_path):
    import pandas as pd

    words = ["good fine film", "bad dull plot", "great acting", "awful pacing"] * 5
    train = pd.DataFrame({"idx": range(20), "sentence": words, "label": [1, 0, 1, 0] * 5})
    root = tmp_path / "sst2"
    _write_frame(root / "data/train-00000-of-00001.parquet", train, SENTIMENT)
    _write_frame(root / "data/validation-00000-of-00001.parquet", train[:8], SENTIMENT)
    unlabelled = train[:6].assign(label=-1)  # GLUE's test split: -1 everywhere
    _write_frame(root / "data/test-00000-of-00001.parquet", unlabelled, SENTIMENT)
    assert infer_modality(str(root)) == "text"
    source = open_source(str(root))
    assert len(source) == 20 and source.classes == ["negative", "positive"]
    assert "split train" in source.index_note
    test = open_source(f"{root}:test")
    assert len(test) == 6 and test.labels is None  # unlabelled, not an error
    fit, held = train_test_sources(str(root))  # the labelled validation split, not test
    assert (len(fit), len(held), held.name) == (20, 8, f"{root}:validation")


def test_hub_tables_and_split_named_parquet_files_are_tables_by_split(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=30), "y": rng.normal(size=30)})
    features = {
        "x": {"dtype": "float64", "_type": "Value"},
        "y": {"dtype": "float64", "_type": "Value"},
        "target": {"names": ["ok", "fault"], "_type": "ClassLabel"},
    }
    _write_frame(tmp_path / "hub/train.parquet", frame.assign(target=[0, 1, -1] * 10), features)
    assert infer_modality(str(tmp_path / "hub")) == "tabular"
    table = open_source(str(tmp_path / "hub"))
    assert table.labels is None and table.partial_labels.classes == ["fault", "ok"]
    assert len(table.partial_labels.rows) == 20 and table.item_shape == (2,)
    plain = tmp_path / "plain"  # pandas' own files, named by split: no features
    plain.mkdir()
    frame.assign(label=["a", "b"] * 15).to_parquet(plain / "train.parquet")
    frame[:10].assign(label=["a", "b"] * 5).to_parquet(plain / "test.parquet")
    assert len(open_source(str(plain), label_column="label")) == 30
    fit, held = train_test_sources(str(plain), label_column="label")
    assert (len(fit), len(held), held.name) == (30, 10, f"{plain}:test")


def _wav(seconds: float, tone: float, rate: int = 8000) -> bytes:
    import io

    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    soundfile.write(
        out, (0.3 * np.sin(2 * np.pi * tone * t)).astype(np.float32), rate, format="WAV"
    )
    return out.getvalue()


def _write_sounds(path, rows, names=("low", "high")):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {
        "audio": {"sampling_rate": 8000, "_type": "Audio"},
        "label": {"names": list(names), "_type": "ClassLabel"},
    }
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    record = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("audio", record), ("label", pa.int64())], metadata=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=3)


def test_a_hub_dataset_of_sounds_is_audio_read_from_its_bytes(tmp_path):
    import io

    import soundfile

    from selfsup.data.ffmpeg_audio import write_aac
    from selfsup.data.hub import HubAudioSource

    rows = [
        {"audio": {"bytes": _wav(1.0, 200 + 600 * (i % 2)), "path": f"c{i}.wav"}, "label": i % 2}
        for i in range(8)
    ]
    samples, rate = soundfile.read(io.BytesIO(rows[2]["audio"]["bytes"]), always_2d=True)
    write_aac(tmp_path / "memo.m4a", samples.astype(np.float32), rate)  # a phone's AAC
    rows[2]["audio"] = {"bytes": (tmp_path / "memo.m4a").read_bytes(), "path": "memo.m4a"}
    rows[5]["audio"] = {"bytes": rows[5]["audio"]["bytes"][:30], "path": "cut.wav"}
    _write_sounds(tmp_path / "calls/data/train-00000-of-00001.parquet", rows)
    _write_sounds(tmp_path / "calls/data/test-00000-of-00001.parquet", rows[:4])
    root = str(tmp_path / "calls")
    assert infer_modality(root) == "audio"
    source = open_source(root, sample_rate=8000)
    assert isinstance(source, HubAudioSource) and source.classes == ["low", "high"]
    assert len(source) == 8 and source.ids[2] == "memo.m4a"
    batch = source.read_batch(range(8))
    assert batch.indices == [0, 1, 2, 3, 4, 6, 7] and batch.items.shape[1:] == (1, 64, 48)
    (skipped,) = batch.skipped
    assert skipped.item_id == "cut.wav" and "Error opening 'cut.wav'" in skipped.reason
    _, test = train_test_sources(root, sample_rate=8000)
    assert test.name == f"{root}:test" and len(test) == 4
    clips = open_source(root, sample_rate=8000, clip_hop=0.5)  # every file cut into clips
    assert clips.ids[:2] == ["c0.wav@0.00s", "c0.wav@0.05s"] and clips.labels is not None


def test_sounds_are_read_in_blocks_of_row_groups(tmp_path, monkeypatch):
    from selfsup.data import shards

    rows = [
        {"audio": {"bytes": _wav(0.2, 300), "path": f"c{i}.wav"}, "label": 0} for i in range(30)
    ]
    _write_sounds(tmp_path / "s.parquet", rows)  # ten row groups of 3
    monkeypatch.setattr(hub, "WINDOW_GROUPS", 2)
    order = open_source(str(tmp_path / "s.parquet"), sample_rate=8000).epoch_order(seed=1, epoch=0)
    assert sorted(order.tolist()) == list(range(30))
    windows = [set((order[k : k + 6] // 3).tolist()) for k in range(0, 30, 6)]
    assert all(len(groups) == 2 for groups in windows)  # each window reads two groups
    assert shards.block_order(np.zeros(0, dtype=np.int64), 2, 0, 0).size == 0


def test_a_bug_in_reading_is_raised_not_reported_as_unreadable_items(tmp_path, monkeypatch):
    from selfsup.data import audio, image_folder

    rows = [{"audio": {"bytes": _wav(0.2, 300), "path": f"c{i}.wav"}, "label": 0} for i in range(3)]
    _write_sounds(tmp_path / "s.parquet", rows)
    sounds = open_source(str(tmp_path / "s.parquet"), sample_rate=8000)

    def broken(*args, **kwargs):
        return undefined_name  # noqa: F821  # a bug of ours, not a damaged file

    monkeypatch.setattr(audio, "read_clip", broken)
    with pytest.raises(NameError):
        sounds.read_batch([0, 1])
    monkeypatch.setattr(image_folder, "read_pixels", broken)
    from selfsup.data import shards

    monkeypatch.setattr(shards, "read_pixels", broken)
    images = open_source(str(write_parquet(tmp_path / "p.parquet", image_rows([10, 20], [0, 1]))))
    with pytest.raises(NameError):
        images.read_batch([0])


def test_columns_of_lists_are_named_as_left_out_and_labels_tables_refused(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"text": ["a b", "c d"] * 4, "tokens": [["a", "b"], ["c", "d"]] * 4})
    features = {
        "text": {"dtype": "string", "_type": "Value"},
        "tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
        "label": {"names": ["x", "y"], "_type": "ClassLabel"},
    }
    _write_frame(tmp_path / "ner/train.parquet", frame.assign(label=[0, 1] * 4), features)
    source = open_source(str(tmp_path / "ner"))  # a table: the features hold a Sequence
    assert source.modality == "tabular"
    assert source.index_note.endswith("not read: tokens (lists or records)")
    with pytest.raises(ValueError, match="labels are its columns; --labels is for a folder"):
        open_source(str(tmp_path / "ner"), modality="text", text_column="text", labels="l.csv")


def test_a_photo_folder_with_a_datasets_metadata_table_stays_photos(tmp_path):
    import json

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tests.hub_datasets import png

    root = tmp_path / "photos"
    root.mkdir()
    for i in range(4):
        (root / f"p{i}.png").write_bytes(png(40 * i))
    frame = pd.DataFrame({"file_name": [f"p{i}.png" for i in range(4)], "label": [0, 1, 0, 1]})
    features = {"file_name": {"dtype": "string", "_type": "Value"},
                "label": {"names": ["a", "b"], "_type": "ClassLabel"}}  # fmt: skip
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    pq.write_table(table.replace_schema_metadata(meta), root / "metadata.parquet")
    assert infer_modality(str(root)) == "image"
    many = tmp_path / "many"  # more files than a dataset download holds: not walked through
    many.mkdir()
    for i in range(hub.MAX_OTHER_FILES + 1):
        (many / f"{i:05d}.txt").write_text("x")
    pq.write_table(table.replace_schema_metadata(meta), many / "zz.parquet")
    assert hub.hub_layout(many) is None
