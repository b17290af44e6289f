"""A folder of links to folders elsewhere (a cluster's dataset folder pointing at the shares its
files live on) is read like the folders themselves: found, recognised, stamped, never looped."""

from pathlib import Path

import numpy as np
import soundfile

from selfsup.data.audio import AudioFolderSource
from selfsup.data.folders import first_media, scan_folder
from selfsup.data.text import read_text_folder
from selfsup.embedding import data_stamp


def _linked(tmp_path: Path) -> tuple[Path, Path]:
    """``share/2025-01-0D/call_K.wav``, and ``linked/`` holding a link to each day, plus a
    link back from the share and one above the tree (loops)."""
    share, linked = tmp_path / "share", tmp_path / "linked"
    for day in (1, 2):
        (share / f"2025-01-0{day}").mkdir(parents=True)
        for k in range(2):
            tone = np.sin(np.arange(4000) * (day + k) / 7).astype(np.float32)
            soundfile.write(share / f"2025-01-0{day}" / f"call_{k}.wav", tone, 8000)
        (linked / f"2025-01-0{day}").parent.mkdir(exist_ok=True)
        (linked / f"2025-01-0{day}").symlink_to(share / f"2025-01-0{day}")
    (share / "2025-01-01" / "back").symlink_to(linked)  # a loop through the share
    (linked / "up").symlink_to(tmp_path)  # above the tree: not walked (the share twice)
    return share, linked


def test_a_folder_of_links_is_read_as_its_folders(tmp_path) -> None:
    share, linked = _linked(tmp_path)
    expected = ["2025-01-01/call_0.wav", "2025-01-01/call_1.wav", "2025-01-02/call_0.wav",
                "2025-01-02/call_1.wav"]  # fmt: skip
    assert scan_folder(linked, (".wav",)).files == expected
    assert first_media(linked, {"audio": (".wav",), "image": (".png",)}) == "audio"
    source = AudioFolderSource(linked, sample_rate=8000, n_fft=256, hop_length=80)
    assert list(source.ids) == expected and source.read_batch([0, 3]).items.shape[0] == 2
    # The stamp kept embeddings are found by covers the files behind the links, and only
    # those: not the other files above the tree.
    before = data_stamp(source)
    (tmp_path / "elsewhere.txt").write_text("not the data")
    assert data_stamp(source) == before
    soundfile.write(share / "2025-01-02" / "call_1.wav", np.zeros(4000, np.float32), 8000)
    assert data_stamp(source) != before


def test_a_folder_of_links_to_texts_is_read(tmp_path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in (("a.txt", "a contract"), ("b.TXT", "a lease")):
        (notes / name).write_text(text)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "legal").symlink_to(notes)
    (linked / "again").symlink_to(notes)  # a second way to the same folder: read once
    source = read_text_folder(linked)
    assert source.texts == ["a contract", "a lease"] and len(source) == 2
    assert list(source.ids) == ["again/a.txt", "again/b.TXT"]  # the first way, by name
