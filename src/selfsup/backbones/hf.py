"""Pretrained Hugging Face models as backbones: ``--backbone hf:PATH_OR_ID``.

``PATH_OR_ID`` is a local folder written by ``save_pretrained`` (config.json and the weights
as ``model.safetensors``), or a model id found in the Hugging Face cache; an id not in the
cache is downloaded through ``huggingface_hub`` only where the network allows it. Weights are
read from safetensors only: a folder with only ``pytorch_model.bin`` (a pickle) is refused.

Two kinds of models are read, each with its own preprocessing and a documented pooling:

- **text**: BERT-family encoders (BERT, MiniLM, RoBERTa, DistilBERT, MPNet, ELECTRA...), read
  with the model's own tokenizer (its ``tokenizer.json``, see
  ``selfsup.data.tokenizer.TextTokenizer.from_pretrained``). Pooling ``mean`` over the
  non-padding tokens by default (what sentence-transformers folders such as all-MiniLM-L6-v2
  declare in ``1_Pooling/config.json``; ``cls`` when they declare that), or ``cls`` (the first
  token's last hidden state) or ``pooler`` (the model's pooler output).
- **images**: ViT, DINOv2, ConvNeXt, ResNet, and the vision towers of CLIP and SigLIP, fed
  images normalized with the model's ``preprocessor_config.json`` mean and std at its size.
  Pooling ``cls`` for ViT and DINOv2 (the class token of the last layer, layer-normed),
  ``pooler`` for the others (global average pooling for ResNet and ConvNeXt, the projection-
  free pooled output for CLIP and SigLIP), or ``mean`` over the patch tokens.

- **audio**: wav2vec2, HuBERT, WavLM and data2vec-audio on waveforms at the model's sampling
  rate, each clip made zero-mean and unit-variance where ``preprocessor_config.json`` says
  ``do_normalize`` (``Wav2Vec2FeatureExtractor``); the Audio Spectrogram Transformer (AST) on
  Kaldi filterbank features computed inside the encoder as ``ASTFeatureExtractor`` computes
  them (``selfsup.data.logmel.KaldiFilterbank``). Pooling ``mean`` over the frames for the
  waveform models (they have neither a class token nor a pooler), ``pooler`` for AST (the mean
  of its class and distillation tokens), or ``cls`` (AST's first token).

A run keeps the model's config in ``encoder.json`` and its weights in ``encoder.safetensors``,
with where they came from (``source``) and the SHA-256 of the weights file (``sha256``), so
``selfsup.load(RUN)`` needs neither the original folder nor a network.

Example:
    >>> import tempfile
    >>> from transformers import BertConfig, BertModel
    >>> folder = tempfile.mkdtemp()
    >>> BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
    ...                      num_attention_heads=2, intermediate_size=32)).save_pretrained(folder)
    >>> model = load_pretrained(folder)
    >>> model.kind, model.config["model_type"], len(model.sha256)
    ('text', 'bert', 64)
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfsup.core.files import read_json, read_json_object

#: How a backbone name says "a pretrained Hugging Face model".
HF_PREFIX = "hf:"
WEIGHTS_NAME = "model.safetensors"
#: Model types read as image encoders, and the pooling each gets by default.
IMAGE_POOLING = {
    "vit": "cls",
    "dinov2": "cls",
    "dinov2_with_registers": "cls",
    "deit": "cls",
    "convnext": "pooler",
    "convnextv2": "pooler",
    "resnet": "pooler",
    "clip_vision_model": "pooler",
    "siglip_vision_model": "pooler",
}
#: Audio model types read on waveforms, and the one read on Kaldi filterbank features (AST).
WAVEFORM_TYPES = {"wav2vec2", "hubert", "wavlm", "data2vec-audio"}
FILTERBANK_TYPES = {"audio-spectrogram-transformer"}
#: Audio model types that are not read: encoder-decoders whose encoder is not a clip encoder.
UNREAD_AUDIO_TYPES = {"whisper", "speech_to_text", "speecht5", "seamless_m4t"}
#: Multimodal models whose vision tower is read as the image encoder.
VISION_TOWERS = {"clip": "clip_vision_model", "siglip": "siglip_vision_model"}
POOLINGS = ("mean", "cls", "pooler")


def is_hf_backbone(name: str | None) -> bool:
    """Whether a backbone name is ``hf:PATH_OR_ID``.

    Example:
        >>> is_hf_backbone("hf:./minilm"), is_hf_backbone("resnet18"), is_hf_backbone(None)
        (True, False, False)
    """
    return isinstance(name, str) and name.startswith(HF_PREFIX)


def resolve_folder(name: str) -> Path:
    """The local folder of ``hf:PATH_OR_ID`` (or of a bare path or id).

    A folder path is used as it is; an id (``org/model``) is looked up in the Hugging Face
    cache, then downloaded where the network allows it.

    Raises:
        FileNotFoundError: neither a folder nor a cached or downloadable model, with the
            reason.
    """
    spec = name.removeprefix(HF_PREFIX)
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{name}: {path} is a file; give the model's folder")
    looks_like_id = spec.count("/") <= 1 and not spec.startswith((".", "/", "~"))
    if not looks_like_id:
        raise FileNotFoundError(f"{name}: no such folder")
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model"]
    try:
        return Path(snapshot_download(spec, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not in the cache: try the network, where there is one
        pass
    try:
        return Path(snapshot_download(spec, allow_patterns=patterns))
    except Exception as err:
        raise FileNotFoundError(
            f"{name}: not a folder, not in the Hugging Face cache, and not downloadable here "
            f"({type(err).__name__}); save the model with save_pretrained and give its folder"
        ) from None


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks of 8 MB.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x"
        >>> _ = f.write_bytes(b"abc")
        >>> file_sha256(f)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Pretrained:
    """A pretrained model read from a folder.

    Attributes:
        module: the transformers model (``PreTrainedModel``), weights loaded.
        kind: ``text``, ``image`` or ``audio``.
        config: the model's config as a dict (``to_dict``), enough to rebuild it.
        source: the folder or id it was read from.
        sha256: the SHA-256 of its weights file.
        folder: the local folder.
    """

    module: nn.Module
    kind: str
    config: dict[str, Any]
    source: str
    sha256: str
    folder: Path


def model_kind(config: dict[str, Any], path: str = "config.json") -> str:
    """``image`` for the image model types of ``IMAGE_POOLING`` (and CLIP/SigLIP), ``audio``
    for ``WAVEFORM_TYPES`` and ``FILTERBANK_TYPES``, else ``text`` for encoders with a
    vocabulary.

    Raises:
        ValueError: a model type that is none of these (decoders, encoder-decoders).

    Example:
        >>> bert = {"model_type": "bert", "vocab_size": 9}
        >>> hubert = {"model_type": "hubert"}
        >>> model_kind({"model_type": "dinov2"}), model_kind(bert), model_kind(hubert)
        ('image', 'text', 'audio')
    """
    kind = config.get("model_type")
    if kind in UNREAD_AUDIO_TYPES:
        raise ValueError(
            f"{path}: model type {kind!r} is not read here: it is an encoder-decoder; audio "
            f"hf: backbones are {', '.join(sorted(WAVEFORM_TYPES | FILTERBANK_TYPES))}"
        )
    if kind in IMAGE_POOLING or kind in VISION_TOWERS:
        return "image"
    if kind in WAVEFORM_TYPES or kind in FILTERBANK_TYPES:
        return "audio"
    if "vocab_size" in config and not config.get("is_decoder", False):
        return "text"
    raise ValueError(
        f"{path}: model type {kind!r} is not read here; hf: backbones are text encoders "
        f"(BERT family), image models ({', '.join(sorted(IMAGE_POOLING))}, clip, siglip) or "
        f"audio models ({', '.join(sorted(WAVEFORM_TYPES | FILTERBANK_TYPES))})"
    )


def load_pretrained(name: str) -> Pretrained:
    """The model of ``hf:PATH_OR_ID`` with its weights (see the module).

    Raises:
        FileNotFoundError: no such folder or model, or no ``model.safetensors`` in it.
        ValueError: a model type that is not read here, or a damaged config.
    """
    from transformers import AutoModel

    folder = resolve_folder(name)
    config_path = folder / "config.json"
    config = read_json_object(config_path, missing_ok=True)
    if not config:
        raise FileNotFoundError(f"{name}: no config.json in {folder} (not a Hugging Face folder)")
    kind = model_kind(config, str(config_path))
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise FileNotFoundError(
            f"{name}: no {WEIGHTS_NAME} in {folder} (found: {found}); weights are read from "
            "safetensors only (a .bin file is a pickle); convert it with save_pretrained("
            "safe_serialization=True)"
        )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars, on every load
    hf_logging.set_verbosity_error()  # a CLIP tower's load lists the text tower's weights
    options = {"local_files_only": True, "use_safetensors": True}
    if config.get("model_type") in VISION_TOWERS:
        tower = _vision_tower_class(config["model_type"])
        module = tower.from_pretrained(folder, **options)
    else:
        module = AutoModel.from_pretrained(folder, **options)
    module.eval()
    return Pretrained(
        module=module,
        kind=kind,
        config=module.config.to_dict(),
        source=name.removeprefix(HF_PREFIX),
        sha256=file_sha256(weights),
        folder=folder,
    )


def _vision_tower_class(model_type: str) -> type:
    from transformers import CLIPVisionModel, SiglipVisionModel

    return {"clip": CLIPVisionModel, "siglip": SiglipVisionModel}[model_type]


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """A model with random weights built from a saved config dict (a run's ``encoder.json``).

    Example:
        >>> model_from_config({"model_type": "bert", "vocab_size": 20, "hidden_size": 8,
        ...     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16}
        ...     ).config.hidden_size
        8
    """
    from transformers import AutoConfig, AutoModel

    settings = dict(config)
    model_type = settings.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ValueError("the saved model config has no model_type")
    built = AutoConfig.for_model(model_type, **settings)
    return AutoModel.from_config(built)


def _pool(hidden: torch.Tensor, keep: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """``mean`` of the kept tokens, or the first token (``cls``)."""
    if pooling == "cls":
        return hidden[:, 0]
    if keep is None:
        return hidden.mean(dim=1)
    weights = keep.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class HFTextBackbone(nn.Module):
    """A pretrained text encoder over selfsup token ids (0 = padding).

    The ids come from the model's own tokenizer, renumbered so that padding, unknown and
    mask tokens sit at ids 0, 1 and 2 as everywhere in selfsup; ``to_model`` maps them back
    to the model's ids (see ``TextTokenizer.from_pretrained``).

    Args:
        model: the transformers encoder.
        to_model: the model's id of each selfsup id.
        pooling: ``mean``, ``cls`` or ``pooler`` (see the module).
        max_length: the most tokens read per text.
        normalize: divide each embedding by its length (what sentence-transformers folders
            that end with a ``Normalize`` module do).
    """

    def __init__(
        self,
        model: nn.Module,
        to_model: torch.Tensor,
        pooling: str,
        max_length: int,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.model = model
        self.register_buffer("to_model", to_model.long(), persistent=False)
        self.pooling = pooling
        self.max_length = int(max_length)
        self.normalize = bool(normalize)
        self.feature_dim = int(model.config.hidden_size)

    @property
    def token_embedding(self) -> nn.Embedding:
        """The embedding of the (model's) token ids."""
        return self.model.get_input_embeddings()

    def block_list(self) -> list[nn.Module]:
        """The embeddings, then each transformer layer, input to output (for layer-wise
        learning rates and frozen early blocks)."""
        return [self.model.get_input_embeddings(), *_layers(self.model)]

    def _encode(self, ids: torch.Tensor) -> tuple[Any, torch.Tensor]:
        ids = ids[:, : self.max_length].long()
        keep = ids != 0
        out = self.model(input_ids=self.to_model[ids], attention_mask=keep.long())
        return out, keep

    def tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token outputs ``(n, L, dim)``."""
        return self._encode(ids)[0].last_hidden_state

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings ``(n, dim)``."""
        out, keep = self._encode(ids)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        else:
            pooled = _pool(out.last_hidden_state, keep, self.pooling)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


class HFImageBackbone(nn.Module):
    """A pretrained image model over normalized images ``(n, 3, H, W)``.

    Args:
        model: the transformers vision model.
        pooling: ``cls``, ``pooler`` or ``mean`` (see the module).
        image_size: the side it was pretrained at; other sides interpolate the position
            embeddings of ViTs.
    """

    def __init__(self, model: nn.Module, pooling: str, image_size: int) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.image_size = int(image_size)
        self.model_type = model.config.model_type
        self.feature_dim = _image_feature_dim(model.config)

    def block_list(self) -> list[nn.Module]:
        """The stem or patch embedding, then each stage or layer, input to output."""
        return [*_stem(self.model), *_layers(self.model)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``(n, feature_dim)``."""
        kwargs: dict[str, Any] = {}
        if self.model_type in ("vit", "deit") and x.shape[-1] != self.image_size:
            kwargs["interpolate_pos_encoding"] = True
        out = self.model(pixel_values=x, **kwargs)
        if self.pooling == "pooler":
            return out.pooler_output.flatten(1)
        hidden = out.last_hidden_state
        if hidden.ndim == 4:  # convolutional maps (n, C, h, w)
            hidden = hidden.flatten(2).transpose(1, 2)
            return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)
        if self.pooling == "cls":
            return hidden[:, 0]
        return hidden[:, 1:].mean(dim=1)  # the patch tokens


@dataclass(frozen=True)
class AudioPreprocessing:
    """How a pretrained audio model reads a clip (its ``preprocessor_config.json``).

    Attributes:
        sample_rate: the rate the model was trained at.
        do_normalize: waveform models: make each clip zero-mean and unit-variance.
        num_mel_bins: AST: mel bands of its filterbank features.
        max_length: AST: frames its features are padded or cut to.
        mean: AST: the mean its features are normalized with.
        std: AST: the standard deviation they are normalized with.
    """

    sample_rate: int = 16000
    do_normalize: bool = True
    num_mel_bins: int = 128
    max_length: int = 1024
    mean: float = -4.2677393
    std: float = 4.5689974

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (kept in a run's ``encoder.json``)."""
        return dict(self.__dict__)

    def clip_seconds(self, kind: str) -> float | None:
        """The clip length that fills AST's ``max_length`` frames, None for waveform models.

        Example:
            >>> round(AudioPreprocessing().clip_seconds("audio-spectrogram-transformer"), 3)
            10.255
        """
        if kind not in FILTERBANK_TYPES:
            return None
        return (0.015 + self.max_length * 0.010) if self.max_length else None


def audio_preprocessing(folder: Path, config: dict[str, Any]) -> AudioPreprocessing:
    """The model's :class:`AudioPreprocessing` from ``preprocessor_config.json`` (the feature
    extractor's defaults where a value, or the file, is absent).

    Example:
        >>> audio_preprocessing(Path("/nonexistent"), {"model_type": "hubert"}).sample_rate
        16000
    """
    pre = read_json_object(folder / "preprocessor_config.json", missing_ok=True)
    defaults = AudioPreprocessing()
    try:
        found = AudioPreprocessing(
            sample_rate=int(pre.get("sampling_rate", defaults.sample_rate)),
            do_normalize=bool(pre.get("do_normalize", defaults.do_normalize)),
            num_mel_bins=int(pre.get("num_mel_bins", config.get("num_mel_bins", 128))),
            max_length=int(pre.get("max_length", config.get("max_length", 1024))),
            mean=float(pre.get("mean", defaults.mean)),
            std=float(pre.get("std", defaults.std)),
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{folder / 'preprocessor_config.json'}: {err}") from None
    if found.sample_rate < 1000 or found.num_mel_bins < 1 or found.max_length < 1 or found.std <= 0:
        raise ValueError(f"{folder / 'preprocessor_config.json'}: settings out of range: {found}")
    return found


def default_audio_pooling(config: dict[str, Any]) -> str:
    """``pooler`` for AST (its class and distillation tokens), ``mean`` for waveform models.

    Example:
        >>> default_audio_pooling({"model_type": "wav2vec2"})
        'mean'
    """
    return "pooler" if config.get("model_type") in FILTERBANK_TYPES else "mean"


class HFAudioBackbone(nn.Module):
    """A pretrained audio model over waveforms ``(n, 1, samples)`` (or ``(n, samples)``) at its
    sampling rate, computing the model's own input features (see the module).

    Args:
        model: the transformers audio model.
        pooling: ``mean``, ``cls`` or ``pooler`` (AST only for the last two).
        preprocessing: how the model reads a clip.
    """

    def __init__(self, model: nn.Module, pooling: str, preprocessing: AudioPreprocessing) -> None:
        super().__init__()
        from selfsup.data.logmel import KaldiFilterbank

        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.model_type = model.config.model_type
        if pooling != "mean" and self.model_type not in FILTERBANK_TYPES:
            raise ValueError(
                f"pooling {pooling!r}: a {self.model_type} model has no class token or pooler; "
                "use mean"
            )
        self.model = model
        self.pooling = pooling
        self.preprocessing = preprocessing
        self.feature_dim = int(model.config.hidden_size)
        self.fbank = None
        if self.model_type in FILTERBANK_TYPES:
            p = preprocessing
            self.fbank = KaldiFilterbank(
                p.sample_rate, p.num_mel_bins, p.max_length, p.mean if p.do_normalize else None,
                p.std,
            )  # fmt: skip

    def block_list(self) -> list[nn.Module]:
        """The convolutional feature encoder or patch embedding, then each transformer layer,
        input to output."""
        first = _first(self.model, ("feature_extractor", "embeddings"), nn.Module)
        return [*([] if first is None else [first]), *_layers(self.model)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings ``(n, feature_dim)``."""
        wave = x.reshape(x.shape[0], -1).float()
        if self.fbank is not None:
            out = self.model(input_values=self.fbank(wave))
        else:
            if self.preprocessing.do_normalize:
                mean = wave.mean(dim=1, keepdim=True)
                var = wave.var(dim=1, unbiased=False, keepdim=True)
                wave = (wave - mean) / torch.sqrt(var + 1e-7)
            out = self.model(input_values=wave)
        if self.pooling == "pooler":
            return out.pooler_output
        return _pool(out.last_hidden_state, None, self.pooling)


def _image_feature_dim(config: Any) -> int:
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    return int(config.hidden_size)


def _first(model: nn.Module, paths: tuple[str, ...], kind: type) -> Any:
    """The first attribute at one of the dotted ``paths`` of ``model`` that is a ``kind``."""
    for path in paths:
        found: Any = model
        for part in path.split("."):
            found = getattr(found, part, None)
        if isinstance(found, kind) and (kind is not nn.ModuleList or len(found)):
            return found
    return None


def _layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a transformers model, input to output."""
    paths = ("encoder.layer", "encoder.layers", "transformer.layer", "encoder.stages",
             "vision_model.encoder.layers", "layer", "layers")  # fmt: skip
    return list(_first(model, paths, nn.ModuleList) or [])


def _stem(model: nn.Module) -> list[nn.Module]:
    """The embeddings (patch or pixel stem) of a transformers vision model."""
    found = _first(model, ("embeddings", "embedder", "vision_model.embeddings"), nn.Module)
    return [] if found is None else [found]


def image_preprocessing(
    folder: Path, config: dict[str, Any]
) -> tuple[int, list[float], list[float]]:
    """The side, mean and std the model was pretrained with: ``preprocessor_config.json``'s
    ``crop_size`` (else ``size``), ``image_mean`` and ``image_std``; the config's
    ``image_size`` and ImageNet's statistics when the file is absent.

    Example:
        >>> image_preprocessing(Path("/nonexistent"), {"image_size": 32})
        (32, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    """
    pre = read_json_object(folder / "preprocessor_config.json", missing_ok=True)
    side = None
    for key in ("crop_size", "size"):
        value = pre.get(key)
        if isinstance(value, int):
            side = value
        elif isinstance(value, dict):
            side = value.get("height") or value.get("shortest_edge")
        if side:
            break
    side = int(side or config.get("image_size") or 224)
    mean = [float(v) for v in pre.get("image_mean", (0.485, 0.456, 0.406))]
    std = [float(v) for v in pre.get("image_std", (0.229, 0.224, 0.225))]
    return side, mean, std


def text_pooling(folder: Path) -> str:
    """The pooling a sentence-transformers folder declares (``1_Pooling/config.json``):
    ``cls`` or ``mean``; ``mean`` when it declares none.

    Example:
        >>> text_pooling(Path("/nonexistent"))
        'mean'
    """
    pooling = read_json_object(folder / "1_Pooling" / "config.json", missing_ok=True)
    return "cls" if pooling.get("pooling_mode_cls_token") else "mean"


def is_sentence_encoder(folder: Path) -> bool:
    """Whether ``folder`` holds a sentence encoder as sentence-transformers saves one
    (``modules.json``: a transformer, then pooling), such as all-MiniLM-L6-v2, rather than
    a language model (BERT as pretrained by masked language modelling).

    Example:
        >>> is_sentence_encoder(Path("/nonexistent"))
        False
    """
    return (folder / "modules.json").is_file()


def declares_normalize(folder: Path) -> bool:
    """Whether a sentence-transformers folder ends with a ``Normalize`` module
    (``modules.json``), as all-MiniLM-L6-v2 does.

    Example:
        >>> declares_normalize(Path("/nonexistent"))
        False
    """
    path = folder / "modules.json"
    if not path.is_file():
        return False
    modules = read_json(path)
    return isinstance(modules, list) and any(
        isinstance(m, dict) and str(m.get("type", "")).endswith("Normalize") for m in modules
    )


def default_image_pooling(config: dict[str, Any]) -> str:
    """The pooling of ``IMAGE_POOLING`` for a model type (a CLIP/SigLIP tower's for those)."""
    kind = config.get("model_type", "")
    return IMAGE_POOLING.get(VISION_TOWERS.get(kind, kind), "pooler")


#: The backbones that wrap a transformers model (``model``), which ``--lora`` adapts.
HF_BACKBONES = (HFTextBackbone, HFImageBackbone, HFAudioBackbone)


def add_lora(backbone: nn.Module, rank: int, alpha: float | None = None) -> dict[str, Any]:
    """Low-rank adapters (LoRA, Hu et al. 2021, https://arxiv.org/abs/2106.09685) of ``rank``
    in every linear layer of a pretrained backbone's transformers model, through peft: the
    model's own weights are frozen and each linear layer ``W`` becomes ``W + (alpha / rank)
    B A`` with ``A`` random and ``B`` zero at the start (so training starts from the model
    as it is). All linear layers rather than the attention's query and value alone, as
    Dettmers et al. 2023 (QLoRA) found that needed to match full fine-tuning.

    Returns:
        What was added, for the encoder's spec: rank, alpha, trainable parameters.

    Raises:
        ValueError: a backbone that is not a pretrained ``hf:`` model, or one without linear
            layers (a ResNet).

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> bert = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
        ...                             num_attention_heads=2, intermediate_size=16))
        >>> backbone = HFTextBackbone(bert, torch.arange(20), "mean", 16)
        >>> added = add_lora(backbone, rank=2)
        >>> added["rank"], added["trainable"] > 0, backbone(torch.tensor([[3, 4, 0]])).shape
        (2, True, torch.Size([1, 8]))
    """
    if not isinstance(backbone, HF_BACKBONES):
        raise ValueError(
            "--lora adapts a pretrained model (--backbone hf:PATH); built-in backbones train "
            "all their weights (use --freeze-blocks or --layer-decay to keep some)"
        )
    from peft import LoraConfig, get_peft_model

    alpha = float(alpha or rank)
    config = LoraConfig(
        r=int(rank), lora_alpha=alpha, target_modules="all-linear", lora_dropout=0.0, bias="none"
    )
    try:
        with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            backbone.model = get_peft_model(backbone.model, config)
    except ValueError as err:
        raise ValueError(f"--lora {rank}: peft cannot adapt this model: {err}") from None
    trainable = sum(p.numel() for p in backbone.model.parameters() if p.requires_grad)
    return {"rank": int(rank), "alpha": alpha, "trainable": int(trainable)}


def without_adapters(module: nn.Module) -> nn.Module:
    """``module`` itself, or, where it holds LoRA adapters (:func:`add_lora`), a copy with
    the adapters merged into the weights: plain transformers weights that load without peft.

    Example:
        >>> lin = nn.Linear(2, 2)
        >>> without_adapters(lin) is lin
        True
    """
    import sys

    if "peft" not in sys.modules:  # nothing was adapted in this process
        return module
    from peft import PeftModel

    if not any(isinstance(getattr(m, "model", None), PeftModel) for m in module.modules()):
        return module
    import copy

    merged = copy.deepcopy(module)
    for holder in list(merged.modules()):
        inner = getattr(holder, "model", None)
        if isinstance(inner, PeftModel):
            holder.model = inner.merge_and_unload()
    return merged
