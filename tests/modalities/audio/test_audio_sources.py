"""The audio folder source: formats, rates, lengths, labels, corrupt files; the log-mel
against an independent numpy computation."""

import numpy as np
import pytest
import soundfile
import torch

from selfsup.data import audio
from selfsup.data.audio import AudioFolderSource, fit_clip, read_audio, read_clip
from selfsup.data.base import EmptySourceError, ItemReadError
from selfsup.data.ffmpeg_audio import write_aac
from selfsup.data.logmel import LOG_FLOOR, LogMelSettings, LogMelSpectrogram
from selfsup.modalities import infer_modality, open_source


def sine(frequency: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * frequency * t).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


def reference_log_mel(
    x: np.ndarray, rate: int, n_fft: int, hop: int, n_mels: int, f_min: float, f_max: float
) -> np.ndarray:
    """Independent numpy log-mel: reflect-padded centred frames, periodic Hann window, rfft
    power, HTK-mel triangles computed filter by filter, bin by bin."""
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    frames = 1 + len(x) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.array(
        [
            np.abs(np.fft.rfft(padded[i * hop : i * hop + n_fft] * window)) ** 2
            for i in range(frames)
        ]
    )  # (frames, bins)

    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    corners = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    bin_hz = np.arange(n_fft // 2 + 1) * rate / n_fft
    bank = np.zeros((n_mels, len(bin_hz)))
    for m in range(n_mels):
        left, centre, right = corners[m : m + 3]
        for k, f in enumerate(bin_hz):
            if left < f <= centre:
                bank[m, k] = (f - left) / (centre - left)
            elif centre < f < right:
                bank[m, k] = (right - f) / (right - centre)
    return np.log(bank @ power.T + LOG_FLOOR)  # (n_mels, frames)


def test_log_mel_matches_numpy_reference_on_a_tone():
    rate, n_fft, hop, n_mels = 16000, 1024, 160, 64
    x = sine(1000.0, 0.5, rate)
    ours = LogMelSpectrogram(LogMelSettings(rate, n_fft, hop, n_mels, 60.0, 7800.0))(
        torch.from_numpy(x)
    ).numpy()
    ref = reference_log_mel(x, rate, n_fft, hop, n_mels, 60.0, 7800.0)
    assert ours.shape == ref.shape == (64, 51)
    # Linear mel power agrees to float32 accuracy relative to the tone's power.
    peak = np.exp(ref).max()
    np.testing.assert_allclose(np.exp(ours), np.exp(ref), rtol=1e-3, atol=1e-5 * peak)
    # In the log domain, wherever there is more than leakage.
    loud = ref > np.log(peak) - 10
    np.testing.assert_allclose(ours[loud], ref[loud], atol=1e-3)
    # The loudest band is the one whose triangle peaks nearest 1 kHz.
    corners = 700 * (
        10
        ** (np.linspace(2595 * np.log10(1 + 60 / 700), 2595 * np.log10(1 + 7800 / 700), 66) / 2595)
        - 1
    )
    assert ours[:, 25].argmax() == np.abs(corners[1:-1] - 1000).argmin()


@pytest.fixture
def mixed_folder(tmp_path):
    """The same 1 kHz tone as wav/flac/ogg at 16, 44.1 and 8 kHz, mono and stereo, of three
    lengths, in two labelled folders."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    soundfile.write(tmp_path / "a" / "short16k.wav", sine(1000, 0.4, 16000), 16000)
    soundfile.write(tmp_path / "a" / "long44k.flac", sine(1000, 1.7, 44100, channels=2), 44100)
    soundfile.write(
        tmp_path / "b" / "eight.OGG", sine(1000, 1.0, 8000), 8000, format="OGG", subtype="VORBIS"
    )
    (tmp_path / "b" / "notes.txt").write_text("not audio")
    return tmp_path


def test_formats_rates_and_lengths_load_to_the_configured_rate(mixed_folder):
    src = open_source(mixed_folder, sample_rate=16000, clip_seconds=1.0)
    assert isinstance(src, AudioFolderSource) and src.modality == "audio"
    assert list(src.ids) == ["a/long44k.flac", "a/short16k.wav", "b/eight.OGG"]
    assert src.classes == ["a", "b"] and src.labels.tolist() == [0, 0, 1]
    batch = src.read_batch(range(3))
    assert batch.items.shape == (3, 1, 64, 101) and batch.skipped == []
    # Every file is resampled to 16 kHz: a 1 kHz tone, and the length in seconds is kept.
    for rel, seconds in (("a/long44k.flac", 1.7), ("b/eight.OGG", 1.0)):
        samples = read_audio(mixed_folder / rel, 16000)
        assert abs(len(samples) - seconds * 16000) <= 1
        spectrum = np.abs(np.fft.rfft(samples))
        assert abs(spectrum.argmax() * 16000 / len(samples) - 1000) < 2
    # The loudest band of the middle frame is 1 kHz's for all three files (the short one is
    # zero-padded on both sides, so its middle is the tone).
    assert set(batch.items[:, 0, :, 50].argmax(dim=1).tolist()) == {
        int(batch.items[1, 0, :, 50].argmax())
    }
    # The 16 kHz wav's item is the log-mel of its samples (16-bit PCM), zero-padded to 1 s on
    # both sides.
    clip = src.read_samples(1)
    np.testing.assert_allclose(clip, fit_clip(sine(1000, 0.4, 16000), 16000), atol=1 / 32768)
    assert (clip[:4800] == 0).all() and (clip[-4800:] == 0).all()
    torch.testing.assert_close(batch.items[1, 0], LogMelSpectrogram()(torch.from_numpy(clip)))


def test_clips_are_centre_cropped_and_stereo_mixed_down(tmp_path):
    left = np.linspace(-1, 1, 32000, dtype=np.float32)
    soundfile.write(tmp_path / "x.wav", np.stack([left, -left * 0.5], axis=1), 16000)
    samples = AudioFolderSource(tmp_path, clip_seconds=1.0).read_samples(0)
    mono = (left - left * 0.5) / 2
    np.testing.assert_allclose(samples, mono[8000:24000], atol=1e-4)


def test_corrupt_file_is_skipped_and_named(tones):
    (tones / "class0" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage that is not audio")
    src = AudioFolderSource(tones)
    bad = list(src.ids).index("class0/broken.wav")
    batch = src.read_batch([0, bad, 1])
    assert batch.indices == [0, 1] and batch.items.shape[0] == 2
    assert [s.item_id for s in batch.skipped] == ["class0/broken.wav"]
    assert "cannot read audio" in batch.skipped[0].reason
    with pytest.raises(ItemReadError, match=r"class0/broken\.wav"):
        src.read(bad)


def test_cached_and_chunked_items_equal_fresh_ones(tones, monkeypatch):
    src = AudioFolderSource(tones, sample_rate=8000, n_mels=32, clip_seconds=0.5)
    first = src.read_batch([3, 1, 3]).items
    assert torch.equal(first[0], first[2])
    fresh = AudioFolderSource(tones, sample_rate=8000, n_mels=32, clip_seconds=0.5)
    torch.testing.assert_close(src.read_batch([1, 3]).items, fresh.read_batch([1, 3]).items)
    monkeypatch.setattr(audio, "LOG_MEL_CHUNK", 2)
    chunked = AudioFolderSource(tones, sample_rate=8000, n_mels=32, clip_seconds=0.5)
    torch.testing.assert_close(chunked.read_batch(range(7)).items, src.read_batch(range(7)).items)


def test_audio_folders_are_inferred_and_errors_are_clear(tones, tmp_path):
    assert infer_modality(tones) == "audio"
    assert infer_modality(str(tones)) == "audio"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptySourceError, match="no audio files"):
        AudioFolderSource(empty)
    with pytest.raises(ValueError, match="f_max"):
        AudioFolderSource(tones, sample_rate=8000, f_max=6000)
    with pytest.raises(ValueError, match="too few"):
        AudioFolderSource(tones, clip_seconds=0.01)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        open_source(tmp_path / "missing", "audio")


def test_a_long_file_is_read_around_its_centre_with_the_same_clip(tmp_path, monkeypatch):
    """The centre 0.95 s of a 2-minute recording once decoded and resampled all of it."""
    import soundfile

    from selfsup.data.audio import clip_samples, fit_clip, read_audio, read_clip

    rng = np.random.default_rng(0)
    for rate, seconds in ((44100, 60.0), (48000, 3.0), (16000, 2.5), (8000, 0.5)):
        path = tmp_path / f"{rate}.wav"
        samples = rng.normal(0, 0.3, (int(rate * seconds) + 7, 2)).astype(np.float32)
        soundfile.write(path, samples, rate, subtype="FLOAT")
        for target in (16000, 22050):
            length = clip_samples(target, 0.95)
            np.testing.assert_allclose(
                read_clip(path, target, length), fit_clip(read_audio(path, target), length),
                atol=1e-6,
            )  # fmt: skip
    frames_read = []
    read = soundfile.SoundFile.read

    def counting(self, frames=-1, *args, **kwargs):
        out = read(self, frames, *args, **kwargs)
        frames_read.append(len(out))
        return out

    monkeypatch.setattr(soundfile.SoundFile, "read", counting)
    read_clip(tmp_path / "44100.wav", 16000, clip_samples(16000, 0.95))
    assert frames_read and sum(frames_read) < 1.1 * 44100  # 0.95 s and margins, not 60 s


def test_clip_hop_cuts_every_file_into_clips_that_are_items(tmp_path):
    """A long recording gave one item, its centre 0.95 s; with --clip-hop it gives all of it."""
    import soundfile

    from selfsup.data.audio import AudioFolderSource, read_audio

    rng = np.random.default_rng(0)
    for label, seconds in (("dog", 2.5), ("cat", 0.5)):
        (tmp_path / label).mkdir()
        samples = rng.normal(0, 0.3, int(22050 * seconds)).astype(np.float32)
        soundfile.write(tmp_path / label / "a.wav", samples, 22050, subtype="FLOAT")
    (tmp_path / "cat" / "broken.wav").write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    src = AudioFolderSource(tmp_path, clip_seconds=1.0, clip_hop=1.0, audio_input="waveform")
    assert list(src.ids) == [
        "cat/a.wav@0.00s", "cat/broken.wav@0.00s", "dog/a.wav@0.00s", "dog/a.wav@1.00s",
        "dog/a.wav@1.50s",
    ]  # fmt: skip
    assert [src.classes[c] for c in src.labels] == ["cat", "cat", "dog", "dog", "dog"]
    whole = read_audio(tmp_path / "dog" / "a.wav", 16000)  # 40,000 samples at 16 kHz
    batch = src.read_batch(range(len(src)))
    assert [s.item_id for s in batch.skipped] == ["cat/broken.wav@0.00s"]
    clips = batch.items[:, 0].numpy()
    np.testing.assert_allclose(clips[1], whole[:16000], atol=1e-6)
    np.testing.assert_allclose(clips[3], whole[-16000:], atol=1e-6)  # the last ends with it
    assert np.abs(clips[0][8000:]).max() == 0  # the short file: one clip, zero-padded


def test_long_recordings_are_embedded_by_clips_spread_over_each_file(tmp_path):
    """A pooled folder: a long file's parts are up to POOLED_CLIPS clips from its start to its
    end, a short file's its centre clip; a file none of whose clips can be read is skipped
    under its own name; a subset (an evaluation split) keeps its items' parts in its order."""
    from selfsup.data.audio import POOLED_CLIPS, spread_starts
    from selfsup.data.splits import SubsetSource
    from selfsup.embedding import iter_embeddings
    from selfsup.encoder import Encoder

    rng = np.random.default_rng(0)
    for name, seconds in (("a.wav", 60.0), ("b.wav", 0.5), ("c.wav", 3.0)):
        soundfile.write(tmp_path / name, rng.normal(0, 0.3, int(8000 * seconds)), 8000)
    (tmp_path / "d.wav").write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    src = AudioFolderSource(tmp_path, sample_rate=8000, clip_seconds=1.0, audio_input="waveform",
                            pooled=True)  # fmt: skip
    parts = src.parts()
    assert parts.owner.tolist() == [0] * POOLED_CLIPS + [1] + [2] * 3 + [3]
    starts = spread_starts(tmp_path / "a.wav", 8000, 8000, POOLED_CLIPS)
    assert starts[0] == 0 and starts[-1] == 59 * 8000 and len(set(starts)) == POOLED_CLIPS
    clips = parts.source.read_batch(range(len(parts.source)))
    whole = read_audio(tmp_path / "a.wav", 8000)
    np.testing.assert_allclose(clips.items[POOLED_CLIPS - 1, 0], whole[-8000:], atol=1e-6)
    np.testing.assert_allclose(clips.items[POOLED_CLIPS, 0], fit_clip(read_audio(
        tmp_path / "b.wav", 8000), 8000), atol=1e-6)  # fmt: skip
    assert src.read(0).shape == (1, 8000)  # an item read alone is still its centre clip

    # An "encoder" that gives a clip's mean and its first sample: the pooled value is known.
    class Summary(torch.nn.Module):
        feature_dim = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.flatten(1).mean(1), x.flatten(1)[:, 0]], dim=1)

    encoder = Encoder(Summary(), None, [0.0], [1.0], {}, modality="audio", normalize=False)
    rows, found, skipped = zip(*iter_embeddings(encoder, src, batch_size=8), strict=True)
    kept = [r for block in rows for r in block]
    emb = np.concatenate(found)
    assert kept == [0, 1, 2] and [s.item_id for b in skipped for s in b] == ["d.wav"]
    assert "d.wav" in src.unreadable
    first = clips.items[:POOLED_CLIPS, 0]
    np.testing.assert_allclose(emb[0], [first.mean(), first[:, 0].mean()], atol=1e-6)
    subset = SubsetSource(src, [2, 0], "split")
    split = subset.parts()
    assert split.owner.tolist() == [0] * 3 + [1] * POOLED_CLIPS
    assert split.source.name == f"split ({3 + POOLED_CLIPS} clips of 2 files)"
    assert list(split.source.ids[:4]) == ["c.wav@0.00s", "c.wav@1.00s", "c.wav@2.00s",
                                          "a.wav@0.00s"]  # fmt: skip
    z = np.concatenate([z for _, z, _ in iter_embeddings(encoder, subset, batch_size=8)])
    np.testing.assert_allclose(z, emb[[2, 0]], atol=1e-6)


def test_mp3_opus_aiff_and_m4a_recordings_read_as_the_same_tone(tmp_path, capfd):
    """Phone, meeting and field recordings come as MP3, Opus, AIFF or AAC in .m4a: libsndfile
    decodes the first three, FFmpeg (PyAV) the AAC; a damaged .m4a is one reason."""
    root = tmp_path / "calls"
    root.mkdir()
    tone_44k = sine(1000, 2.0, 44100, channels=2)
    soundfile.write(root / "call.mp3", tone_44k, 44100, format="MP3")
    soundfile.write(root / "memo.opus", sine(1000, 2.0, 48000), 48000, format="OGG",
                    subtype="OPUS")  # fmt: skip
    soundfile.write(root / "take.AIF", sine(1000, 2.0, 44100), 44100, format="AIFF")
    write_aac(root / "zoom.m4a", tone_44k, 44100)
    (root / "zz-cut.m4a").write_bytes((root / "zoom.m4a").read_bytes()[:600])
    src = open_source(root, sample_rate=16000, clip_seconds=1.0)
    assert isinstance(src, AudioFolderSource)
    assert list(src.ids) == ["call.mp3", "memo.opus", "take.AIF", "zoom.m4a", "zz-cut.m4a"]
    batch = src.read_batch(range(5))
    assert batch.items.shape == (4, 1, 64, 101)
    assert [s.item_id for s in batch.skipped] == ["zz-cut.m4a"]
    assert "cannot read audio" in batch.skipped[0].reason
    assert capfd.readouterr().err == ""  # FFmpeg's own complaints stay out of the output
    loudest = batch.items[:, 0, :, 50].argmax(dim=1).tolist()
    assert max(loudest) - min(loudest) <= 1  # the 1 kHz band in all four
    # The m4a's centre second, read by seeking, equals the centre of all of it decoded.
    whole = fit_clip(read_audio(root / "zoom.m4a", 16000), 16000)
    np.testing.assert_allclose(read_clip(root / "zoom.m4a", 16000, 16000), whole, atol=1e-4)
    later = read_clip(root / "zoom.m4a", 16000, 8000, start=12000)
    np.testing.assert_allclose(later, read_audio(root / "zoom.m4a", 16000)[12000:20000], atol=1e-4)


def test_a_damaged_mp3_is_one_reason_not_decoder_chatter(tmp_path, capfd):
    soundfile.write(tmp_path / "good.mp3", sine(1000, 1.0, 16000), 16000, format="MP3")
    (tmp_path / "cut.mp3").write_bytes(b"ID3\x03\x00\x00\x00" + bytes(50))  # a copy cut short
    src = AudioFolderSource(tmp_path)
    batch = src.read_batch(range(2))
    assert [(s.item_id, s.reason) for s in batch.skipped] == [
        ("cut.mp3", "cannot read audio: not audio that libsndfile decodes (damaged, or another "
         "format under its suffix)")
    ]  # fmt: skip
    err = capfd.readouterr().err
    assert "mpg123" not in err and "resync" not in err
