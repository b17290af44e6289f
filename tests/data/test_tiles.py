"""Large images cut into tiles (``--tile``): a satellite scene, a slide, an inspection frame.
A TIFF's tile is read from the segments under it alone; other formats crop their decoded
image; labels of files label their tiles; an image's tiles are held out together."""

import io
import re

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.data import image_folder, tiff
from selfsup.data.base import EmptySourceError
from selfsup.data.held import file_key
from selfsup.data.image_folder import (
    DECODED,
    ImageFolderSource,
    decode_pixels,
    image_dimensions,
    read_pixels,
    tile_decode_bytes,
    tile_grid,
)
from selfsup.data.splits import hold_out, split_group_ids
from selfsup.data.tiff import _read_plane, read_tiff


def whole_plane(stream):
    """The (channels, Y, X) plane read whole, as the reference a region is cut from."""
    stream.seek(0)
    with tiff._opened(stream) as opened:
        series = opened.series[0]
        return tiff._plane(series, tiff._layout(series))


LAYOUTS = {
    "tiles": ((300, 260, 4), {"tile": (64, 64), "compression": "zlib"}),
    "strips": ((300, 260, 4), {"rowsperstrip": 7}),
    "planar tiles": ((4, 300, 260), {"planarconfig": "separate", "tile": (32, 48)}),
    "planar strips": ((4, 300, 260), {"planarconfig": "separate", "rowsperstrip": 13}),
    "pages": ((5, 300, 260), {"photometric": "minisblack", "tile": (64, 64)}),
    "one strip": ((300, 260), {}),
    "hyperstack": ((3, 5, 300, 260), {"imagej": True, "metadata": {"axes": "ZCYX"}}),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_region_of_every_tiff_layout_is_the_whole_plane_cropped(layout):
    shape, options = LAYOUTS[layout]
    pixels = np.random.default_rng(0).integers(0, 4096, shape, dtype=np.uint16)
    stream = io.BytesIO()
    tifffile.imwrite(stream, pixels, **options)
    whole = whole_plane(stream)
    height, width = whole.shape[1:]
    for top, left in [(0, 0), (37, 51), (height - 70, width - 70)]:
        stream.seek(0)
        region, _ = _read_plane(stream, 70, (top, left, 70))
        assert np.array_equal(region, whole[:, top : top + 70, left : left + 70])


def test_a_scene_above_the_bomb_limit_reads_its_tiles_decoding_only_those_under_them(
    monkeypatch,
):
    scene = np.random.default_rng(1).integers(0, 4096, (512, 512, 4), dtype=np.uint16)
    stream = io.BytesIO()
    tifffile.imwrite(
        stream,
        scene,
        tile=(64, 64),
        compression="zlib",
        photometric="minisblack",
        planarconfig="contig",
    )
    stream.seek(0)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # the scene's 1M samples: a bomb
    with pytest.raises(ValueError, match="decompression-bomb"):
        read_tiff(stream, 32)
    decoded = []
    real = tifffile.TiffPage.decode

    def counting(page):
        decode = real.__get__(page)  # cached_property: the function for this page

        def spy(data, index, **kwargs):
            decoded.append(index)
            return decode(data, index, **kwargs)

        return spy

    monkeypatch.setattr(tifffile.TiffPage, "decode", property(counting))
    tile = read_tiff(stream, 64, bits=12, region=(64, 128, 64))
    assert decoded == [1 * 8 + 2]  # one 64-pixel tile of the file: row 1, column 2
    assert np.allclose(tile, scene[64:128, 128:192] / 4095, atol=1e-6)


def test_a_pyramid_reads_a_tile_at_the_smallest_level_still_large_enough():
    base = np.random.default_rng(2).integers(0, 255, (1024, 768, 3), dtype=np.uint8)
    stream = io.BytesIO()
    with tifffile.TiffWriter(stream) as writer:
        writer.write(base, tile=(128, 128), subifds=2, photometric="rgb")
        for step in (2, 4):
            writer.write(base[::step, ::step], tile=(128, 128), subfiletype=1, photometric="rgb")
    stream.seek(0)
    region, _ = _read_plane(stream, 64, (512, 256, 256))  # a quarter level holds 64 of it
    assert np.array_equal(region, np.moveaxis(base[::4, ::4][128:192, 64:128], 2, 0))
    stream.seek(0)
    region, _ = _read_plane(stream, 200, (512, 256, 256))
    assert np.array_equal(region, np.moveaxis(base[512:768, 256:512], 2, 0))


def test_a_photo_held_sideways_is_cut_upright_and_a_jpeg_decodes_at_the_tiles_scale():
    upright = np.zeros((600, 400, 3), np.uint8)  # 400 wide, 600 high as shown
    upright[:200, 200:] = 255  # white at the top right
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: the camera's rotation shows it upright
    stream = io.BytesIO()
    Image.fromarray(np.rot90(upright, 1)).save(stream, "JPEG", exif=exif, quality=95)
    assert image_dimensions(stream) == (400, 600, 3)
    white = read_pixels(stream, 50, 3, region=(0, 200, 200))
    black = read_pixels(stream, 50, 3, region=(400, 0, 200))
    assert white[10:40, 10:40].min() > 200 and black[10:40, 10:40].max() < 50


def frames(root, count=3, size=(700, 500)):
    """``count`` JPEG frames of ``size`` (width, height), each of its own noise."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for k in range(count):
        noise = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / f"frame{k}.jpg", quality=90)
    return root


def test_a_jpeg_is_decoded_once_for_all_its_tiles_and_they_are_as_read_alone(tmp_path, monkeypatch):
    root = frames(tmp_path / "frames")
    opened = []
    real = image_folder.open_whole
    monkeypatch.setattr(image_folder, "open_whole", lambda f: opened.append(f) or real(f))
    source = ImageFolderSource(root, tile=200)
    source.read_at(50)  # tiles of 200 read at 50: decoded at 1/4 scale
    opened.clear()
    batch = source.read_batch(range(len(source)))
    assert len(batch.indices) == len(source) == 3 * 12 and len(opened) == 3
    for row in (0, 13, 35):
        top, left, side = (int(v) for v in source.places.square[row])
        file = root / source.files[source.places.owner[row]]
        with Image.open(file) as image:  # decoded for this tile alone, as before the cache
            alone = decode_pixels(image, 50, 3, region=(top, left, side))
        assert np.array_equal(source._pixels(row), alone)  # from the decoded frame kept
    key = (*file_key(root / "frame0.jpg"), 50, 200, 3, None, None)
    assert DECODED.get(key, lambda: None).image.size == (175, 125)  # 1/4 of 700x500
    assert source.kept_bytes()[0] == tile_decode_bytes(700, 500, 200, 50, True, 4) == 175 * 125 * 4
    source.read_at(200)  # read at full scale: a new decode, as large as the file
    assert source.kept_bytes()[0] == 700 * 500 * 4
    source.read(0)
    assert len(opened) == 4


def test_tiles_of_images_decoded_whole_are_read_and_held_out_by_image(tmp_path, monkeypatch):
    root = frames(tmp_path / "frames", count=6)
    source = ImageFolderSource(root, tile=100)
    assert np.array_equal(source.read_groups(), np.repeat(np.arange(6), 35))
    one = tile_decode_bytes(700, 500, 100, 100, True, 4)
    monkeypatch.setattr("selfsup.data.image_folder.CACHE_BYTES", 2 * one)
    owners = source.places.owner[source.epoch_order(seed=0, epoch=0)]
    for block in range(3):  # two frames' tiles together, then the next two's
        assert len(set(owners[70 * block : 70 * (block + 1)].tolist())) == 2
    assert source.held_bytes() == 2 * one + 2 * one  # two kept, the largest as it decodes
    _, held = hold_out(source, 16)
    assert len(np.unique(source.places.owner[held.indices])) == 1  # a frame, not a tile of each
    assert len(np.unique(source.places.owner[source.sample_rows(30)])) == 6
    # a TIFF's tiles are read alone: nothing decoded whole, read in any order
    tifffile.imwrite(root / "scene.tif", np.zeros((256, 256), np.uint8), tile=(64, 64))
    mixed = ImageFolderSource(root, tile=128)
    assert 6 not in mixed.kept_bytes() and len(mixed.kept_bytes()) == 6


def test_a_broken_jpeg_fails_once_for_all_its_tiles(tmp_path, monkeypatch):
    root = frames(tmp_path / "frames", count=2)
    whole = (root / "frame1.jpg").read_bytes()
    (root / "frame1.jpg").write_bytes(whole[: len(whole) // 3])
    source = ImageFolderSource(root, tile=200)
    opened = []
    real = image_folder.open_whole
    monkeypatch.setattr(image_folder, "open_whole", lambda f: opened.append(f) or real(f))
    batch = source.read_batch(range(len(source)))
    assert len(batch.indices) == 12 and len(batch.skipped) == 12
    assert len({s.reason for s in batch.skipped}) == 1 and "truncated" in batch.skipped[0].reason
    assert len(opened) == 2  # each file opened once, the broken one too


def make_scenes(root, size=320):
    """Two classes of scenes: a 12-bit three-band TIFF and a JPEG each, a small PNG, a
    broken file."""
    rng = np.random.default_rng(3)
    for label, level in (("fields", 900), ("forest", 3000)):
        (root / label).mkdir(parents=True)
        bands = rng.normal(level, 50, (size, size, 3)).clip(0, 4095).astype(np.uint16)
        tifffile.imwrite(
            root / label / "scene.tif",
            bands,
            tile=(64, 64),
            compression="zlib",
            photometric="minisblack",
            planarconfig="contig",
        )
        photo = rng.integers(0, 255, (size, size + 100, 3), dtype=np.uint8)
        Image.fromarray(photo).save(root / label / "photo.jpg")
    Image.new("RGB", (60, 60)).save(root / "fields" / "small.png")
    (root / "forest" / "broken.tif").write_bytes(b"II*\x00" + bytes(20))


def test_a_folder_cut_into_tiles_names_reads_labels_and_groups_them(tmp_path):
    make_scenes(tmp_path / "land")
    source = ImageFolderSource(tmp_path / "land", tile=128)
    grid = tile_grid(320, 320, 128)
    assert len(grid) == 9 and grid[4] == (96, 96)
    ids = list(source.ids)
    assert ids[:3] == [
        "fields/photo.jpg@x0_y0",
        "fields/photo.jpg@x97_y0",
        "fields/photo.jpg@x195_y0",
    ]
    assert "fields/small.png" in ids and "forest/broken.tif" in ids  # whole files
    assert len(ids) == 2 * 9 + 2 * 12 + 2
    assert "4 image(s) cut into 42 tiles of 128 pixels" in source.index_note
    assert "1 smaller than a tile read whole" in source.index_note
    assert source.item_shape == (3, 128, 128)
    assert source.pixel_bits == 12
    row = ids.index("forest/scene.tif@x96_y192")
    expected = tifffile.imread(tmp_path / "land/forest/scene.tif")[192:320, 96:224] / 4095
    assert np.allclose(source.read(row).permute(1, 2, 0).numpy(), expected, atol=1e-6)
    labels = dict(zip(ids, (source.classes[c] for c in source.labels), strict=True))
    assert labels["forest/scene.tif@x96_y192"] == "forest"
    assert labels["fields/photo.jpg@x97_y0"] == "fields"
    assert source.split_groups == "images"
    groups = split_group_ids(ids, source.name, "images")
    assert groups[row] == "forest/scene.tif" and len(set(groups)) == 6
    batch = source.read_batch(range(len(ids)))
    assert [s.item_id for s in batch.skipped] == ["forest/broken.tif"]


def test_a_labels_table_names_tiles_or_files(tmp_path):
    root = tmp_path / "scenes"
    root.mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(root / name, np.zeros((256, 256), np.uint8))
    (tmp_path / "tiles.csv").write_text("file_name,label\na.tif@x128_y0,roof\nb.tif@x0_y128,road\n")
    source = ImageFolderSource(root, tile=128, labels_file=tmp_path / "tiles.csv")
    assert source.labels is None and source.partial_labels is not None
    labelled = [source.ids[r] for r in source.partial_labels.rows]
    assert labelled == ["a.tif@x128_y0", "b.tif@x0_y128"]
    assert "labels of 2 tiles from" in source.labels_note
    (tmp_path / "files.csv").write_text("file_name,label\na.tif,harbour\nb.tif,farm\n")
    source = ImageFolderSource(root, tile=128, labels_file=tmp_path / "files.csv")
    assert [source.classes[c] for c in source.labels] == ["harbour"] * 4 + ["farm"] * 4
    assert source.split_groups == "images"


def test_tiles_are_refused_where_there_are_no_files_to_cut(tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        ImageFolderSource(tmp_path, tile=8)
    with pytest.raises(ValueError, match="cannot be cut"):
        ImageFolderSource(tmp_path, tile=64, channel_pattern="-ch([0-9])")


def test_pretrain_embed_evaluate_and_explain_tiles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_scenes(tmp_path / "land", size=192)
    runner = CliRunner()
    options = ["--steps", "2", "--batch-size", "4", "--backbone", "small-cnn", "--tile", "64"]
    result = runner.invoke(app, ["pretrain", "land", *options, "--out", "runs/land"])
    assert result.exit_code == 0, result.output
    assert "4 image(s) cut into 48 tiles of 64 pixels" in result.output
    result = runner.invoke(app, ["embed", "runs/land", "land", "--out", "land.npz"])
    assert result.exit_code == 0, result.output
    saved = np.load(tmp_path / "land.npz")
    assert len(saved["ids"]) == 50 and saved["ids"][0] == "fields/photo.jpg@x0_y0"
    result = runner.invoke(app, ["evaluate", "runs/land", "land", "--protocol", "knn"])
    assert result.exit_code == 0, result.output
    assert "images]" in result.output  # the split holds whole images out
    photo = (tmp_path / "land/forest/photo.jpg").read_bytes()
    (tmp_path / "land/forest/cut.jpg").write_bytes(photo[: len(photo) // 2])  # a copy that stopped
    result = runner.invoke(app, ["anomalies", "runs/land", "land", "--fpr", "0.1"])
    assert result.exit_code == 0, result.output
    # the 16 unreadable items (the cut JPEG's tiles, the broken TIFF) are not counted as scored
    assert re.search(r"of 49 scored flagged above \S+, in \d+ of 5 images", result.output)
    said = result.output.split("16 unreadable items of land, left out:")[1].splitlines()
    assert said[1] == (  # once each
        "  forest/broken.tif: cannot read image: ValueError: the TIFF holds no image: its "
        "first page is missing (a file cut short?)"
    )
    assert said[2].startswith("  forest/cut.jpg (15 tiles): cannot read image: OSError: image")
    result = runner.invoke(app, ["explain", "runs/land", "land/forest/scene.tif@x64_y128"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["explain", "runs/land", "land/forest/scene.tif"])
    assert result.exit_code != 0
    assert "name one as land/forest/scene.tif@xLEFT_yTOP" in str(result.exception)
    result = runner.invoke(app, ["explain", "runs/land", "land/forest/scene.tif@x60_y128"])
    assert result.exit_code != 0
    message = "no such tile; scene.tif's 9 tiles are scene.tif@x0_y0, scene.tif@x64_y0..."
    assert message in str(result.exception)


def test_an_image_too_large_to_read_whole_points_to_tiles(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # 40,000 samples read whole at most
    bands = np.zeros((200, 200, 4), np.uint16)
    options = {"photometric": "minisblack", "planarconfig": "contig", "tile": (64, 64)}
    tifffile.imwrite(tmp_path / "scene.tif", bands, **options)
    source = ImageFolderSource(tmp_path, channels=4, image_size=32)
    reason = source.read_batch([0]).skipped[0].reason
    assert "decompression-bomb" in reason and "--tile SIZE reads a large image" in reason
    assert not ImageFolderSource(tmp_path, channels=4, tile=64).read_batch([0]).skipped
    (tmp_path / "scene.tif").unlink()
    Image.new("RGB", (300, 300)).save(tmp_path / "mosaic.png")  # 90,000 pixels: a bomb
    with pytest.raises(EmptySourceError, match=r"\(the first, mosaic.png: DecompressionBomb"):
        ImageFolderSource(tmp_path, tile=64)
    Image.new("RGB", (100, 100)).save(tmp_path / "photo.png")
    reason = ImageFolderSource(tmp_path, tile=64).read_batch([0]).skipped[0].reason
    assert "DecompressionBombError" in reason and "saved as a tiled TIFF" in reason


def test_reading_the_sizes_of_many_images_is_said_while_it_lasts(tmp_path, monkeypatch):
    import time

    from rich.console import Console

    from selfsup.core.progress import Preparing
    from selfsup.data import image_folder

    for k in range(4):
        Image.new("RGB", (128, 128)).save(tmp_path / f"{k}.png")
    real = image_folder.image_dimensions

    def slow(file):
        time.sleep(0.1)  # a phone's HEIC header, many times over
        return real(file)

    monkeypatch.setattr(image_folder, "image_dimensions", slow)
    out = io.StringIO()
    with Preparing(Console(file=out), "pretrain photos", every=0.05):
        ImageFolderSource(tmp_path, tile=64)
    assert "pretrain photos: reading the sizes of 4 images to cut them into tiles" in out.getvalue()


def write_cog(path, scene, nodata=0):
    """``scene`` as GDAL writes a cloud-optimized GeoTIFF: a no-data value and levels of
    1/2 and 1/4 (tifffile's SubIFDs)."""
    tag = [(42113, "s", 0, str(nodata), False)]
    with tifffile.TiffWriter(path) as writer:
        writer.write(scene, tile=(64, 64), subifds=2, extratags=tag, photometric="minisblack")
        for step in (2, 4):
            level = scene[::step, ::step]
            writer.write(
                level, tile=(32, 32), subfiletype=1, extratags=tag, photometric="minisblack"
            )


def test_tiles_without_data_of_a_geotiff_with_levels_are_left_out(tmp_path):
    scene = np.random.default_rng(4).integers(1, 4096, (512, 512), dtype=np.uint16)
    scene[:, :200] = 0  # a swath's edge: no data in the left 200 columns
    write_cog(tmp_path / "edge.tif", scene)
    write_cog(tmp_path / "night.tif", np.zeros((256, 256), np.uint16))  # no data at all
    flat = scene.copy()
    tifffile.imwrite(tmp_path / "flat.tif", flat, extratags=[(42113, "s", 0, "0", False)])
    source = ImageFolderSource(tmp_path, tile=128)
    ids = list(source.ids)
    edge = [i for i in ids if i.startswith("edge.tif")]
    assert len(edge) == 4 * 3  # the tiles at column 0 hold no data; from 128 (to 256) on do
    assert "edge.tif@x0_y0" not in ids and "edge.tif@x128_y0" in ids
    assert not [i for i in ids if i.startswith("night.tif")]
    assert len([i for i in ids if i.startswith("flat.tif")]) == 16  # no levels: not known
    assert "2 image(s) cut into 28 tiles of 128 pixels" in source.index_note
    assert "8 tiles without data (GDAL_NODATA) left out" in source.index_note
    (tmp_path / "edge.tif").unlink()
    (tmp_path / "flat.tif").unlink()
    left = r"every tile of its images was left out: 4 tiles without data \(GDAL_NODATA\)$"
    with pytest.raises(EmptySourceError, match=left):
        ImageFolderSource(tmp_path, tile=128)


def write_svs(path, pixels):
    """An RGB slide as Aperio's scanners write it: a JPEG-tiled baseline, a thumbnail,
    levels of 1/4 and 1/16, a label and a macro photo (tifffile reads it as ``is_svs``)."""
    height, width = pixels.shape[:2]
    head = "Aperio Image Library v12.0.15 \r\n"
    tiled = {"tile": (128, 128), "compression": "jpeg", "photometric": "rgb", "metadata": None}
    with tifffile.TiffWriter(path) as writer:
        writer.write(pixels, description=f"{head}{width}x{height} (128x128) JPEG/RGB", **tiled)
        small = np.ascontiguousarray(pixels[::32, ::32])
        writer.write(small, description=f"{head}thumbnail", photometric="rgb", metadata=None)
        for step in (4, 16):
            level = np.ascontiguousarray(pixels[::step, ::step])
            writer.write(level, description=f"{head}{width}x{height} -> level", **tiled)
        for name in ("label", "macro"):
            writer.write(np.full((64, 64, 3), 90, np.uint8), description=f"{head}{name}",
                         photometric="rgb", subfiletype=1, metadata=None)  # fmt: skip


def test_tiles_of_a_slides_glass_are_left_out_and_its_tissue_kept(tmp_path):
    rng = np.random.default_rng(6)
    pixels = (rng.integers(236, 250, (1024, 1536, 1)) + np.zeros((1, 1, 3))).astype(np.uint8)
    stain = rng.normal([215, 140, 185], 12, (384, 512, 3)).clip(0, 255).astype(np.uint8)
    pixels[256:640, 512:1024] = stain  # tissue: three rows, four columns of 128-pixel tiles
    (tmp_path / "slides").mkdir()
    write_svs(tmp_path / "slides" / "case1.svs", pixels)
    source = ImageFolderSource(tmp_path / "slides", tile=128)
    assert tifffile.TiffFile(tmp_path / "slides" / "case1.svs").is_svs
    assert sorted(source.ids) == sorted(
        f"case1.svs@x{left}_y{top}" for top in (256, 384, 512) for left in (512, 640, 768, 896)
    )
    assert "1 image(s) cut into 12 tiles of 128 pixels; 84 tiles of glass (no tissue) left out" in (
        source.index_note
    )
    source.read_at(32)
    tissue = source.read(0).numpy()
    assert abs(tissue[0].mean() - 215 / 255) < 0.03 and abs(tissue[1].mean() - 140 / 255) < 0.03
    # the same pixels as a plain pyramid (an aerial photo): gray roofs and roads are kept
    with tifffile.TiffWriter(tmp_path / "aerial.tif") as writer:
        writer.write(pixels, tile=(128, 128), subifds=2, photometric="rgb")
        for step in (4, 16):
            level = np.ascontiguousarray(pixels[::step, ::step])
            writer.write(level, tile=(64, 64), subfiletype=1, photometric="rgb")
    aerial = ImageFolderSource(tmp_path, tile=128)
    assert len([i for i in aerial.ids if i.startswith("aerial.tif")]) == 8 * 12


def test_datasets_show_refuses_an_option_its_data_does_not_read(tmp_path):
    (tmp_path / "orders.csv").write_text("amount,country\n1.5,DE\n2.5,FR\n")
    result = CliRunner().invoke(
        app, ["datasets", "show", str(tmp_path / "orders.csv"), "--tile", "256"]
    )
    assert result.exit_code != 0  # it described the table as if the option were not given
    assert "--tile: not read by tabular data" in str(result.exception) + result.output
