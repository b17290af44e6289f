"""Audio files in a folder tree (wav, flac, ogg, mp3, m4a...), read as log-mel spectrograms
(or as waveforms, for pretrained models that compute their own features).

Each file is decoded with soundfile (AAC, WMA and AMR with FFmpeg, see
:mod:`selfsup.data.ffmpeg_audio`), mixed down to mono, resampled to ``sample_rate``
(polyphase, ``scipy.signal.resample_poly``), centre-cropped or zero-padded (equally on both
sides) to ``clip_seconds`` and turned into a log-mel spectrogram (see
:mod:`selfsup.data.logmel`). Items are float32 tensors (1, n_mels, frames): image-like, so
embedding, the evaluation protocols and the tools built on embeddings take them as they are.
With ``audio_input="waveform"`` items are the clips themselves, (1, samples).
Random crops in time are a view (``selfsup.views.audio``), not a reading step.

Example:
    >>> import tempfile
    >>> import numpy as np, soundfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for word in ("yes", "no"):
    ...     (root / word).mkdir()
    ...     soundfile.write(root / word / "a.wav", np.zeros(8000, np.float32), 8000)
    >>> src = AudioFolderSource(root)
    >>> src.classes, tuple(src.read(0).shape)
    (['no', 'yes'], (1, 64, 96))
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly

from selfsup.data.base import (
    CODE_ERRORS,
    Batch,
    EmptySourceError,
    ItemReadError,
    Parts,
    SkippedItem,
    Source,
)
from selfsup.data.ffmpeg_audio import FFMPEG_AUDIO, ffmpeg_header, is_ffmpeg_audio, read_ffmpeg
from selfsup.data.file_labels import folder_labels
from selfsup.data.folders import IndexCache, index_folder, others_note
from selfsup.data.logmel import LogMelSettings, LogMelSpectrogram, clip_samples

#: File suffixes read as audio, compared case-insensitively: by libsndfile (through
#: soundfile), and AAC, WMA and AMR by FFmpeg (:mod:`selfsup.data.ffmpeg_audio`).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", *FFMPEG_AUDIO)
#: Log-mels of a folder are kept in memory after their first reading when all of them fit
#: in this many bytes; larger folders are decoded again every epoch.
CACHE_BYTES = 1 << 30
#: What an audio source's items are: log-mel spectrograms, or the waveforms themselves.
AUDIO_INPUTS = ("logmel", "waveform")
#: Seconds read on each side of the centre clip of a long file (:func:`read_clip`):
#: resampling's filter edges fall in them, outside the clip.
READ_MARGIN = 0.05
#: Files whose headers give a folder's median length (``AudioFolderSource.median_seconds``).
MEDIAN_FILES = 100
#: Clips a file is embedded by when its source is ``pooled``, spread evenly over it
#: (:meth:`AudioFolderSource.parts`): 32 cost 32 centre clips' reading and embedding.
POOLED_CLIPS = 32
#: Clips turned into log-mels at once; bounds the memory of the short-time spectra
#: (about 0.4 MB per 0.95 s clip at the default settings).
LOG_MEL_CHUNK = 256


#: The first bytes of the containers a file without a suffix may be, and the suffix that
#: picks its decoder.
_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"),
          (b"\xff\xfb", ".mp3"), (b"\xff\xf3", ".mp3"), (b"FORM", ".aiff"),
          (b"#!AMR", ".amr"), (b"0&\xb2u", ".wma"))  # fmt: skip


class AudioBytes:
    """An encoded audio file held in memory (a row of a Hugging Face dataset), read as a
    file on disk is: ``os.fspath`` gives its name for its suffix, which picks the decoder
    (a name without an audio suffix gets one from the file's first bytes).

    Example:
        >>> import io, soundfile
        >>> out = io.BytesIO()
        >>> soundfile.write(out, np.zeros(800, np.float32), 8000, format="WAV")
        >>> clip = AudioBytes("17", out.getvalue())
        >>> os.fspath(clip), audio_header(clip)
        ('17.wav', (800, 8000, True))
    """

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data
        if not name.lower().endswith(AUDIO_EXTENSIONS):
            head = data[:12]
            found = [suffix for magic, suffix in _MAGIC if head.startswith(magic)]
            self.name = name + (".m4a" if head[4:8] == b"ftyp" else (found or [""])[0])

    def __fspath__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def is_file(self) -> bool:
        return True

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)


def _input(path: str | os.PathLike) -> Any:
    """What a decoder opens: the file's path, or the bytes of one held in memory."""
    return path.open() if isinstance(path, AudioBytes) else str(path)


def _reason(err: Exception, path: Path) -> str:
    """Why the file at ``path`` could not be decoded. libsndfile says a file it cannot parse
    "does not exist or is not a regular file"; where the file is there, it is not one it
    decodes.

    Example:
        >>> _reason(RuntimeError("Error opening 'a.mp3': File does not exist or is not a "
        ...                      "regular file (possibly a pipe?)."), Path(__file__))
        'not audio that libsndfile decodes (damaged, or another format under its suffix)'
        >>> import tempfile
        >>> empty = Path(tempfile.mkdtemp()) / "call.wav"
        >>> _ = empty.write_bytes(b"")
        >>> _reason(RuntimeError("Error opening 'call.wav': Format not recognised."), empty)
        'the file is empty (0 bytes)'
    """
    text = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", f"'{path}'", str(err))  # in memory
    if isinstance(path, Path) and path.is_file() and path.stat().st_size == 0:  # a failed copy
        return "the file is empty (0 bytes)"
    if "does not exist or is not a regular file" in text and path.is_file():
        return "not audio that libsndfile decodes (damaged, or another format under its suffix)"
    if "Format not recognised" in text and path.is_file():
        return "not audio that libsndfile decodes (another format under its suffix, or damaged)"
    return f"{type(err).__name__}: {text}"


@contextlib.contextmanager
def quiet_decoder(path: str | os.PathLike) -> Iterator[None]:
    """Around decoding ``path``: for an MP3, the process's standard error is closed to
    libmpg123, which prints its complaints about a damaged file there (lines a person cannot
    place, several per reading); the file's one reason is reported instead.

    Example:
        >>> with quiet_decoder("a.wav"):
        ...     pass
    """
    if not str(path).lower().endswith(".mp3"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """The file's samples as float32 mono at ``sample_rate``.

    Channels are averaged; another rate is converted by polyphase resampling.

    Raises:
        soundfile.LibsndfileError, RuntimeError: the file cannot be decoded.
        ValueError: the file holds no sample, or NaN or infinite samples (float WAVs can);
            FFmpeg cannot decode it.

    Example:
        >>> import tempfile, soundfile
        >>> path = Path(tempfile.mkdtemp()) / "a.wav"
        >>> soundfile.write(path, np.ones((441, 2), np.float32) * 0.5, 44100)
        >>> read_audio(path, 16000).shape
        (160,)
    """
    if is_ffmpeg_audio(path):
        samples, rate = read_ffmpeg(_input(path))
    else:
        with quiet_decoder(path):
            samples, rate = soundfile.read(_input(path), dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise ValueError("the file holds no audio samples")
    return _mono(samples, rate, sample_rate)


def _mono(samples: np.ndarray, rate: int, sample_rate: int, first: int = 0) -> np.ndarray:
    """Decoded ``(frames, channels)`` samples, the file's from sample ``first`` on, checked
    for NaN and infinity (named by their place in the file), averaged over channels and
    resampled from ``rate`` to ``sample_rate``."""
    finite = np.isfinite(samples)
    if not finite.all():
        frame = first + int(np.flatnonzero(~finite.all(axis=1))[0])
        raise ValueError(f"sample {frame} ({frame / rate:.3f} s) is NaN or infinite")
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        up, down, _ = _resampling(len(mono), rate, sample_rate)
        mono = resample_poly(mono, up, down)
    return mono.astype(np.float32, copy=False)


def _resampling(frames: int, rate: int, sample_rate: int) -> tuple[int, int, int]:
    """``resample_poly``'s factors from ``rate`` to ``sample_rate`` and the length it gives
    ``frames`` samples: ``(up, down, length)``.

    Example:
        >>> _resampling(44100, 44100, 16000)
        (160, 441, 16000)
    """
    common = math.gcd(int(rate), int(sample_rate))
    up, down = int(sample_rate) // common, int(rate) // common
    return up, down, -(-int(frames) * up // down)


def read_clip(
    path: str | os.PathLike, sample_rate: int, length: int, start: int | None = None
) -> np.ndarray:
    """``fit_clip(read_audio(path, sample_rate), length)``, reading only what it needs: a
    file longer than the clip is read around its centre (``READ_MARGIN`` on each side holds
    resampling's filter edges, and the first sample read is a multiple of the resampling
    period), so the clip is the same within float error and the centre clip of an hour-long
    recording costs what a short file's does (a 2-minute 44.1 kHz stereo WAV: 5 ms, not
    460 ms). With ``start``, the clip is the one that starts at that sample (at
    ``sample_rate``) instead of the centre one; zero-padded where it passes the end.

    Raises:
        As :func:`read_audio`; a NaN or infinite sample outside the part read is not seen.

    Example:
        >>> import tempfile, soundfile
        >>> path = Path(tempfile.mkdtemp()) / "a.wav"
        >>> soundfile.write(path, np.sin(np.arange(44100 * 3) / 7.0).astype(np.float32), 44100)
        >>> whole = fit_clip(read_audio(path, 16000), 15200)
        >>> float(np.abs(read_clip(path, 16000, 15200) - whole).max()) < 1e-5
        True
    """
    frames, rate, seekable = audio_header(path)
    up, down, total = _resampling(frames, rate, sample_rate)
    if start is None and (total <= length or not seekable):
        return fit_clip(read_audio(path, sample_rate), length)
    if start is not None and not seekable:
        whole = read_audio(path, sample_rate)[start : start + length]
        return np.pad(whole, (0, length - len(whole)))
    centre = (total - length) // 2 if start is None else start  # the clip's first sample
    margin = math.ceil(READ_MARGIN * rate)
    first = max(0, (centre * down // up - margin) // down * down)
    last = min(frames, -(-(centre + length) * down // up) + margin)
    samples = _read_part(path, first, last - first)
    mono = _mono(samples, rate, sample_rate, first)
    offset = centre - first * up // down
    clip = mono[offset : offset + length]
    return np.pad(clip, (0, length - len(clip)))


def audio_header(path: str | os.PathLike) -> tuple[int, int, bool]:
    """A file's length in samples, its rate, and whether a part of it can be read alone,
    from its header.

    Example:
        >>> import tempfile, soundfile
        >>> path = Path(tempfile.mkdtemp()) / "a.wav"
        >>> soundfile.write(path, np.zeros(500, np.float32), 1000)
        >>> audio_header(path)
        (500, 1000, True)
    """
    if is_ffmpeg_audio(path):
        return (*ffmpeg_header(_input(path)), True)
    with quiet_decoder(path), soundfile.SoundFile(_input(path)) as audio:
        return int(audio.frames), int(audio.samplerate), bool(audio.seekable())


def _read_part(path: str | os.PathLike, first: int, count: int) -> np.ndarray:
    """Samples ``first`` to ``first + count`` of a file, float32 (frames, channels)."""
    if is_ffmpeg_audio(path):
        return read_ffmpeg(_input(path), first, count)[0]
    with quiet_decoder(path), soundfile.SoundFile(_input(path)) as audio:
        audio.seek(first)
        return audio.read(frames=count, dtype="float32", always_2d=True)


def clip_starts(path: str | os.PathLike, sample_rate: int, length: int, hop: int) -> list[int]:
    """Where the clips of ``length`` samples, one every ``hop``, start in a file (samples at
    ``sample_rate``, read from its header): the last one ends with the file; a file shorter
    than a clip, or one whose header cannot be read (it is skipped when read), has one at 0.

    Example:
        >>> import tempfile, soundfile
        >>> path = Path(tempfile.mkdtemp()) / "a.wav"
        >>> soundfile.write(path, np.zeros(10_000, np.float32), 1000)
        >>> clip_starts(path, 1000, 4000, 4000)
        [0, 4000, 6000]
    """
    try:
        frames, rate, _ = audio_header(path)
        total = _resampling(frames, rate, sample_rate)[2]
    except Exception:  # an unreadable file: one item, skipped with its reason when read
        return [0]
    starts = list(range(0, max(total - length, 0) + 1, hop))
    if starts[-1] + length < total:
        starts.append(total - length)
    return starts


def spread_starts(
    path: str | os.PathLike, sample_rate: int, length: int, most: int
) -> list[int | None]:
    """Where up to ``most`` clips of ``length`` samples spread evenly over a file start, the
    first at its start and the last ending with it, one clip apart where the file holds
    fewer: :func:`clip_starts` with a hop of one clip, thinned evenly. A file of one clip or
    less (or an unreadable header) gives ``[None]``: its centre clip, as it is read alone.

    Example:
        >>> import tempfile, soundfile
        >>> path = Path(tempfile.mkdtemp()) / "a.wav"
        >>> soundfile.write(path, np.zeros(10_000, np.float32), 1000)
        >>> spread_starts(path, 1000, 1000, 4), spread_starts(path, 1000, 20_000, 4)
        ([0, 3000, 6000, 9000], [None])
    """
    starts = clip_starts(path, sample_rate, length, length)
    if len(starts) == 1:
        return [None]
    if len(starts) <= most:
        return list(starts)
    total = starts[-1]  # the last clip ends with the file
    return [round(k * total / (most - 1)) for k in range(most)]


def fit_clip(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` centre-cropped or zero-padded (as equally as possible on both sides) to
    ``length``.

    Example:
        >>> fit_clip(np.arange(5.0), 3).tolist(), fit_clip(np.ones(2), 5).tolist()
        ([1.0, 2.0, 3.0], [0.0, 1.0, 1.0, 0.0, 0.0])
    """
    if len(samples) >= length:
        start = (len(samples) - length) // 2
        return samples[start : start + length]
    before = (length - len(samples)) // 2
    return np.pad(samples, (before, length - len(samples) - before))


class AudioFolderSource(Source):
    """Every audio file under a folder, found recursively and sorted by relative path, as
    log-mel spectrograms (1, n_mels, frames) or waveforms (1, samples).

    Files with the suffixes in ``AUDIO_EXTENSIONS`` (any case) are read; hidden files and
    folders are left out. When every file lies in a subfolder and there are at least two
    first-level subfolders, their names are the classes; a labels table (``labels_file``, or a
    ``metadata.csv`` at the top) labels them instead. A file that cannot be decoded raises
    :class:`ItemReadError` on ``read`` and is reported in ``read_batch(...).skipped``.

    Args:
        root: the folder.
        sample_rate: the rate every file is resampled to.
        clip_seconds: the length every clip is cropped or padded to (BYOL-A's 0.95 s gives
            96 frames at the default hop).
        n_mels: mel bands.
        n_fft: window length in samples.
        hop_length: samples between frames.
        f_min: lowest mel band edge in Hz.
        f_max: highest mel band edge in Hz (default ``min(7800, sample_rate / 2)``).
        audio_input: ``logmel`` (the default) or ``waveform``: the clips as they are, for
            pretrained models that compute their own features (wav2vec2, HuBERT, AST).
        clip_hop: cut every file into clips of ``clip_seconds``, one every ``clip_hop``
            seconds (the last ending with the file), each an item with the id
            ``FILE@STARTs`` and the file's label; None: each file's centre clip.
        pooled: each file is embedded as the mean of up to ``POOLED_CLIPS`` clips spread
            over it (:meth:`parts`), not by its centre clip; reading an item still gives
            the centre clip. Long recordings are opened so (``selfsup.modalities.audio``).
        index: where a saved list of the folder's files may be (a run's
            ``data_index.json``; see :class:`selfsup.data.folders.IndexCache`); by default
            the folder is scanned.
        labels_file, label_column, id_column: a table labelling the files, its label
            column and its column of file names, as
            :class:`selfsup.data.image_folder.ImageFolderSource` reads them.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        EmptySourceError: no audio file under ``root``.
        ValueError: settings out of range, or a clip too short for one window.
    """

    modality = "audio"

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        sample_rate: int = 16000,
        clip_seconds: float = 0.95,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop_length: int = 160,
        f_min: float = 60.0,
        f_max: float | None = None,
        audio_input: str = "logmel",
        clip_hop: float | None = None,
        pooled: bool = False,
        index: IndexCache | None = None,
        labels_file: str | os.PathLike | None = None,
        label_column: str | None = None,
        id_column: str | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"no such folder: {self.root}")
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a folder: {self.root}")
        self._settings(
            sample_rate, clip_seconds, n_mels, n_fft, hop_length, f_min, f_max, audio_input
        )
        self.name = str(self.root)
        self.index, self.index_note = index_folder(self.root, AUDIO_EXTENSIONS, index)
        self._ids = self.index.files
        if not self._ids:
            left = f"; it holds {others_note(self.index.others)}" if self.index.others else ""
            raise EmptySourceError(
                f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {self.root}{left}"
            )
        found = folder_labels(self.root, self._ids, labels_file, label_column, id_column)
        self.labels, self.classes, self.partial_labels = found.labels, found.classes, found.partial
        self.labels_note, self.warning = found.note, found.warning
        self._items(clip_hop, pooled)

    def _settings(
        self,
        sample_rate: int = 16000,
        clip_seconds: float = 0.95,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop_length: int = 160,
        f_min: float = 60.0,
        f_max: float | None = None,
        audio_input: str = "logmel",
    ) -> None:
        """Check and keep how files become items (see the class's arguments)."""
        if clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be positive, got {clip_seconds}")
        if audio_input not in AUDIO_INPUTS:
            choices = ", ".join(AUDIO_INPUTS)
            raise ValueError(f"audio_input must be one of {choices}, got {audio_input!r}")
        self.audio_input = audio_input
        self.settings = LogMelSettings(sample_rate, n_fft, hop_length, n_mels, f_min, f_max)
        self.clip_seconds = float(clip_seconds)
        self.clip_samples = clip_samples(sample_rate, clip_seconds)
        if self.clip_samples <= n_fft // 2:
            raise ValueError(
                f"clip_seconds={clip_seconds} gives {self.clip_samples} samples, too few for "
                f"a window of {n_fft}; use clips longer than {n_fft / 2 / sample_rate:.3f} s"
            )
        self.reads_files = True

    def _items(self, clip_hop: float | None, pooled: bool) -> None:
        """Make the items: each file's centre clip, or every file's clips (``clip_hop``)."""
        # Clips of long files: (file, first sample, None: its centre) per item; None: one
        # centre clip a file.
        self._clips: list[tuple[int, int | None]] | None = None
        self.pooled = pooled
        self._logmel = LogMelSpectrogram(self.settings)
        if clip_hop is not None:
            self._cut(clip_hop)
        self._start_cache()

    def _cut(self, hop_seconds: float) -> None:
        """Make the items clips of every file, one every ``hop_seconds``."""
        if hop_seconds <= 0:
            raise ValueError(f"clip_hop must be positive, got {hop_seconds}")
        rate = self.settings.sample_rate
        hop = max(1, round(hop_seconds * rate))
        self._set_clips(lambda path: clip_starts(path, rate, self.clip_samples, hop))

    def _file_path(self, relative: str, file: int) -> Path | AudioBytes:
        """Where file number ``file`` (``relative`` to the root) is read from."""
        return self.root / relative

    def _set_clips(self, starts: Callable[[Path], Sequence[int | None]]) -> None:
        """Make the items the clips of every file that start where ``starts(path)`` says
        (None: the file's centre clip, with the file's own id)."""
        rate = self.settings.sample_rate
        self._clips = [
            (f, s) for f, rel in enumerate(self._ids) for s in starts(self._file_path(rel, f))
        ]
        self._files = self._ids
        self._ids = [  # the place as CLIP_PLACE reads it
            self._files[f] if s is None else f"{self._files[f]}@{s / rate:.2f}s"
            for f, s in self._clips
        ]
        # A recording's clips are near copies of each other: evaluate holds out whole
        # recordings, and a run's kNN vote counts other recordings' clips.
        self.split_groups = "recordings"
        owner = np.array([f for f, _ in self._clips], dtype=np.int64)
        if self.labels is not None:
            self.labels = self.labels[owner]
        if self.partial_labels is not None:
            self.partial_labels = self.partial_labels.of_parts(owner)

    def _start_cache(self) -> None:
        """Keep the items read in memory when all of them fit in ``CACHE_BYTES``."""
        item_bytes = 4 * int(np.prod(self.item_shape))
        self._cache: dict[int, torch.Tensor] | None = (
            {} if item_bytes * len(self) <= CACHE_BYTES else None
        )

    @property
    def cut_into_clips(self) -> bool:
        """Whether the items are clips of the files (``clip_hop``), not one per file."""
        return self._clips is not None

    def clipped(self, hop_seconds: float) -> AudioFolderSource:
        """The same files cut into clips of ``clip_seconds``, one every ``hop_seconds``, as
        ``clip_hop`` cuts them (this source is left as it is).

        Raises:
            ValueError: the items are clips already.
        """
        return self._copy_with(lambda cut: cut._cut(hop_seconds))

    def _copy_with(self, cut_up: Callable[[AudioFolderSource], None]) -> AudioFolderSource:
        """A copy of this source of whole files whose items ``cut_up`` makes clips."""
        if self.cut_into_clips:
            raise ValueError(f"{self.name}: its items are clips already")
        cut = copy.copy(self)
        for own in ("_unreadable", "parts_cache"):  # each source lists what it failed to read
            cut.__dict__.pop(own, None)
        cut_up(cut)
        cut._start_cache()
        return cut

    def parts(self) -> Parts | None:
        """A ``pooled`` source's files as up to ``POOLED_CLIPS`` clips each, spread evenly
        over the file (:func:`spread_starts`); the headers are read once. None otherwise.

        Example:
            >>> import tempfile, soundfile
            >>> folder = Path(tempfile.mkdtemp())
            >>> for name, seconds in (("a.wav", 3), ("b.wav", 40)):
            ...     soundfile.write(folder / name, np.zeros(seconds * 1000, np.float32), 1000)
            >>> src = AudioFolderSource(folder, sample_rate=1000, n_fft=64, hop_length=16,
            ...                         pooled=True)
            >>> parts = src.parts()
            >>> len(parts.source), parts.owner.tolist().count(1), parts.source.ids[:2]
            (36, 32, ['a.wav@0.00s', 'a.wav@0.95s'])
        """
        if not self.pooled or self.cut_into_clips:
            return None
        if "parts_cache" not in self.__dict__:
            rate, length = self.settings.sample_rate, self.clip_samples
            cut = self._copy_with(
                lambda c: c._set_clips(lambda p: spread_starts(p, rate, length, POOLED_CLIPS))
            )
            cut.name = f"{self.name} ({len(cut):,} clips of {len(self):,} files)"
            owner = np.array([f for f, _ in cut._clips or []], dtype=np.int64)
            self.parts_cache = Parts(
                cut, owner, ("clips", "files"), f"its centre clip of {self.clip_seconds:g} s"
            )
        return self.parts_cache

    @property
    def files(self) -> list[str]:
        """The files' paths relative to the root, one per file (before any cut into clips)."""
        return self._ids if self._clips is None else self._files

    @cached_property
    def median_seconds(self) -> float:
        """The median length in seconds of up to ``MEDIAN_FILES`` files spread over the
        folder, read from their headers once (0 when none can be read)."""
        count = len(self.files)
        rows = np.unique(np.linspace(0, count - 1, min(MEDIAN_FILES, count)).astype(int))
        seconds = []
        for row in rows:
            try:
                frames, rate, _ = audio_header(self._file_path(self.files[int(row)], int(row)))
                seconds.append(frames / rate)
            except Exception:  # read and reported as unreadable when its items are read
                continue
        return float(np.median(seconds)) if seconds else 0.0

    @property
    def item_shape(self) -> tuple[int, ...]:
        """The shape (1, n_mels, frames) of every item; (1, samples) for waveforms."""
        if self.audio_input == "waveform":
            return (1, self.clip_samples)
        return (1, self.settings.n_mels, self.settings.frames(self.clip_samples))

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> Sequence[str]:
        """The paths relative to the root, with "/" separators (``PATH@STARTs`` for the
        clips of ``clip_hop``)."""
        return self._ids

    def read_samples(self, index: int) -> np.ndarray:
        """File ``index`` as a mono clip of ``clip_samples`` samples at ``sample_rate``.

        Raises:
            ItemReadError: the file cannot be decoded.
        """
        item, rate, length = self._ids[index], self.settings.sample_rate, self.clip_samples
        file, start = (index, None) if self._clips is None else self._clips[index]
        path: Path | AudioBytes = self.root / self.files[file]
        try:
            path = self._file_path(self.files[file], file)
            return read_clip(path, rate, length, start)
        except (ItemReadError, *CODE_ERRORS):  # a row without a sound: its own reason
            raise
        except Exception as err:  # a bad file can fail in any of the ways libsndfile can fail
            raise ItemReadError(item, f"cannot read audio: {_reason(err, path)}") from err

    def read(self, index: int) -> torch.Tensor:
        """File ``index`` as a log-mel spectrogram, float32 (1, n_mels, frames) (a waveform
        (1, samples) with ``audio_input="waveform"``)."""
        batch = self.read_batch([index])
        if batch.skipped:
            item = batch.skipped[0]
            raise ItemReadError(item.item_id, item.reason)
        return batch.items[0]

    def read_batch(self, indices: Sequence[int]) -> Batch:
        """Several files as log-mels (n, 1, n_mels, frames), computed in batched calls of up to
        ``LOG_MEL_CHUNK`` clips; files that cannot be decoded are skipped and reported."""
        indices = [int(i) for i in indices]
        for i in indices:
            if not 0 <= i < len(self):
                raise IndexError(f"index {i} out of range for {self.name} with {len(self)} items")
        cached = self._cache or {}
        missing = [i for i in dict.fromkeys(indices) if i not in cached]
        clips, decoded, skipped = [], [], []
        for i in missing:
            try:
                clips.append(self.read_samples(i))
                decoded.append(i)
            except ItemReadError as err:
                skipped.append(SkippedItem(i, err.item_id, err.reason))
                self.unreadable[err.item_id] = err.reason
        fresh: dict[int, torch.Tensor] = {}
        for start in range(0, len(clips), LOG_MEL_CHUNK):
            chunk = torch.from_numpy(np.stack(clips[start : start + LOG_MEL_CHUNK]))
            if self.audio_input == "waveform":
                mels = chunk[:, None]
            else:
                with torch.no_grad():
                    mels = self._logmel(chunk)[:, None]
            fresh.update(zip(decoded[start : start + LOG_MEL_CHUNK], mels, strict=True))
        if self._cache is not None:
            self._cache.update(fresh)
        bad = {item.index for item in skipped}
        kept = [i for i in indices if i not in bad]
        items = [fresh[i] if i in fresh else cached[i] for i in kept]
        stacked = torch.stack(items) if items else torch.empty(0)
        return Batch(stacked, kept, skipped)
