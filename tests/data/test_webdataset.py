"""WebDataset tar shards of images, read by their tar headers and seeks."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from tests.hub_datasets import png

from selfsup.data.webdataset import WebDatasetSource
from selfsup.modalities import infer_modality, open_source


def write_shard(path, items):
    """A shard of ``(key, {ext: bytes})`` items, members in key order as ShardWriter writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, members in items:
            for ext, data in members.items():
                member = tarfile.TarInfo(f"{key}.{ext}")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    return path


def value_of(source, index):
    return round(float(source.read(index).mean()) * 255)


def test_shards_are_items_by_key_with_their_cls_labels(tmp_path):
    root = tmp_path / "wds"
    write_shard(root / "train-000000.tar", [
        (f"{k:04d}", {"png": png(10 * k), "cls": str(k % 2).encode(), "json": b"{}"})
        for k in range(5)
    ])  # fmt: skip
    write_shard(root / "train-000001.tar", [
        ("0005", {"png": png(50)}),  # no label: an unlabelled item
        ("0006", {"json": b"{}"}),  # no image: not an item
        ("0007", {"jpg": png(70), "cls": b"1"}),
    ])  # fmt: skip
    assert infer_modality(str(root)) == "image"
    source = open_source(str(root))
    assert isinstance(source, WebDatasetSource) and len(source) == 7
    assert source.ids[5] == "train-000001/0005" and source.ids[6] == "train-000001/0007"
    assert [value_of(source, i) for i in (0, 4, 5, 6)] == [0, 40, 50, 70]
    assert source.labels is None and source.partial_labels.classes == ["0", "1"]
    assert source.partial_labels.rows.tolist() == [0, 1, 2, 3, 4, 6]
    assert source.index_note == "WebDataset: 2 tar shards, 7 images"
    assert sorted(source.epoch_order(0, 0).tolist()) == list(range(7))
    one = open_source(str(root / "train-000000.tar"))  # a single shard
    assert len(one) == 5 and one.classes == ["0", "1"]
    with pytest.raises(ValueError, match=r"\.cls members; --labels is for a folder's files"):
        open_source(str(root), labels="labels.csv")


def test_a_shard_cut_short_is_read_to_its_last_whole_member(tmp_path):
    whole = write_shard(tmp_path / "full.tar", [
        (f"{k:04d}", {"png": png(20 * k), "cls": b"0"}) for k in range(4)
    ])  # fmt: skip
    data = whole.read_bytes()
    cut = tmp_path / "cut" / "shard.tar"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2 + 100])  # a copy that stopped
    source = WebDatasetSource(cut.parent)
    assert "shard.tar: cut short" in source.warning
    batch = source.read_batch(range(len(source)))
    assert 1 <= len(batch.indices) < 4 and value_of(source, 0) == 0
    assert all("cannot read image" in s.reason for s in batch.skipped)


def test_a_large_folder_without_shards_is_not_walked_through(tmp_path):
    from selfsup.data import hub
    from selfsup.data.webdataset import tar_shards

    for i in range(hub.MAX_OTHER_FILES + 1):
        (tmp_path / f"{i:05d}.jpg").write_bytes(b"x")
    write_shard(tmp_path / "zz" / "late.tar", [("0", {"png": png(1)})])
    assert tar_shards(tmp_path) == []
    assert tar_shards(tmp_path / "zz") == [tmp_path / "zz" / "late.tar"]


def _sound(seconds: float, hz: float, fmt: str = "FLAC") -> bytes:
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * 8000)) / 8000
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 8000, format=fmt)
    return out.getvalue()


def test_shards_of_sounds_are_audio_read_from_their_members(tmp_path):
    """A folder of .tar shards of FLAC/WAV members (as a team packs its recordings) is
    audio: keys with a sound are items, labels from .cls, a damaged member skipped with its
    reason, a long recording cut into clips, training reads in blocks."""
    import numpy as np

    from selfsup.data.webdataset import WebDatasetAudioSource
    from selfsup.run import pretrain

    root = tmp_path / "calls"
    write_shard(root / "calls-000000.tar", [
        (f"{k:04d}", {"flac": _sound(1.0, 200 + 600 * (k % 2)), "cls": str(k % 2).encode(),
                      "json": b'{"speaker": 3}'})
        for k in range(6)
    ])  # fmt: skip
    write_shard(root / "calls-000001.tar", [
        ("0006", {"wav": _sound(3.0, 300, "WAV")}),  # no label: an unlabelled item
        ("0007", {"json": b"{}"}),  # no sound: not an item
        ("0008", {"flac": _sound(1.0, 800)[:40], "cls": b"1"}),  # damaged
    ])  # fmt: skip
    assert infer_modality(str(root)) == "audio"
    assert infer_modality(str(root / "calls-000001.tar")) == "audio"
    source = open_source(str(root), sample_rate=8000)
    assert isinstance(source, WebDatasetAudioSource) and len(source) == 8
    assert source.ids[6:] == ["calls-000001/0006", "calls-000001/0008"]
    assert source.index_note == "WebDataset: 2 tar shards, 8 sounds"
    assert source.partial_labels.rows.tolist() == [0, 1, 2, 3, 4, 5, 7]
    batch = source.read_batch(range(8))
    assert batch.indices == [0, 1, 2, 3, 4, 5, 6] and batch.items.shape[1:] == (1, 64, 48)
    (skipped,) = batch.skipped
    assert skipped.item_id == "calls-000001/0008" and "cannot read audio" in skipped.reason
    low, high = batch.items[0], batch.items[1]  # 200 Hz and 800 Hz: different bands lit
    assert int(low.mean(dim=-1).argmax()) < int(high.mean(dim=-1).argmax())
    clips = open_source(str(root), sample_rate=8000, clip_hop=0.95)
    assert "calls-000001/0006@1.90s" in clips.ids  # the 3-second recording in clips
    assert sorted(clips.epoch_order(0, 0).tolist()) == list(range(len(clips)))
    with pytest.raises(ValueError, match=r"\.cls members; --labels is for a folder's files"):
        open_source(str(root), labels="labels.csv")
    run = pretrain(str(root), method="byola", steps=2, batch_size=4, out=str(tmp_path / "run"),
                   sample_rate=8000, monitor_items=0, show_progress=False)  # fmt: skip
    assert run.embed(str(root)).shape[0] == 8 and np.isnan(run.embed(str(root))[7]).all()


def test_shards_of_texts_are_text_and_captions_leave_images_images(tmp_path):
    """.txt members alone are documents (ids SHARD/KEY, .cls labels, a member not in UTF-8
    skipped with its reason); beside an image they are its caption, whichever comes first."""
    from selfsup.run import pretrain

    root = tmp_path / "tickets"
    teams = ["billing", "tech", "billing", "tech", "sales", "tech"]
    write_shard(root / "t-000000.tar", [
        (f"{k:05d}", {"txt": f"ticket {k}: please help with my {t} issue".encode(),
                      "cls": t.encode(), "json": b"{}"})
        for k, t in enumerate(teams)
    ])  # fmt: skip
    write_shard(root / "t-000001.tar", [
        ("00006", {"txt": "caf\xe9 order lost".encode("latin-1"), "cls": b"sales"}),
        ("00007", {"txt": b"no label on this one"}),
    ])  # fmt: skip
    assert infer_modality(str(root)) == "text"
    source = open_source(str(root))
    assert source.texts[1] == "ticket 1: please help with my tech issue"
    assert source.ids[7] == "t-000001/00007" and source.labels is None  # partly labelled
    assert source.partial_labels.classes == ["billing", "sales", "tech"]
    assert source.index_note == "WebDataset: 2 tar shards, 8 texts"
    assert "t-000001/00006" in source.warning and "cannot be read as text" in source.warning
    assert source.reasons[6].startswith("not UTF-8 text")
    data = (root / "t-000001.tar").read_bytes()  # a copy that stopped inside the last text
    cut = tmp_path / "cut" / "t-000001.tar"
    cut.parent.mkdir()
    cut.write_bytes(data[: data.index(b"no label on this one") + 5])
    copied = open_source(str(cut.parent), modality="text")
    assert copied.texts[1] is None and copied.reasons[1].startswith("cut short")
    assert source.partial_labels.rows.tolist() == [0, 1, 2, 3, 4, 5, 6]
    run = pretrain(str(root), method="sent2vec", steps=2, batch_size=4, out=str(tmp_path / "r"),
                   monitor_items=0, show_progress=False)  # fmt: skip
    z = run.embed(str(root))
    assert z.shape[0] == 8 and np.isnan(z[6]).all() and np.isfinite(z[7]).all()
    captioned = tmp_path / "captioned" / "c-000000.tar"  # members sorted: .txt before .webp
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(picture, format="WEBP")
    write_shard(captioned, [("0000", {"txt": b"a red square", "webp": picture.getvalue()})])
    assert infer_modality(str(captioned.parent)) == "image"
    assert len(open_source(str(captioned.parent))) == 1
