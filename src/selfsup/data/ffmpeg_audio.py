"""Audio libsndfile cannot decode (AAC in ``.m4a``, ``.aac``; ``.wma``; ``.amr``), through
FFmpeg's decoders as PyAV ships them.

A phone's voice memos, a meeting's recording (Zoom, Teams) and many call recorders write AAC
in an MP4 container; libsndfile reads none of it. These files are decoded here into the same
``(frames, channels)`` float32 samples at the file's own rate that soundfile gives, so
:mod:`selfsup.data.audio` mixes, resamples and crops them as it does a WAV. A part of a long
recording is read by seeking to just before it (``PREROLL_SECONDS``, decoded and dropped,
rebuild what the first frames after a seek lack), so the centre clip of an hour-long meeting
costs what a short file's does. A file ends where its container says (the last AAC frame
decodes whole, past it). The encoder's priming samples are left out where the container
marks them (negative times, as phones write them) and kept where it does not.

Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "memo.m4a")
    >>> write_aac(path, np.zeros((16000, 1), np.float32), 16000)
    >>> frames, rate = ffmpeg_header(path)
    >>> rate, abs(frames - 16000) <= 2048
    (16000, True)
    >>> read_ffmpeg(path, 4000, 800)[0].shape
    (800, 1)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

#: File suffixes decoded by FFmpeg (PyAV), compared case-insensitively.
FFMPEG_AUDIO = (".m4a", ".aac", ".wma", ".amr")
#: Seconds decoded and dropped before a part read alone: the first frame after a seek lacks
#: the overlap its predecessor gives it (AAC's transform spans two frames of 1,024 samples).
PREROLL_SECONDS = 0.1


def is_ffmpeg_audio(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read by FFmpeg rather than libsndfile (by its suffix).

    Example:
        >>> is_ffmpeg_audio("call.M4A"), is_ffmpeg_audio("call.wav")
        (True, False)
    """
    return os.fspath(path).lower().endswith(FFMPEG_AUDIO)


def ffmpeg_header(path: str | os.PathLike) -> tuple[int, int]:
    """The file's length in samples and its sample rate, from its container (no decoding).

    Raises:
        ValueError: no audio stream, or a file FFmpeg cannot open.
    """
    with _opened(path) as container:
        stream = _audio_stream(container)
        rate = int(stream.codec_context.sample_rate)
        length = _nominal_length(container, stream, rate)
    return (len(read_ffmpeg(path)[0]) if length is None else length), rate


def _nominal_length(container: Any, stream: Any, rate: int) -> int | None:
    """The stream's length in samples as its container states it (an AAC stream's last
    frame decodes whole, past it: :func:`read_ffmpeg` stops there, so both agree); None
    where the container does not say."""
    if stream.duration is not None:
        return round(stream.duration * stream.time_base * rate)
    if container.duration is not None:
        return round(container.duration * rate / 1_000_000)
    return None


def read_ffmpeg(
    path: str | os.PathLike, first: int = 0, count: int | None = None
) -> tuple[np.ndarray, int]:
    """Samples ``first`` to ``first + count`` (all from ``first`` when ``count`` is None) of
    the file at its own rate, as float32 ``(frames, channels)``, and the rate; shorter where
    the file ends first.

    Raises:
        ValueError: no audio stream, or a file FFmpeg cannot open or decode.
    """
    with _opened(path) as container:
        stream = _audio_stream(container)
        rate = int(stream.codec_context.sample_rate)
        length = _nominal_length(container, stream, rate)
        if length is not None:
            count = max(length - first, 0) if count is None else min(count, max(length - first, 0))
        if first > 0:  # a frame PREROLL_SECONDS before the first sample, or earlier
            seconds = max(first / rate - PREROLL_SECONDS, 0.0)
            container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
        pieces: list[np.ndarray] = []
        start = position = None
        try:
            for frame in container.decode(stream):
                pts = frame.pts
                at = (position or 0) if pts is None else round(pts * stream.time_base * rate)
                samples = _planar(frame)
                position = at + samples.shape[1]
                if position <= first:
                    continue
                start = at if start is None else start
                pieces.append(samples)
                if count is not None and position >= first + count:
                    break
        except Exception as err:  # FFmpeg's errors come as many classes
            raise ValueError(f"cannot decode its audio: {err}") from err
    if start is not None and start > first and first > 0:
        return read_ffmpeg(path, 0, None if count is None else first + count)[0][first:], rate
    if not pieces:
        return np.zeros((0, stream.codec_context.channels or 1), np.float32), rate
    samples = np.concatenate(pieces, axis=1).T
    offset = max(first - (start or 0), 0)
    end = None if count is None else offset + count
    return np.ascontiguousarray(samples[offset:end]), rate


def write_aac(path: str | os.PathLike, samples: np.ndarray, rate: int) -> None:
    """Write ``(frames, channels)`` float samples as AAC in an MP4 container (``.m4a``), as a
    phone records them: for tests and benchmarks.

    Example:
        >>> import tempfile
        >>> write_aac(os.path.join(tempfile.mkdtemp(), "a.m4a"), np.zeros((1024, 2)), 8000)
    """
    import av

    layout = "mono" if samples.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = layout
        planar = np.ascontiguousarray(samples.T, dtype=np.float32)
        for begin in range(0, planar.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, begin : begin + 1024]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@contextlib.contextmanager
def _opened(path: str | os.PathLike) -> Iterator[Any]:
    """``av.open`` of an audio file (or of one held in memory, a file object); its failure
    as a ValueError with FFmpeg's reason."""
    import av

    try:
        container = av.open(path if hasattr(path, "read") else os.fspath(path))
    except Exception as err:  # av.error.* (invalid data, unknown format...)
        # FFmpeg's reason alone: its errors add their number and the path to it.
        reason = getattr(err, "strerror", None) or str(err)
        raise ValueError(f"not audio that FFmpeg decodes: {reason}") from err
    try:
        yield container
    finally:
        container.close()


def _audio_stream(container: Any) -> Any:
    if not container.streams.audio:
        raise ValueError("the file holds no audio stream")
    return container.streams.audio[0]


def _planar(frame: Any) -> np.ndarray:
    """A decoded frame as float32 (channels, samples), whatever FFmpeg's sample format."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:  # interleaved: (1, samples * channels)
        array = array.reshape(-1, channels).T
    kind = frame.format.name.rstrip("p")
    scale = {"s16": 32768.0, "s32": 2147483648.0, "u8": 128.0}.get(kind)
    array = array.astype(np.float32)
    if kind == "u8":
        array -= 128.0
    return array / scale if scale else array
