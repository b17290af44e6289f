"""Tiny synthetic audio: classes differ in the pitch of a noisy harmonic tone."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

#: Fundamental frequency (Hz) of each class's tone.
PITCHES = (220.0, 370.0, 620.0, 1040.0)


def tone(
    frequency: float, seconds: float, rate: int, rng: np.random.Generator, noise: float = 0.05
) -> np.ndarray:
    """A tone with two random harmonics, a random onset and white noise, float32."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(
        rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * h * frequency * t + rng.uniform(0, 6.3))
        for h in (1, 2, 3)
    )
    envelope = np.clip((t - rng.uniform(0, seconds / 4)) * 20, 0, 1)
    signal = 0.3 * wave * envelope * rng.uniform(0.3, 1.0)
    return (signal + rng.normal(0, noise, t.shape)).astype(np.float32)


def write_tones(
    root: Path, per_class: int = 16, rate: int = 8000, seconds: float = 0.5, seed: int = 0
) -> Path:
    """root/<pitch class>/<i>.wav for each class of ``PITCHES``, the pitch jittered by 3%."""
    rng = np.random.default_rng(seed)
    for c, pitch in enumerate(PITCHES):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            wave = tone(pitch * rng.uniform(0.97, 1.03), seconds, rate, rng)
            soundfile.write(folder / f"{i:03d}.wav", wave, rate)
    return root


@pytest.fixture
def tones(tmp_path: Path) -> Path:
    """A folder of 64 labelled half-second 8 kHz tones in 4 pitch classes."""
    return write_tones(tmp_path / "tones")
