"""TIFFs of microscopes and satellites: bit depths, channels as samples or pages, stacks,
pyramids, codecs left to PIL; folders of five-channel images trained, embedded, exported and
explained; images an encoder cannot read refused in one line."""

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.data.image_folder import ImageFolderSource, image_header, read_pixels
from selfsup.data.shards import ShardSource, pack_image_folder
from selfsup.data.tiff import _to_unit, read_tiff, tiff_header
from selfsup.views.image_ops import ColorJitter


def channel_ramp(channels, height=12, width=16, peak=4095):
    """(channels, height, width) uint16 where channel c holds c * 100 + its column."""
    columns = np.arange(width)[None, None, :] + np.zeros((channels, height, 1))
    return (np.arange(channels)[:, None, None] * 100 + columns).clip(0, peak).astype(np.uint16)


def test_samples_and_pages_are_channels_scaled_by_their_bit_depth(tmp_path):
    pixels = channel_ramp(3)
    tifffile.imwrite(tmp_path / "contig.tif", pixels.transpose(1, 2, 0), photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", pixels, photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "pages.tif", channel_ramp(5), photometric="minisblack")
    bands = np.random.default_rng(0).integers(0, 10000, (12, 16, 13), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "bands.tif", bands, photometric="minisblack", planarconfig=1)
    expected = pixels.transpose(1, 2, 0)[:, 2:14] / 65535  # the centre square, kept at 12
    for name in ("contig", "planar"):
        assert tiff_header(tmp_path / f"{name}.tif") == (16, 12, 3)
        assert np.allclose(read_tiff(tmp_path / f"{name}.tif", 12), expected, atol=1e-6)
    assert tiff_header(tmp_path / "pages.tif") == (16, 12, 5)
    five = read_tiff(tmp_path / "pages.tif", 12)
    assert five.shape == (12, 12, 5)
    assert np.allclose(five[0, 0] * 65535, [2, 102, 202, 302, 402], atol=0.01)
    thirteen = read_tiff(tmp_path / "bands.tif", 12)
    assert np.allclose(thirteen * 65535, bands[:, 2:14], atol=0.01)
    # PIL read the first of five pages as a gray image and refused thirteen samples.
    assert image_header(tmp_path / "pages.tif") == (12, 5)


def test_a_12_bit_file_is_scaled_by_4095_and_min_is_white_inverted(tmp_path):
    # tifffile writes packed 12-bit samples only with imagecodecs: the scaling alone.
    assert np.allclose(_to_unit(np.array([4095, 0], np.uint16), 12), [1.0, 0.0])
    assert np.allclose(_to_unit(np.array([4095], np.uint16), 16), 4095 / 65535)
    tifffile.imwrite(tmp_path / "white.tif", np.zeros((8, 8), np.uint8), photometric="miniswhite")
    assert np.allclose(read_tiff(tmp_path / "white.tif", 8), 1.0)


def test_floats_and_signed_values_and_alpha(tmp_path):
    rgb = np.random.default_rng(1).random((10, 10, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "reflectance.tif", rgb, photometric="rgb")
    assert np.allclose(read_tiff(tmp_path / "reflectance.tif", 10), rgb)  # [0, 1] kept
    signed = np.array([[-500, 0], [250, 500]], np.int16)
    tifffile.imwrite(tmp_path / "signed.tif", signed)
    assert np.allclose(read_tiff(tmp_path / "signed.tif", 2)[..., 0], [[0, 0.5], [0.75, 1]])
    rgba = np.concatenate([(rgb * 255).astype(np.uint8), np.zeros((10, 10, 1), np.uint8)], 2)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert tiff_header(tmp_path / "rgba.tif") == (10, 10, 3)
    assert np.allclose(read_tiff(tmp_path / "rgba.tif", 10), rgba[..., :3] / 255)
    nan = np.full((4, 4), np.nan, np.float32)
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(ValueError, match="NaN or infinite"):
        read_tiff(tmp_path / "nan.tif", 4)


def test_a_geotiffs_pixels_without_data_are_black_and_out_of_the_range(tmp_path):
    heights = np.linspace(500, 600, 16, dtype=np.float32).reshape(4, 4)
    for name, fill in (("dem.tif", "-9999"), ("dem-nan.tif", "nan")):
        tile = heights.copy()
        tile[0] = float(fill)  # the tile's edge outside the survey
        nodata = [(42113, "s", 0, fill, True)]  # GDAL_NODATA
        tifffile.imwrite(tmp_path / name, tile, extratags=nodata)
        pixels = read_tiff(tmp_path / name, 4)[..., 0]
        assert (pixels[0] == 0).all()
        # The range is that of the heights left: 525.3..600 spans [0, 1].
        left = heights[1:]
        assert np.allclose(pixels[1:], (left - left.min()) / (600 - left.min()))


def test_a_stack_gives_its_middle_plane_reading_only_its_pages(tmp_path, monkeypatch):
    z, c = 5, 2
    planes = [[np.full((8, 8), 1000 * k + ch) for ch in range(c)] for k in range(z)]
    stack = np.asarray(planes)
    tifffile.imwrite(tmp_path / "zc.ome.tif", stack.astype(np.uint16), metadata={"axes": "ZCYX"})
    read_pages = []
    original = tifffile.TiffPage.asarray

    def counted(page, *args, **kwargs):
        read_pages.append(page.index)
        return original(page, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", counted)
    pixels = read_tiff(tmp_path / "zc.ome.tif", 8)
    assert pixels.shape == (8, 8, 2)
    assert np.allclose(pixels[0, 0] * 65535, [2000, 2001])  # plane 2 of 0..4, both channels
    assert len(read_pages) == 2


def test_a_pyramid_is_read_at_the_smallest_level_that_is_large_enough(tmp_path):
    full = np.full((256, 256), 100, np.uint16)
    with tifffile.TiffWriter(tmp_path / "pyramid.tif") as tiff:
        tiff.write(full, subifds=2, tile=(64, 64))
        tiff.write(np.full((128, 128), 200, np.uint16), subfiletype=1, tile=(64, 64))
        tiff.write(np.full((64, 64), 300, np.uint16), subfiletype=1, tile=(64, 64))
    # The levels hold other values, so the one read shows: 100 for 256, 200 for 128, 300 for 64.
    assert round(float(read_tiff(tmp_path / "pyramid.tif", 100).mean()) * 65535) == 200
    assert round(float(read_tiff(tmp_path / "pyramid.tif", 64).mean()) * 65535) == 300
    assert round(float(read_tiff(tmp_path / "pyramid.tif", 200).mean()) * 65535) == 100


def test_too_many_samples_are_refused_as_a_photo_bomb_is(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "slide.tif", np.zeros((5, 40, 40), np.uint16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    with pytest.raises(ValueError, match="40x40 pixels of 5 channels is above"):
        read_tiff(tmp_path / "slide.tif", 8)


def test_compressions_of_gdal_and_slide_scanners_are_read_and_their_tiles_too(tmp_path):
    data = (np.arange(64 * 64).reshape(64, 64) % 60000).astype(np.uint16)
    Image.fromarray(data).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    pixels = read_pixels(tmp_path / "lzw.tif", 64, 1)
    assert np.allclose(pixels * 65535, data, atol=0.02)
    # GDAL's LZW on four 16-bit bands (PIL reads no such image), a scanner's JPEG tiles
    bands = np.random.default_rng(0).integers(0, 65535, (300, 200, 4), dtype=np.uint16)
    options = {"photometric": "minisblack", "planarconfig": "contig", "tile": (64, 64)}
    tifffile.imwrite(tmp_path / "bands.tif", bands, compression="lzw", **options)
    region = read_tiff(tmp_path / "bands.tif", 50, region=(100, 60, 50))
    assert np.allclose(region * 65535, bands[100:150, 60:110], atol=0.02)
    slide = np.zeros((256, 256, 3), np.uint8)
    slide[128:, 128:] = 200
    tifffile.imwrite(
        tmp_path / "slide.tif", slide, compression="jpeg", photometric="rgb", tile=(64, 64)
    )
    assert (
        abs(float(read_tiff(tmp_path / "slide.tif", 32, region=(160, 160, 64)).mean()) - 200 / 255)
        < 0.02
    )
    palette = Image.new("P", (20, 20))
    palette.putpalette([255, 0, 0] * 256)
    palette.save(tmp_path / "palette.tif")
    assert np.allclose(read_pixels(tmp_path / "palette.tif", 20, 3)[0, 0], [255, 0, 0])


def test_a_folder_of_five_channel_images_skips_others_with_their_counts(tmp_path, caplog):
    root = tmp_path / "plate"
    root.mkdir()
    for i in range(4):
        tifffile.imwrite(root / f"well{i}.tif", channel_ramp(5, 20, 24))
    tifffile.imwrite(root / "rgb.tif", np.zeros((20, 24, 3), np.uint16), photometric="rgb")
    Image.new("L", (20, 24)).save(root / "overview.png")
    (root / "cut.tif").write_bytes((root / "well0.tif").read_bytes()[:1000])
    src = ImageFolderSource(root)
    assert src.channels == 5 and src.item_shape == (5, 20, 20)
    batch = src.read_batch(range(len(src)))
    reasons = {item.item_id: item.reason for item in batch.skipped}
    assert sorted(reasons) == ["cut.tif", "overview.png", "rgb.tif"]
    assert "3 channels where the data's images have 5" in reasons["rgb.tif"]
    assert "a gray image where the data's images have 5 channels" in reasons["overview.png"]
    assert batch.items.shape == (4, 5, 20, 20)
    # The cut file's reason once, not tifffile's log lines ("invalid page offset") as well.
    assert "cannot read image" in reasons["cut.tif"] and not caplog.records
    # Packed into shards, the plate reads the same.
    pack_image_folder(root, tmp_path / "shards")
    packed = ShardSource(tmp_path / "shards")
    assert packed.channels == 5
    again = packed.read_batch(range(len(packed)))
    assert torch.allclose(again.items, batch.items)


def test_contrast_blends_each_channel_of_a_colourless_image_with_its_own_mean():
    images = torch.stack([torch.full((4, 4), v) for v in (0.1, 0.5, 0.9, 0.3, 0.7)])[None]
    images[0, :, 0, 0] += 0.05  # one brighter pixel per channel
    blended = ColorJitter.adjust(images.clone(), 1, torch.tensor([0.0]))
    assert torch.allclose(blended[0, :, 0, 0], images[0].mean((1, 2)))


def test_pretrain_embed_export_and_explain_a_folder_of_five_channel_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    (tmp_path / "plate").mkdir()
    for i in range(12):
        wells = rng.integers(0, 4096, (5, 24, 30), dtype=np.uint16)
        tifffile.imwrite(tmp_path / "plate" / f"w{i:02d}.tif", wells, photometric="minisblack")
    runner = CliRunner()
    options = ["--steps", "2", "--batch-size", "4", "--backbone", "small-cnn"]
    result = runner.invoke(app, ["pretrain", "plate", *options, "--out", "runs/cells"])
    assert result.exit_code == 0, result.output
    assert "12 image items" in result.output
    result = runner.invoke(app, ["embed", "runs/cells", "plate", "--out", "cells.npy"])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "cells.npy").shape[0] == 12
    result = runner.invoke(app, ["export", "runs/cells", "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert "max abs difference" in result.output
    result = runner.invoke(app, ["explain", "runs/cells", "plate/w03.tif"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs/cells/explain").is_dir()
    Image.new("RGB", (30, 24)).save(tmp_path / "photo.png")
    result = runner.invoke(app, ["explain", "runs/cells", "photo.png"])
    message = "photo.png: cannot read image: a colour image where the data's images have 5"
    assert result.exit_code != 0 and message in str(result.exception)


def test_a_pretrained_colour_model_refuses_five_channels_in_one_line(tmp_path, monkeypatch):
    from transformers import Dinov2Config, Dinov2Model

    monkeypatch.chdir(tmp_path)
    tower = {"image_size": 16, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "mlp_ratio": 2}  # fmt: skip
    Dinov2Model(Dinov2Config(**tower)).save_pretrained(tmp_path / "dinov2")
    (tmp_path / "plate").mkdir()
    for i in range(4):
        tifffile.imwrite(tmp_path / "plate" / f"w{i}.tif", channel_ramp(5, 16, 16))
    runner = CliRunner()
    refusal = "hf:dinov2 reads 3-channel images and these have 5 channels; a built-in backbone"
    for command in (
        ["embed", "hf:dinov2", "plate", "--out", "e.npy"],
        ["pretrain", "plate", "--backbone", "hf:dinov2", "--steps", "1", "--out", "runs/a"],
        ["pretrain", "plate", "--method", "distill", "--teacher", "hf:dinov2", "--steps", "1",
         "--backbone", "small-cnn", "--batch-size", "2", "--out", "runs/b"],
    ):  # fmt: skip
        result = runner.invoke(app, command)
        assert result.exit_code != 0 and refusal in str(result.exception), command


def test_a_plate_readers_file_per_channel_export_is_one_image_of_its_channels(tmp_path):
    root = tmp_path / "plate"
    (root / "p1").mkdir(parents=True)
    channels = ["1", "2", "10"]  # ch10 after ch2: numbers in their order
    for well in ("r01c01", "r01c02"):
        for k, channel in enumerate(channels):
            value = 1000 * k + (well == "r01c02") * 7
            plane = np.full((12, 16), value, np.uint16)
            tifffile.imwrite(root / "p1" / f"{well}f01-ch{channel}sk1.tiff", plane)
    (root / "p1" / "r01c02f01-ch2sk1.tiff").unlink()  # a channel the export lost
    Image.new("L", (16, 12)).save(root / "p1" / "overview.png")
    (tmp_path / "labels.csv").write_text("file_name,label\np1/r01c01f01-ch1sk1.tiff,ctrl\n")
    src = ImageFolderSource(root, channel_pattern=r"-ch(\d+)", labels_file=tmp_path / "labels.csv")
    assert list(src.ids) == ["p1/r01c01f01-ch*sk1.tiff", "p1/r01c02f01-ch*sk1.tiff"]
    assert src.channels == 3 and src.item_shape == (3, 12, 12)
    assert "2 images of 3 channel files each (channels 1, 2, 10" in src.index_note
    assert "1 file without a channel in their name left out (p1/overview.png)" in src.index_note
    batch = src.read_batch([0, 1])
    assert "12-bit values in wider files (at most 2,007 in 5 sampled)" in src.index_note
    assert np.allclose(batch.items[0, :, 0, 0] * 4095, [0, 1000, 2000])
    assert batch.skipped[0].reason.endswith("2 of 3 channel files: none for channel 2")
    assert src.partial_labels.rows.tolist() == [0]  # the table names the item by its ch1 file
    # a table may name an item by any of its channel files, or by its id
    for name in ("r01c02f01-ch10sk1.tiff", "p1/r01c02f01-ch*sk1.tiff"):
        (tmp_path / "two.csv").write_text(
            f"file,label\np1/r01c01f01-ch2sk1.tiff,ctrl\n{name},drug\n"
        )
        two = ImageFolderSource(root, channel_pattern=r"-ch(\d+)", labels_file=tmp_path / "two.csv")
        assert two.classes == ["ctrl", "drug"] and two.labels.tolist() == [0, 1], name
    with pytest.raises(ValueError, match="no file name holds a channel matching"):
        ImageFolderSource(root, channel_pattern=r"_w(\d)")
    with pytest.raises(ValueError, match="not a regular expression"):
        ImageFolderSource(root, channel_pattern=r"-ch(\d+")


def test_a_run_on_channel_files_reads_later_data_the_same_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    (tmp_path / "plate").mkdir()
    for well in range(10):
        for channel in (1, 2, 3, 4):
            plane = rng.integers(0, 4096, (20, 20), dtype=np.uint16)
            tifffile.imwrite(tmp_path / "plate" / f"A{well:02d}_s1_w{channel}.tif", plane)
    runner = CliRunner()
    options = ["--steps", "2", "--batch-size", "4", "--backbone", "small-cnn"]
    result = runner.invoke(
        app, ["pretrain", "plate", "--channel-pattern", "_w([0-9])", *options, "--out", "runs/w"]
    )
    assert result.exit_code == 0, result.output
    assert "10 image items" in result.output
    result = runner.invoke(app, ["embed", "runs/w", "plate", "--out", "wells.parquet"])
    assert result.exit_code == 0, result.output
    import pandas as pd

    wells = pd.read_parquet(tmp_path / "wells.parquet")
    assert wells["id"].tolist()[:2] == ["A00_s1_w*.tif", "A01_s1_w*.tif"]
    # One channel's file names its image: explain attributes all four channels.
    from selfsup.tools.explain.items import resolve_item

    item, key, _, row = resolve_item(selfsup.load("runs/w"), "plate/A03_s1_w2.tif")
    assert key == "plate/A03_s1_w*.tif" and row == 3 and item.shape[0] == 4
    result = runner.invoke(app, ["explain", "runs/w", "plate/A03_s1_w2.tif"])
    assert result.exit_code == 0, result.output
    # Packed into shards (a folder of Parquet files), they are still images, not a table.
    from selfsup.modalities import infer_modality, open_source

    pack_image_folder(tmp_path / "plate", tmp_path / "shards")
    assert infer_modality(str(tmp_path / "shards")) == "image"
    with pytest.raises(ValueError, match="--channel-pattern is for a folder's files"):
        open_source(tmp_path / "shards", channel_pattern="_w([0-9])")


def test_packed_shards_of_12_bit_tiffs_read_on_the_folders_scale(tmp_path):
    root = tmp_path / "cells"
    root.mkdir()
    for k in range(6):
        tifffile.imwrite(root / f"{k}.tif", channel_ramp(2) + np.uint16(2000 + 300 * k))
    folder = ImageFolderSource(root)
    pack_image_folder(root, tmp_path / "shards")
    packed = ShardSource(tmp_path / "shards")
    assert folder.pixel_bits == packed.pixel_bits == 12  # at most 3,615
    assert "12-bit values in wider files (at most 3,615" in packed.index_note
    assert torch.equal(packed.read(5), folder.read(5))
    assert float(packed.read(5).max()) == pytest.approx(3615 / 4095, abs=2e-3)
