"""DICOM scans as images: Hounsfield units through the file's window, inverted MONOCHROME1,
colour and multi-frame files, broken and image-less files skipped with their reason."""

import shutil

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from tests.broken_inputs import dicom_bytes
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.data.dicom import WHOLE_SLIDE, read_dicom
from selfsup.data.image_folder import ImageFolderSource
from selfsup.data.shards import ShardSource, pack_image_folder


def write_dicom(path, pixels, photometric="MONOCHROME2", bits=12, modality="CT", **fields):
    """A DICOM file of ``pixels`` (rows, columns[, 3]) or (frames, rows, columns[, 3])."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dicom_bytes(pixels, photometric, bits, modality, **fields))
    return path


def ct_slice(rng, rows=40, columns=48):
    """Stored values of a CT slice: air around a soft-tissue disc (HU = stored - 1024)."""
    y, x = np.mgrid[:rows, :columns]
    disc = (y - rows / 2) ** 2 + (x - columns / 2) ** 2 < (rows / 3) ** 2
    hu = np.where(disc, 40, -1000) + rng.normal(0, 5, (rows, columns))
    return np.clip(hu + 1024, 0, 4095).astype(np.uint16)


def patient_export(tmp_path):
    """A hospital's export of 10 patients' folders (P00 to P09, 4 slices each, one PatientID
    per folder) and ``labels.csv`` labelling every slice by its patient's finding."""
    rng = np.random.default_rng(3)
    root = tmp_path / "export"
    rows = ["file_name,finding"]
    for i in range(10):
        for k in range(4):
            write_dicom(root / f"P{i:02d}" / f"{k}.dcm", ct_slice(rng, 8, 8), PatientID=f"X{i}")
            rows.append(f"P{i:02d}/{k}.dcm,{'nodule' if i % 2 else 'normal'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_an_enhanced_ct_keeps_its_rescale_and_window_in_its_functional_groups(tmp_path):
    from pydicom.dataset import Dataset

    stored = np.array([[[864, 1064, 1264, 0]]] * 3, dtype=np.uint16)  # HU -160, 40, 240, -1024
    transform, window, shared = Dataset(), Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = 1, -1024
    window.WindowCenter, window.WindowWidth = 40, 400
    shared.PixelValueTransformationSequence = [transform]
    shared.FrameVOILUTSequence = [window]
    path = write_dicom(
        tmp_path / "enhanced.dcm", stored, NumberOfFrames=3, SharedFunctionalGroupsSequence=[shared]
    )
    assert np.asarray(read_dicom(path)).tolist() == [[0.0, 0.5, 1.0, 0.0]]
    # --scan-window is in Hounsfield units, not the stored values
    assert np.asarray(read_dicom(path, (-1024.0, 240.0))).tolist()[0][1] == pytest.approx(
        1064 / 1264
    )


def test_a_ct_slice_is_seen_through_its_window_in_hounsfield_units(tmp_path):
    stored = np.array([[864, 1064, 1264, 0]], dtype=np.uint16)  # HU -160, 40, 240, -1024
    path = write_dicom(
        tmp_path / "ct.dcm",
        stored,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=400,  # soft tissue: -160 .. 240 HU
    )
    image = read_dicom(path)
    assert image.mode == "F" and np.asarray(image).tolist() == [[0.0, 0.5, 1.0, 0.0]]
    # Without a window: the image's own 0.5th to 99.5th percentiles.
    ramp = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    values = np.asarray(read_dicom(write_dicom(tmp_path / "ramp.dcm", ramp)))
    low, high = np.percentile(np.arange(1000.0), [0.5, 99.5])
    np.testing.assert_allclose(values[5, 50], (550 - low) / (high - low), rtol=1e-6)
    assert values.min() == 0.0 and values.max() == 1.0
    # MONOCHROME1 (an X-ray with white as 0): inverted, so that bone is bright.
    xray = write_dicom(
        tmp_path / "cr.dcm", stored, "MONOCHROME1", modality="CR", WindowCenter=1064,
        WindowWidth=400,
    )  # fmt: skip
    assert np.asarray(read_dicom(xray)).tolist() == [[1.0, 0.5, 0.0, 1.0]]


def test_colour_and_multi_frame_files(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    cine = write_dicom(tmp_path / "us.dcm", rgb, "RGB", bits=8, modality="US")
    image = read_dicom(cine)
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), rgb[1])  # middle frame
    frames = (np.arange(3)[:, None, None] * 100 + np.zeros((3, 8, 8))).astype(np.uint16)
    volume = write_dicom(tmp_path / "vol.dcm", frames, WindowCenter=100, WindowWidth=100)
    assert np.asarray(read_dicom(volume)).mean() == 0.5  # frame 1 of 0, 1, 2: value 100


def test_a_whole_slide_dicom_is_refused_not_read_as_one_of_its_tiles(tmp_path):
    tiles = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    slide = write_dicom(tmp_path / "level0.dcm", tiles, "RGB", bits=8, modality="SM",
                        SOPClassUID=WHOLE_SLIDE,
                        TotalPixelMatrixColumns=32, TotalPixelMatrixRows=32)  # fmt: skip
    with pytest.raises(ValueError, match=r"whole-slide microscopy DICOM \(4 tiles of a 32x32 sli"):
        read_dicom(slide)
    fluorescence = write_dicom(tmp_path / "dapi" / "level0.dcm", tiles[..., 0], bits=8,
                               modality="SM", SOPClassUID=WHOLE_SLIDE)  # fmt: skip
    source = ImageFolderSource(fluorescence.parent)  # its gray tiles are not a volume
    assert list(source.ids) == ["level0.dcm"] and source.read_batch([0]).skipped


def test_a_folder_of_scans_with_broken_and_imageless_files(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "scans"
    for i in range(3):
        write_dicom(
            root / f"patient{i}" / f"slice{i}.dcm", ct_slice(rng), RescaleSlope=1,
            RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400,
        )  # fmt: skip
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "patient0" / "real.DCM")  # a real CT
    write_dicom(root / "patient1" / "report.dcm", None, modality="SR")  # no image
    cut = (root / "patient0" / "slice0.dcm").read_bytes()
    (root / "patient2" / "cut.dcm").write_bytes(cut[: len(cut) // 2])  # copied halfway
    (root / "patient2" / "notes.dcm").write_text("not a scan")
    src = ImageFolderSource(root)
    assert src.channels == 1 and src.image_size == 40  # the scans' median shorter side
    assert src.classes == ["patient0", "patient1", "patient2"]
    batch = src.read_batch(range(len(src)))
    reasons = {item.item_id: item.reason for item in batch.skipped}
    assert sorted(reasons) == ["patient1/report.dcm", "patient2/cut.dcm", "patient2/notes.dcm"]
    assert "a DICOM SR object without an image" in reasons["patient1/report.dcm"]
    assert "cannot decode its pixel data" in reasons["patient2/cut.dcm"]
    assert "not a DICOM file (no 'DICM' marker" in reasons["patient2/notes.dcm"]
    read = dict(zip([src.ids[i] for i in batch.indices], batch.items, strict=True))
    assert read["patient0/slice0.dcm"].shape == (1, 40, 40)
    centre, corner = read["patient0/slice0.dcm"][0, 20, 20], read["patient0/slice0.dcm"][0, 0, 0]
    assert abs(centre - 0.5) < 0.05 and corner == 0.0  # tissue at 40 HU mid-window, air black
    assert 0.0 <= read["patient0/real.DCM"].min() <= read["patient0/real.DCM"].max() <= 1.0
    # Packed into shards, the scans read the same.
    pack_image_folder(root, tmp_path / "shards")
    packed = ShardSource(tmp_path / "shards")
    again = packed.read_batch(range(len(packed)))
    assert again.indices == batch.indices
    assert np.allclose(again.items.numpy(), batch.items.numpy())


def test_pretrain_and_embed_a_folder_of_scans(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    for i in range(12):
        write_dicom(
            tmp_path / "scans" / f"{i:03d}.dcm", ct_slice(rng), RescaleSlope=1,
            RescaleIntercept=-1024,
        )  # fmt: skip
    runner = CliRunner()
    options = ["--steps", "2", "--batch-size", "4", "--backbone", "small-cnn"]
    result = runner.invoke(app, ["pretrain", "scans", *options, "--out", "runs/ct"])
    assert result.exit_code == 0, result.output
    assert "12 image items" in result.output
    result = runner.invoke(app, ["embed", "runs/ct", "scans", "--out", "ct.npy"])
    assert result.exit_code == 0, result.output
    embeddings = np.load(tmp_path / "ct.npy")
    assert embeddings.shape[0] == 12 and np.isfinite(embeddings).all()


def test_a_real_compressed_mr_reads_as_its_uncompressed_copy():
    """pydicom's MR_small in RLE Lossless and uncompressed: the same image, through its own
    window (600 +- 800)."""
    plain = np.asarray(read_dicom(get_testdata_file("MR_small.dcm")))
    rle = np.asarray(read_dicom(get_testdata_file("MR_small_RLE.dcm")))
    assert plain.shape == (64, 64) and np.array_equal(plain, rle)
    assert 0.0 <= plain.min() < plain.max() <= 1.0


def test_a_file_cut_after_its_marker_is_one_reason_without_pydicom_warnings(tmp_path):
    import warnings

    path = tmp_path / "cut.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 10)  # a copy that stopped early
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.testing.assert_raises(ValueError):
            read_dicom(path)
    assert caught == []


def test_a_pacs_export_without_suffixes_is_found_by_the_dicom_marker(tmp_path):
    """A CD export: DICOM/ST000000/SE000000/IM000000, files named by UID, a DICOMDIR."""
    rng = np.random.default_rng(2)
    series = tmp_path / "export" / "DICOM" / "ST000000" / "SE000000"
    for name in ("IM000000", "IM000001", "1.2.840.113619.2.55.3.7"):
        write_dicom(series / name, ct_slice(rng), RescaleIntercept=-1024, RescaleSlope=1)
    shutil.copy(series / "IM000000", tmp_path / "export" / "DICOMDIR")  # its table of contents
    (series / "README").write_text("burned by the PACS viewer")  # no suffix, not DICOM
    (series / "IM000002").write_bytes(b"")  # an empty file
    src = ImageFolderSource(tmp_path / "export")
    assert list(src.ids) == [
        "DICOM/ST000000/SE000000/1.2.840.113619.2.55.3.7",
        "DICOM/ST000000/SE000000/IM000000",
        "DICOM/ST000000/SE000000/IM000001",
    ]
    batch = src.read_batch(range(3))
    assert batch.indices == [0, 1, 2] and batch.items.shape == (3, 1, 40, 40)


def test_a_hospitals_patient_folders_are_not_classes(tmp_path):
    rng = np.random.default_rng(2)
    patients = tmp_path / "export"
    for i in range(4):  # P000/CT/IM0001.dcm ...: a folder per patient
        for k in range(3):
            write_dicom(patients / f"P{i:03d}" / "CT" / f"IM{k:04d}.dcm", ct_slice(rng),
                        PatientID=f"ANON{i:04d}")  # fmt: skip
    src = ImageFolderSource(patients)
    assert src.classes is None and src.labels is None
    assert "no classes: the 4 first-level folders are patients" in src.labels_note
    # findings sorted into folders hold several patients each: classes
    findings = tmp_path / "findings"
    for c, name in enumerate(("mass", "nodule", "normal")):
        for k in range(4):
            write_dicom(findings / name / f"{k}.dcm", ct_slice(rng), PatientID=f"ANON{c}{k % 2}")
    assert ImageFolderSource(findings).classes == ["mass", "nodule", "normal"]
    # the annotated few label the scans of the patient folders
    table = tmp_path / "annotations.csv"
    table.write_text("file_name,finding\nP000/CT/IM0000.dcm,nodule\nP001/CT/IM0002.dcm,normal\n")
    labelled = ImageFolderSource(patients, labels_file=table, label_column="finding")
    assert labelled.partial_labels.classes == ["nodule", "normal"]
    assert src.split_groups == labelled.split_groups == "patients"
    assert ImageFolderSource(findings).split_groups is None
    pack_image_folder(patients, tmp_path / "shards")  # packed, they are patients still
    assert ShardSource(tmp_path / "shards").split_groups == "patients"
    pack_image_folder(findings, tmp_path / "findings-shards")
    assert ShardSource(tmp_path / "findings-shards").split_groups is None


def test_evaluation_splits_a_hospitals_scans_by_patient_unless_told(tmp_path):
    from selfsup.modalities import train_test_sources

    root = patient_export(tmp_path)
    source = ImageFolderSource(root, labels_file=tmp_path / "labels.csv", label_column="finding")
    fit, test = train_test_sources(source)
    fit_patients = {i.split("/")[0] for i in fit.ids}
    test_patients = {i.split("/")[0] for i in test.ids}
    assert fit_patients and test_patients and not fit_patients & test_patients
    assert fit.name.endswith(f"[fit, {len(fit_patients)} patients]")
    assert test.name.endswith(f"[test, {len(test_patients)} patients]")
    fit, test = train_test_sources(source, split_by="item")  # told: slices split freely
    assert {i.split("/")[0] for i in fit.ids} & {i.split("/")[0] for i in test.ids}
    assert (fit.name, test.name) == (f"{source.name}[fit]", f"{source.name}[test]")


def test_adapt_calibrates_on_whole_patients(tmp_path):
    from selfsup.run import pretrain
    from selfsup.tools.adapt import adapt

    root = patient_export(tmp_path)
    run = pretrain(str(root), steps=1, batch_size=8, backbone="small-cnn",
                   backbone_options={"width": 4}, out=str(tmp_path / "run"),
                   show_progress=False, monitor_items=0)  # fmt: skip
    labelled = run.with_data_options(labels=str(tmp_path / "labels.csv"), label_column="finding")
    for calibration in ("cv", "temperature"):
        model = adapt(labelled, str(root), calibration=calibration)
        assert model.metrics["calibration_groups"] == "10 patients"


def test_select_spreads_its_picks_over_patients(tmp_path):
    from selfsup.run import pretrain
    from selfsup.tools.selection import select_for_run

    root = patient_export(tmp_path)
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    (tmp_path / "some.csv").write_text("\n".join(rows[:17]) + "\n")  # P00 to P03 labelled
    run = pretrain(str(root), steps=1, batch_size=8, backbone="small-cnn",
                   backbone_options={"width": 4}, out=str(tmp_path / "run"),
                   show_progress=False, monitor_items=0)  # fmt: skip
    labelled = run.with_data_options(labels=str(tmp_path / "some.csv"), label_column="finding")
    for strategy, budget in (("uncertainty", 6), ("kcenter", 6), ("random", 12)):
        table = select_for_run(labelled, str(root), budget, strategy)
        patients = [i.split("/")[0] for i in table["id"]]
        assert len(table) == budget and len(set(patients)) == 6, (strategy, patients)
        assert not {"P00", "P01", "P02", "P03"} & set(patients)  # labelled already
