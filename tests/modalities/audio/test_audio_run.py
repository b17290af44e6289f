"""Pretrain on a folder of audio, reload, embed and evaluate, from Python and the CLI."""

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from tests.modalities.audio.conftest import write_tones
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.engine.monitor import load_encoder_weights
from selfsup.evaluation.knn import knn_accuracy

#: 8 kHz audio, 32 mel bands up to 3.9 kHz, half-second clips: 51 frames.
AUDIO = {"sample_rate": 8000, "n_mels": 32, "n_fft": 256, "hop_length": 80, "clip_seconds": 0.5}
SMALL_CNN = {"feature_dim": 64, "width": 16}
SMALL_HEADS = {"projection_dim": 32, "hidden_dim": 64}


def _knn(run, train, test) -> float:
    train_x, test_x = run.embed(train), run.embed(test)
    return knn_accuracy(train_x, run.open(train).labels, test_x, run.open(test).labels, k=5)


def test_byola_trains_and_keeps_pitch_classes_of_unseen_tones_apart(tmp_path):
    train = write_tones(tmp_path / "train", per_class=24, seed=0)
    test = write_tones(tmp_path / "test", per_class=8, seed=1)
    run = selfsup.pretrain(
        train,
        epochs=20,
        batch_size=32,
        lr=1e-3,
        precision="fp32",
        out=tmp_path / "run",
        backbone_options=SMALL_CNN,
        method_options=SMALL_HEADS,
        monitor_items=0,
        show_progress=False,
        keep_checkpoints=True,
        **AUDIO,
    )
    cfg = run.config
    assert (cfg["modality"], cfg["method"], cfg["backbone"]) == ("audio", "byola", "byola-cnn")
    assert run.summary["view_recipe"]["mixup"] == 0.4
    assert run.embed(test).shape == (32, 64)
    accuracy = _knn(run, train, test)
    untrained = selfsup.load(run.path)  # the same encoder before training (epoch 0)
    load_encoder_weights(untrained.encoder, run.path / "checkpoints" / "epoch-0000.safetensors")
    before = _knn(untrained, train, test)
    # A random AudioNTT2020 already separates these tones (0.97 measured): the run must keep
    # them apart, which is all this data can show; learning is shown by benchmarks/audio.py.
    # One tone is 1/32 of the score and oneDNN's kernels differ between CPUs (0.906 and 0.9375
    # were measured for the same run on two machines): at most two tones may change sides.
    assert accuracy >= 0.75 and accuracy >= before - 2 / 32 - 1e-9, (accuracy, before)
    again = selfsup.load(run.path)
    np.testing.assert_allclose(again.embed(test), run.embed(test), atol=1e-4)
    rows = {r.protocol: r for r in run.evaluate(train, test, protocols=("knn", "linear")).rows}
    assert rows["linear"].selfsup >= 0.75


def test_generic_objective_runs_on_audio_and_image_only_ones_are_refused(tones, tmp_path):
    (tones / "class1" / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really audio")
    run = selfsup.pretrain(
        tones,
        method="vicreg",
        epochs=1,
        batch_size=16,
        out=tmp_path / "vicreg",
        backbone="spectrogram-vit",
        backbone_options={"dim": 16, "depth": 1, "heads": 2, "patch_frames": 8, "patch_mels": 8},
        method_options=SMALL_HEADS,
        views={"time_crop": 0.8},
        monitor_items=16,
        show_progress=False,
        **AUDIO,
    )
    assert (
        run.summary["steps"] == run.summary["items"] // 16
        and run.summary["view_recipe"]["time_masks"] == 2
    )
    assert "class1/broken.wav\tcannot read audio" in (run.path / "skipped.txt").read_text()
    embeddings = run.embed(tones)  # the unreadable file's row is NaN
    assert embeddings.shape == (65, 16) and np.isnan(embeddings).any(axis=1).sum() == 1
    assert 1 <= run.evaluate_label_free(tones, items=32).rankme <= 16
    with pytest.raises(ValueError, match="mae does not work on audio data"):
        selfsup.pretrain(tones, method="mae", epochs=1, out=tmp_path / "m", show_progress=False)


def test_cli_pretrains_and_embeds_audio(tones, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["pretrain", str(tones), "--epochs", "1", "--batch-size", "32", "--out", str(out),
         "--sample-rate", "8000", "--n-mels", "32", "--clip-seconds", "0.5",
         "--monitor-items", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert selfsup.load(out).config["sample_rate"] == 8000
    emb = tmp_path / "emb.npy"
    result = runner.invoke(app, ["embed", str(out), str(tones), "--out", str(emb)])
    assert result.exit_code == 0, result.output
    assert np.load(emb).shape == (64, 2048)


def test_long_recordings_are_pretrained_on_all_their_clips_and_embedded_as_their_mean(
    tmp_path,
):
    """Four 10-second recordings (20 clips of 0.5 s each): pretraining reads all 80 clips,
    not the four centre clips; later commands keep one item a file, embedded as the mean of
    its clips' embeddings (here all 20 of them), not as its centre clip's."""
    long = write_tones(tmp_path / "long", per_class=1, seconds=10.0)
    run = selfsup.pretrain(
        long,
        epochs=1,
        batch_size=16,
        out=tmp_path / "run",
        backbone_options=SMALL_CNN,
        method_options=SMALL_HEADS,
        monitor_items=0,
        show_progress=False,
        **AUDIO,
    )
    assert run.summary["items"] == 4 * 20
    log = (run.path / "train.log").read_text()
    assert "files of 10 s (the median): trained on 80 clips of 0.5 s" in log
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        opened = run.open(long)
    pooled = run.embed(long)
    clips = run.open(long, clip_hop=0.5)  # every clip an item, file after file
    assert len(opened) == 4 and len(clips) == 80 and pooled.shape == (4, 64)
    by_clip = run.embed(clips).reshape(4, 20, 64)
    np.testing.assert_allclose(pooled, by_clip.mean(axis=1), rtol=1e-4, atol=1e-5)
    centre = run.encoder(opened.read_batch(range(4)).items).detach().numpy()
    assert np.abs(pooled - centre).max() > 10 * np.abs(pooled - by_clip.mean(axis=1)).max()
    # The raw-input baseline is pooled the same way; from the command line, one row a file.
    raw = run.modality.raw_features(opened)
    np.testing.assert_allclose(
        raw, run.modality.raw_features(clips).reshape(4, 20, -1).mean(axis=1), atol=1e-6
    )
    for out in ("e.npy", "e.parquet"):  # batches of 16 clips: a file's clips span batches
        result = CliRunner().invoke(app, ["embed", str(run.path), str(long), "--out",
                                          str(tmp_path / out), "--batch-size", "16"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), pooled, rtol=1e-4, atol=1e-5)
    table = pd.read_parquet(tmp_path / "e.parquet")
    assert table["id"].tolist() == list(opened.ids) and table["readable"].all()
    np.testing.assert_allclose(np.stack(table["embedding"]), pooled, rtol=1e-4, atol=1e-5)
    # A folder of short clips (speech commands, sound events) stays one item a file.
    short = write_tones(tmp_path / "short", per_class=4, seconds=2.0)
    again = selfsup.pretrain(short, epochs=1, batch_size=8, out=tmp_path / "short-run",
                             backbone_options=SMALL_CNN, method_options=SMALL_HEADS,
                             monitor_items=0, show_progress=False, **AUDIO)  # fmt: skip
    assert again.summary["items"] == 16


def test_a_built_in_backbone_on_waveforms_makes_its_log_mels_inside(tones, tmp_path):
    """--audio-input waveform with BYOL-A's CNN was refused ('for pretrained hf: models'):
    the encoder now reads waveforms and computes its log-mels itself, so it ships as one
    model from waveform to embedding."""
    run = selfsup.pretrain(
        tones, audio_input="waveform", steps=3, batch_size=8, out=tmp_path / "run",
        show_progress=False, monitor_items=0, backbone_options={"feature_dim": 32, "width": 8},
    )  # fmt: skip
    spec = run.encoder.spec
    assert (spec["backbone"], spec["audio_input"]) == ("byola-cnn", "waveform")
    assert run.open(tones).first_item().ndim == 3  # (1, 1, samples)
    embedded = run.embed(tones)
    np.testing.assert_allclose(selfsup.load(run.path).embed(tones), embedded, atol=1e-5)
    assert run.evaluate(str(tones), protocols=["knn"]).rows[0].selfsup > 0.5


def test_an_audio_export_card_makes_the_log_mels_selfsup_embeds(tmp_path):
    """The card's PyTorch code, on the clip made as the card says (8 kHz files resampled to
    16 kHz, centre 0.95 s padded), gives the log-mel selfsup reads, and the ONNX model on
    it the rows ``embed`` writes."""
    import onnxruntime
    import soundfile
    from scipy.signal import resample_poly

    from selfsup.export import export_run

    tones = write_tones(tmp_path / "tones", per_class=4)
    run = selfsup.pretrain(tones, steps=2, batch_size=8, out=tmp_path / "run",
                           backbone_options=SMALL_CNN, method_options=SMALL_HEADS,
                           monitor_items=0, show_progress=False)  # fmt: skip
    export_run(run, "onnx", tmp_path / "onnx")
    card = (tmp_path / "onnx" / "README.md").read_text()
    assert "resampled to 16000 Hz" in card and "centre 0.95 s" in card
    namespace: dict = {}
    exec(card.split("```python\n", 1)[1].split("```", 1)[0], namespace)  # the card's code
    source = run.open(str(tones))
    made = []
    for item in source.ids:
        wave, rate = soundfile.read(tones / item, dtype="float32")
        wave = resample_poly(wave, 16000 // np.gcd(16000, rate), rate // np.gcd(16000, rate))
        padded = np.zeros(15200, np.float32)  # 0.95 s: the 0.5 s tone in the middle
        start = (15200 - len(wave)) // 2
        padded[start : start + len(wave)] = wave
        made.append(namespace["selfsup_input"](torch.from_numpy(padded)))
    made = torch.cat(made).numpy()
    np.testing.assert_allclose(made, source.read_batch(range(len(source))).items, atol=1e-4)
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"))
    got = session.run(None, {"input": made})[0]
    np.testing.assert_allclose(got, run.embed(str(tones), precision="fp32"), atol=1e-4)


def test_clips_of_one_recording_are_never_scored_by_each_other(tmp_path):
    """A call's clips are near copies of each other. ``evaluate`` on clips holds out whole
    recordings (not clips of a recording on both sides of the split), and a run's kNN vote of
    its labelled clips counts other recordings' clips only, and says so."""
    from tests.modalities.audio.conftest import PITCHES, tone

    from selfsup.data.splits import SubsetSource
    from selfsup.engine.monitor import EpochMonitor, labelled_monitor_items
    from selfsup.evaluation.knn import knn_leave_one_out
    from selfsup.modalities import train_test_sources

    rng = np.random.default_rng(0)
    folder = tmp_path / "calls"
    folder.mkdir()
    rows = ["file_name,pitch"]
    for i in range(20):  # 20 recordings of 8 s, 12 labelled by their pitch
        pitch = i % len(PITCHES)
        soundfile.write(folder / f"call{i:02d}.wav", tone(PITCHES[pitch], 8.0, 8000, rng), 8000)
        if i < 12:
            rows.append(f"call{i:02d}.wav,p{pitch}")
    (tmp_path / "pitch.csv").write_text("\n".join(rows) + "\n")
    options = {**AUDIO, "labels": str(tmp_path / "pitch.csv"), "label_column": "pitch"}
    run = selfsup.pretrain(folder, epochs=1, batch_size=32, out=tmp_path / "run",
                           backbone_options=SMALL_CNN, method_options=SMALL_HEADS,
                           show_progress=False, **options)  # fmt: skip
    log = (run.path / "train.log").read_text()
    assert "trained on 320 clips" in log
    assert "labelled training items (each voted by those of other recordings)" in log
    clips = run.open(folder, clip_hop=0.5)
    assert clips.split_groups == "recordings"
    fit, test = train_test_sources(clips, test_fraction=0.25)
    files = [{i.split("@")[0] for i in part.ids} for part in (fit, test)]
    assert not files[0] & files[1] and len(files[1]) == 3 and len(test) == 3 * 16
    assert "recordings" in test.name
    # The vote: each labelled clip by the clips of the other labelled recordings.
    labelled = labelled_monitor_items(clips)
    assert isinstance(labelled, SubsetSource) and len(labelled) == 12 * 16
    monitor = EpochMonitor(clips, list, tmp_path, labelled=labelled)
    groups = monitor.labelled_groups
    assert groups is not None and groups.tolist() == [i.split("@")[0] for i in labelled.ids]
    trained = SimpleNamespace(export_encoder=lambda: run.encoder)  # what the vote reads
    accuracy, items = monitor.labelled_knn(trained)  # type: ignore[arg-type]
    embedded = run.embed(labelled)
    assert items == 192 and accuracy == pytest.approx(
        knn_leave_one_out(embedded, labelled.labels, groups=groups), abs=1e-6
    )
