import re

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.data.base import EmptySourceError, ItemReadError
from selfsup.data.image_folder import ImageFolderSource


def _save(path, size=(20, 16), color=(255, 0, 0), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def _noise_png(path, side=64):
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)  # noise does not compress, so the file is long
    return path


@pytest.fixture
def labelled(tmp_path):
    """Two classes, five formats, five sizes."""
    _save(tmp_path / "cat" / "a.png", (20, 16))
    _save(tmp_path / "cat" / "b.JPG", (40, 30))
    _save(tmp_path / "dog" / "c.bmp", (12, 12))
    _save(tmp_path / "dog" / "deep" / "d.tiff", (16, 30))
    _save(tmp_path / "dog" / "e.webp", (33, 17))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    _save(tmp_path / "dog" / ".hidden.png")
    _save(tmp_path / ".thumbnails" / "x.png")
    return tmp_path


def test_labels_come_from_first_level_folders(labelled):
    src = ImageFolderSource(labelled)
    assert list(src.ids) == ["cat/a.png", "cat/b.JPG", "dog/c.bmp", "dog/deep/d.tiff", "dog/e.webp"]
    assert src.classes == ["cat", "dog"]
    assert src.labels.tolist() == [0, 0, 1, 1, 1]
    assert src.describe() == f"{labelled}: 5 image items, 2 classes"


def test_mixed_formats_read_to_one_size(labelled):
    src = ImageFolderSource(labelled)
    assert src.item_shape == (3, 16, 16)  # the shorter side of the first image, cat/a.png
    batch = src.read_batch(range(len(src)))
    assert batch.items.shape == (5, 3, 16, 16) and batch.skipped == []
    # Every image is solid red; JPEG and WebP are lossy, hence the tolerance.
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand_as(batch.items)
    assert torch.allclose(batch.items, red, atol=0.03)
    assert ImageFolderSource(labelled, image_size=8).read(3).shape == (3, 8, 8)


def test_flat_folder_is_unlabeled(tmp_path):
    _save(tmp_path / "b.png")
    _save(tmp_path / "a.png")
    src = ImageFolderSource(tmp_path)
    assert list(src.ids) == ["a.png", "b.png"]
    assert src.labels is None and src.classes is None


@pytest.mark.parametrize("layout", [("x.png", "one/y.png"), ("one/x.png", "one/y.png")])
def test_loose_images_or_a_single_folder_give_no_labels(tmp_path, layout):
    for rel in layout:
        _save(tmp_path / rel)
    assert ImageFolderSource(tmp_path).labels is None


def test_shorter_side_is_resized_then_center_cropped(tmp_path):
    # 30x10: black, white, black thirds; the center square is the white third.
    pixels = np.zeros((10, 30), dtype=np.uint8)
    pixels[:, 10:20] = 255
    Image.fromarray(pixels).save(tmp_path / "bars.png")
    item = ImageFolderSource(tmp_path, image_size=5).read(0)
    assert item.shape == (1, 5, 5)
    assert torch.all(item[:, :, 1:4] == 1.0) and torch.all(item > 0.8)  # edges blur a little


def test_crop_matches_resizing_the_whole_image_then_cropping(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (20, 60, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    image.save(tmp_path / "wide.png")
    reference = image.resize((30, 10), Image.Resampling.BILINEAR).crop((10, 0, 20, 10))
    expected = torch.from_numpy(np.array(reference)).permute(2, 0, 1).float() / 255
    item = ImageFolderSource(tmp_path, image_size=10).read(0)
    assert torch.allclose(item, expected, atol=2 / 255)


def test_gray_images_default_to_one_channel_and_can_be_made_rgb(tmp_path):
    _save(tmp_path / "g.png", (8, 8), 128, mode="L")
    assert ImageFolderSource(tmp_path).item_shape == (1, 8, 8)
    item = ImageFolderSource(tmp_path, channels=3).read(0)
    assert item.shape == (3, 8, 8)
    assert torch.allclose(item, torch.full((3, 8, 8), 128 / 255))


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((6, 6), 32768, dtype=np.uint16)).save(tmp_path / "deep.png")
    src = ImageFolderSource(tmp_path)
    assert src.item_shape == (1, 6, 6)
    assert torch.allclose(src.read(0), torch.full((1, 6, 6), 32768 / 65535))


def test_corrupt_files_fail_on_read_and_are_skipped_in_batches(tmp_path):
    _save(tmp_path / "a.png", (10, 10))
    (tmp_path / "b.png").write_bytes(np.random.default_rng(0).bytes(500))
    whole = _noise_png(tmp_path / "whole.png").read_bytes()
    (tmp_path / "c.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "whole.png").unlink()
    _save(tmp_path / "d.png", (10, 10))
    src = ImageFolderSource(tmp_path)
    for index, rel in ((1, "b.png"), (2, "c.png")):
        with pytest.raises(ItemReadError) as info:
            src.read(index)
        assert info.value.item_id == rel
    batch = src.read_batch([0, 1, 2, 3])
    assert batch.indices == [0, 3] and batch.items.shape == (2, 3, 10, 10)
    assert [(s.index, s.item_id) for s in batch.skipped] == [(1, "b.png"), (2, "c.png")]
    assert "truncated" in batch.skipped[1].reason


def test_defaults_come_from_the_readable_images(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    _save(tmp_path / "b.png", (9, 14), 7, mode="L")
    assert ImageFolderSource(tmp_path).item_shape == (1, 9, 9)


def test_empty_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(EmptySourceError, match=re.escape(str(tmp_path))):
        ImageFolderSource(tmp_path)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(EmptySourceError, match=re.escape(str(tmp_path))):
        ImageFolderSource(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"garbage")
    with pytest.raises(EmptySourceError, match="can be read"):
        ImageFolderSource(tmp_path)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolderSource(tmp_path / "nowhere")


def test_a_folder_whose_first_file_is_broken_still_pretrains(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from selfsup.run import pretrain

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "!broken.png").write_bytes(b"not a png")  # sorts before every other file
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray((rng.random((12, 12)) * 255).astype("uint8")).save(folder / f"{i:02d}.png")
    run = pretrain(str(folder), epochs=1, batch_size=16, backbone_options={"width": 4},
                   out=str(tmp_path / "run"), show_progress=False)  # fmt: skip
    assert run.config["image_size"] == 12 and run.summary["steps"] >= 1
    assert "!broken.png" in (tmp_path / "run" / "skipped.txt").read_text()


def test_one_huge_file_does_not_set_the_size_and_jpegs_decode_at_reduced_scale(tmp_path):
    """The default side is the median of a sample of headers: a huge PNG sorting first, or a
    tiny one, does not set it; read_at makes later reads decode straight to a side."""
    _save(tmp_path / "0-huge.png", (4000, 3000))
    for i in range(6):
        _save(tmp_path / f"{i}.jpg", (640, 480))
    _save(tmp_path / "9-tiny.png", (8, 8))
    source = ImageFolderSource(tmp_path)
    assert source.item_shape == (3, 480, 480)
    source.read_at(64)
    assert source.read(0).shape == (3, 64, 64) and source.read(1).shape == (3, 64, 64)
    from PIL import JpegImagePlugin

    opened = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def draft(image, mode, size):
        opened.append(size)
        return real_draft(image, mode, size)

    JpegImagePlugin.JpegImageFile.draft = draft
    try:
        source.read(1)
    finally:
        JpegImagePlugin.JpegImageFile.draft = real_draft
    assert opened == [(86, 64)]  # asked to decode near 64 px, not at 640 x 480


@pytest.mark.parametrize("channels", [3, 1])
def test_training_batches_of_8_bit_files_are_the_same_floats_sent_as_uint8(tmp_path, channels):
    from selfsup.data.base import unit_items

    rng = np.random.default_rng(0)
    for i in range(3):  # noise, so a wrong axis or scale shows
        pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"rgb{i}.png")
    Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(tmp_path / "gray.png")
    wide = rng.integers(0, 65536, (24, 24), dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")  # 16-bit gray
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    src = ImageFolderSource(tmp_path, image_size=16, channels=channels)
    ids = list(src.ids)
    narrow = [ids.index(n) for n in ("broken.png", "gray.png", "rgb0.png", "rgb2.png")]
    sent = src.read_training_batch(narrow)
    assert sent.items.dtype == torch.uint8 and sent.items.shape[1:] == (channels, 16, 16)
    assert sent.indices == narrow[1:] and [s.item_id for s in sent.skipped] == ["broken.png"]
    assert torch.equal(unit_items(sent.items), src.read_batch(narrow).items)
    every = list(range(len(ids)))  # the 16-bit file makes the whole batch float
    floats = src.read_training_batch(every)
    assert floats.items.dtype == torch.float32
    assert torch.equal(floats.items, src.read_batch(every).items)


def _wide_png(path, peak, shape=(12, 16), seed=0):
    """A 16-bit gray PNG of noise up to ``peak`` (reached at its corner)."""
    values = np.random.default_rng(seed).integers(0, peak + 1, shape).astype(np.uint16)
    values[0, 0] = peak
    Image.fromarray(values).save(path)


def test_a_cameras_12_bit_values_in_16_bit_files_span_zero_to_one(tmp_path):
    import tifffile

    for k in range(3):
        _wide_png(tmp_path / f"a{k}.png", 4000, seed=k)
    tifffile.imwrite(tmp_path / "b.tif", np.full((12, 16), 4095, np.uint16))
    src = ImageFolderSource(tmp_path, image_size=12)
    assert src.pixel_bits == 12
    assert "12-bit values in wider files (at most 4,095 in 4 sampled)" in src.index_note
    assert float(src.read(3).max()) == pytest.approx(1.0)  # was 4095 / 65535: 6% of [0, 1]
    assert float(src.read(0).max()) <= 4000 / 4095 + 1e-6
    told = ImageFolderSource(tmp_path, image_size=12, pixel_bits=16)  # --pixel-bits 16
    assert float(told.read(3).max()) == pytest.approx(4095 / 65535)
    assert float(told.read(0).max()) <= 4000 / 65535 + 1e-6
    # values above the bits said are clipped at 1, in TIFFs and PNGs alike
    ten = ImageFolderSource(tmp_path, image_size=12, pixel_bits=10)
    assert float(ten.read(3).max()) == 1.0 and float(ten.read(0).max()) == 1.0


def test_full_16_bit_8_bit_and_dim_folders_get_their_own_scale(tmp_path):
    for name in ("deep", "photos", "dim"):
        (tmp_path / name).mkdir()
    _wide_png(tmp_path / "deep" / "a.png", 60000)
    deep = ImageFolderSource(tmp_path / "deep")
    assert deep.pixel_bits == 16 and "bit values" not in (deep.index_note or "")
    _save(tmp_path / "photos" / "a.png")
    photos = ImageFolderSource(tmp_path / "photos")
    assert photos.pixel_bits is None and "bit values" not in (photos.index_note or "")
    _wide_png(tmp_path / "dim" / "a.png", 1000)  # a 10-bit sensor
    assert ImageFolderSource(tmp_path / "dim").pixel_bits == 10


def test_a_run_reads_later_files_on_its_training_datas_scale(tmp_path):
    from selfsup.run import Run, pretrain

    folder, later = tmp_path / "cells", tmp_path / "later"
    folder.mkdir()
    later.mkdir()
    for k in range(24):
        _wide_png(folder / f"{k:02d}.png", 4095, seed=k)
    _wide_png(later / "dim.png", 1000)  # alone, a 10-bit file
    run = pretrain(str(folder), steps=1, batch_size=8, backbone="small-cnn",
                   backbone_options={"width": 4}, out=str(tmp_path / "run"),
                   show_progress=False, monitor_items=0)  # fmt: skip
    assert run.config["pixel_bits"] == 12
    opened = run.open(later)
    assert opened.pixel_bits == 12
    assert float(opened.read(0).max()) == pytest.approx(1000 / 4095, abs=0.01)
    # a run saved before runs kept the scale read its data by 65535, as it was trained
    config = {k: v for k, v in run.config.items() if k != "pixel_bits"}
    assert Run(run.path, run.encoder, config, run.summary).open(later).pixel_bits == 16
    # an image file explained alone is read on the run's scale too
    from selfsup.tools.explain.items import resolve_item

    item = resolve_item(run, str(later / "dim.png"))[0]
    assert float(item.max()) == pytest.approx(1000 / 4095, abs=0.01)
    # --init RUN trains on the later files on the earlier run's scale, and keeps it
    for k in range(24):
        _wide_png(later / f"{k:02d}.png", 1000, seed=k)
    options = dict(steps=1, batch_size=8, show_progress=False, monitor_items=0)
    again = pretrain(str(later), init=str(run.path), out=str(tmp_path / "again"), **options)
    assert again.config["pixel_bits"] == 12 and again.open(later).pixel_bits == 12
    alone = pretrain(str(later), backbone="small-cnn", backbone_options={"width": 4},
                     out=str(tmp_path / "alone"), **options)  # fmt: skip
    assert alone.config["pixel_bits"] == 10  # its own data's scale without --init


def _heic(path, pixels, orientation=None, thumbnails=()):
    """A HEIC photo as a phone writes it: its EXIF rotation, embedded thumbnails."""
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=90, thumbnails=list(thumbnails), exif=exif.tobytes())


def test_a_phones_heic_photos_are_read_upright_and_what_is_left_out_is_said(tmp_path):
    """HEIC, a phone's default, is read (it was left out without a word); a photo its phone
    held sideways (EXIF orientation 6) is read upright; the videos and edit files beside the
    photos are counted in the note, and a folder of nothing else says what it holds."""
    pixels = np.zeros((48, 96, 3), np.uint8)
    pixels[:, :48] = 255  # the left half white: upright, the top half
    phone = tmp_path / "phone"
    phone.mkdir()
    _heic(phone / "IMG_0001.HEIC", pixels, orientation=6)
    _heic(phone / "IMG_0002.heic", pixels)
    (phone / "IMG_0001.MOV").write_bytes(b"\0" * 64)  # a live photo's video
    (phone / "IMG_0002.AAE").write_text("<plist/>")  # an edit's sidecar
    src = ImageFolderSource(phone, image_size=32)
    assert list(src.ids) == ["IMG_0001.HEIC", "IMG_0002.heic"]
    assert src.index_note.endswith("; 2 other files (.aae 1, .mov 1) left out")
    upright, plain = src.read(0)[0], src.read(1)[0]
    assert upright[:8].mean() > 0.9 and upright[-8:].mean() < 0.1
    assert plain[:, :8].mean() > 0.9 and plain[:, -8:].mean() < 0.1
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mov").write_bytes(b"\0")
    with pytest.raises(EmptySourceError, match=r"it holds 1 other file \(\.mov\)$"):
        ImageFolderSource(videos)


def test_a_large_heic_decodes_its_embedded_thumbnail(tmp_path):
    """As a large JPEG decodes at a reduced scale, a large HEIC decodes the thumbnail it
    embeds when that is at least the side asked for (a 12-megapixel photo's 320x240 decodes
    about 40 times faster than the photo), and gives the same picture."""
    from pillow_heif.as_plugin import HeifImageFile

    pixels = np.zeros((384, 512, 3), np.uint8)
    pixels[:, :256] = 255
    _heic(tmp_path / "IMG_0003.HEIC", pixels, thumbnails=[128])
    chosen = []
    real_draft = HeifImageFile.draft

    def draft(image, mode, size):
        chosen.append(real_draft(image, mode, size))
        return chosen[-1]

    HeifImageFile.draft = draft
    try:
        read = ImageFolderSource(tmp_path, image_size=32).read(0)[0]
    finally:
        HeifImageFile.draft = real_draft
    assert chosen == [("RGB", (0, 0, 128, 96))]  # the thumbnail, not the photo
    assert read[:, :12].mean() > 0.9 and read[:, -12:].mean() < 0.1


def test_the_first_item_is_read_alone_and_check_reads_at_the_training_side(tmp_path):
    """Learning the items' shape reads one photo, not eight (eight 12-megapixel photos as
    floats held 2.2 GB); ``datasets show --check`` reads every photo at the side a run on a
    CPU trains at, not at their own."""
    from selfsup.modalities import get_modality

    for i in range(10):
        _save(tmp_path / f"{i}.png", (300, 200))
    (tmp_path / "0.png").write_bytes(b"")
    src = ImageFolderSource(tmp_path)
    reads = []
    real_read = src.read
    src.read = lambda index: reads.append(index) or real_read(index)
    assert src.first_item().shape == (1, 3, 200, 200) and reads == [0, 1]
    get_modality("image").read_as_trained(src, "cpu")
    assert src.read(1).shape == (3, 128, 128)


def test_gifs_and_jfif_jpegs_from_the_web_are_read(tmp_path):
    """A scraped folder's GIFs (their first frame, a palette made RGB) and the JPEGs a
    browser saves as ``.jfif`` are images (they were left out without a word)."""
    frames = [Image.new("P", (24, 18), 3), Image.new("P", (24, 18), 7)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (30, 20), (0, 0, 255)).save(tmp_path / "b.jfif", "JPEG")
    src = ImageFolderSource(tmp_path)
    assert list(src.ids) == ["a.gif", "b.jfif"] and src.index_note.startswith("found 2 files")
    batch = src.read_batch([0, 1])
    assert batch.skipped == [] and batch.items.shape == (2, 3, 19, 19)  # the median side
    assert batch.items[1, 2].mean() > 0.9  # blue


def test_packing_shows_progress_and_packed_heics_read_as_files_do(tmp_path, monkeypatch, capsys):
    """``datasets pack`` shows its progress once it takes long (a phone's library is
    hundreds of GB to copy; it said nothing until it ended), and the HEICs it packs read
    as the folder's do: upright, a cut one and an empty one skipped with their reasons."""
    from selfsup.core import progress
    from selfsup.data.shards import ShardSource, pack_image_folder

    pixels = np.zeros((48, 96, 3), np.uint8)
    pixels[:, :48] = 255
    phone = tmp_path / "phone"
    phone.mkdir()
    _heic(phone / "IMG_0001.HEIC", pixels, orientation=6)
    data = (phone / "IMG_0001.HEIC").read_bytes()
    (phone / "IMG_0002.HEIC").write_bytes(data[: len(data) // 2])
    (phone / "IMG_0003.HEIC").write_bytes(b"")
    monkeypatch.setattr(progress, "AUTO_AFTER", 0.0)
    assert pack_image_folder(phone, tmp_path / "shards") == 3
    assert "packing" in capsys.readouterr().out
    shards = ShardSource(tmp_path / "shards", image_size=32)
    batch = shards.read_batch([0, 1, 2])
    assert batch.indices == [0] and batch.items[0, 0, :8].mean() > 0.9
    reasons = sorted(s.reason for s in batch.skipped)
    assert "the file is cut short" in reasons[0] and "the file is empty" in reasons[1]


def test_a_phones_date_folders_are_held_out_whole_days(tmp_path):
    """A phone's import filed by day (``2024-05-01/``...) keeps a day's photos (a burst,
    copies of one scene) on one side of an evaluation's split, as a hospital's patients
    are; class folders do not."""
    from selfsup.modalities import train_test_sources

    rng = np.random.default_rng(0)
    rows = []
    for day in range(1, 11):
        for shot in range(4):
            rel = f"2024-05-{day:02d}/IMG_{day}{shot}.png"
            (tmp_path / "phone" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(
                tmp_path / "phone" / rel
            )
            rows.append(f"{rel},{'cat' if (day + shot) % 2 else 'dog'}")
    (tmp_path / "labels.csv").write_text("file_name,label\n" + "\n".join(rows) + "\n")
    phone = ImageFolderSource(tmp_path / "phone", labels_file=tmp_path / "labels.csv")
    assert phone.split_groups == "days"
    fit, test = train_test_sources(phone)
    days = [{i.split("/")[0] for i in part.ids} for part in (fit, test)]
    assert not days[0] & days[1] and len(days[1]) == 2 and "2 days" in test.name
    _save(tmp_path / "pets" / "cat" / "a.png")
    _save(tmp_path / "pets" / "dog" / "b.png")
    assert ImageFolderSource(tmp_path / "pets").split_groups is None
