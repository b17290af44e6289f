"""Reading the item to explain: an image file or ``DATA#KEY``, as the encoder takes it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from selfsup.data.base import Source
from selfsup.data.dicom import is_dicom
from selfsup.data.folders import ITEM_PLACE
from selfsup.data.image_folder import (
    IMAGE_EXTENSIONS,
    WholeFiles,
    bits_of,
    image_header,
    item_tensor,
    read_pixels,
)
from selfsup.data.volumes import is_volume, parse_window, volume_header
from selfsup.modalities.image import conform_images
from selfsup.run import Run

# --- reading the item -------------------------------------------------------------------------


def resolve_item(run: Run, spec: str) -> tuple[torch.Tensor, str, Source | None, int | None]:
    """The item an ``ITEM`` argument names: ``(item, id, source, row)``.

    ``DATA#KEY`` is item ``KEY`` (an id, else a row number) of ``DATA``; an existing image
    file is read alone; another file (audio, or one channel's file of a run on channel files,
    ``--channel-pattern``) and a tile of a run on tiles (``scene.tif@x512_y1024``, ``--tile``)
    are looked up by name in their folder: their item there.

    Raises:
        ValueError: no item with that key (the message gives the ids' form).
        FileNotFoundError: a file that does not exist.
    """
    if "#" in spec:
        data, key = spec.rsplit("#", 1)
        source = run.open(data)
        ids = list(source.ids)
        if key in ids:
            row = ids.index(key)
        elif key.lstrip("-").isdigit() and -len(ids) <= int(key) < len(ids):
            row = int(key) % len(ids)
        else:
            raise ValueError(
                f"{data}: no item {key!r}; give an id like {ids[0]!r} or a row number "
                f"below {len(ids)}"
            )
        batch = source.read_batch([row])
        if not batch.indices:
            raise ValueError(f"{spec}: {batch.skipped[0].reason}")
        return batch.items[0], str(ids[row]), source, row
    path = Path(spec)
    tiled = run.data_options.get("tile")
    image = path.parent / ITEM_PLACE.sub("", path.name)
    if not path.exists() and image != path and image.is_file():
        return _item_in_folder(spec, run, path)  # a tile FILE@xLEFT_yTOP, a slice FILE@zK
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such file; give a file or DATA#KEY")
    if is_volume(path) or is_dicom(path):  # a NIfTI volume, a multi-frame DICOM file
        try:
            planes = volume_header(path)[2]
        except Exception as err:  # a bad file can fail in any of the ways a reader can fail
            if is_volume(path):
                raise ValueError(f"{spec}: cannot read volume: {err}") from err
            planes = 1  # a broken DICOM file: said as its image is read below
        if planes > 1:
            raise ValueError(
                f"{spec}: a volume is read as its {planes:,} slices; name one as {spec}@zK "
                f"(K from 0 to {planes - 1}), as embed and select name them"
            )
        if is_volume(path):
            return _item_in_folder(spec, run, path)
    channel_files = run.data_options.get("channel_pattern")
    if tiled and path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(
            f"{spec}: the run reads images as tiles of {tiled} pixels (--tile); name one as "
            f"{spec}@xLEFT_yTOP, as embed and select name them"
        )
    if path.suffix.lower() in IMAGE_EXTENSIONS and not channel_files:
        wanted = run.encoder.spec or {}
        # Read as a folder's images are (16-bit on the run's scale, DICOM, a TIFF's
        # channels), at the encoder's side; the whole path is the id: two photos named
        # 0027.png in two folders stay apart.
        try:
            side = wanted.get("image_size") or image_header(path)[0]
            bits = run.data_options.get("pixel_bits") or bits_of([path])[0]
            window = run.data_options.get("scan_window")
            window = None if window is None else parse_window(window)
            channels = wanted.get("in_channels", 1)
            pixels = read_pixels(path, side, channels, bits, window=window)
        except Exception as err:  # a bad file can fail in any of the ways a decoder can fail
            raise ValueError(f"{spec}: cannot read image: {err}") from err
        return item_tensor(pixels), path.as_posix(), None, None
    return _item_in_folder(spec, run, path)


def _item_in_folder(
    spec: str, run: Run, path: Path
) -> tuple[torch.Tensor, str, Source | None, int | None]:
    """The item ``path`` names in its folder: an audio file, one channel's file of a run on
    channel files, a tile (``scene.tif@x512_y1024``) or a volume's slice (``ct.nii@z40``)."""
    source = run.open(path.parent)
    if isinstance(source, WholeFiles):  # a slice or tile of a run taking files whole
        source = source.inner
    ids = list(source.ids)
    grouped = getattr(source, "channel_files", None)
    key = path.name
    if grouped is not None:  # the image whose channel files hold this one
        key = next((i for i, files in zip(ids, grouped.files, strict=True) if key in files), key)
    if key not in ids:
        file = ITEM_PLACE.sub("", key)
        tiles = [i for i in ids if i != file and ITEM_PLACE.sub("", i) == file]
        if tiles:  # a tile off the image's grid, a slice past the volume's end
            kind = "slice" if tiles[0].rpartition("@")[2].startswith("z") else "tile"
            raise ValueError(
                f"{spec}: no such {kind}; {file}'s {len(tiles):,} {kind}s are {tiles[0]}, "
                f"{tiles[1] if len(tiles) > 1 else ''}... {tiles[-1]} (embed writes them all)"
            )
        raise ValueError(f"{spec}: not found among the items of {path.parent}")
    row = ids.index(key)
    batch = source.read_batch([row])
    if not batch.indices:
        raise ValueError(f"{spec}: {batch.skipped[0].reason}")
    return batch.items[0], (path.parent / key).as_posix(), source, row  # two folders apart


def encoder_input(encoder: nn.Module, item: torch.Tensor) -> torch.Tensor:
    """The item as the encoder reads it (images resized and converted to its channels).

    Example:
        >>> from selfsup.encoder import Encoder
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
        >>> tuple(encoder_input(enc, torch.rand(3, 16, 16)).shape)
        (1, 8, 8)
    """
    spec = getattr(encoder, "spec", None) or {}
    if "image_size" in spec and item.ndim == 3:
        return conform_images(item[None].float(), spec["in_channels"], spec["image_size"])[0]
    return item


def average_input(encoder: nn.Module, item: torch.Tensor) -> torch.Tensor:
    """The average input: the per-channel means the encoder normalizes to zero (zeros for
    table rows, whose encoded columns are centred already, and for token ids).

    Example:
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4, mean=[0.3])
        >>> round(float(average_input(enc, torch.rand(1, 8, 8)).max()), 3)
        0.3
    """
    if item.dtype in (torch.int64, torch.int32):
        return torch.zeros_like(item)
    mean = encoder.mean.detach().cpu().reshape(-1)
    if item.ndim == 1:  # a table row: encoded columns are already centred
        return torch.zeros_like(item)
    shape = (-1,) + (1,) * (item.ndim - 1)
    return torch.ones_like(item) * mean.reshape(shape)


def _row_of_file(item: str, source: Source | None) -> int | None:
    """The row of ``source`` (a folder) that the file ``item`` is, if it lies in it."""
    root = getattr(source, "root", None)
    if root is None or "#" in item:
        return None
    try:
        relative = Path(item).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None
    ids = list(source.ids)
    return ids.index(relative) if relative in ids else None
