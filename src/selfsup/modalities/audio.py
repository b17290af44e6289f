"""Audio: folders of ``.wav``, ``.flac`` or ``.ogg`` files as log-mel spectrograms.

Each clip is decoded, mixed to mono, resampled, cropped or padded to a fixed length and turned
into a 64-band log-mel (1, n_mels, frames). The default objective is BYOL-A with its
AudioNTT2020 CNN; the encoder normalizes with the dataset's log-mel mean and std (BYOL-A's
pre-normalization); the raw-input baseline is the log-mel itself.

Pretrained Hugging Face audio models (``--backbone hf:PATH``: wav2vec2, HuBERT, WavLM,
data2vec-audio, AST) read the clips as waveforms (1, samples) at their own sampling rate and
compute their own features inside the encoder (``selfsup.backbones.hf``); the raw-input
baseline is then the default log-mel of those waveforms. A built-in backbone on waveforms
(a student distilled from such a model, which reads what its teacher reads, or
``--audio-input waveform``) computes its log-mels inside too (``LogMelFront``).

A folder of long recordings (the median file holds ``LONG_RECORDING_CLIPS`` clips or more)
is pretrained on every clip of every file (``training_source``); the other commands keep one
item a file and embed it as the mean of clips spread over it (``AudioFolderSource.parts``),
as BYOL-A pools a whole recording, so a two-minute file is not judged by its middle second.

Example:
    >>> AUDIO.default_method, sorted(AUDIO.source_options)[:3]
    ('byola', ['audio_input', 'clip_hop', 'clip_seconds'])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from selfsup.backbones import build_audio_backbone
from selfsup.backbones.audio import LogMelFront
from selfsup.backbones.hf import (
    HFAudioBackbone,
    audio_preprocessing,
    default_audio_pooling,
    is_hf_backbone,
    load_pretrained,
    model_from_config,
    model_kind,
    read_json,
    resolve_folder,
)
from selfsup.config import PretrainConfig
from selfsup.data.audio import POOLED_CLIPS, AudioFolderSource
from selfsup.data.base import Source
from selfsup.data.file_labels import LABEL_OPTIONS, folder_options
from selfsup.data.folders import INDEX_FILE, IndexCache
from selfsup.data.hub import AUDIO as HUB_AUDIO
from selfsup.data.hub import HubAudioSource, hub_files, hub_test_split, refuse_labels_table
from selfsup.data.logmel import LOG_FLOOR, LogMelSettings, LogMelSpectrogram
from selfsup.data.webdataset import WebDatasetAudioSource, webdataset_media
from selfsup.encoder import Encoder
from selfsup.modalities.base import Modality, channel_statistics, folder_media
from selfsup.views.audio import AudioViews, audio_recipe

#: The config fields that say how an encoder reading waveforms reads the files.
WAVEFORM_READING = ("audio_input", "sample_rate", "clip_seconds")
#: Clips read for the encoder's input statistics.
STATISTICS_CLIPS = 1024
#: Pretraining reads every file as clips, one after another, when the median file holds at
#: least this many clips (15.2 s at the default 0.95 s clips).
LONG_RECORDING_CLIPS = 16

#: The config fields that set how audio files become log-mels (the audio source's options).
AUDIO_OPTIONS = (
    "sample_rate", "clip_seconds", "clip_hop", "n_mels", "n_fft", "hop_length", "f_min",
    "f_max", "audio_input",
)  # fmt: skip


class AudioModality(Modality):
    """Audio clips as log-mel spectrograms (1, n_mels, frames)."""

    name = "audio"
    memory_remedy = "a shorter --clip-seconds or a smaller --backbone"
    source_options: ClassVar[frozenset[str]] = frozenset({*AUDIO_OPTIONS, "index", *LABEL_OPTIONS})
    stat_dims = 2
    default_method = "byola"
    default_protocols = ("knn", "linear", "fewshot")
    default_recipe = "audio"
    fallback_backbone = "byola-cnn"
    # bf16 where the processor runs it fast: on 2 cores with AVX512-BF16, the model alone,
    # byola-cnn 250-350 -> 450-530 clips/s in batches of 5 and 175-195 -> 425-455 in 32,
    # spectrogram-vit 670-820 -> 950-1,070 (5) and 960-1,050 -> 2,140-2,260 (32); a call
    # centre's calls (32 clips each, read ahead by a worker) embedded 1.3x faster end to
    # end, where reading then holds it back; a wav2vec2-base 9-10 -> 20-24.
    embed_precision = "auto"
    views_class = AudioViews
    recipe = staticmethod(audio_recipe)

    def claims(self, spec: str) -> bool:
        return folder_media(spec) == "audio" or (
            not Path(spec).is_dir() and hub_files(spec, HUB_AUDIO) is not None
        )  # a folder's kind is its folder_media; a file or PATH:SPLIT is looked at

    def open(self, spec: str | os.PathLike | Any, options: dict[str, Any]) -> Source:
        """A folder of audio files, a Hugging Face dataset's split of sounds
        (``PATH[:SPLIT]``, :class:`~selfsup.data.hub.HubAudioSource`), or WebDataset shards
        of sounds (:class:`~selfsup.data.webdataset.WebDatasetAudioSource`)."""
        if hub_files(spec, HUB_AUDIO) is not None:
            refuse_labels_table(spec, options)
            kept = {k: v for k, v in options.items() if k not in ("labels", "index")}
            source: Source = HubAudioSource(str(spec), **kept)
            source.pooled = _long_recordings(source)
            return source
        path = Path(spec).expanduser()
        if webdataset_media(path) == self.name:
            if options.get("labels") is not None:
                raise ValueError(
                    f"{spec}: WebDataset shards keep their labels in .cls members; --labels "
                    "is for a folder's files"
                )
            unused = ("labels", "index", "label_column", "id_column")
            source = WebDatasetAudioSource(
                path, **{k: v for k, v in options.items() if k not in unused}
            )
            source.pooled = _long_recordings(source)
            return source
        if path.is_dir():
            source = AudioFolderSource(path, **folder_options(options))
            source.pooled = _long_recordings(source)
            return source
        raise FileNotFoundError(
            f"{spec}: no such folder (audio is read from a folder of files or of .tar shards)"
        )

    def official_test(self, spec: str) -> str | None:
        """A Hugging Face dataset's labelled test (else validation) split."""
        return hub_test_split(spec)

    def run_source_options(self, run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Later clips become log-mels with the run's settings."""
        options = {name: config.get(name) for name in AUDIO_OPTIONS}
        return {**options, "index": IndexCache(run_dir / INDEX_FILE)}

    def resume_options(self, run_dir: Path) -> dict[str, Any]:
        """A resumed run reads the files it started on (its positions in an epoch hold)."""
        return {"index": IndexCache(run_dir / INDEX_FILE, pinned=True)}

    def backbone_source_options(self, cfg: PretrainConfig) -> dict[str, Any]:
        """A pretrained model's clips: waveforms at its sampling rate; for AST, as long as
        its ``max_length`` frames unless ``--clip-seconds`` says otherwise. ``--init RUN``
        reads the clips as that run did. A student reads the clips as its teacher does: a
        waveform teacher's clips at its rate (the student computes its log-mels inside)."""
        teacher = cfg.teacher if cfg.method == "distill" else None
        taught = _waveform_options(str(teacher), cfg) if teacher is not None else {}
        if cfg.init is not None:
            own = _waveform_options(str(cfg.init), cfg)
        elif is_hf_backbone(cfg.backbone):
            own = pretrained_audio_options(str(cfg.backbone), cfg.sample_rate, cfg.clip_seconds)
        else:
            return taught  # a built-in student reads what its teacher reads
        if taught and own.get("sample_rate") != taught["sample_rate"]:
            raise ValueError(
                f"--teacher {teacher} reads audio at {taught['sample_rate']} Hz and the student "
                f"at {own.get('sample_rate') or 'its log-mels'}: both must read the same clips; "
                "distill into a built-in backbone (it reads what its teacher reads) or a "
                "model of the teacher's rate"
            )
        return own

    def statistics(self, source: Source) -> tuple[list[float], list[float]]:
        """The log-mel mean and std over up to ``STATISTICS_CLIPS`` clips spread over the
        data: one channel, whose two numbers more clips would not move (4,096 clips of long
        recordings took 26 s to read)."""
        if source.first_item().ndim != 3:
            return channel_statistics(source, limit=STATISTICS_CLIPS)
        logmel = LogMelSpectrogram(_settings(source))  # waveforms: of the log-mels inside
        return channel_statistics(
            source, limit=STATISTICS_CLIPS, transform=lambda x: logmel(x[:, 0]).unsqueeze(1)
        )

    def training_source(self, source: Source, cfg: PretrainConfig) -> tuple[Source, str | None]:
        """Long recordings are trained on whole: when the median file (of up to 100 spread
        over the folder) holds at least ``LONG_RECORDING_CLIPS`` clips, pretraining reads
        every file as clips of ``--clip-seconds``, one after another, instead of each
        file's centre clip (which is less than a tenth of a 15-second file). Collections of
        short clips (speech commands, 5-second sound events, AudioSet's 10 seconds) stay one
        item a file. The other commands keep one item a file (unless ``--clip-hop``), and
        embed it as the mean of up to ``POOLED_CLIPS`` clips spread over it (``pooled``).

        Example:
            >>> import tempfile, numpy as np, soundfile
            >>> folder = Path(tempfile.mkdtemp())
            >>> soundfile.write(folder / "a.wav", np.zeros(32_000, np.float32), 1000)
            >>> src = AudioFolderSource(folder, sample_rate=1000, n_fft=64, hop_length=16)
            >>> cut, note = AudioModality().training_source(src, PretrainConfig(data="-"))
            >>> len(src), len(cut), note.startswith("files of 32 s")
            (1, 34, True)
        """
        if cfg.clip_hop is not None or not _long_recordings(source):
            return source, None
        cut = source.clipped(source.clip_seconds)
        return cut, (
            f"files of {source.median_seconds:,.0f} s (the median): trained on {len(cut):,} "
            f"clips of {source.clip_seconds:g} s, one after another, not on each file's centre "
            "clip; --clip-hop SECONDS makes clips the items of every command (embed, evaluate)"
        )

    def frozen_encoder(self, name: str) -> tuple[Encoder, Callable[[Path], None]]:
        """The model as it is, reading waveforms at its own sampling rate."""
        options = pretrained_audio_options(name)
        return build_pretrained_audio_encoder(name, options["clip_seconds"]), lambda _: None

    def describe_inputs(
        self,
        spec: dict[str, Any],
        run_dir: Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        if spec.get("audio_input") == "waveform":
            return (
                f"float32 mono waveforms (batch, 1, samples) at {spec['sample_rate']} Hz, "
                "values in [-1, 1]; the model's own features and normalization are inside."
            )
        return logmel_inputs_note(spec, config or {})

    def build_named(
        self, name: str, cfg: PretrainConfig, source: Source, mean: list[float], std: list[float]
    ) -> tuple[Encoder, dict[str, Any]]:
        options = cfg.backbone_options
        first = None if is_hf_backbone(name) else source.first_item()
        if first is None:
            clip = float(getattr(source, "clip_seconds", None) or cfg.clip_seconds or 1.0)
            encoder = build_pretrained_audio_encoder(name, clip, **options)
        elif first.ndim == 3:  # (1, 1, samples): waveforms, whose log-mels the encoder makes
            settings = _settings(source)
            clip = int(first.shape[-1]) / settings.sample_rate
            encoder = build_waveform_audio_encoder(name, settings, clip, mean[0], std[0], **options)
        else:
            n_mels, frames = (int(v) for v in first.shape[-2:])
            return build_audio_encoder(name, n_mels, frames, mean[0], std[0], **options), {}
        return encoder, {k: encoder.spec[k] for k in WAVEFORM_READING}

    def raw_batch(self, x: torch.Tensor, source: Source) -> torch.Tensor:
        """Log-mels as they are; waveforms as the default log-mel of their clip."""
        if x.ndim != 3:
            return x
        rate = int(getattr(source, "settings", LogMelSettings()).sample_rate)
        return LogMelSpectrogram(LogMelSettings(sample_rate=rate))(x[:, 0])

    def rebuild_encoder(self, spec: dict[str, Any]) -> Encoder:
        if is_hf_backbone(spec["backbone"]):
            return rebuild_pretrained_audio_encoder(spec)
        if spec.get("audio_input") == "waveform":
            return build_waveform_audio_encoder(
                spec["backbone"],
                LogMelSettings(**spec["logmel"]),
                spec["clip_seconds"],
                spec["logmel_mean"],
                spec["logmel_std"],
                **spec["options"],
            )
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


def build_waveform_audio_encoder(
    backbone: str,
    settings: LogMelSettings,
    clip_seconds: float,
    mean: float = 0.0,
    std: float = 1.0,
    **options: Any,
) -> Encoder:
    """A built-in audio backbone reading waveforms (n, 1, samples) at ``settings``' rate: their
    log-mels are computed inside and normalized with the data's log-mel ``mean`` and ``std``
    (:class:`LogMelFront`).

    Example:
        >>> import torch
        >>> settings = LogMelSettings(sample_rate=8000, n_fft=128, hop_length=64, n_mels=32)
        >>> enc = build_waveform_audio_encoder("byola-cnn", settings, 1.0, -6.0, 4.0,
        ...                                    feature_dim=16, width=8)
        >>> enc(torch.zeros(2, 1, 8000)).shape, enc.spec["audio_input"]
        (torch.Size([2, 16]), 'waveform')
    """
    frames = settings.frames(round(clip_seconds * settings.sample_rate))
    module = build_audio_backbone(backbone, settings.n_mels, frames, **options)
    spec = {
        "modality": "audio",
        "backbone": backbone,
        "n_mels": settings.n_mels,
        "frames": frames,
        "options": options,
        "audio_input": "waveform",
        "sample_rate": settings.sample_rate,
        "clip_seconds": clip_seconds,
        "logmel": settings.to_dict(),
        # the encoder's own normalization (mean, std) is none: the log-mels' is inside
        "logmel_mean": float(mean),
        "logmel_std": float(std),
    }
    front = LogMelFront(settings, mean, std, module)
    return Encoder(front, None, [0.0], [1.0], spec, modality="audio", normalize=False)


def _settings(source: Source) -> LogMelSettings:
    """The log-mel settings an audio source reads with (its sampling rate: a waveform
    teacher's)."""
    return getattr(source, "settings", None) or LogMelSettings()


def _waveform_options(name: str, cfg: PretrainConfig) -> dict[str, Any]:
    """How the data is read for a run's or an ``hf:`` model's encoder when it reads
    waveforms (a teacher, or the run ``--init`` starts from); nothing for log-mel ones."""
    if is_hf_backbone(name):
        if model_kind(read_json(resolve_folder(name) / "config.json")) != "audio":
            return {}
        return pretrained_audio_options(name, cfg.sample_rate, cfg.clip_seconds)
    spec = read_json(Path(name) / "encoder.json")
    if spec.get("audio_input") != "waveform":
        return {}
    return {k: spec[k] for k in WAVEFORM_READING}


def pretrained_audio_options(
    name: str, sample_rate: int | None = None, clip_seconds: float | None = None
) -> dict[str, Any]:
    """How the data is read for the pretrained audio model ``hf:PATH_OR_ID``: waveforms at its
    sampling rate (another ``sample_rate`` is refused), clips of ``clip_seconds`` (by default
    what fills AST's ``max_length`` frames; 0.95 s, the audio default, for waveform models).

    Raises:
        ValueError: ``sample_rate`` is not the model's.
    """
    folder = resolve_folder(name)
    config = read_json(folder / "config.json")
    pre = audio_preprocessing(folder, config)
    if sample_rate is not None and int(sample_rate) != pre.sample_rate:
        raise ValueError(
            f"--sample-rate {sample_rate}: {name} was trained on {pre.sample_rate} Hz audio; "
            "leave --sample-rate out (files are resampled to the model's rate)"
        )
    clip = clip_seconds or pre.clip_seconds(str(config.get("model_type"))) or 0.95
    return {"audio_input": "waveform", "sample_rate": pre.sample_rate, "clip_seconds": clip}


def build_pretrained_audio_encoder(
    name: str, clip_seconds: float, pooling: str | None = None
) -> Encoder:
    """The encoder of a pretrained audio model ``hf:PATH_OR_ID`` (weights loaded) over
    waveforms (n, 1, samples) at the model's sampling rate, its own feature extraction inside.

    Args:
        name: ``hf:`` and a folder or model id.
        clip_seconds: the length of the clips it reads (kept in its spec, for later data).
        pooling: ``mean``, ``cls`` or ``pooler``; by default ``mean`` for waveform models and
            ``pooler`` for AST (see ``selfsup.backbones.hf``).
    """
    model = load_pretrained(name)
    if model.kind != "audio":
        raise ValueError(f"{name}: a {model.kind} model, not an audio model")
    pre = audio_preprocessing(model.folder, model.config)
    pooling = pooling or default_audio_pooling(model.config)
    module = HFAudioBackbone(model.module, pooling, pre)
    spec = {
        "modality": "audio",
        "backbone": name,
        "audio_input": "waveform",
        "sample_rate": pre.sample_rate,
        "clip_seconds": float(clip_seconds),
        "options": {"pooling": pooling},
        "pretrained": {
            "source": model.source,
            "sha256": model.sha256,
            "config": model.config,
            "preprocessing": pre.to_dict(),
        },
    }
    return _wrap_waveform_encoder(module, spec)


def rebuild_pretrained_audio_encoder(spec: dict[str, Any]) -> Encoder:
    """A pretrained audio encoder as ``encoder.json``'s ``spec`` describes it, with random
    weights (a run's ``encoder.safetensors`` holds its own); the original folder is not read."""
    from selfsup.backbones.hf import AudioPreprocessing

    saved = spec["pretrained"]
    model = model_from_config(saved["config"])
    pre = AudioPreprocessing(**saved["preprocessing"])
    module = HFAudioBackbone(model, spec["options"]["pooling"], pre)
    return _wrap_waveform_encoder(module, dict(spec))


def _wrap_waveform_encoder(module: HFAudioBackbone, spec: dict[str, Any]) -> Encoder:
    """An encoder that passes waveforms to the model unchanged (it normalizes them itself)."""
    return Encoder(module, None, [0.0], [1.0], spec, modality="audio", normalize=False)


def _long_recordings(source: Source) -> bool:
    """Whether ``source`` is a folder read one centre clip a file whose median file holds at
    least ``LONG_RECORDING_CLIPS`` clips (its headers are read once, whoever asks first)."""
    return (
        isinstance(source, AudioFolderSource)
        and not source.cut_into_clips
        and source.median_seconds >= LONG_RECORDING_CLIPS * source.clip_seconds
    )


AUDIO = AudioModality()


def logmel_inputs_note(spec: dict[str, Any], config: dict[str, Any]) -> str:
    """What an exported log-mel encoder takes and how selfsup makes it from an audio file
    (:mod:`selfsup.data.audio`, :mod:`selfsup.data.logmel`), with the log-mel as plain
    PyTorch code a user runs to get the same embeddings; ``config`` is the run's.

    Example:
        >>> note = logmel_inputs_note({"n_mels": 64, "frames": 96}, {})
        >>> note.splitlines()[0]
        'float32 log-mel spectrograms (batch, 1, 64, 96); the normalization is inside.'
    """
    defaults = LogMelSettings()
    settings = LogMelSettings(
        **{
            k: config.get(k) if config.get(k) is not None else getattr(defaults, k)
            for k in ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max")
        }
    )
    s, seconds = settings, config.get("clip_seconds") or 0.95
    clips = (
        f"every file is cut into clips of {seconds:g} s, one every {config['clip_hop']:g} s "
        "(each an item)"
        if config.get("clip_hop")
        else f"each file's centre {seconds:g} s (zero-padded equally on both sides when shorter)"
    )
    return f"""float32 log-mel spectrograms (batch, 1, {spec.get("n_mels")}, \
{spec.get("frames")}); the normalization is inside.

selfsup reads an audio file into that shape so (do the same to get the same embeddings):
decoded, mixed down to mono (the channels' mean), resampled to {s.sample_rate} Hz (polyphase,
`scipy.signal.resample_poly`), {clips}; then the log-mel of each clip: a centred STFT
(reflect padding) with a {s.n_fft}-sample Hann window every {s.hop_length} samples, its
power, {s.n_mels} triangular mel filters (HTK mel scale, peak 1) from {s.f_min:g} to \
{s.top_frequency:g} Hz, the natural log of the filtered power plus {LOG_FLOOR:.6g}. A long
recording that selfsup embeds whole gets the mean of its clips' embeddings (up to \
{POOLED_CLIPS} clips spread over it). The log-mel in PyTorch:

```python
import torch

def selfsup_input(clip):  # float32 tensor (samples,): one mono clip at {s.sample_rate} Hz
    spectrum = torch.stft(clip, {s.n_fft}, {s.hop_length}, window=torch.hann_window({s.n_fft}),
                          center=True, pad_mode="reflect", return_complex=True)
    power = spectrum.real**2 + spectrum.imag**2  # (bins, frames)
    mel = lambda hz: 2595 * torch.log10(1 + hz / 700)
    bins = torch.linspace(0, {s.sample_rate / 2!r}, {s.n_fft // 2 + 1}, dtype=torch.float64)
    edges = torch.tensor([{float(s.f_min)!r}, {float(s.top_frequency)!r}], dtype=torch.float64)
    steps = torch.linspace(*mel(edges).tolist(), {s.n_mels + 2}, dtype=torch.float64)
    corners = 700 * (10 ** (steps / 2595) - 1)
    offsets = corners[None, :] - bins[:, None]
    rising = -offsets[:, :-2] / corners.diff()[:-1]
    falling = offsets[:, 2:] / corners.diff()[1:]
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0).float()
    return torch.log(filters.T @ power + {LOG_FLOOR!r})[None, None]
```"""
