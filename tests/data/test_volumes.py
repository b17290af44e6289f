"""Scans saved as NIfTI volumes (a CT, an MR): cut into axial slices shown as a radiologist
looks at them whatever the file's stored orientation, one window per volume, decompressed
once per process, read in blocks of volumes, labelled and held out by volume."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.data import volumes
from selfsup.data.base import ItemReadError
from selfsup.data.image_folder import ImageFolderSource, WholeFiles
from selfsup.data.splits import split_group_ids
from selfsup.data.volumes import VolumeCache, VolumeError, parse_window, volume_header
from selfsup.modalities import train_test_sources


def world_volume(shape=(12, 10, 8), seed=0):
    """Values on a grid whose axes run toward the patient's right, anterior and superior."""
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(np.int16)


def save(path, values, affine, **header):
    image = nib.Nifti1Image(values, affine)
    for key, value in header.items():
        image.header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def stored_as(values, codes):
    """``values`` (RAS axes) stored with the axes ``codes`` name (``("L", "P", "S")``, a
    sagittal acquisition's ``("A", "S", "R")``...), and the affine that says so."""
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    wanted = nib.orientations.axcodes2ornt(codes)
    transform = nib.orientations.ornt_transform(ras, wanted)
    stored = nib.orientations.apply_orientation(values, transform)
    affine = nib.orientations.inv_ornt_aff(transform, values.shape)
    return np.ascontiguousarray(stored), affine


@pytest.mark.parametrize(
    "codes", [("L", "P", "S"), ("R", "A", "I"), ("A", "S", "R"), ("S", "L", "P")]
)
def test_a_slice_is_shown_the_same_whatever_order_the_file_stores_its_axes(tmp_path, codes):
    world = world_volume()
    reference = save(tmp_path / "ras.nii", world, np.eye(4))
    stored, affine = stored_as(world, codes)
    other = save(tmp_path / f"{''.join(codes)}.nii.gz", stored, affine)
    assert volume_header(other) == volume_header(reference) == (12, 10, 8)
    layout = volumes.volume_layout(other)
    down = "I" in codes  # stored from the top down: slice K of the file is 7 - K of the world
    for k in range(8):
        shown = np.asarray(volumes.read_plane(other, 7 - k if down else k))
        assert np.allclose(shown, np.asarray(volumes.read_plane(reference, k)))
    # anterior at the top, the patient's right on the left: the RAS grid's [11, 9] corner
    top_left = np.asarray(volumes.read_plane(reference, 3))[0, 0]
    assert layout.planes == 8
    low, high = np.percentile(world.astype(float), volumes.PERCENTILES)
    assert top_left == pytest.approx(np.clip((world[11, 9, 3] - low) / (high - low), 0, 1))


def test_values_are_scaled_then_windowed_once_per_volume(tmp_path):
    values = np.zeros((16, 16, 4), np.int16)
    values[:, :, 2] = 2000  # one bright slice; the others air
    path = save(tmp_path / "ct.nii.gz", values, np.eye(4))
    image = nib.load(path)
    image.header.set_slope_inter(1.0, -1024.0)
    nib.save(image, path)
    air = np.asarray(volumes.read_plane(path, 0))
    assert air.max() == 0.0  # an empty slice stays dark, not stretched noise
    assert np.asarray(volumes.read_plane(path, 2)).min() == 1.0
    # --scan-window: values in the file's units (here -1024 for air, 976 for the slice)
    windowed = np.asarray(VolumeCache().plane(path, 2, window=(0.0, 1952.0)))
    assert np.allclose(windowed, 0.5)
    # a display range of the file's own (cal_min, cal_max) wins over percentiles
    ranged = save(tmp_path / "mr.nii", values, np.eye(4), cal_min=0.0, cal_max=4000.0)
    assert np.allclose(np.asarray(VolumeCache().plane(ranged, 2)), 0.5)


def test_not_a_number_reads_as_zero_and_a_window_is_checked():
    assert parse_window(" -1000,400") == (-1000.0, 400.0)
    with pytest.raises(ValueError, match="LOW must be below its HIGH"):
        parse_window("400,-1000")
    with pytest.raises(ValueError, match="LOW,HIGH in the scan's units"):
        parse_window("40/400")


def test_nan_outside_a_mask_reads_as_zero(tmp_path):
    values = np.full((8, 8, 3), np.nan, np.float32)
    values[2:6, 2:6] = np.linspace(1, 2, 16).reshape(4, 4, 1)
    path = save(tmp_path / "map.nii", values, np.eye(4))
    shown = np.asarray(volumes.read_plane(path, 1))
    assert np.isfinite(shown).all() and shown[0, 0] == 0.0 and shown.max() > 0.9


def test_a_4d_file_is_refused_with_how_to_split_it_and_a_trailing_one_is_not(tmp_path):
    series = save(tmp_path / "bold.nii.gz", np.zeros((4, 4, 3, 5), np.int16), np.eye(4))
    with pytest.raises(VolumeError, match=r"a 4-D volume of 5 volumes of 4x4x3.*fslsplit"):
        volume_header(series)
    single = save(tmp_path / "one.nii", np.zeros((4, 4, 3, 1), np.int16), np.eye(4))
    assert volume_header(single) == (4, 4, 3)
    flat = save(tmp_path / "flat.nii", np.zeros((6, 4), np.int16), np.eye(4))
    assert volume_header(flat) == (6, 4, 1)


def test_a_compressed_volume_is_decompressed_once_and_a_broken_one_fails_once(
    tmp_path, monkeypatch
):
    path = save(tmp_path / "ct.nii.gz", world_volume(), np.eye(4))
    opened = []
    real = volumes._open_volume
    monkeypatch.setattr(volumes, "_open_volume", lambda *a: opened.append(a) or real(*a))
    cache = VolumeCache()
    first = [np.asarray(cache.plane(path, k)) for k in range(8)]
    assert len(opened) == 1
    # larger than the cache: read a slice at a time through nibabel, the same values
    small = VolumeCache(limit=100)
    assert all(np.allclose(np.asarray(small.plane(path, k)), first[k]) for k in range(8))
    assert small._get(path).nbytes == 0
    # big-endian floats decompressed by libdeflate read as nibabel reads them
    swapped = save(tmp_path / "be.nii.gz", world_volume().astype(">f4") / 7, np.eye(4))
    assert np.allclose(np.asarray(cache.plane(swapped, 4)), np.asarray(small.plane(swapped, 4)))
    # an uncompressed volume is mapped, holding nothing
    plain = save(tmp_path / "ct.nii", world_volume(), np.eye(4))
    assert np.allclose(np.asarray(cache.plane(plain, 5)), first[5])
    assert cache._get(plain).nbytes == 0
    # cut short: every slice says so, the file is tried once
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    opened.clear()
    for k in range(3):
        with pytest.raises(VolumeError, match="the file is cut short"):
            cache.plane(cut, k)
    assert len(opened) == 1
    with pytest.raises(IndexError, match="no slice 8: the volume has 8"):
        cache.plane(path, 8)


def test_the_cache_gives_up_the_least_recently_read_volume(tmp_path):
    paths = [save(tmp_path / f"{i}.nii.gz", world_volume(seed=i), np.eye(4)) for i in range(3)]
    one = volumes.volume_layout(paths[0]).nbytes
    cache = VolumeCache(limit=2 * one)
    for path in paths:
        cache.plane(path, 0)
    assert [p[0].rsplit("/", 1)[1] for p in cache._held.oldest_first()] == ["1.nii.gz", "2.nii.gz"]


def make_scans(root, patients=4, slices=6, side=24):
    """A folder per patient, each with one CT volume (a bright lesion in patients 0 and 2)."""
    for p in range(patients):
        values = np.full((side, side, slices), -1000, np.int16)
        values[4:-4, 4:-4] = 40
        if p % 2 == 0:
            values[8:12, 8:12, 2:4] = 300
        save(root / f"p{p}" / "ct.nii.gz", values, np.diag([-1.0, -1.0, 2.5, 1.0]))


def test_a_folder_of_volumes_cut_into_slices_labelled_and_held_out_by_volume(tmp_path):
    make_scans(tmp_path / "scans")
    (tmp_path / "scans" / "notes.txt").write_text("not a scan")
    source = ImageFolderSource(tmp_path / "scans")
    assert len(source) == 24 and source.ids[:2] == ["p0/ct.nii.gz@z0", "p0/ct.nii.gz@z1"]
    assert "4 volume(s) cut into 24 slices" in source.index_note
    assert source.classes is None and "folders each hold one scan's volumes" in (source.labels_note)
    assert source.item_shape == (1, 24, 24) and source.read(0).shape == (1, 24, 24)
    groups = split_group_ids(source.ids, source.name, source.split_groups)
    assert len(set(groups)) == 4 and groups[5] == groups[0]
    # a table naming slices labels slices; one naming volumes labels all their slices
    rows = ["file_name,label"] + [
        f"p{p}/ct.nii.gz@z{k},{'lesion' if p % 2 == 0 and k in (2, 3) else 'none'}"
        for p in range(4)
        for k in range(6)
    ]
    (tmp_path / "slices.csv").write_text("\n".join(rows) + "\n")
    labelled = ImageFolderSource(tmp_path / "scans", labels_file=tmp_path / "slices.csv")
    assert labelled.classes == ["lesion", "none"]
    assert [labelled.classes[c] for c in labelled.labels[:4]] == ["none"] * 2 + ["lesion"] * 2
    # four patients are too few to hold one in five out whole: said where slices are split
    test = train_test_sources(labelled)[1]
    assert test.name.endswith("[test, items: too few patients (4) to hold patients out whole]")
    (tmp_path / "patients.csv").write_text("file_name,label\np0/ct.nii.gz,a\np1/ct.nii.gz,b\n")
    by_volume = ImageFolderSource(tmp_path / "scans", labels_file=tmp_path / "patients.csv")
    partial = by_volume.partial_labels  # p2 and p3 unlabelled: the slices of p0 and p1 are
    assert by_volume.labels is None and partial.rows.tolist() == list(range(12))
    assert [partial.classes[c] for c in partial.codes] == ["a"] * 6 + ["b"] * 6


def test_training_reads_compressed_volumes_in_blocks_that_fit_the_cache(tmp_path, monkeypatch):
    make_scans(tmp_path / "scans", patients=6)
    source = ImageFolderSource(tmp_path / "scans")
    everything = source.epoch_order(seed=0, epoch=0)
    assert sorted(everything.tolist()) == list(range(36))
    one = volumes.volume_layout(tmp_path / "scans" / "p0" / "ct.nii.gz").nbytes
    monkeypatch.setattr("selfsup.data.image_folder.CACHE_BYTES", 2 * one)
    order = source.epoch_order(seed=0, epoch=1)
    owners = source.places.owner[order]
    for block in range(3):  # two volumes' slices, then the next two's
        assert len(set(owners[12 * block : 12 * (block + 1)].tolist())) == 2
    assert not np.array_equal(order, source.epoch_order(seed=0, epoch=2))


def test_a_broken_volume_is_skipped_slice_by_slice_with_its_reason(tmp_path):
    make_scans(tmp_path / "scans", patients=3)
    noisy = save(tmp_path / "noisy.nii.gz", world_volume((24, 24, 6)), np.eye(4)).read_bytes()
    (tmp_path / "scans" / "p2" / "ct.nii.gz").write_bytes(noisy[: len(noisy) // 2])
    plain = save(tmp_path / "plain.nii", world_volume((24, 24, 6)), np.eye(4)).read_bytes()
    (tmp_path / "scans" / "p4").mkdir()
    (tmp_path / "scans" / "p4" / "ct.nii").write_bytes(plain[:-100])
    (tmp_path / "scans" / "p3").mkdir()
    (tmp_path / "scans" / "p3" / "ct.nii.gz").write_bytes(gzip.compress(b"not a volume"))
    source = ImageFolderSource(tmp_path / "scans")
    batch = source.read_batch(range(len(source)))
    assert len(batch.indices) == 12
    reasons = {s.item_id: s.reason for s in batch.skipped}
    assert "p3/ct.nii.gz" in reasons and "p2/ct.nii.gz@z0" in reasons
    assert "not a NIfTI file" in reasons["p3/ct.nii.gz"]
    short = "the file is cut short: its compressed data ends before the volume's 6,912 bytes"
    with pytest.raises(ItemReadError, match=f"p2/ct.nii.gz@z5: cannot read image: .*{short}"):
        source.read(source.ids.index("p2/ct.nii.gz@z5"))
    short = "the file is cut short: it ends at 7,164 bytes and its values run to 7,264"
    assert short in reasons["p4/ct.nii@z0"]


def evaluate_studies(runner, table, patients):
    """``evaluate runs/ct scans`` with ``table`` labelling each patient's volume (odd ones
    ``lesion``); its result, checked to succeed."""
    rows = [f"p{p}/ct.nii.gz,{'lesion' if p % 2 else 'clear'}" for p in range(patients)]
    table.write_text("file_name,label\n" + "\n".join(rows) + "\n")
    command = ["evaluate", "runs/ct", "scans", "--labels", str(table), "--protocol", "knn"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    return result


def test_pretrain_embed_evaluate_anomalies_and_explain_slices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_scans(tmp_path / "scans", patients=6)
    runner = CliRunner()
    options = ["--steps", "2", "--batch-size", "4", "--backbone", "small-cnn"]
    window = ["--scan-window=-160,240"]
    result = runner.invoke(app, ["pretrain", "scans", *options, *window, "--out", "runs/ct"])
    assert result.exit_code == 0, result.output
    assert "6 volume(s) cut into 36 slices" in result.output
    assert "of decoded files kept by" in result.output  # the memory plan counts them
    result = runner.invoke(app, ["embed", "runs/ct", "scans", "--out", "ct.npz"])
    assert result.exit_code == 0, result.output
    saved = np.load(tmp_path / "ct.npz")
    assert len(saved["ids"]) == 36 and saved["ids"][7] == "p1/ct.nii.gz@z1"
    result = evaluate_studies(runner, tmp_path / "labels.csv", patients=6)
    assert "patients]" in result.output  # the split holds whole volumes out
    result = runner.invoke(app, ["anomalies", "runs/ct", "scans", "--fpr", "0.1"])
    assert result.exit_code == 0, result.output
    assert "of 6 volumes" in result.output
    for patient in ("p0", "p1"):  # one file name in two folders: two explanations
        result = runner.invoke(app, ["explain", "runs/ct", f"scans/{patient}/ct.nii.gz@z2"])
        assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "runs/ct/explain").glob("*-neighbours.png"))
    assert written == [f"scans-{p}-ct.nii.gz-z2-neighbours.png" for p in ("p0", "p1")]
    result = runner.invoke(app, ["explain", "runs/ct", "scans/p0/ct.nii.gz"])
    assert result.exit_code != 0
    assert "name one as scans/p0/ct.nii.gz@zK (K from 0 to 5)" in str(result.exception)
    result = runner.invoke(app, ["explain", "runs/ct", "scans/p0/ct.nii.gz@z9"])
    assert "no such slice; ct.nii.gz's 6 slices are ct.nii.gz@z0" in str(result.exception)


def test_a_multi_frame_dicom_file_is_a_volume_of_its_frames(tmp_path):
    from pydicom.dataset import Dataset
    from tests.data.test_dicom import write_dicom

    transform, window, shared = Dataset(), Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = 1, -1024
    window.WindowCenter, window.WindowWidth = 40, 400  # -160 .. 240 HU
    shared.PixelValueTransformationSequence = [transform]
    shared.FrameVOILUTSequence = [window]
    frames = np.full((5, 8, 8), 1024, np.uint16) + np.arange(5, dtype=np.uint16)[:, None, None] * 50
    for p in range(3):  # an enhanced CT per patient; a single slice in one more folder
        write_dicom(
            tmp_path / "scans" / f"p{p}" / "series.dcm", frames, NumberOfFrames=5,
            SharedFunctionalGroupsSequence=[shared], PatientID=f"X{p}",
        )  # fmt: skip
    write_dicom(tmp_path / "scans" / "p3" / "one.dcm", frames[0], PatientID="X3")
    source = ImageFolderSource(tmp_path / "scans")
    assert len(source) == 16 and source.ids[:2] == ["p0/series.dcm@z0", "p0/series.dcm@z1"]
    assert source.ids[-1] == "p3/one.dcm" and "3 volume(s) cut into 15 slices" in source.index_note
    assert source.split_groups == "patients"
    for k in range(5):  # HU 0, 50, ... through the file's window
        expected = np.clip((50 * k + 160) / 400, 0, 1)
        assert np.allclose(source.read(k).numpy(), expected, atol=1e-6)
    assert source.read_groups() is not None  # decoded whole: read in blocks of files


def test_packing_volumes_into_shards_is_refused_in_one_line(tmp_path):
    make_scans(tmp_path / "scans", patients=3)
    result = CliRunner().invoke(app, ["datasets", "pack", str(tmp_path / "scans"), "out"])
    assert result.exit_code != 0
    assert "holds volumes (NIfTI, multi-frame DICOM) read slice by slice" in str(result.exception)


def test_mr_sequences_one_file_each_are_the_channels_of_a_slice(tmp_path):
    root = tmp_path / "brats"
    rng = np.random.default_rng(4)
    for p in range(3):  # BraTS: four files per patient, a segmentation among them
        case = root / f"case{p}"
        for sequence in ("t1", "t2", "flair"):
            values = rng.normal(300, 50, (16, 16, 5)).astype(np.float32)
            save(case / f"case{p}_{sequence}.nii.gz", values, np.eye(4))
        save(case / f"case{p}_seg.nii.gz", np.zeros((16, 16, 5), np.uint8), np.eye(4))
    source = ImageFolderSource(root, channel_pattern=r"_(t1|t2|flair)\.nii\.gz$")
    assert len(source) == 15 and source.ids[1] == "case0/case0_*.nii.gz@z1"
    assert "3 files without a channel in their name left out" in source.index_note
    assert "3 volume(s) cut into 15 slices" in source.index_note
    item = source.read(source.ids.index("case1/case1_*.nii.gz@z3"))
    assert item.shape == (3, 16, 16)
    flair = np.asarray(volumes.read_plane(root / "case1" / "case1_flair.nii.gz", 3))
    assert np.allclose(item[0].numpy(), flair, atol=1e-6)  # channels in name order
    assert source.read_groups() is not None


def test_whole_files_make_each_volume_one_item_the_mean_of_its_slices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_scans(tmp_path / "scans", patients=10)
    runner = CliRunner()
    options = ["--steps", "2", "--batch-size", "4", "--backbone", "small-cnn", "--whole-files"]
    result = runner.invoke(app, ["pretrain", "scans", *options, "--out", "runs/ct"])
    assert result.exit_code == 0, result.output
    assert "trained on the 60 slices of 10 volumes" in result.output
    result = runner.invoke(app, ["embed", "runs/ct", "scans", "--out", "studies.npz"])
    assert result.exit_code == 0, result.output  # the run keeps --whole-files
    studies = np.load(tmp_path / "studies.npz")
    assert studies["ids"].tolist() == [f"p{p}/ct.nii.gz" for p in range(10)]
    result = runner.invoke(app, ["embed", "runs/ct", "scans", "--no-whole-files", "--out", "s.npz"])
    assert result.exit_code == 0, result.output
    slices = np.load(tmp_path / "s.npz")
    assert np.allclose(studies["embeddings"][1], slices["embeddings"][6:12].mean(0), atol=1e-5)
    result = evaluate_studies(runner, tmp_path / "studies.csv", patients=10)
    assert "scored on scans[test, 2 patients] (2 items)" in result.output  # volumes, not slices
    result = runner.invoke(app, ["explain", "runs/ct", "scans/p3/ct.nii.gz@z2"])
    assert result.exit_code == 0, result.output  # a slice of a run taking volumes whole
    few = ["evaluate", "runs/ct", "scans", "--labels", "few.csv", "--protocol", "knn"]
    rows = "".join(f"p{p}/ct.nii.gz,{'a' if p < 3 else 'b'}\n" for p in range(6))
    (tmp_path / "few.csv").write_text("file_name,label\n" + rows)  # three studies a class
    result = runner.invoke(app, few)
    assert "every class has fewer items (at most 3) than the 5" in str(result.exception)
    # a table naming slices cannot label volumes; a folder of whole files needs no option
    (tmp_path / "slices.csv").write_text("file_name,label\np0/ct.nii.gz@z0,a\np1/ct.nii.gz@z0,b\n")
    with pytest.raises(ValueError, match="names slices or tiles; --whole-files takes labels of"):
        WholeFiles(ImageFolderSource(tmp_path / "scans", labels_file=tmp_path / "slices.csv"))
    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.new("L", (8, 8)).save(tmp_path / "photos" / f"{i}.png")
    with pytest.raises(ValueError, match="its items are whole files already"):
        WholeFiles(ImageFolderSource(tmp_path / "photos"))
