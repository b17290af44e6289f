"""Pretrain, reload, embed and evaluate on series, from Python and from the command line."""

import json

import numpy as np
import pytest
from tests.modalities.series.conftest import make_waves, write_ts
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.modalities import open_source

SMALL = {"hidden": 16, "out_dim": 32, "depth": 3}


@pytest.fixture
def ucr_waves(tmp_path, monkeypatch):
    x, y = make_waves(n_per_class=30, length=40)
    folder = tmp_path / "ucr" / "Waves"
    folder.mkdir(parents=True)
    series = [s[:, : 40 - (i % 3) * 5] for i, s in enumerate(x)]  # unequal lengths
    write_ts(folder / "Waves_TRAIN.ts", series[:60], y[:60], ["a", "b", "c"])
    write_ts(folder / "Waves_TEST.ts", series[60:], y[60:], ["a", "b", "c"])
    monkeypatch.setenv("SELFSUP_UCR_DIR", str(tmp_path / "ucr"))
    return "ucr:Waves"


def test_ts2vec_pretrain_evaluate_and_reload(ucr_waves, tmp_path):
    run = selfsup.pretrain(
        ucr_waves, epochs=4, out=tmp_path / "run", backbone_options=SMALL, show_progress=False
    )
    assert run.config["method"] == "ts2vec" and run.config["modality"] == "series"
    assert run.config["batch_size"] == 8 and run.summary["steps"] == 4 * (60 // 8)
    result = run.evaluate(ucr_waves)
    rows = {r.protocol: r for r in result.rows}
    assert set(rows) == {"svm", "knn", "linear"}
    assert rows["svm"].selfsup > 0.8  # chance is 1/3
    again = selfsup.load(run.path)
    assert again.encoder.spec["modality"] == "series"
    np.testing.assert_allclose(
        again.embed(f"{ucr_waves}:test"), run.embed(f"{ucr_waves}:test"), atol=1e-5
    )
    assert run.embed(ucr_waves).shape == (60, 32)
    assert 1 <= run.evaluate_label_free(ucr_waves, items=60).rankme <= 32
    stamps = again.embed_timestamps(ucr_waves)
    assert stamps.shape == (60, 40, 32)
    assert np.isnan(stamps[1, 35:]).all() and np.isfinite(stamps[1, :35]).all()  # length 35
    out = tmp_path / "steps.npy"
    result = CliRunner().invoke(
        app, ["embed", str(run.path), ucr_waves, "--out", str(out), "--per-timestamp"]
    )
    assert result.exit_code == 0, result.output
    # Written batch by batch after the array's header: the same numbers, NaN where absent.
    np.testing.assert_allclose(np.load(out), stamps, atol=1e-5)


def test_series_embeddings_are_centered_on_the_training_items(ucr_waves, tmp_path):
    """TS2Vec's max-pooled embeddings all point one way; a trained series encoder subtracts
    its training items' mean embedding, kept in encoder.json, so cosine neighbours see what
    differs between series. Training itself (and a resumed run) sees the backbone's output."""
    run = selfsup.pretrain(
        ucr_waves, epochs=2, out=tmp_path / "run", backbone_options=SMALL, show_progress=False
    )
    assert run.summary["center_items"] == 60
    center = np.asarray(json.loads((run.path / "encoder.json").read_text())["center"])
    z = run.embed(ucr_waves)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)  # every training item averaged
    raw = z + center  # the backbone's own output: one direction
    unit, unit_raw = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (z, raw))
    assert (unit_raw @ unit_raw.T).mean() > 0.5 > abs((unit @ unit.T).mean())
    again = selfsup.load(run.path)
    np.testing.assert_allclose(again.embed(ucr_waves), z, atol=1e-5)
    longer = selfsup.pretrain(ucr_waves, resume=run.path, epochs=3, show_progress=False)
    assert longer.summary["steps"] > run.summary["steps"]
    np.testing.assert_allclose(longer.embed(ucr_waves).mean(axis=0), 0, atol=1e-4)


def test_image_only_method_on_series_is_refused(ucr_waves, tmp_path):
    with pytest.raises(ValueError, match="mae does not work on series data; methods that do"):
        selfsup.pretrain(ucr_waves, method="mae", epochs=1, out=tmp_path / "r", show_progress=False)


def test_simclr_on_a_long_form_csv_from_the_cli(tmp_path):
    x, y = make_waves(n_per_class=20, length=30, channels=2)
    rows = [
        {
            "unit": f"u{i}",
            "step": t,
            "a": s[0, t],
            "b": s[1, t],
            "kind": int(label),
            "note": "ok" if t % 7 else "check",  # a per-step state: text, dropped
        }
        for i, (s, label) in enumerate(zip(x, y, strict=True))
        for t in range(30)
    ]
    import pandas as pd

    path = tmp_path / "log.csv"
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_csv(path, index=False)
    out = tmp_path / "run"
    args = [
        "pretrain",
        str(path),
        "--modality",
        "series",
        "--id-column",
        "unit",
        "--time-column",
        "step",
        "--label-column",
        "kind",
        "--drop-columns",
        "note",
        "--method",
        "simclr",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--batch-size",
        "16",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = selfsup.load(out).config
    assert config["method"] == "simclr" and config["id_column"] == "unit"
    result = CliRunner().invoke(app, ["evaluate", str(out), str(path)])
    assert result.exit_code == 0, result.output
    saved = json.loads(next(out.glob("evaluation-*.json")).read_text())
    assert [r["protocol"] for r in saved["rows"]] == ["svm", "knn", "linear"]
    # Later logs come without the labels and the dropped column.
    new = tmp_path / "new.csv"
    pd.read_csv(path).drop(columns=["kind", "note"]).to_csv(new, index=False)
    assert selfsup.load(out).embed(new).shape == (len(x), 320)
    # Without --drop-columns, the text column is named with the way out.
    with pytest.raises(ValueError, match=r"column 'note': '\w+' is not a number \(give --drop"):
        open_source(path, modality="series", id_column="unit", time_column="step")


def test_the_center_comes_from_the_held_out_items_measured_after_the_last_step(tmp_path):
    """Where the monitor measured 500 held-out items or more after the last step, their mean
    embedding is the center: no pass over the training items after the time budget. A run
    that keeps an earlier epoch's weights (--select-by) embeds training items again."""
    from selfsup.data.series import SeriesSource
    from selfsup.embedding import CENTER_HELD_OUT, CENTER_ITEMS, embed_source

    rng = np.random.default_rng(0)
    waves = np.sin(np.linspace(0, 6, 12) * rng.uniform(0.5, 2, (6000, 1))).astype(np.float32)
    data = SeriesSource(waves + rng.normal(0, 0.1, waves.shape).astype(np.float32))
    tiny = {"hidden": 8, "out_dim": 8, "depth": 1}
    options = {"steps": 3, "batch_size": 64, "backbone_options": tiny, "measure_every": 0}
    run = selfsup.pretrain(data, out=tmp_path / "run", show_progress=False, **options)
    held = run.summary["held_out_items"]
    assert held >= CENTER_HELD_OUT and run.summary["center_items"] == held
    center = run.encoder.center.reshape(-1).numpy()
    run.encoder.set_center(None)
    raw = embed_source(run.encoder, data)
    spread = raw.std(axis=0)
    # The held-out items' mean is within a few standard errors of all items' mean ...
    assert (np.abs(center - raw.mean(axis=0)) < 5 * spread / np.sqrt(held) + 1e-6).all()
    # ... and it is theirs: no other 'held' items of the data have exactly that mean.
    assert not np.allclose(center, raw[:held].mean(axis=0), atol=1e-6)
    kept = selfsup.pretrain(
        data, out=tmp_path / "kept", show_progress=False, select_by="rankme", **options
    )
    assert kept.summary["center_items"] == CENTER_ITEMS
