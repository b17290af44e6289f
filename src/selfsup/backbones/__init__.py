"""Image backbones and the registry that builds them by name.

A backbone maps images (B, C, H, W) to feature vectors (B, feature_dim); every module built here
has an int attribute ``feature_dim``. A backbone is fully described by
``(name, in_channels, image_size, kwargs)`` with JSON-serializable kwargs, so it can be saved in
a run's JSON file and rebuilt later.

Example:
    >>> import torch
    >>> net = build_backbone("small-cnn", in_channels=1, image_size=28, width=8)
    >>> net.feature_dim, net(torch.zeros(2, 1, 28, 28)).shape
    (64, torch.Size([2, 64]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from selfsup.backbones.audio import AudioNTT2020, SpectrogramTransformer
from selfsup.backbones.mlp import TabularMLP
from selfsup.backbones.resnet import ResNet
from selfsup.backbones.series import DilatedConvEncoder, PatchTransformer
from selfsup.backbones.small_cnn import SmallCNN
from selfsup.backbones.text import (
    TEXT_PRESETS,
    BertEncoder,
    TextTransformer,
    build_text_backbone,
    text_backbone_names,
)
from selfsup.backbones.vit import VIT_PRESETS, VisionTransformer
from selfsup.core.options import check_options

__all__ = [
    "TEXT_PRESETS",
    "VIT_PRESETS",
    "AudioNTT2020",
    "BertEncoder",
    "DilatedConvEncoder",
    "PatchTransformer",
    "ResNet",
    "SmallCNN",
    "SpectrogramTransformer",
    "TabularMLP",
    "TextTransformer",
    "VisionTransformer",
    "audio_backbone_names",
    "backbone_names",
    "build_audio_backbone",
    "build_backbone",
    "build_series_backbone",
    "build_text_backbone",
    "default_patch_size",
    "series_backbone_names",
    "text_backbone_names",
]


def default_patch_size(image_size: int) -> int:
    """The largest patch size up to 16 that divides ``image_size`` into at least 7x7 patches.

    This gives the usual 16 for 224-pixel images, 8 for 64, and 4 for 32 (CIFAR) and 28 (MNIST).

    Example:
        >>> [default_patch_size(s) for s in (224, 96, 64, 32, 28)]
        [16, 12, 8, 4, 4]
    """
    return next(p for p in range(16, 0, -1) if image_size % p == 0 and image_size // p >= 7)


def _resnet(depth: int) -> Callable[..., nn.Module]:
    def build(
        in_channels: int, image_size: int, small_stem: bool | None = None, width: int = 64
    ) -> nn.Module:
        if small_stem is None:
            small_stem = image_size <= 64
        return ResNet(depth, in_channels, small_stem=small_stem, width=width)

    return build


def _small_cnn(in_channels: int, image_size: int, width: int = 64) -> nn.Module:
    # Fully convolutional with global pooling: works at any image size.
    return SmallCNN(in_channels, width=width)


def _vit(preset: str) -> Callable[..., nn.Module]:
    def build(
        in_channels: int, image_size: int, patch_size: int | None = None, **overrides: Any
    ) -> nn.Module:
        if patch_size is None:
            patch_size = default_patch_size(image_size)
        size = {**VIT_PRESETS[preset], **overrides}
        return VisionTransformer(image_size, patch_size, in_channels, **size)

    return build


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": _resnet(18),
    "resnet34": _resnet(34),
    "resnet50": _resnet(50),
    "small-cnn": _small_cnn,
    "vit-tiny": _vit("tiny"),
    "vit-small": _vit("small"),
}


def backbone_names() -> list[str]:
    """The names ``build_backbone`` accepts.

    Example:
        >>> backbone_names()
        ['resnet18', 'resnet34', 'resnet50', 'small-cnn', 'vit-tiny', 'vit-small']
    """
    return list(_BUILDERS)


def build_backbone(name: str, in_channels: int, image_size: int, **kwargs: Any) -> nn.Module:
    """Build an image backbone by name.

    Args:
        name: one of ``backbone_names()``.
        in_channels: channels of the input images (1 for gray, 3 for RGB).
        image_size: side of the (square) input images. ResNets use it to default
            ``small_stem`` to True for images of 64 pixels or less; ViTs need it for their
            positional embedding and default ``patch_size`` to ``default_patch_size(image_size)``.
        **kwargs: JSON-serializable options of the backbone. ResNets: ``small_stem`` (bool),
            ``width`` (int). small-cnn: ``width`` (int). ViTs: ``patch_size`` (int) and any of
            ``dim``, ``depth``, ``heads``, ``mlp_ratio`` to override the preset.

    Returns:
        A module mapping (B, in_channels, image_size, image_size) to (B, feature_dim), with an
        int attribute ``feature_dim``.

    Raises:
        ValueError: ``name`` is not a known backbone.

    Example:
        >>> net = build_backbone("vit-tiny", in_channels=3, image_size=32, patch_size=8)
        >>> net.feature_dim, net.num_patches
        (192, 16)
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(_BUILDERS)}")
    check_options(f"{name} backbone", _BUILDERS[name], kwargs, skip=("in_channels", "image_size"))
    return _BUILDERS[name](in_channels, image_size, **kwargs)


_SERIES_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "ts2vec": DilatedConvEncoder,
    "patch-transformer": PatchTransformer,
}


def series_backbone_names() -> list[str]:
    """The names ``build_series_backbone`` accepts.

    Example:
        >>> series_backbone_names()
        ['ts2vec', 'patch-transformer']
    """
    return list(_SERIES_BUILDERS)


def build_series_backbone(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """Build a series backbone by name: ``ts2vec`` (TS2Vec's dilated convolutions; options
    ``hidden``, ``out_dim``, ``depth``, ``kernel_size``, ``dropout``) or ``patch-transformer``
    (options ``patch_len``, ``dim``, ``depth``, ``heads``, ``mlp_ratio``, ``dropout``).

    The module maps series ``(B, in_channels, length)`` of any length to ``(B, feature_dim)``
    and has ``forward_timestamps`` for features per time step.

    Raises:
        ValueError: ``name`` is not a known series backbone.

    Example:
        >>> build_series_backbone("ts2vec", in_channels=1, out_dim=32, depth=2).feature_dim
        32
    """
    if name not in _SERIES_BUILDERS:
        raise ValueError(f"unknown series backbone {name!r}; known: {', '.join(_SERIES_BUILDERS)}")
    check_options(f"{name} backbone", _SERIES_BUILDERS[name], kwargs, skip=("in_channels",))
    return _SERIES_BUILDERS[name](in_channels, **kwargs)


def _spectrogram_vit(n_mels: int, frames: int, **options: Any) -> nn.Module:
    return SpectrogramTransformer(n_mels, frames, **options)


def _byola_cnn(n_mels: int, frames: int, **options: Any) -> nn.Module:
    # Convolutions and pooling over time: any number of frames.
    return AudioNTT2020(n_mels, **options)


_AUDIO_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "byola-cnn": _byola_cnn,
    "spectrogram-vit": _spectrogram_vit,
}


def audio_backbone_names() -> list[str]:
    """The names ``build_audio_backbone`` accepts.

    Example:
        >>> audio_backbone_names()
        ['byola-cnn', 'spectrogram-vit']
    """
    return list(_AUDIO_BUILDERS)


def build_audio_backbone(name: str, n_mels: int, frames: int, **kwargs: Any) -> nn.Module:
    """Build an audio backbone on log-mels (B, 1, n_mels, frames) by name: ``byola-cnn``
    (BYOL-A's AudioNTT2020; options ``feature_dim``, ``width``, ``dropout``) or
    ``spectrogram-vit`` (options ``patch_mels``, ``patch_frames``, ``dim``, ``depth``,
    ``heads``, ``mlp_ratio``).

    Raises:
        ValueError: ``name`` is not a known audio backbone.

    Example:
        >>> build_audio_backbone("byola-cnn", n_mels=64, frames=96, feature_dim=32).feature_dim
        32
    """
    if name not in _AUDIO_BUILDERS:
        raise ValueError(f"unknown audio backbone {name!r}; known: {', '.join(_AUDIO_BUILDERS)}")
    return _AUDIO_BUILDERS[name](n_mels, frames, **kwargs)


def backbone_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The parameterized blocks of a backbone, input to output (its ``block_list()``).

    Raises:
        ValueError: a custom backbone without ``block_list()`` (the command line prints it).

    Example:
        >>> from selfsup.backbones import build_backbone
        >>> len(backbone_blocks(build_backbone("small-cnn", in_channels=1, image_size=8, width=4)))
        4
    """
    blocks = getattr(backbone, "block_list", None)
    if blocks is None:
        raise ValueError(
            f"{type(backbone).__name__} does not list its blocks (a block_list() method); "
            "adapt without --finetune-blocks"
        )
    return blocks()
