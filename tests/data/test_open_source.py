import numpy as np
import pytest
from PIL import Image

from selfsup.data import ArraySource, ImageFolderSource
from selfsup.modalities import open_source


def test_named_spec_opens_the_named_dataset():
    src = open_source("digits:test", image_size=None)
    assert isinstance(src, ArraySource) and src.name == "digits:test"


def test_folder_opens_as_image_folder_with_options(tmp_path):
    Image.new("RGB", (12, 10)).save(tmp_path / "a.png")
    src = open_source(tmp_path, image_size=6, channels=1)
    assert isinstance(src, ImageFolderSource) and src.item_shape == (1, 6, 6)


def test_array_files_open_as_array_sources(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 1]))
    src = open_source(str(tmp_path / "d.npz"))
    assert isinstance(src, ArraySource) and src.labels.tolist() == [0, 1]


def test_missing_spec_names_it_and_lists_the_named_datasets(tmp_path):
    with pytest.raises(FileNotFoundError, match="fashion-mnist") as info:
        open_source(tmp_path / "nothing-here")
    assert "nothing-here" in str(info.value)


def test_other_file_types_and_modalities_are_refused(tmp_path):
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"table\.csv: cannot read \.csv files as images"):
        open_source(tmp_path / "table.csv", modality="image")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt: cannot read \.txt files as series"):
        open_source(tmp_path / "notes.txt", modality="series")
    with pytest.raises(FileNotFoundError, match="not a ucr:NAME set"):
        open_source("digits", modality="series")
    with pytest.raises(FileNotFoundError, match="audio is read from a folder"):
        open_source("digits", modality="audio")
    with pytest.raises(ValueError, match="unknown modality"):
        open_source("digits", modality="video")
    with pytest.raises(TypeError, match="imgsize"):
        open_source("digits", imgsize=3)
