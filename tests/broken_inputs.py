"""A corpus of broken and hostile inputs, made on the fly, each with its documented outcome.

Every reader gets the damage a careful user (or an attacker) can cause: zero-byte,
truncated, wrong-extension, huge-header, wrong-dtype, wrong-rank, empty and non-UTF-8 files,
binary data where text belongs, non-finite and out-of-range values; run folders and model
folders get damaged, edited and foreign files. Each case is a ``selfsup`` command line and
one of three outcomes:

- ``error``: the command stops with exit status 2 and one line, ``error: ...``, that matches
  ``expect`` (the file, and the line, row or key where that applies);
- ``skipped``: the command succeeds, and the bad file is listed as unreadable with a reason
  that matches ``expect`` (a folder's other files are read);
- ``read``: the command succeeds and its output matches ``expect`` (a value read as it is
  documented, such as NaN read as a missing value in a series).

``tests/test_broken_inputs.py`` runs every case in-process; ``benchmarks/robustness.py``
runs them as a user would, one process each, and counts tracebacks.

Example:
    >>> sorted({case.reader for case in CASES})[:3]
    ['.npy/.npz arrays', '.ts series', 'CSV/Parquet tables']
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import struct
import sys
import wave
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


@dataclass(frozen=True)
class Fixtures:
    """What the run- and model-folder cases damage copies of.

    Attributes:
        run: a finished small run folder (trained on ``data``).
        model: an adapted model folder on ``run``.
        data: the labelled .npz the run was trained on.
    """

    run: Path
    model: Path
    data: Path


@dataclass(frozen=True)
class Case:
    """One broken input and what selfsup does with it.

    Attributes:
        reader: the reader (or folder kind) the case is for.
        name: what is wrong, in a few words.
        make: builds the input under the given folder and returns the command's arguments.
        outcome: ``error``, ``skipped`` or ``read`` (see the module docstring).
        expect: a regular expression the error line, the unreadable file's reason, or the
            output must match.
    """

    reader: str
    name: str
    make: Callable[[Path, Fixtures], list[str]]
    outcome: str
    expect: str

    @property
    def id(self) -> str:
        """A test id, such as ``image folder: truncated``."""
        return f"{self.reader}: {self.name}"


CASES: list[Case] = []


def make_fixtures(folder: Path) -> Fixtures:
    """A finished small run (4 steps) on 128 labelled 12x12 images, and a model adapted on
    it, in ``folder``."""
    from tests.conftest import make_clusters

    from selfsup.run import pretrain
    from selfsup.tools.adapt import adapt

    folder.mkdir(parents=True, exist_ok=True)
    images, labels = make_clusters(n_per_class=32, size=12)
    data = folder / "clusters.npz"
    np.savez(data, X=images, y=labels)
    run = pretrain(str(data), steps=4, batch_size=32, out=folder / "run", monitor_items=0,
                   backbone_options={"width": 8}, show_progress=False)  # fmt: skip
    adapt(run, str(data), shots=8).save(folder / "model")
    return Fixtures(run.path, folder / "model", data)


def check_outcome(case: Case, status: int, output: str) -> None:
    """Assert the documented outcome of ``case`` from a command's exit status and output."""
    assert "Traceback" not in output, output
    if case.outcome == "error":
        lines = [line for line in output.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert status == 2, output
        assert len(errors) == 1 and errors[0] == lines[-1], output
        assert "unexpected" not in errors[0], output  # a bug, not a documented outcome
        assert re.search(case.expect, errors[0]), (case.expect, errors[0])
        return
    assert status == 0, output
    if case.outcome == "skipped":
        info = json.loads(output[output.index("{") :])
        reasons = [f"{item}: {why}" for item, why in info["unreadable"].items()]
        assert len(reasons) == 1 and re.search(case.expect, reasons[0]), (case.expect, reasons)
        assert info["readable"] == info["items"] - 1
    else:
        assert re.search(case.expect, output), (case.expect, output)


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run ``selfsup ARGS`` in this process as the console script would; its exit status and
    everything it printed (to a pipe: plain text)."""
    from selfsup.cli import main

    output, argv = io.StringIO(), sys.argv
    sys.argv = ["selfsup", *args]
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            main()
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
    return status, output.getvalue()


def case(reader: str, name: str, outcome: str, expect: str):
    """Register the decorated maker as a case."""

    def register(make: Callable[[Path, Fixtures], list[str]]):
        CASES.append(Case(reader, name, make, outcome, expect))
        return make

    return register


IMAGES, ARRAYS, TABLES, TS = "image folder", ".npy/.npz arrays", "CSV/Parquet tables", ".ts series"
HUB, WDS = "Hugging Face dataset", "WebDataset shards"
TEXT, AUDIO, RUNS, MODELS = "text and JSONL", "WAV audio folder", "run folder", "model folder"
LABELS = "labels"

# --- makers of valid files, damaged below -----------------------------------------------------

RNG = np.random.default_rng(0)


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG file's bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folder(folder: Path, n: int = 6) -> Path:
    """A folder of ``n`` readable 16x16 colour PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"ok{i}.png").write_bytes(png_bytes(RNG.integers(0, 255, (16, 16, 3), np.uint8)))
    return folder


def bomb_png(side: int = 100_000) -> bytes:
    """A small PNG whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


def wav_bytes(samples: np.ndarray, rate: int = 8000) -> bytes:
    """A 16-bit mono WAV file's bytes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 30000).astype("<i2").tobytes())
    return buffer.getvalue()


def float_wav_bytes(samples: np.ndarray, rate: int = 8000) -> bytes:
    """A 32-bit float WAV file's bytes (which can hold NaN and infinity)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def audio_folder(folder: Path, n: int = 4) -> Path:
    """A folder of ``n`` readable half-second clips."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"ok{i}.wav").write_bytes(wav_bytes(RNG.normal(0, 0.2, 4000)))
    return folder


def table(n: int = 40) -> pd.DataFrame:
    """A small table: two numeric columns, one categorical, a label."""
    return pd.DataFrame(
        {
            "a": RNG.normal(size=n),
            "b": RNG.normal(size=n),
            "c": RNG.choice(["x", "y"], n),
            "label": RNG.choice(["p", "q"], n),
        }
    )


def ts_text(labels=("a", "b"), declared=("a", "b"), rows=8, bad_row: str | None = None) -> str:
    """A UCR ``.ts`` file of ``rows`` labelled series of length 10; row 4 replaced by
    ``bad_row`` when given."""
    lines = [
        "@problemName t",
        "@univariate true",
        "@equalLength true",
        "@seriesLength 10",
        f"@classLabel true {' '.join(declared)}",
        "@data",
    ]
    for i in range(rows):
        values = ",".join(f"{v:.3f}" for v in RNG.normal(size=10))
        lines.append(f"{bad_row if bad_row is not None and i == 3 else values}:{labels[i % 2]}")
    return "\n".join(lines) + "\n"


def file_in(folder: Path, name: str) -> Path:
    """``folder/name``, with the folder made."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def show(path: Path, modality: str | None = None) -> list[str]:
    """``selfsup datasets show PATH --check``: open the data and read every item."""
    return [
        "datasets",
        "show",
        str(path),
        "--check",
        *(["--modality", modality] if modality else []),
    ]


# --- image folders ----------------------------------------------------------------------------


@case(IMAGES, "zero-byte file", "skipped", r"zero\.png.*the file is empty \(0 bytes\)")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "zero.png").write_bytes(b"")
    return show(d)


@case(IMAGES, "truncated file", "skipped", r"cut\.png.*truncated")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "cut.png").write_bytes(png_bytes(RNG.integers(0, 255, (64, 64, 3), np.uint8))[:200])
    return show(d)


@case(IMAGES, "phone photo (HEIC) cut short", "skipped", r"cut\.heic.*the file is cut short")
def _(d: Path, f: Fixtures) -> list[str]:
    import pillow_heif

    pillow_heif.register_heif_opener()
    image_folder(d)  # libheif decodes a cut HEIC's first part without an error
    stream = io.BytesIO()
    Image.fromarray(RNG.integers(0, 255, (96, 128, 3), np.uint8)).save(stream, "HEIF")
    (d / "cut.heic").write_bytes(stream.getvalue()[: len(stream.getvalue()) // 2])
    return show(d)


@case(IMAGES, "wrong extension (text named .jpg)", "skipped", r"notes\.jpg.*cannot identify")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "notes.jpg").write_text("not an image")
    return show(d)


@case(IMAGES, "huge header (decompression bomb)", "skipped", r"bomb\.png.*DecompressionBomb")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "bomb.png").write_bytes(bomb_png())
    return show(d)


@case(IMAGES, "non-UTF-8 file name", "read", r'"readable": 7')
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    name = os.fsdecode(b"caf\xe9.png")  # a Latin-1 name: surrogate escapes
    (d / name).write_bytes(png_bytes(RNG.integers(0, 255, (16, 16, 3), np.uint8)))
    return show(d)


@case(IMAGES, "every file broken", "error", r"none of the 5 image files in .*all-broken")
def _(d: Path, f: Fixtures) -> list[str]:
    d = d / "all-broken"
    d.mkdir(parents=True)
    for i in range(5):
        (d / f"b{i}.png").write_bytes(b"junk")
    return show(d)


@case(IMAGES, "empty folder", "error", r"no image files .* in .*empty")
def _(d: Path, f: Fixtures) -> list[str]:
    (d / "empty").mkdir(parents=True)
    return show(d / "empty")


@case(IMAGES, "float TIFFs in [0, 1]", "read", r'"readable": 4')
def _(d: Path, f: Fixtures) -> list[str]:
    d.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(RNG.random((16, 16)).astype(np.float32)).save(d / f"f{i}.tif")
    return show(d)


@case(IMAGES, "float TIFF holding NaN", "skipped", r"nan\.tif.*NaN or infinite pixels")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    pixels = RNG.random((16, 16)).astype(np.float32)
    pixels[3, 3] = np.nan
    Image.fromarray(pixels).save(d / "nan.tif")
    return show(d)


@case(IMAGES, "TIFF cut short", "skipped", r"cut\.tif.*cannot read image")
def _(d: Path, f: Fixtures) -> list[str]:
    import tifffile

    image_folder(d)
    tifffile.imwrite(d / "cut.tif", RNG.integers(0, 4096, (16, 16), dtype=np.uint16))
    (d / "cut.tif").write_bytes((d / "cut.tif").read_bytes()[:700])
    return show(d)


def nifti_bytes(values: np.ndarray, compressed: bool = True) -> bytes:
    """A NIfTI file of ``values`` (gzip-compressed as ``.nii.gz`` unless not ``compressed``)."""
    import gzip

    import nibabel as nib

    raw = nib.Nifti1Image(values, np.eye(4)).to_bytes()
    return gzip.compress(raw, compresslevel=1) if compressed else raw


@case(IMAGES, "volume cut short", "skipped", r"cut\.nii\.gz: .*the file is cut short")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)  # of one slice: one item (each slice of a volume is skipped alike)
    whole = nifti_bytes(RNG.integers(-1000, 1000, (64, 64, 1)).astype(np.int16))
    (d / "cut.nii.gz").write_bytes(whole[: len(whole) // 2])
    return show(d)


@case(IMAGES, "4-D volume (an fMRI run)", "skipped", r"bold\.nii.*a 4-D volume of 3 volumes")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "bold.nii").write_bytes(nifti_bytes(np.zeros((8, 8, 4, 3), np.int16), False))
    return show(d)


@case(IMAGES, "text named .nii.gz", "skipped", r"notes\.nii\.gz.*not a NIfTI file")
def _(d: Path, f: Fixtures) -> list[str]:
    import gzip

    image_folder(d)
    (d / "notes.nii.gz").write_bytes(gzip.compress(b"clinical notes, not a scan"))
    return show(d)


@case(IMAGES, "scene cut short, read as tiles", "skipped", r"cut\.tif@x64_y64.*file is cut short")
def _(d: Path, f: Fixtures) -> list[str]:
    import tifffile

    d.mkdir(parents=True, exist_ok=True)
    scene = RNG.integers(0, 4096, (128, 128, 4), dtype=np.uint16)  # a copy of a scene stopped
    options = {"tile": (32, 32), "photometric": "minisblack", "planarconfig": "contig"}
    tifffile.imwrite(d / "whole.tif", scene, **options)
    tifffile.imwrite(d / "cut.tif", scene, **options)
    (d / "cut.tif").write_bytes((d / "cut.tif").read_bytes()[:-100])  # in its last tile
    return [*show(d), "--tile", "64"]


@case(IMAGES, "five-channel TIFF among colour photos", "skipped", r"stains\.tif.*5 channels where")
def _(d: Path, f: Fixtures) -> list[str]:
    import tifffile

    image_folder(d)
    tifffile.imwrite(d / "stains.tif", RNG.integers(0, 4096, (5, 16, 16), dtype=np.uint16))
    return show(d)


@case(IMAGES, "text named .tif", "skipped", r"notes\.tif.*not a TIFF file")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "notes.tif").write_text("not a micrograph")
    return show(d)


def dicom_bytes(
    pixels: np.ndarray | None,
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    modality: str = "CT",
    **fields: object,
) -> bytes:
    """A DICOM file of ``pixels`` ((rows, columns[, 3]) or (frames, rows, columns[, 3]);
    None: an object without an image, such as a report), with more ``fields``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    data = Dataset()
    data.file_meta = meta
    data.SOPClassUID, data.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    data.Modality = modality
    if pixels is not None:
        data.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits)
    for name, value in fields.items():
        setattr(data, name, value)
    out = io.BytesIO()
    data.save_as(out, enforce_file_format=True)
    return out.getvalue()


@case(IMAGES, "DICOM cut short", "skipped", r"cut\.dcm.*cannot decode its pixel data")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    whole = dicom_bytes(RNG.integers(0, 4096, (32, 32)).astype(np.uint16))
    (d / "cut.dcm").write_bytes(whole[: len(whole) - 900])
    return show(d)


@case(IMAGES, "DICOM without an image (a report)", "skipped", r"sr\.dcm.*DICOM SR object without")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "sr.dcm").write_bytes(dicom_bytes(None, modality="SR"))
    return show(d)


@case(IMAGES, "text named .dcm", "skipped", r"notes\.dcm.*not a DICOM file")
def _(d: Path, f: Fixtures) -> list[str]:
    image_folder(d)
    (d / "notes.dcm").write_text("patient notes, not a scan")
    return show(d)


@case(IMAGES, "16-bit PNG cut short among 12-bit ones", "skipped", r"cut\.png.*cannot read image")
def _(d: Path, f: Fixtures) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(4):  # a camera's 12 bits in 16-bit PNGs: the scale is sampled from them
        (d / f"ok{i}.png").write_bytes(png_bytes(RNG.integers(0, 4096, (16, 16), np.uint16)))
    whole = png_bytes(RNG.integers(0, 4096, (64, 64), np.uint16))
    (d / "cut.png").write_bytes(whole[: len(whole) // 2])
    return show(d)


@case(IMAGES, "patient folders, a DICOM cut short", "skipped", r"cut\.dcm.*cannot decode")
def _(d: Path, f: Fixtures) -> list[str]:
    for p in range(3):  # patient folders are found from their files' PatientID
        for k in range(2):
            pixels = RNG.integers(0, 4096, (32, 32)).astype(np.uint16)
            (d / f"P{p}").mkdir(parents=True, exist_ok=True)
            (d / f"P{p}" / f"{k}.dcm").write_bytes(dicom_bytes(pixels, PatientID=f"X{p}"))
    whole = (d / "P1" / "1.dcm").read_bytes()
    (d / "P1" / "cut.dcm").write_bytes(whole[: len(whole) - 900])
    return show(d)


# --- Hugging Face datasets --------------------------------------------------------------------


@case(HUB, "a row's image cut short", "skipped", r"img_020\.png.*cannot read image")
def _(d: Path, f: Fixtures) -> list[str]:
    from tests.hub_datasets import image_rows, write_parquet

    rows = image_rows([10, 20, 30, 40], [0, 1, 0, 1])
    rows[1]["image"]["bytes"] = rows[1]["image"]["bytes"][:30]
    write_parquet(d / "photos/data/train-00000-of-00001.parquet", rows)
    return show(d / "photos")


@case(HUB, "a row naming an image file that is not there", "skipped", r"does not exist")
def _(d: Path, f: Fixtures) -> list[str]:
    from tests.hub_datasets import image_rows, write_saved

    rows = image_rows([10, 20, 30, 40], [0, 1, 0, 1])
    rows[2]["image"] = {"bytes": None, "path": "/gone/img_030.png"}
    return show(write_saved(d / "saved", {"train": rows}))


@case(HUB, "a split the dataset does not have", "error", r"has no split 'valid' \(splits: train\)")
def _(d: Path, f: Fixtures) -> list[str]:
    from tests.hub_datasets import image_rows, write_parquet

    write_parquet(d / "photos/train-00000-of-00001.parquet", image_rows([10, 20], [0, 1]))
    return show(Path(f"{d / 'photos'}:valid"))


@case(WDS, "a shard cut short in its last image", "skipped", r"0002.*cannot read image")
def _(d: Path, f: Fixtures) -> list[str]:
    import tarfile

    from tests.hub_datasets import png

    shard = d / "wds" / "shard-000000.tar"
    shard.parent.mkdir(parents=True)
    with tarfile.open(shard, "w") as tar:
        for key in range(3):
            data = png(40 * key)
            member = tarfile.TarInfo(f"{key:04d}.png")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    with tarfile.open(shard, "r:") as tar:
        last = tar.getmember("0002.png")
    shard.write_bytes(shard.read_bytes()[: last.offset_data + 20])  # a copy that stopped
    return show(d / "wds")


# --- arrays -----------------------------------------------------------------------------------


def _npy(d: Path, array: np.ndarray, name: str = "x.npy") -> Path:
    path = file_in(d, name)
    np.save(path, array, allow_pickle=array.dtype == object)
    return path


@case(ARRAYS, "zero-byte .npy", "error", r"x\.npy: not a \.npy file")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "x.npy")
    path.write_bytes(b"")
    return show(path)


@case(ARRAYS, "truncated .npy", "error", r"x\.npy: the file is shorter than its header says")
def _(d: Path, f: Fixtures) -> list[str]:
    path = _npy(d, RNG.integers(0, 255, (50, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:300])
    return show(path)


@case(ARRAYS, "huge header (shape of 10^15 values)", "error", r"x\.npy: the file is shorter")
def _(d: Path, f: Fixtures) -> list[str]:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000, 1000), }"
    header = header.ljust(117) + "\n"
    path = file_in(d, "x.npy")
    path.write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64
    )
    return show(path)


@case(ARRAYS, "pickled objects (code could run)", "error", r"x\.npy: holds Python objects")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_npy(d, np.array([{"a": 1}, None], dtype=object)))


@case(ARRAYS, "wrong rank (1-D)", "error", r"x\.npy: image arrays must have 3 axes")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_npy(d, np.arange(10)))


@case(ARRAYS, "wrong dtype (complex)", "error", r"x\.npy: image arrays must be numeric")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_npy(d, np.zeros((4, 8, 8), np.complex64)))


@case(ARRAYS, "wrong dtype (strings)", "error", r"x\.npy: image arrays must be numeric")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_npy(d, np.full((4, 8, 8), "a")))


@case(ARRAYS, "NaN pixels", "error", r"x\.npy: the image array holds NaN or infinite values")
def _(d: Path, f: Fixtures) -> list[str]:
    pixels = RNG.random((8, 8, 8)).astype(np.float32)
    pixels[3, 2, 2] = np.nan
    return show(_npy(d, pixels))


@case(ARRAYS, "empty (no item)", "error", r"x\.npy: the array holds no image")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_npy(d, np.zeros((0, 8, 8), np.uint8)))


@case(ARRAYS, "wrong extension (CSV named .npy)", "error", r"x\.npy: not a \.npy file")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "x.npy")
    path.write_text("a,b\n1,2\n")
    return show(path)


@case(ARRAYS, ".npz without X", "error", r"x\.npz: a \.npz file must hold the images as 'X'")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "x.npz")
    np.savez(path, a=np.zeros((4, 8, 8)), b=np.zeros(4))
    return show(path)


@case(ARRAYS, ".npz labels of another length", "error", r"x\.npz: 3 labels for 4 images")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "x.npz")
    np.savez(path, X=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3))
    return show(path)


@case(ARRAYS, ".npz labels as pickled objects", "error", r"x\.npz: holds Python objects")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "x.npz")
    np.savez(path, X=np.zeros((4, 8, 8), np.uint8), y=np.array([None] * 4, dtype=object))
    return show(path)


@case(ARRAYS, "truncated .npz", "error", r"x\.npz: not a readable \.npz archive")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "x.npz")
    np.savez(path, X=np.zeros((40, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:500])
    return show(path)


@case(ARRAYS, "series .npy of rank 4", "error", r"s\.npy: series arrays must be \(n, length\)")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_npy(d, np.zeros((4, 2, 3, 5), np.float32), "s.npy"), "series")


@case(ARRAYS, "series .npy of pickled objects", "error", r"s\.npy: holds Python objects")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_npy(d, np.array([[1.0], None], dtype=object), "s.npy"), "series")


@case(ARRAYS, "series .npy truncated", "error", r"s\.npy: the file is shorter")
def _(d: Path, f: Fixtures) -> list[str]:
    path = _npy(d, RNG.normal(size=(80, 20)), "s.npy")
    path.write_bytes(path.read_bytes()[:400])
    return show(path, "series")


@case(ARRAYS, "series .npy with NaN (a missing value)", "read", r'"readable": 8')
def _(d: Path, f: Fixtures) -> list[str]:
    values = RNG.normal(size=(8, 20)).astype(np.float32)
    values[2, 5] = np.nan
    return show(_npy(d, values, "s.npy"), "series")


# --- tables -----------------------------------------------------------------------------------


@case(TABLES, "zero-byte CSV", "error", r"t\.csv: cannot read the table \(No columns")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_bytes(b"")
    return show(path)


@case(TABLES, "header only", "error", r"t\.csv: the table has no row")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_text("a,b,label\n")
    return show(path)


@case(TABLES, "a cell of inf", "error", r"t\.csv: row 7, column 'a': inf is infinite")
def _(d: Path, f: Fixtures) -> list[str]:
    frame = table()
    frame.loc[7, "a"] = np.inf
    path = file_in(d, "t.csv")
    frame.to_csv(path, index=False)
    return show(path)


@case(TABLES, "a cell of 1e308", "error", r"t\.csv: row 4, column 'b': 1e\+308 is beyond float32")
def _(d: Path, f: Fixtures) -> list[str]:
    frame = table()
    frame["b"] = frame["b"].astype(object)
    frame.loc[4, "b"] = "1e308"
    path = file_in(d, "t.csv")
    frame.to_csv(path, index=False)
    return show(path)


@case(TS, "a text cell in a CSV of series", "error", r"s\.csv: row 2, column 'a': 'n/a!' is not")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "s.csv")
    path.write_text("a,b\n1,2\n3,4\nn/a!,6\n" + "7,8\n" * 5)
    return show(path, "series")


@case(TABLES, "non-UTF-8 CSV", "error", r"t\.csv: line 2 is not UTF-8 text \(byte 0xe9")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_bytes("a,b,name\n1,2,caf\xe9\n3,4,d\n".encode("latin-1"))
    return show(path)


@case(TABLES, "binary data named .csv", "error", r"t\.csv: holds binary data")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_bytes(RNG.bytes(20000))
    return show(path)


@case(TABLES, "German Excel export (';', decimal commas, dd.mm.yyyy)", "read", r"3 numeric.*1 time")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")  # was one column of text: "no feature column left"
    rows = [f"{1 + i % 28:02d}.03.2025 08:00;{i},5;1.0{i % 10}3,25;{i % 3}" for i in range(40)]
    path.write_text("Datum;Menge;Betrag;Klasse\n" + "\n".join(rows) + "\n")
    return show(path)


@case(TABLES, "ragged rows", "error", r"t\.csv: cannot read the table .*Expected 2 fields")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_text("a,b\n1,2\n3,4,5,6\n7,8\n")
    return show(path)


@case(TABLES, "zero-byte Parquet", "error", r"t\.parquet: cannot read the table")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.parquet")
    path.write_bytes(b"")
    return show(path)


@case(TABLES, "truncated Parquet", "error", r"t\.parquet: cannot read the table .*magic bytes")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.parquet")
    table().to_parquet(path)
    path.write_bytes(path.read_bytes()[:300])
    return show(path)


@case(TABLES, "wrong extension (CSV named .parquet)", "error", r"t\.parquet: cannot read")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.parquet")
    table().to_csv(path)
    return show(path)


@case(TABLES, "Parquet cell of -inf", "error", r"t\.parquet: row 3, column 'b': -inf is")
def _(d: Path, f: Fixtures) -> list[str]:
    frame = table()
    frame.loc[3, "b"] = -np.inf
    path = file_in(d, "t.parquet")
    frame.to_parquet(path)
    return show(path)


# --- sensor logs: a folder of a historian's exports, a maintenance log ------------------------


def log_folder(d: Path, days: int = 3) -> Path:
    """``d/logs/pump-1/2025-01-0D.csv``: hourly readings of one pump."""
    for day in range(1, days + 1):
        times = pd.date_range(f"2025-01-0{day}", periods=24, freq="h")
        frame = pd.DataFrame({"timestamp": times, "temp": RNG.normal(60, 1, 24)})
        frame.to_csv(file_in(d / "logs" / "pump-1", f"2025-01-0{day}.csv"), index=False)
    return d / "logs"


@case(TS, "a log file with a bad time", "error", r"2025-01-02\.csv: row 4: the time '31/02/25 9h'")
def _(d: Path, f: Fixtures) -> list[str]:
    logs = log_folder(d)
    path = logs / "pump-1" / "2025-01-02.csv"
    lines = path.read_text().splitlines()
    lines[4] = "31/02/25 9h," + lines[4].split(",")[1]
    path.write_text("\n".join(lines) + "\n")
    return show(logs)


@case(TS, "a log file with other columns", "error", r"2025-01-03\.csv: its columns differ .*: has")
def _(d: Path, f: Fixtures) -> list[str]:
    logs = log_folder(d)
    (logs / "pump-1" / "2025-01-03.csv").write_text("timestamp,temp,flow\n2025-01-03,1,2\n")
    return show(logs)


@case(TS, "an event that ends before it starts", "error", r"events\.csv: row 2: the event ends")
def _(d: Path, f: Fixtures) -> list[str]:
    logs = log_folder(d)
    events = file_in(d, "events.csv")
    events.write_text(
        "unit,start,end,event\npump-1,2025-01-01 03:00,2025-01-01 05:00,leak\n"
        "pump-1,2025-01-02 05:00,2025-01-02 03:00,leak\n"
    )
    return [*show(logs), "--labels", str(events), "--window", "24"]


@case(TS, "an events table without a start column", "error", r"events\.csv: no start column")
def _(d: Path, f: Fixtures) -> list[str]:
    logs = log_folder(d)
    events = file_in(d, "events.csv")
    events.write_text("unit,when,event\npump-1,2025-01-01 03:00,leak\n")
    return [*show(logs), "--labels", str(events), "--window", "24"]


# --- .ts series -------------------------------------------------------------------------------


def _ts(d: Path, text: str | bytes) -> Path:
    path = file_in(d, "s.ts")
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@case(TS, "zero-byte file", "error", r"s\.ts: no @data section")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_ts(d, b""))


@case(TS, "truncated (last row cut)", "error", r"s\.ts:14: a labelled row needs 'values:label'")
def _(d: Path, f: Fixtures) -> list[str]:
    text = ts_text()
    return show(_ts(d, text[: len(text) - 30]))


@case(TS, "label @classLabel does not declare", "error", r"s\.ts:8: label 'c' is not among")
def _(d: Path, f: Fixtures) -> list[str]:
    text = ts_text().replace(":b\n", ":c\n", 1)
    return show(_ts(d, text))


@case(TS, "text among the values", "error", r"s\.ts:10: could not convert string to float")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_ts(d, ts_text(bad_row="1,2,x,4,5,6,7,8,9,10")))


@case(TS, "inf among the values", "error", r"s\.ts:10: a value is infinite")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_ts(d, ts_text(bad_row="1,2,inf,4,5,6,7,8,9,10")))


@case(TS, "1e400 among the values", "error", r"s\.ts:10: a value is infinite")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_ts(d, ts_text(bad_row="1,2,3,4,5,6,7,8,9,1e400")))


@case(TS, "NaN among the values (a missing value)", "read", r'"readable": 8')
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_ts(d, ts_text(bad_row="1,2,NaN,4,5,6,7,8,9,10")))


@case(TS, "non-UTF-8 bytes", "error", r"s\.ts: line 15 is not UTF-8 text \(byte 0xff")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_ts(d, ts_text().encode() + b"\xff\xfe\n"))


@case(TS, "binary data named .ts", "error", r"s\.ts: holds binary data")
def _(d: Path, f: Fixtures) -> list[str]:
    return show(_ts(d, RNG.bytes(5000)))


@case(TS, "a CSV of series with inf", "error", r"s\.csv: row 3, column 'v3': inf is infinite")
def _(d: Path, f: Fixtures) -> list[str]:
    values = pd.DataFrame(RNG.normal(size=(8, 6)), columns=[f"v{i}" for i in range(6)])
    values.loc[3, "v3"] = np.inf
    path = file_in(d, "s.csv")
    values.to_csv(path, index=False)
    return show(path, "series")


# --- text -------------------------------------------------------------------------------------


@case(TEXT, "binary data named .txt", "error", r"t\.txt: holds binary data \(a NUL byte")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.txt")
    path.write_bytes(RNG.bytes(20000))
    return show(path)


@case(TEXT, "zero-byte .txt", "error", r"t\.txt: no non-blank line")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.txt")
    path.write_bytes(b"")
    return show(path)


@case(TEXT, "Latin-1 .txt", "error", r"t\.txt: line 2 is not UTF-8 text .*iconv -f cp1252")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.txt")
    path.write_bytes("plain line\ncaf\xe9 au lait\n".encode("latin-1"))
    return show(path)


@case(TEXT, "a folder with one binary .txt", "skipped", r"c\.txt.*holds binary data")
def _(d: Path, f: Fixtures) -> list[str]:
    d.mkdir(parents=True)
    (d / "a.txt").write_text("a fine document about cats\n")
    (d / "b.txt").write_text("another fine document\n")
    (d / "c.txt").write_bytes(RNG.bytes(3000))
    return show(d)


@case(
    TEXT, "JSONL line cut short", "skipped",
    r"^line 2: not valid JSON \(Expecting ',' delimiter at column 13\)$",
)  # fmt: skip
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.jsonl")
    path.write_text('{"text": "a"}\n{"text": "b"\n{"text": "c"}\n')
    return show(path)


@case(TEXT, "JSONL without the text field", "error", r"t\.jsonl: line 1 has no 'text' field")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.jsonl")
    path.write_text('{"body": "a"}\n{"body": "b"}\n')
    return show(path)


@case(TEXT, "JSONL text of a number", "error", r"t\.jsonl: line 2 has a non-text 'text' field")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.jsonl")
    path.write_text('{"text": "a"}\n{"text": 5}\n')
    return show(path)


@case(TEXT, "JSONL line not an object", "skipped", r"^line 2: not a JSON object$")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.jsonl")
    path.write_text('{"text": "a"}\n[1, 2]\n')
    return show(path)


@case(TEXT, "empty JSONL", "error", r"t\.jsonl: no JSON object on any line")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.jsonl")
    path.write_text("")
    return show(path)


@case(TEXT, "non-UTF-8 JSONL", "error", r"t\.jsonl: line 1 is not UTF-8 text")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.jsonl")
    path.write_bytes(b'{"text": "caf\xe9"}\n{"text": "ok"}\n')
    return show(path)


@case(TEXT, "CSV without the text column", "error", r"t\.csv: no column 'text'")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_text("a,b\n1,2\n3,4\n")
    return show(path, "text")


@case(TEXT, "CSV row with an empty text cell", "skipped", r"^1: no text")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_text('text,y\n"a fine row",a\n,b\n"another",b\n')
    return show(path, "text")


@case(TEXT, "CSV whose text cells are all empty", "error", r"t\.csv: no row has text in column")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.csv")
    path.write_text('text,y\n,a\n"  ",b\n')
    return show(path, "text")


@case(TEXT, "JSONL line with a null text", "skipped", r"^1: no text")
def _(d: Path, f: Fixtures) -> list[str]:
    path = file_in(d, "t.jsonl")
    path.write_text('{"text": "a"}\n{"text": null}\n{"text": "b"}\n')
    return show(path)


# --- WAV audio --------------------------------------------------------------------------------


@case(AUDIO, "zero-byte file", "skipped", r"z\.wav.*the file is empty \(0 bytes\)")
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    (d / "z.wav").write_bytes(b"")
    return show(d)


@case(AUDIO, "truncated header", "skipped", r"t\.wav.*cannot read audio")
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    (d / "t.wav").write_bytes(wav_bytes(RNG.normal(0, 0.2, 4000))[:30])
    return show(d)


@case(AUDIO, "damaged MP3", "skipped", r"cut\.mp3.*not audio that libsndfile decodes")
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    (d / "cut.mp3").write_bytes(b"ID3\x03\x00\x00\x00" + bytes(50))
    return show(d)


@case(AUDIO, "M4A cut short", "skipped", r"cut\.m4a.*not audio that FFmpeg decodes")
def _(d: Path, f: Fixtures) -> list[str]:
    from selfsup.data.ffmpeg_audio import write_aac

    audio_folder(d)
    write_aac(d / "cut.m4a", RNG.normal(0, 0.2, (16000, 1)).astype(np.float32), 16000)
    (d / "cut.m4a").write_bytes((d / "cut.m4a").read_bytes()[:400])
    return show(d)


@case(AUDIO, "NaN samples", "skipped", r"n\.wav.*sample 100 \(0\.013 s\) is NaN or infinite")
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    samples = RNG.normal(0, 0.2, 4000)
    samples[100] = np.nan
    (d / "n.wav").write_bytes(float_wav_bytes(samples))
    return show(d)


@case(AUDIO, "infinite samples", "skipped", r"i\.wav.*is NaN or infinite")
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    samples = RNG.normal(0, 0.2, 4000)
    samples[100] = np.inf
    (d / "i.wav").write_bytes(float_wav_bytes(samples))
    return show(d)


@case(AUDIO, "wrong extension (text named .wav)", "skipped", r"x\.wav.*not audio that libsndf")
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    (d / "x.wav").write_text("not audio")
    return show(d)


@case(AUDIO, "huge header (data size 4 GB)", "read", r'"readable": 5')
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    data = bytearray(wav_bytes(RNG.normal(0, 0.2, 4000)))
    data[40:44] = struct.pack("<I", 0xFFFFFFF0)  # the data chunk claims 4 GB; what is there is read
    (d / "h.wav").write_bytes(bytes(data))
    return show(d)


@case(AUDIO, "no samples", "skipped", r"e\.wav.*holds no audio samples")
def _(d: Path, f: Fixtures) -> list[str]:
    audio_folder(d)
    (d / "e.wav").write_bytes(wav_bytes(np.zeros(0)))
    return show(d)


@case(AUDIO, "every file broken", "error", r"none of the first 3 items can be read")
def _(d: Path, f: Fixtures) -> list[str]:
    d.mkdir(parents=True)
    for i in range(3):
        (d / f"b{i}.wav").write_bytes(b"RIFF")
    return show(d)


# --- run folders ------------------------------------------------------------------------------


def _run(d: Path, f: Fixtures) -> Path:
    run = d / "run"
    shutil.copytree(f.run, run)
    return run


def _embed(run: Path, f: Fixtures, d: Path) -> list[str]:
    return ["embed", str(run), str(f.data), "--out", str(d / "e.npy")]


def _resume(run: Path) -> list[str]:
    return ["pretrain", "--resume", str(run), "--steps", "8"]


@case(RUNS, "zero-byte checkpoint", "error", r"last\.ckpt: the checkpoint is empty \(0 bytes\)")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    return _resume(run)


@case(RUNS, "truncated checkpoint", "error", r"last\.ckpt: the checkpoint is damaged or truncated")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    path = run / "checkpoints" / "last.ckpt"
    path.write_bytes(path.read_bytes()[:5000])
    return _resume(run)


@case(RUNS, "random bytes as checkpoint", "error", r"last\.ckpt: refused: .*never unpickles")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "checkpoints" / "last.ckpt").write_bytes(RNG.bytes(20000))
    return _resume(run)


@case(RUNS, "checkpoint missing", "error", r"last\.ckpt: no checkpoint to resume from")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "checkpoints" / "last.ckpt").unlink()
    return _resume(run)


@case(RUNS, "truncated weights", "error", r"encoder\.safetensors: not a readable safetensors")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    path = run / "encoder.safetensors"
    path.write_bytes(path.read_bytes()[:3000])
    return _embed(run, f, d)


@case(RUNS, "huge header in weights", "error", r"encoder\.safetensors: not a readable")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "encoder.safetensors").write_bytes(struct.pack("<Q", 10**15) + b"{}")
    return _embed(run, f, d)


@case(RUNS, "encoder.json not JSON", "error", r"encoder\.json: not valid JSON \(line 1, column 2")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "encoder.json").write_text("{not json")
    return _embed(run, f, d)


@case(RUNS, "encoder.json without modality", "error", r"encoder\.json: modality: Field required")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    spec = json.loads((run / "encoder.json").read_text())
    del spec["modality"]
    (run / "encoder.json").write_text(json.dumps(spec))
    return _embed(run, f, d)


@case(RUNS, "encoder.json of a list", "error", r"encoder\.json: not an encoder spec")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "encoder.json").write_text("[1, 2]")
    return _embed(run, f, d)


@case(RUNS, "encoder.json width 200000", "error", r"encoder\.json: describes an encoder of")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    spec = json.loads((run / "encoder.json").read_text())
    spec["options"] = {**spec.get("options", {}), "width": 200_000}
    (run / "encoder.json").write_text(json.dumps(spec))
    return _embed(run, f, d)


@case(RUNS, "encoder.json non-UTF-8", "error", r"encoder\.json: not UTF-8 text")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "encoder.json").write_bytes(b'{"modality": "\xff"}')
    return _embed(run, f, d)


@case(RUNS, "config.yaml cut short", "error", r"config\.yaml: not a run's config")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "config.yaml").write_text("method: [simclr")
    return _embed(run, f, d)


@case(RUNS, "config.yaml with a Python tag", "error", r"config\.yaml: not a run's config")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "config.yaml").write_text("method: !!python/object/apply:os.system ['touch pwned']\n")
    return _embed(run, f, d)


@case(RUNS, "config.yaml modality ../../x", "error", r"config\.yaml: modality: ")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    text = (run / "config.yaml").read_text().replace("modality: image", "modality: ../../x")
    (run / "config.yaml").write_text(text)
    return _embed(run, f, d)


@case(RUNS, "train.json cut short", "error", r"train\.json: not valid JSON")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    (run / "train.json").write_text('{"steps": 3')
    return _embed(run, f, d)


@case(RUNS, "not a run folder", "error", r"not a run folder \(no config\.yaml\)")
def _(d: Path, f: Fixtures) -> list[str]:
    d.mkdir(parents=True)
    return _embed(d, f, d)


@case(RUNS, "output in place of a folder", "error", r"e\.npy: a folder is in the way")
def _(d: Path, f: Fixtures) -> list[str]:
    (d / "e.npy").mkdir(parents=True)
    return _embed(f.run, f, d)


@case(RUNS, "another model's embeddings at --out", "error", r"e\.npy: exists already .*--overwrite")
def _(d: Path, f: Fixtures) -> list[str]:
    d.mkdir(parents=True)
    np.save(d / "e.npy", np.zeros((3, 4), np.float32))  # written by another run: kept
    return _embed(f.run, f, d)


@case(RUNS, "an existing run as --out", "error", r"holds a run already .*--overwrite")
def _(d: Path, f: Fixtures) -> list[str]:
    run = _run(d, f)
    return ["pretrain", str(f.data), "--steps", "2", "--out", str(run)]


# --- adapted model folders --------------------------------------------------------------------


def _model(d: Path, f: Fixtures) -> Path:
    """A copy of the model whose run path points at the fixture run."""
    model = d / "model"
    shutil.copytree(f.model, model)
    spec = json.loads((model / "model.json").read_text())
    spec["run"] = str(f.run)
    (model / "model.json").write_text(json.dumps(spec))
    return model


def _predict(model: Path, f: Fixtures, d: Path) -> list[str]:
    return ["predict", str(model), str(f.data), "--out", str(d / "p.csv")]


def _edit_model(model: Path, **changes: object) -> None:
    spec = json.loads((model / "model.json").read_text())
    spec.update(changes)
    (model / "model.json").write_text(json.dumps(spec))


@case(MODELS, "model.json cut short", "error", r"model\.json: not valid JSON")
def _(d: Path, f: Fixtures) -> list[str]:
    model = _model(d, f)
    (model / "model.json").write_text('{"run": "x", ')
    return _predict(model, f, d)


@case(MODELS, "a class removed", "error", r"head\.safetensors: the head .* does not match the 3")
def _(d: Path, f: Fixtures) -> list[str]:
    model = _model(d, f)
    _edit_model(model, classes=json.loads((model / "model.json").read_text())["classes"][:3])
    return _predict(model, f, d)


@case(MODELS, "temperature 0", "error", r"model\.json: temperature: Input should be greater")
def _(d: Path, f: Fixtures) -> list[str]:
    model = _model(d, f)
    _edit_model(model, temperature=0)
    return _predict(model, f, d)


@case(MODELS, "one class", "error", r"model\.json: classes: List should have at least 2")
def _(d: Path, f: Fixtures) -> list[str]:
    model = _model(d, f)
    _edit_model(model, classes=["a"])
    return _predict(model, f, d)


@case(MODELS, "truncated head weights", "error", r"head\.safetensors: not a readable safetensors")
def _(d: Path, f: Fixtures) -> list[str]:
    model = _model(d, f)
    path = model / "head.safetensors"
    path.write_bytes(path.read_bytes()[:40])
    return _predict(model, f, d)


@case(MODELS, "run folder gone", "error", r"model\.json: its run folder .* does not exist")
def _(d: Path, f: Fixtures) -> list[str]:
    model = _model(d, f)
    _edit_model(model, run="../gone")
    return _predict(model, f, d)


# --- labels -----------------------------------------------------------------------------------


def _one_class(d: Path, f: Fixtures) -> Path:
    """The fixture data with every label the same."""
    with np.load(f.data) as data:
        images = data["X"]
    path = file_in(d, "one.npz")
    np.savez(path, X=images, y=np.zeros(len(images), dtype=int))
    return path


@case(
    LABELS, "one class to evaluate on", "error", r"one\.npz\[fit\]: evaluation needs labels of two"
)
def _(d: Path, f: Fixtures) -> list[str]:
    return ["evaluate", str(f.run), str(_one_class(d, f))]


@case(LABELS, "one class to adapt to", "error", r"one\.npz: adaptation needs labels of two")
def _(d: Path, f: Fixtures) -> list[str]:
    return ["adapt", str(f.run), str(_one_class(d, f)), "--out", str(d / "m")]


@case(LABELS, "one class for uncertainty sampling", "error", r"uncertainty sampling needs labels")
def _(d: Path, f: Fixtures) -> list[str]:
    one = _one_class(d, f)
    return ["select", str(f.run), str(f.data), "--labeled", str(one), "--strategy", "uncertainty",
            "--budget", "5", "--out", str(d / "r.csv")]  # fmt: skip


@case(LABELS, "no labels to evaluate on", "error", r"evaluation needs labels")
def _(d: Path, f: Fixtures) -> list[str]:
    with np.load(f.data) as data:
        images = data["X"]
    path = file_in(d, "unlabelled.npy")
    np.save(path, images)
    return ["evaluate", str(f.run), str(path)]
