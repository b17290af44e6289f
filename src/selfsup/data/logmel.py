"""Log-mel spectrograms in plain torch: ``torch.stft`` and a mel filterbank built once.

The settings default to BYOL-A's (Niizumi et al. 2021, https://arxiv.org/abs/2103.06695):
16 kHz audio, a 64 ms Hann window (1024 samples), a 10 ms hop (160 samples), 64 mel bands
from 60 Hz to 7.8 kHz, power spectrogram, natural log with a small floor. Frames are centred
on their sample (the signal is reflect-padded by half a window), so a clip of ``s`` samples
gives ``1 + s // hop_length`` frames.

The mel scale is HTK's, ``mel(f) = 2595 log10(1 + f / 700)``; the filters are triangles on
``n_mels + 2`` points evenly spaced in mel, evaluated at the FFT bin frequencies, with peak 1
(no area normalization), as torchaudio's ``melscale_fbanks`` with its defaults.

Example:
    >>> import torch
    >>> logmel = LogMelSpectrogram()
    >>> logmel(torch.zeros(2, 15200)).shape
    torch.Size([2, 64, 96])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

#: The floor added to the mel power before the log (float32's machine epsilon, as BYOL-A).
LOG_FLOOR = float(torch.finfo(torch.float32).eps)
#: Kaldi's pre-emphasis coefficient (``KaldiFilterbank``).
PREEMPHASIS = 0.97


@dataclass(frozen=True)
class LogMelSettings:
    """How a waveform becomes a log-mel spectrogram.

    Attributes:
        sample_rate: samples per second of the waveform.
        n_fft: window (and FFT) length in samples.
        hop_length: samples between two frames.
        n_mels: mel bands.
        f_min: lowest band edge in Hz.
        f_max: highest band edge in Hz; None means ``min(7800, sample_rate / 2)``.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float | None = None

    def __post_init__(self) -> None:
        if self.sample_rate < 1 or self.n_fft < 2 or self.hop_length < 1 or self.n_mels < 1:
            raise ValueError(
                f"sample_rate, n_fft, hop_length and n_mels must be positive, got {self}"
            )
        if not 0 <= self.f_min < self.top_frequency <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                f"f_max={self.top_frequency}, sample_rate={self.sample_rate}"
            )

    @property
    def top_frequency(self) -> float:
        """``f_max``, or its default ``min(7800, sample_rate / 2)``."""
        return self.f_max if self.f_max is not None else min(7800.0, self.sample_rate / 2)

    def frames(self, samples: int) -> int:
        """Frames of a clip of ``samples`` samples (centred frames).

        Example:
            >>> LogMelSettings().frames(15200)
            96
        """
        return 1 + samples // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data."""
        return asdict(self)


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK's mel scale: ``2595 log10(1 + hz / 700)``."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(settings: LogMelSettings) -> torch.Tensor:
    """The triangular mel filters as a float32 matrix (n_fft // 2 + 1, n_mels).

    Filter m rises linearly from 0 at corner ``m`` to 1 at corner ``m + 1`` and falls to 0 at
    corner ``m + 2``, the ``n_mels + 2`` corners evenly spaced in mel from f_min to f_max.

    Example:
        >>> bank = mel_filterbank(LogMelSettings(n_mels=8, n_fft=256))
        >>> bank.shape, float(bank.max()) <= 1.0
        (torch.Size([129, 8]), True)
    """
    s = settings
    bins = torch.linspace(0, s.sample_rate / 2, s.n_fft // 2 + 1, dtype=torch.float64)
    low, high = hz_to_mel(torch.tensor([s.f_min, s.top_frequency], dtype=torch.float64))
    corners = mel_to_hz(torch.linspace(float(low), float(high), s.n_mels + 2, dtype=torch.float64))
    widths = corners.diff()  # (n_mels + 1,)
    offsets = corners[None, :] - bins[:, None]  # (bins, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class LogMelSpectrogram(nn.Module):
    """Waveforms (..., samples) to log-mel spectrograms (..., n_mels, frames).

    The Hann window and the mel filterbank are built once, in ``__init__``, and kept as
    buffers (they move with the module to a GPU).

    Args:
        settings: the spectrogram's settings; None means :class:`LogMelSettings` defaults.

    Example:
        >>> import torch
        >>> logmel = LogMelSpectrogram(LogMelSettings(n_mels=32))
        >>> logmel(torch.zeros(16000)).shape
        torch.Size([32, 101])
    """

    def __init__(self, settings: LogMelSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or LogMelSettings()
        self.register_buffer("window", torch.hann_window(self.settings.n_fft), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(self.settings), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """The natural log of the mel power plus ``LOG_FLOOR``, float32."""
        s = self.settings
        leading = waveform.shape[:-1]
        flat = waveform.reshape(-1, waveform.shape[-1]).float()
        if flat.shape[-1] <= s.n_fft // 2:
            raise ValueError(
                f"a clip of {flat.shape[-1]} samples is too short for centred frames of "
                f"{s.n_fft} samples: it needs more than {s.n_fft // 2}"
            )
        spectrum = torch.stft(
            flat,
            s.n_fft,
            s.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spectrum.real**2 + spectrum.imag**2  # (batch, bins, frames)
        mel = torch.matmul(power.transpose(1, 2), self.filterbank).transpose(1, 2)
        return torch.log(mel + LOG_FLOOR).reshape(*leading, s.n_mels, -1)


def log_mel_frames(settings: LogMelSettings, seconds: float) -> int:
    """Frames of a clip of ``seconds`` at ``settings``' rate.

    Example:
        >>> log_mel_frames(LogMelSettings(), 0.95)
        96
    """
    return settings.frames(clip_samples(settings.sample_rate, seconds))


def clip_samples(sample_rate: int, seconds: float) -> int:
    """Samples of a clip of ``seconds`` (rounded to the nearest sample, at least 1).

    Example:
        >>> clip_samples(16000, 0.95)
        15200
    """
    return max(1, math.floor(sample_rate * seconds + 0.5))


class KaldiFilterbank(nn.Module):
    """Kaldi-style log mel filterbank features, as the Audio Spectrogram Transformer's feature
    extractor computes them (``ASTFeatureExtractor``, after ``torchaudio.compliance.kaldi``):
    frames of 25 ms every 10 ms without padding (Kaldi's ``snip_edges``), each with its mean
    removed, pre-emphasis 0.97, a symmetric Hann window, zero-padded to 512 samples, power
    spectrum, Kaldi's mel filters (1127 ln(1 + f / 700), triangles in mel from 20 Hz to the
    Nyquist frequency), natural log with a floor of float32's epsilon; then padded with zeros
    or cut to ``max_length`` frames and, with ``mean`` and ``std``, normalized as AST was
    trained: ``(x - mean) / (2 std)``.

    The spectrum is two matrix products with a precomputed discrete Fourier basis rather than
    an FFT, so the module exports to ONNX as it is.

    Args:
        sample_rate: samples per second (the model's).
        num_mel_bins: mel bands.
        max_length: frames of the output.
        mean: normalization mean, or None for none.
        std: normalization standard deviation.

    Example:
        >>> fbank = KaldiFilterbank(16000, num_mel_bins=32, max_length=100)
        >>> fbank(torch.zeros(2, 16000)).shape
        torch.Size([2, 100, 32])
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mel_bins: int = 128,
        max_length: int = 1024,
        mean: float | None = None,
        std: float = 1.0,
    ) -> None:
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        self.frame_length = round(0.025 * sample_rate)
        self.hop_length = round(0.010 * sample_rate)
        fft_length = 1 << (self.frame_length - 1).bit_length()  # Kaldi rounds to a power of 2
        self.max_length = int(max_length)
        self.mean, self.std = mean, float(std)
        filters = mel_filter_bank(
            num_frequency_bins=fft_length // 2 + 1,
            num_mel_filters=num_mel_bins,
            min_frequency=20,
            max_frequency=sample_rate // 2,
            sampling_rate=sample_rate,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
        n = torch.arange(self.frame_length, dtype=torch.float64)
        window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / (self.frame_length - 1))
        k = torch.arange(fft_length // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * n[:, None] * k[None, :] / fft_length  # the padding adds nothing
        basis = torch.cat([torch.cos(angle), torch.sin(angle)], dim=1) * window[:, None]
        self.bins = fft_length // 2 + 1
        self.register_buffer("basis", basis.float(), persistent=False)
        self.register_buffer("filters", torch.from_numpy(filters).float(), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveforms (n, samples) to features (n, max_length, num_mel_bins)."""
        x = waveform.float()
        if x.shape[-1] < self.frame_length:
            x = nn.functional.pad(x, (0, self.frame_length - x.shape[-1]))
        count = (x.shape[-1] - self.frame_length) // self.hop_length + 1
        starts = torch.arange(count, device=x.device) * self.hop_length
        offsets = torch.arange(self.frame_length, device=x.device)
        frames = x[:, starts[:, None] + offsets[None, :]]  # (n, T, frame_length)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        first = frames[..., :1] * (1 - PREEMPHASIS)
        frames = torch.cat([first, frames[..., 1:] - PREEMPHASIS * frames[..., :-1]], dim=-1)
        spectrum = torch.matmul(frames, self.basis)  # real and imaginary parts
        power = spectrum[..., : self.bins] ** 2 + spectrum[..., self.bins :] ** 2
        fbank = torch.log(torch.clamp(torch.matmul(power, self.filters), min=LOG_FLOOR))
        missing = self.max_length - fbank.shape[1]
        if missing > 0:
            fbank = nn.functional.pad(fbank, (0, 0, 0, missing))
        fbank = fbank[:, : self.max_length]
        if self.mean is None:
            return fbank
        return (fbank - self.mean) / (2 * self.std)
