"""Labels of a folder's files from a table (``--labels``, a Hugging Face ``metadata.csv``):
the photos' few labels in a spreadsheet, not in one subfolder per class."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image
from tests.modalities.audio.conftest import tone
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.data.file_labels import folder_labels
from selfsup.data.image_folder import ImageFolderSource
from selfsup.data.splits import item_labels, labelled_part
from selfsup.modalities import open_source


def photo_folder(root, n=12):
    """Photos in dated subfolders (not classes): 2024-01/IMG_0000.jpg ..."""
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / f"2024-0{1 + i // 6}" / f"IMG_{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        shade = 40 if i % 2 else 200  # two kinds of photo
        pixels = np.clip(rng.normal(shade, 20, (24, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)
    return root


def test_a_table_labels_some_files_the_rest_are_unlabelled(tmp_path):
    root = photo_folder(tmp_path / "photos")
    table = tmp_path / "labels.csv"
    table.write_text(
        "file,label\n"
        "2024-01/IMG_0000.jpg,light\n"  # a path relative to the folder
        "IMG_0001.jpg,dark\n"  # a bare file name, the only one so named
        f"{root / '2024-02' / 'IMG_0007.jpg'},dark\n"  # an absolute path
        "photos/2024-02/IMG_0006.jpg,light\n"  # relative to the table's folder
        "/home/ann/export/2024-01/IMG_0002.jpg,dark\n"  # the annotator's machine
        "C:\\Users\\ann\\IMG_0004.jpg,light\n"  # another machine, a unique file name
        "IMG_0003.jpg,\n"  # an empty label: unlabelled
        "IMG_0099.jpg,dark\n"  # no such file
    )
    src = ImageFolderSource(root, labels_file=table)
    assert src.labels is None and src.classes is None  # every file is pretrained on
    assert (
        item_labels(src)
        == ["light", "dark", "dark", None, "light", None] + ["light", "dark"] + [None] * 4
    )
    assert "6 of 12 files have no label in 'label'" in src.warning
    assert "1 row(s) of labels.csv name no file" in src.warning
    assert "'IMG_0099.jpg'" in src.warning
    part = labelled_part(src)
    assert part.indices.tolist() == [0, 1, 2, 4, 6, 7] and part.classes == ["dark", "light"]
    # Every file labelled: an ordinary labelled source.
    full = tmp_path / "all.csv"
    pd.DataFrame(
        {"file_name": [f"IMG_{i:04d}.jpg" for i in range(12)], "label": ["a", "b"] * 6}
    ).to_csv(full, index=False)
    src = ImageFolderSource(root, labels_file=full)
    assert src.classes == ["a", "b"] and src.labels.tolist() == [0, 1] * 6
    assert src.partial_labels is None and src.warning is None


def test_folders_named_by_date_or_camera_are_not_classes(tmp_path):
    """A phone's DCIM export (2024-05-01/, 2024-05-02/, ...) was taken for 28 classes of
    dates: the online probe and neighbour agreement of a pretraining scored days."""
    src = ImageFolderSource(photo_folder(tmp_path / "dated"))
    assert src.labels is None and src.classes is None and len(src) == 12
    for names in (["100CANON", "101CANON"], ["2023", "2024"], ["20240501", "20240502"]):
        root = tmp_path / names[0]
        for name in names:
            (root / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(root / name / "a.png")
        assert ImageFolderSource(root).classes is None, names
    # Folders of other names still are classes, digits included (MNIST's 0 to 9).
    for names in (["0", "1"], ["cat", "dog"], ["2024-05-01", "cats"]):
        root = tmp_path / "-".join(names)
        for name in names:
            (root / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(root / name / "a.png")
        source = ImageFolderSource(root)
        assert source.classes == names, names
        assert source.labels_note.startswith("classes from the first-level folder names")


def test_table_formats_and_columns(tmp_path):
    root = photo_folder(tmp_path / "photos", n=4)
    files = ["2024-01/IMG_0000.jpg", "2024-01/IMG_0001.jpg", "2024-01/IMG_0002.jpg"]
    frame = pd.DataFrame({"path": files[:2], "kind": ["x", "y"], "note": ["n", "m"]})
    frame.to_parquet(tmp_path / "l.parquet")
    found = folder_labels(root, files, tmp_path / "l.parquet", label_column="kind")
    assert found.partial.rows.tolist() == [0, 1] and found.partial.classes == ["x", "y"]
    (tmp_path / "l.jsonl").write_text(
        "\n".join(json.dumps({"file_name": f, "label": 5}) for f in files) + "\n"
    )
    found = folder_labels(root, files, tmp_path / "l.jsonl")
    assert found.classes == ["5"] and found.labels.tolist() == [0, 0, 0]
    # Two columns: the one that is not the file names is the labels.
    (tmp_path / "two.csv").write_text("image,species\nIMG_0002.jpg,owl\n")
    assert folder_labels(root, files, tmp_path / "two.csv").partial.classes == ["owl"]
    # --id-column names the column of file names.
    (tmp_path / "id.csv").write_text("photo,label\nIMG_0002.jpg,owl\n")
    found = folder_labels(root, files, tmp_path / "id.csv", id_column="photo")
    assert found.partial.rows.tolist() == [2]


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("name,label\na.jpg,x\n", {}, "no column of file names (file_name, file"),
        ("file,kind,note\nIMG_0000.jpg,x,y\n", {}, "no label column 'label'"),
        ("file,label\nIMG_0000.jpg,x\n", {"id_column": "photo"}, "no column 'photo'"),
        ("file,label\nother.jpg,x\n", {}, "name none of the 4 files in"),
        ("file,label\nIMG_0000.jpg,\n", {}, "label column 'label' is empty on every row"),
        (
            "file,label\nIMG_0000.jpg,cat\nIMG_0000.jpg,dog\n",
            {},
            "'2024-01/IMG_0000.jpg' is labelled 'cat' on row 1 and 'dog' on row 2",
        ),
    ],
)
def test_a_wrong_table_is_one_line_naming_it(tmp_path, text, options, message):
    root = photo_folder(tmp_path / "photos", n=4)
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(ValueError, match=r"l\.csv") as caught:
        ImageFolderSource(root, labels_file=tmp_path / "l.csv", **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="no such labels file"):
        ImageFolderSource(root, labels_file=tmp_path / "missing.csv")


def test_a_bare_name_shared_by_two_files_is_not_guessed(tmp_path):
    root = photo_folder(tmp_path / "photos", n=2)
    (root / "copy").mkdir()
    (root / "2024-01" / "IMG_0000.jpg").rename(root / "copy" / "IMG_0001.jpg")
    (tmp_path / "l.csv").write_text("file,label\nIMG_0001.jpg,x\ncopy/IMG_0001.jpg,y\n")
    src = ImageFolderSource(root, labels_file=tmp_path / "l.csv")
    assert item_labels(src) == [None, "y"]  # 2024-01/IMG_0001.jpg, copy/IMG_0001.jpg
    assert "1 row(s) of l.csv name no file" in src.warning


def test_hugging_face_metadata_csv_is_read_without_the_option(tmp_path):
    root = photo_folder(tmp_path / "photos", n=4)
    (root / "metadata.csv").write_text(
        "file_name,label\n2024-01/IMG_0000.jpg,a\n2024-01/IMG_0003.jpg,b\n"
    )
    src = open_source(root)
    assert item_labels(src) == ["a", None, None, "b"]
    assert "metadata.csv" in src.labels_note
    # A metadata table without labels (captions) labels nothing; subfolders still do.
    (root / "metadata.csv").write_text("file_name,text\n2024-01/IMG_0000.jpg,a cat\n")
    src = open_source(root)
    assert src.partial_labels is None and src.labels is None
    (root / "other").mkdir()
    (root / "2024-01" / "IMG_0000.jpg").rename(root / "other" / "IMG_0000.jpg")
    assert open_source(root).classes == ["2024-01", "other"]


def test_audio_clips_take_their_files_labels_from_the_table(tmp_path):
    root = tmp_path / "recordings"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        soundfile.write(root / f"{name}.wav", tone(300.0, 3.0, 8000, rng), 8000)
    (tmp_path / "labels.csv").write_text("file_name,label\nb.wav,pump\n")
    options = {"sample_rate": 8000, "n_fft": 256, "hop_length": 80}
    src = open_source(root, "audio", labels=str(tmp_path / "labels.csv"), **options)
    assert item_labels(src) == [None, "pump", None]
    clips = open_source(root, "audio", labels=str(tmp_path / "labels.csv"), clip_hop=1.0, **options)
    owners = [i.split("@")[0] for i in clips.ids]
    labels = item_labels(clips)
    assert len(labels) == len(owners) > 3
    assert all(
        (label == "pump") == (owner == "b.wav") for owner, label in zip(owners, labels, strict=True)
    )


def test_cli_pretrain_evaluate_with_labels_and_other_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo_folder(tmp_path / "photos", n=24)
    rows = [f"IMG_{i:04d}.jpg,{'dark' if i % 2 else 'light'}" for i in range(0, 24, 2)]
    rows += [f"IMG_{i:04d}.jpg,dark" for i in range(1, 24, 2)][:10]
    (tmp_path / "labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    runner = CliRunner()
    shown = runner.invoke(app, ["datasets", "show", "photos", "--labels", "labels.csv"])
    assert shown.exit_code == 0, shown.output
    assert '"light": 12' in shown.output and '"without_label": 2' in shown.output
    assert '"labels_from": "labels of 22 files from labels.csv' in shown.output
    common = ["--steps", "2", "--batch-size", "8", "--backbone", "small-cnn"]
    common += ["--monitor-items", "0"]
    result = runner.invoke(
        app, ["pretrain", "photos", "--labels", "labels.csv", *common, "--out", "runs/p"]
    )
    assert result.exit_code == 0, result.output
    assert "24 image items, 22 of them labelled in 2 classes" in result.output
    labels_from = f"labels of 22 files from {tmp_path / 'labels.csv'} (columns 'file', 'label'))"
    assert labels_from in result.output  # the run keeps the table's absolute path
    # The run reads its labels table again on its own folder...
    evaluated = runner.invoke(app, ["evaluate", "runs/p", "photos", "--protocol", "knn"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "photos[labelled][fit]" in evaluated.output
    # ...from wherever it runs (the run keeps the table's absolute path)...
    monkeypatch.chdir(tmp_path / "runs")
    evaluated = runner.invoke(app, ["evaluate", "p", "../photos", "--protocol", "knn"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "photos[labelled][fit]" in evaluated.output
    monkeypatch.chdir(tmp_path)
    # ...not on another folder, whose files it does not name: evaluated by its subfolders.
    for i, kind in enumerate(["dark", "light"] * 5):
        shade = 40 if kind == "dark" else 200
        path = tmp_path / "sorted" / kind / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 32, 3), shade, np.uint8)).save(path)
    evaluated = runner.invoke(app, ["evaluate", "runs/p", "sorted", "--protocol", "knn"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "sorted[fit] (8 items)" in evaluated.output
    photo_folder(tmp_path / "later", n=3)
    (tmp_path / "later" / "2024-01" / "IMG_0000.jpg").rename(tmp_path / "later" / "new.jpg")
    embedded = runner.invoke(app, ["embed", "runs/p", "later", "--out", "later.parquet"])
    assert embedded.exit_code == 0, embedded.output
    assert pd.read_parquet(tmp_path / "later.parquet")["id"].tolist()[-1] == "new.jpg"
    # A table given for the other folder is read.
    (tmp_path / "later.csv").write_text("file,label\nnew.jpg,dark\nIMG_0001.jpg,light\n")
    result = runner.invoke(
        app, ["embed", "runs/p", "later", "--labels", "later.csv", "--out", "l2.parquet"]
    )
    assert result.exit_code == 0, result.output
    labels = pd.read_parquet(tmp_path / "l2.parquet")["label"]
    assert labels.isna().tolist() == [False, True, False]
    assert labels.dropna().tolist() == ["light", "dark"]


def test_pretrain_refuses_a_data_option_its_data_does_not_read(tmp_path):
    """--labels on a table (or --window on photos) is refused in one line, not ignored."""
    from selfsup.config import ConfigError, PretrainConfig
    from selfsup.modalities import resolve_config

    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n1,2,x\n3,4,z\n")
    with pytest.raises(ConfigError, match="--labels: not read by tabular data; its data options"):
        resolve_config(PretrainConfig(data=str(table), labels="labels.csv"))
    root = photo_folder(tmp_path / "photos", n=2)
    with pytest.raises(ConfigError, match="--window: not read by image data"):
        resolve_config(PretrainConfig(data=str(root), window=10))
    assert resolve_config(PretrainConfig(data=str(root), labels="l.csv")).modality == "image"


def test_packed_shards_keep_a_tables_labels_and_the_unlabelled_files(tmp_path):
    from selfsup.data.shards import ShardSource, pack_image_folder

    root = photo_folder(tmp_path / "photos", n=6)
    (tmp_path / "l.csv").write_text("file,label\nIMG_0001.jpg,dark\nIMG_0004.jpg,light\n")
    pack_image_folder(root, tmp_path / "shards", labels_file=tmp_path / "l.csv")
    packed = ShardSource(tmp_path / "shards")
    assert item_labels(packed) == [None, "dark", None, None, "light", None]
    assert packed.labels is None and "4 of 6 items have no label" in packed.warning
    assert labelled_part(packed).classes == ["dark", "light"]
    dated = photo_folder(tmp_path / "dated", n=12)  # dated subfolders: no classes
    pack_image_folder(dated, tmp_path / "plain")
    assert ShardSource(tmp_path / "plain").classes is None
    for i, path in enumerate(sorted(dated.rglob("*.jpg"))):  # two named subfolders: classes
        (dated / ("light", "dark")[i % 2]).mkdir(exist_ok=True)
        path.rename(dated / ("light", "dark")[i % 2] / path.name)
    for folder in ("2024-01", "2024-02"):
        (dated / folder).rmdir()
    pack_image_folder(dated, tmp_path / "named")
    assert ShardSource(tmp_path / "named").classes == ["dark", "light"]
