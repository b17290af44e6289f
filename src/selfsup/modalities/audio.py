"""Audio: folders of ``.wav``, ``.flac`` or ``.ogg`` files as log-mel spectrograms.

Each clip is decoded, mixed to mono, resampled, cropped or padded to a fixed length and turned
into a 64-band log-mel (1, n_mels, frames). The default objective is BYOL-A with its
AudioNTT2020 CNN; the encoder normalizes with the dataset's log-mel mean and std (BYOL-A's
pre-normalization); the raw-input baseline is the log-mel itself.

Example:
    >>> AUDIO.default_method, sorted(AUDIO.source_options)[:3]
    ('byola', ['clip_seconds', 'f_max', 'f_min'])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from selfsup.backbones import build_audio_backbone
from selfsup.config import PretrainConfig
from selfsup.data.audio import AudioFolderSource, is_audio_folder
from selfsup.data.base import Source
from selfsup.data.folders import INDEX_FILE, IndexCache
from selfsup.encoder import Encoder
from selfsup.modalities.base import Modality
from selfsup.views.audio import AudioViews, audio_recipe

#: The config fields that set how audio files become log-mels (the audio source's options).
AUDIO_OPTIONS = ("sample_rate", "clip_seconds", "n_mels", "n_fft", "hop_length", "f_min", "f_max")


class AudioModality(Modality):
    """Audio clips as log-mel spectrograms (1, n_mels, frames)."""

    name = "audio"
    source_options: ClassVar[frozenset[str]] = frozenset({*AUDIO_OPTIONS, "index"})
    stat_dims = 2
    default_method = "byola"
    default_protocols = ("knn", "linear", "fewshot")
    default_recipe = "audio"
    fallback_backbone = "byola-cnn"
    views_class = AudioViews
    recipe = staticmethod(audio_recipe)

    def claims(self, spec: str) -> bool:
        return is_audio_folder(spec)

    def open(self, spec: str | os.PathLike | Any, options: dict[str, Any]) -> Source:
        path = Path(spec).expanduser()
        if path.is_dir():
            return AudioFolderSource(path, **options)
        raise FileNotFoundError(f"{spec}: no such folder (audio is read from a folder of files)")

    def run_source_options(self, run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Later clips become log-mels with the run's settings."""
        options = {name: config.get(name) for name in AUDIO_OPTIONS}
        return {**options, "index": IndexCache(run_dir / INDEX_FILE)}

    def resume_options(self, run_dir: Path) -> dict[str, Any]:
        """A resumed run reads the files it started on (its positions in an epoch hold)."""
        return {"index": IndexCache(run_dir / INDEX_FILE, pinned=True)}

    def build_named(
        self, name: str, cfg: PretrainConfig, source: Source, mean: list[float], std: list[float]
    ) -> tuple[Encoder, dict[str, Any]]:
        n_mels, frames = (int(v) for v in source.first_item().shape[-2:])
        options = cfg.backbone_options
        return build_audio_encoder(name, n_mels, frames, mean[0], std[0], **options), {}

    def rebuild_encoder(self, spec: dict[str, Any]) -> Encoder:
        return build_audio_encoder(
            spec["backbone"],
            spec["n_mels"],
            spec["frames"],
            spec["mean"][0],
            spec["std"][0],
            **spec["options"],
        )


def build_audio_encoder(
    backbone: str, n_mels: int, frames: int, mean: float = 0.0, std: float = 1.0, **options: Any
) -> Encoder:
    """An audio encoder on log-mels (n, 1, n_mels, frames) from a registered audio backbone
    name and its options, normalizing with the dataset's log-mel ``mean`` and ``std``.

    Example:
        >>> import torch
        >>> enc = build_audio_encoder("byola-cnn", 64, 96, -6.0, 4.0, feature_dim=32)
        >>> enc(torch.zeros(2, 1, 64, 96)).shape
        torch.Size([2, 32])
    """
    module = build_audio_backbone(backbone, n_mels, frames, **options)
    spec = {
        "modality": "audio",
        "backbone": backbone,
        "n_mels": n_mels,
        "frames": frames,
        "options": options,
    }
    return AUDIO.wrap(module, None, [float(mean)], [float(std)], spec)


AUDIO = AudioModality()
