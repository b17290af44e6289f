"""Pretrained audio models (wav2vec2, HuBERT, WavLM, AST) as ``hf:`` backbones: small random
models saved with ``save_pretrained``, read with their own feature extraction, trained, loaded
from the run folder alone and exported."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from tests.modalities.audio.conftest import write_tones

import selfsup
from selfsup.backbones.hf import load_pretrained
from selfsup.export import PARITY, export_run
from selfsup.modalities.audio import build_pretrained_audio_encoder

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64}  # fmt: skip
CONV = {"conv_dim": (16, 16), "conv_stride": (5, 4), "conv_kernel": (10, 8),
        "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}  # fmt: skip


def save_audio_model(kind: str, folder) -> str:
    """A random model of ``kind`` with its feature extractor's config, saved to ``folder``."""
    import transformers as t

    torch.manual_seed(0)
    if kind == "ast":
        model = t.ASTModel(t.ASTConfig(**SMALL, num_mel_bins=32, max_length=64, patch_size=16))
        extractor = t.ASTFeatureExtractor(num_mel_bins=32, max_length=64)
    else:
        config, cls = {
            "wav2vec2": (t.Wav2Vec2Config, t.Wav2Vec2Model),
            "hubert": (t.HubertConfig, t.HubertModel),
            "wavlm": (t.WavLMConfig, t.WavLMModel),
        }[kind]
        model = cls(config(**SMALL, **CONV))
        extractor = t.Wav2Vec2FeatureExtractor(do_normalize=True)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return f"hf:{folder}"


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm", "ast"])
def test_each_audio_model_gives_what_its_own_feature_extractor_and_model_give(
    tmp_path, kind
) -> None:
    from transformers import AutoFeatureExtractor

    name = save_audio_model(kind, tmp_path / kind)
    encoder = build_pretrained_audio_encoder(name, clip_seconds=0.5).eval()
    waves = np.random.default_rng(0).normal(0, 0.1, (3, 8000)).astype(np.float32)
    model = load_pretrained(name).module
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / kind)
    inputs = extractor(list(waves), sampling_rate=16000, return_tensors="pt")["input_values"]
    with torch.no_grad():
        out = model(input_values=inputs)
        expected = out.pooler_output if kind == "ast" else out.last_hidden_state.mean(dim=1)
        got = encoder(torch.from_numpy(waves)[:, None])
    assert got.shape == (3, 32)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert encoder.spec["options"]["pooling"] == ("pooler" if kind == "ast" else "mean")


def test_a_frozen_audio_model_embeds_a_folder_at_its_own_rate(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path / "cache"))
    tones = write_tones(tmp_path / "tones", per_class=4)  # 8 kHz files
    name = save_audio_model("hubert", tmp_path / "hubert")
    run = selfsup.load(name)
    assert run.config["audio_input"] == "waveform" and run.config["sample_rate"] == 16000
    embedded = run.embed(tones)
    assert embedded.shape == (16, 32) and np.isfinite(embedded).all()
    # A pretrained transformer embeds in bf16 where the processor runs it fast.
    assert run.modality.embed_precision_of(run.encoder) == "auto"
    result = run.evaluate(str(tones), protocols=["knn"])
    assert 0 <= result.rows[0].selfsup <= 1
    with pytest.raises(ValueError, match="trained on 16000 Hz audio"):
        selfsup.pretrain(tones, backbone=name, sample_rate=8000, steps=1, show_progress=False,
                         out=tmp_path / "bad")  # fmt: skip


@pytest.mark.parametrize("kind", ["wav2vec2", "ast"])
def test_an_audio_run_from_a_pretrained_model_trains_loads_alone_and_exports(
    tmp_path, kind
) -> None:
    tones = write_tones(tmp_path / "tones", per_class=4)
    name = save_audio_model(kind, tmp_path / kind)
    run = selfsup.pretrain(
        tones, backbone=name, steps=2, batch_size=8, out=tmp_path / "run",
        show_progress=False, monitor_items=0, freeze_blocks=1,
    )  # fmt: skip
    assert run.config["method"] == "byola" and run.config["audio_input"] == "waveform"
    clip = run.config["clip_seconds"]
    assert clip == (pytest.approx(0.655) if kind == "ast" else 0.95)  # AST: its 64 frames
    before = run.embed(tones)
    frozen = selfsup.load(name).embed(tones)
    assert not np.allclose(before, frozen)  # it trained
    shutil.rmtree(tmp_path / kind)
    again = selfsup.load(run.path)
    np.testing.assert_allclose(again.embed(tones), before, atol=1e-5)
    # --init reads the clips as the run did (waveforms at its rate), with another objective.
    onward = selfsup.pretrain(
        tones, init=run.path, method="simclr", steps=1, batch_size=8, out=tmp_path / "onward",
        show_progress=False, monitor_items=0,
    )  # fmt: skip
    assert onward.config["audio_input"] == "waveform" and onward.embed(tones).shape == (16, 32)
    result = export_run(again, "onnx", tmp_path / "onnx", data=str(tones))
    assert result.max_abs_diff <= PARITY
    from transformers import AutoModel

    hf = export_run(again, "hf", tmp_path / "hf", data=str(tones))
    assert hf.max_abs_diff <= PARITY
    assert AutoModel.from_pretrained(tmp_path / "hf").config.model_type == (
        "audio-spectrogram-transformer" if kind == "ast" else "wav2vec2"
    )


def test_audio_models_that_are_not_clip_encoders_are_refused(tmp_path) -> None:
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "config.json").write_text('{"model_type": "whisper"}')
    with pytest.raises(ValueError, match="'whisper' is not read here: it is an encoder-decoder"):
        load_pretrained(f"hf:{tmp_path / 'whisper'}")


def test_a_small_log_mel_student_learns_from_a_waveform_teacher(tmp_path) -> None:
    """A speech team's wav2vec2 distilled into BYOL-A's small CNN (was refused: the teacher
    reads waveforms, the student log-mels). The student reads the teacher's clips and makes
    its log-mels inside, from the data's log-mel statistics; it loads and exports alone."""
    from selfsup.data.logmel import LogMelSettings, LogMelSpectrogram

    tones = write_tones(tmp_path / "tones", per_class=4)  # 8 kHz files
    teacher = save_audio_model("wav2vec2", tmp_path / "wav2vec2")
    student = selfsup.pretrain(
        tones, method="distill", teacher=teacher, epochs=4, batch_size=8, lr=3e-3,
        backbone_options={"feature_dim": 32, "width": 8}, out=tmp_path / "student",
        show_progress=False, monitor_items=0, log_every=1,
    )  # fmt: skip
    spec = student.encoder.spec
    assert spec["backbone"] == "byola-cnn" and spec["audio_input"] == "waveform"
    assert spec["sample_rate"] == 16000 and student.config["clip_seconds"] == 0.95
    # Its normalization is the data's log-mel mean (about -9 on quiet tones), not the
    # waveforms' (about 0).
    waves = student.open(tones).read_batch(list(range(16))).items
    mels = LogMelSpectrogram(LogMelSettings(sample_rate=16000))(waves[:, 0])
    assert abs(spec["logmel_mean"] - float(mels.mean())) < 0.5 * float(mels.std())
    losses = pd.read_csv(student.path / "metrics.csv")["loss"].dropna()
    assert losses.iloc[-2:].mean() < losses.iloc[:2].mean(), losses.tolist()
    embedded = student.embed(tones)
    shutil.rmtree(tmp_path / "wav2vec2")  # the student needs no teacher
    again = selfsup.load(student.path)
    np.testing.assert_allclose(again.embed(tones), embedded, atol=1e-5)
    for kind in ("onnx", "torchscript"):
        assert export_run(again, kind, tmp_path / kind, data=str(tones)).max_abs_diff <= PARITY


def test_a_teacher_and_a_pretrained_student_of_other_rates_are_refused(tmp_path) -> None:
    """Both read the same clips: a teacher at 8 kHz and a student at 16 kHz cannot."""
    from transformers import Wav2Vec2FeatureExtractor

    tones = write_tones(tmp_path / "tones", per_class=2)
    teacher = save_audio_model("wav2vec2", tmp_path / "teacher")
    Wav2Vec2FeatureExtractor(sampling_rate=8000).save_pretrained(tmp_path / "teacher")
    student = save_audio_model("hubert", tmp_path / "student")
    with pytest.raises(ValueError, match="reads audio at 8000 Hz and the student at 16000"):
        selfsup.pretrain(tones, method="distill", teacher=teacher, backbone=student, steps=1,
                         show_progress=False, out=tmp_path / "run")  # fmt: skip
