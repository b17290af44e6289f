"""The synthetic spoken-word builder (espeak-ng) and its command."""

import json
import shutil

import pytest
import soundfile
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.data import spoken_words
from selfsup.data.spoken_words import SynthesisError, make_spoken_words
from selfsup.modalities import open_source

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
SMALL = {
    "words": ["yes", "no"],
    "accents": ["en-us", "en-gb"],
    "variants": ["m1", "f2"],
    "speeds": [150],
    "pitches": [40, 60],
    "test_fraction": 0.5,
    "show_progress": False,
}


@needs_espeak
def test_spoken_words_are_split_by_voice_and_marked_synthetic(tmp_path):
    made = make_spoken_words(tmp_path / "words", **SMALL)
    assert (made.train_files, made.test_files) == (8, 8)  # 2 voices x 2 words x 2 pitches each
    assert not set(made.train_voices) & set(made.test_voices)
    assert sorted(made.train_voices + made.test_voices) == [
        "en-gb+f2", "en-gb+m1", "en-us+f2", "en-us+m1",
    ]  # fmt: skip
    metadata = json.loads((tmp_path / "words" / "metadata.json").read_text())
    assert metadata["synthetic"] is True and "SYNTHETIC" in metadata["note"]
    assert metadata["test_voices"] == made.test_voices
    assert metadata["files"] == {"train": 8, "test": 8}
    for split, voices in (("train", made.train_voices), ("test", made.test_voices)):
        files = sorted((tmp_path / "words" / split).rglob("*.wav"))
        assert {f.name.split("_")[0] for f in files} == set(voices)
        info = soundfile.info(files[0])
        assert info.samplerate == 22050 and info.channels == 1 and info.duration > 0.2
    source = open_source(tmp_path / "words" / "test")
    assert source.modality == "audio" and source.classes == ["no", "yes"]
    assert source.read_batch(range(len(source))).items.shape == (8, 1, 64, 96)


@needs_espeak
def test_bad_requests_are_refused_clearly(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(FileExistsError, match="not empty"):
        make_spoken_words(tmp_path / "full", **SMALL)
    with pytest.raises(ValueError, match="words"):
        make_spoken_words(tmp_path / "a", **{**SMALL, "words": ["../up"]})
    with pytest.raises(SynthesisError, match="no-such-accent"):
        make_spoken_words(tmp_path / "b", **{**SMALL, "accents": ["no-such-accent"]})


def test_missing_espeak_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(spoken_words.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng"):
        make_spoken_words(tmp_path / "w", **SMALL)


@needs_espeak
def test_datasets_make_command_says_the_audio_is_synthetic(tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        ["datasets", "make", "spoken-words", str(out), "--words", "go,stop", "--accents",
         "en-us", "--variants", "m3,f1,", "--speeds", "160", "--pitches", "50",
         "--test-fraction", "0.34"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output
    metadata = json.loads((out / "metadata.json").read_text())
    assert len(metadata["test_voices"]) == 1 and len(metadata["train_voices"]) == 2
    assert "en-us" in metadata["train_voices"] + metadata["test_voices"]  # "" is the plain voice
