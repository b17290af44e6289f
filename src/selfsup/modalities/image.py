"""Images: folders of files, arrays and the named image datasets.

Items are float tensors (n, C, H, W) in [0, 1]. The default backbone follows the method (a
ViT for the masked objectives, MAE and I-JEPA) and the image size: ``small-cnn`` up to 32
pixels, ``resnet18`` above. The raw-input baseline is the pixels, downsized to at most
``RAW_MAX_SIDE`` pixels a side.

Example:
    >>> source = IMAGE.open("digits:test", {})
    >>> source.item_shape
    (1, 8, 8)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from selfsup.backbones import build_backbone
from selfsup.backbones.hf import (
    HFImageBackbone,
    default_image_pooling,
    image_preprocessing,
    is_hf_backbone,
    load_pretrained,
    model_from_config,
    read_json,
    resolve_folder,
)
from selfsup.config import PretrainConfig
from selfsup.core.precision import uses_gpu
from selfsup.data.arrays import ArraySource, load_array_file
from selfsup.data.base import Source
from selfsup.data.file_labels import LABEL_OPTIONS, folder_options
from selfsup.data.folders import INDEX_FILE, IndexCache
from selfsup.data.hub import (
    HubImageSource,
    hub_files,
    hub_test_split,
    refuse_labels_table,
    split_spec,
)
from selfsup.data.image_folder import ImageFolderSource, WholeFiles
from selfsup.data.named import is_named_spec, named_dataset_names, named_splits, open_named
from selfsup.data.shards import ShardSource, is_shard_folder
from selfsup.data.webdataset import WebDatasetSource, webdataset_media
from selfsup.encoder import Encoder
from selfsup.methods import METHODS
from selfsup.modalities.base import Modality, channel_statistics
from selfsup.views.image import ImageViewRecipe, ImageViews, image_recipe
from selfsup.views.recipe import ViewRecipe

#: Raw-pixel baselines use images of at most this side, so they fit in memory for any data.
RAW_MAX_SIDE = 32
#: The side images are trained at when theirs is larger, on a CPU and on a GPU: a ResNet-18
#: step at 224 pixels costs about 3x one at 128, which a CPU cannot afford on photos.
TRAINING_SIDE = {"cpu": 128, "gpu": 224}
#: The default batch of images larger than ``SMALL_SIDE`` pixels on a CPU.
CPU_PHOTO_BATCH = 64
SMALL_SIDE = 64
#: Items whose channel statistics set the encoder's normalization.
STATISTICS_ITEMS = 1024


def training_side(native: int, accelerator: str) -> int:
    """The side a run trains at by default: the data's own (the median shorter side of a
    sample of files), at most ``TRAINING_SIDE`` for the accelerator.

    Example:
        >>> training_side(480, "cpu"), training_side(480, "gpu"), training_side(28, "cpu")
        (128, 224, 28)
    """
    return min(native, TRAINING_SIDE["gpu" if uses_gpu(accelerator) else "cpu"])


_ARRAY_SUFFIXES = (".npy", ".npz")


def conform_images(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """Resize a batch to ``size`` x ``size`` and convert gray <-> color to ``channels``.

    Lets an encoder trained on one dataset embed another (transfer evaluation).

    Example:
        >>> conform_images(torch.rand(2, 3, 10, 10), 1, 4).shape
        torch.Size([2, 1, 4, 4])
        >>> conform_images(torch.rand(2, 3, 10, 10, dtype=torch.bfloat16), 3, 14).dtype
        torch.bfloat16
    """
    if images.shape[1] != channels:
        if {images.shape[1], channels} != {1, 3}:  # a microscope's 5 channels are not colour
            raise ValueError(f"cannot read {images.shape[1]}-channel images as {channels}-channel")
        if channels == 1:
            images = images.mean(dim=1, keepdim=True)
        else:
            images = images.expand(-1, channels, -1, -1)
    if images.shape[-2:] != (size, size):
        # PyTorch's antialiased resize has no bfloat16 or float16 kernel on the CPU: views
        # made under autocast are resized in float32 and given back in their own type
        wide = images.float()
        resized = F.interpolate(wide, size=(size, size), mode="bilinear", antialias=True)
        images = resized.to(images.dtype)
    return images


class ImageModality(Modality):
    """Images: named sets, folders (labels from first-level subfolders) and arrays."""

    name = "image"
    memory_remedy = "a smaller --image-size or --backbone"
    source_options: ClassVar[frozenset[str]] = frozenset(
        {
            "image_size",
            "channels",
            "index",
            "channel_pattern",
            "pixel_bits",
            "tile",
            "scan_window",
            "whole_files",
            *LABEL_OPTIONS,
        }
    )
    stat_dims = 2
    default_method = "simclr"
    default_protocols = ("knn", "linear", "fewshot")
    default_recipe = "byol"
    fallback_backbone = "resnet18"
    views_class = ImageViews
    recipe = staticmethod(image_recipe)
    embed_precision = "auto"

    def open(self, spec: str | os.PathLike | Any, options: dict[str, Any]) -> Source:
        """A named dataset, a folder of images, packed shards, a Hugging Face dataset of
        images (``PATH[:SPLIT]``), a ``.npy``/``.npz`` array file, or an array in memory
        ((n, h, w), (n, h, w, c) or (n, c, h, w), uint8 or float)."""
        if isinstance(spec, (np.ndarray, torch.Tensor)):
            return ArraySource(np.asarray(spec))
        if isinstance(spec, str) and is_named_spec(spec):
            return open_named(spec)
        hub = hub_files(spec)
        if hub is not None:
            refuse_labels_table(spec, options)
            for option in ("tile", "scan_window", "whole_files"):
                if options.get(option) not in (None, False):
                    flag = option.replace("_", "-")
                    raise ValueError(f"{spec}: --{flag} is for the image files of a folder")
            hub_options = ("image_size", "channels", "pixel_bits", "label_column", "id_column")
            return HubImageSource(spec, **{k: v for k, v in options.items() if k in hub_options})
        path = Path(spec).expanduser()
        packed = (
            (WebDatasetSource, "WebDataset shards keep their labels in .cls members")
            if webdataset_media(path) == self.name
            else (ShardSource, "packed shards keep the labels and channels they were packed with")
            if path.is_dir() and is_shard_folder(path)
            else None
        )
        if packed is not None:  # shards of encoded files: read as they were written
            kind, keeps = packed
            for option in ("labels", "channel_pattern", "tile", "scan_window", "whole_files"):
                if options.get(option) not in (None, False):
                    flag = option.replace("_", "-")
                    raise ValueError(f"{spec}: {keeps}; --{flag} is for a folder's files")
            shard_options = ("image_size", "channels", "pixel_bits")
            return kind(path, **{k: v for k, v in options.items() if k in shard_options})
        if path.is_dir():
            whole = options.get("whole_files")
            kept = {k: v for k, v in options.items() if k != "whole_files"}
            folder = ImageFolderSource(path, **folder_options(kept))
            return WholeFiles(folder) if whole else folder
        if path.is_file() and path.suffix.lower() in _ARRAY_SUFFIXES:
            return load_array_file(path)
        base, split = split_spec(spec)
        known = hub_files(base) if split is not None else None
        if known is not None:
            raise ValueError(
                f"{spec}: {base} has no split {split!r} (splits: "
                f"{', '.join(known.splits) or 'none: its files name no split'})"
            )
        if path.is_file():
            raise ValueError(
                f"{spec}: cannot read {path.suffix or 'suffix-less'} files as images; "
                f"expected a folder of images or a .npy / .npz array file"
            )
        raise FileNotFoundError(
            f"{spec}: no such file or folder, and not a named dataset "
            f"(known: {', '.join(named_dataset_names())})"
        )

    def official_test(self, spec: str) -> str | None:
        """A named set's ``:test``; a Hugging Face dataset's labelled test (else
        validation) split when its train split is read."""
        if is_named_spec(spec):
            named = ":" not in spec
            return f"{spec}:test" if named and "test" in named_splits(spec) else None
        return hub_test_split(spec)

    def training_source(self, source: Source, cfg: PretrainConfig) -> tuple[Source, str | None]:
        """Files taken whole (``--whole-files``) are trained on as their slices or tiles."""
        if not isinstance(source, WholeFiles):
            return source, None
        part, whole = source.parts().words
        return source.inner, (
            f"trained on the {len(source.inner):,} {part} of {len(source):,} {whole}; the "
            f"other commands take each of the {whole} as one item (--whole-files)"
        )

    def run_source_options(self, run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Later image folders are read at the run's side (reading a photo at the side the
        encoder takes is what resizing it after would give, and faster) and with the
        significant bits its data's wide pixels had (runs saved before runs kept them read
        16-bit files by 65535, as they were trained)."""
        options = {
            "image_size": config.get("image_size"),
            "index": IndexCache(run_dir / INDEX_FILE),
        }
        if "pixel_bits" not in config:
            options["pixel_bits"] = 16
        return options

    def resume_options(self, run_dir: Path) -> dict[str, Any]:
        """A resumed run reads the files it started on (its positions in an epoch hold)."""
        return {"index": IndexCache(run_dir / INDEX_FILE, pinned=True)}

    def backbone_source_options(self, cfg: PretrainConfig) -> dict[str, Any]:
        """``--init RUN`` reads wide pixels on that run's scale, which its encoder learned
        (a run saved before runs kept it: 16 bits), unless ``--pixel-bits`` says otherwise.

        Example:
            >>> IMAGE.backbone_source_options(PretrainConfig(data="-"))
            {}
        """
        if cfg.init is None or cfg.pixel_bits is not None:
            return {}
        from selfsup.run import CONFIG_FILE, read_run_config  # the run module imports this one

        bits = read_run_config(Path(cfg.init) / CONFIG_FILE).get("pixel_bits", 16)
        return {} if bits is None else {"pixel_bits": bits}

    def statistics(self, source: Source) -> tuple[list[float], list[float]]:
        return channel_statistics(source, limit=STATISTICS_ITEMS)

    def frozen_encoder(self, name: str) -> tuple[Encoder, Callable[[Path], None]]:
        """The model as it is, reading color images at its own side."""
        return build_pretrained_image_encoder(name, in_channels=3), lambda run_dir: None

    def describe_inputs(
        self,
        spec: dict[str, Any],
        run_dir: Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        """The exported encoder's inputs, and how selfsup makes them from a picture file
        (:func:`~selfsup.data.image_folder.decode_pixels`) as Pillow code a user runs to get
        the same embeddings: a photo resized otherwise (squashed, cropped elsewhere) gives
        other ones.

        Example:
            >>> from selfsup.modalities import get_modality
            >>> note = get_modality("image").describe_inputs({"image_size": 8, "in_channels": 3})
            >>> note.splitlines()[0]
            'float32 images (batch, 3, 8, 8) with values in [0, 1]; the normalization is inside.'
        """
        side, channels = spec.get("image_size"), spec.get("in_channels")
        mode = "RGB" if channels == 3 else "L"
        layout = ".transpose(2, 0, 1)[None]" if channels == 3 else "[None, None]"
        return f"""float32 images (batch, {channels}, {side}, {side}) with values in [0, 1]; \
the normalization is inside.

selfsup reads a picture file into that shape so (do the same to get the same embeddings):
large JPEGs decoded at reduced scale and large HEICs from their embedded thumbnail (Pillow's
draft mode; HEIC needs `pillow_heif.register_heif_opener()`), EXIF rotation applied, converted
to {mode}, the central square (its side the picture's shorter side) resized to {side}x{side}
(bilinear), pixel values divided by 255 (16-bit images: by 65535). With Pillow and NumPy:

```python
import math
import numpy as np
from PIL import Image, ImageOps

def selfsup_input(path):
    image = Image.open(path)
    if min(image.size) > {side}:
        scale = {side} / min(image.size)
        image.draft(image.mode, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    image = ImageOps.exif_transpose(image).convert("{mode}")
    side = min(image.size)
    left, top = (image.width - side) / 2, (image.height - side) / 2
    box = (left, top, left + side, top + side)
    image = image.resize(({side}, {side}), Image.Resampling.BILINEAR, box=box)
    return (np.asarray(image, dtype=np.float32) / 255){layout}
```

The exported model's rows match `selfsup.load(RUN).embed(DATA, precision="fp32")` to 1e-4;
`selfsup embed` computes images in bf16 where the processor has bf16 matrix instructions,
(about three significant digits), so its rows differ from these from about the third digit."""

    def default_batch(self, cfg: PretrainConfig) -> int:
        """256, but 64 for images above ``SMALL_SIDE`` pixels on a CPU, where a ResNet-18
        step on 256 photos at 128 pixels takes over half a minute and 5 GB
        (``benchmarks/photos.py``)."""
        large = (cfg.image_size or 0) > SMALL_SIDE and not uses_gpu(cfg.accelerator)
        return CPU_PHOTO_BATCH if large else int(cfg.batch_size or 256)

    def read_as_trained(self, source: Source, accelerator: str = "auto") -> None:
        """Image folders read at :func:`training_side` from now on (a phone's 12-megapixel
        photos at 128 pixels on a CPU: JPEGs decoded at a reduced scale, HEICs from their
        thumbnail), as a run with default options trains on them."""
        source.read_at(training_side(int(source.first_item().shape[-1]), accelerator))

    def build_encoder(
        self,
        cfg: PretrainConfig,
        source: Source,
        custom: nn.Module | None = None,
        feature_dim: int | None = None,
    ) -> tuple[Encoder, dict[str, Any]]:
        """As every modality's, once the training side is chosen (``--image-size``, else
        :func:`training_side`) and folders are set to read at it."""
        chosen: dict[str, Any] = {}
        if custom is None:
            if is_hf_backbone(cfg.backbone):  # the model's own side, unless told otherwise
                folder = resolve_folder(str(cfg.backbone))
                native = image_preprocessing(folder, read_json(folder / "config.json"))[0]
                side = cfg.image_size or native
            else:
                side = cfg.image_size or training_side(
                    int(source.first_item().shape[-1]), cfg.accelerator
                )
            source.read_at(side)
            cfg = cfg.model_copy(update={"image_size": side})
            chosen["image_size"] = side
        if source.pixel_bits is not None:  # later data is read on the same scale
            chosen["pixel_bits"] = source.pixel_bits
        encoder, more = super().build_encoder(cfg, source, custom, feature_dim)
        return encoder, {**chosen, **more}

    def default_backbone(self, method: str, source: Source, cfg: PretrainConfig) -> str:
        """The method's own choice (a ViT for MAE and I-JEPA), else ``small-cnn`` up to 32
        pixels (the training side) and ``resnet18`` above."""
        wanted = dict(METHODS[method].backbones).get(self.name)
        if wanted is not None:
            return wanted
        size = cfg.image_size or int(source.first_item().shape[-1])
        return "small-cnn" if size <= 32 else "resnet18"

    def make_views(
        self, recipe: ViewRecipe, num_views: int, source: Source | None, method: Any = None
    ) -> nn.Module:
        size, channels = self._geometry(source, method)
        return ImageViews(recipe, size, channels, num_views, _patch_size(method))  # type: ignore[arg-type]

    def method_views(
        self, method: Any, options: dict[str, Any], source: Source | None = None
    ) -> tuple[nn.Module, ViewRecipe]:
        """See :func:`method_views`; the size and channels are the encoder's, else the data's."""
        return method_views(method, *self._geometry(source, method), **options)

    def monitor_views(
        self, method: Any, options: dict[str, Any], source: Source | None = None
    ) -> nn.Module:
        """The method's own global views (single-view methods are drawn twice)."""
        return self.method_views(method, {**options, "local_views": 0}, source)[0]

    def training_views(
        self, method: Any, options: dict[str, Any], source: Source
    ) -> tuple[nn.Module, ViewRecipe, nn.Module]:
        """The training views; the monitor uses their first two."""
        views, recipe = self.method_views(method, options, source)
        return views, recipe, views

    def _geometry(self, source: Source | None, method: Any) -> tuple[int, int]:
        """Side and channels of the global views: the encoder's, else the data's."""
        spec = getattr(getattr(method, "encoder", None), "spec", None) or {}
        first = None if source is None else source.first_item()
        size = spec.get("image_size") or (None if first is None else int(first.shape[-1]))
        channels = spec.get("in_channels") or (None if first is None else int(first.shape[1]))
        if size is None or channels is None:
            raise ValueError("image views need the data or an encoder to take their size from")
        return size, channels

    def build_named(
        self, name: str, cfg: PretrainConfig, source: Source, mean: list[float], std: list[float]
    ) -> tuple[Encoder, dict[str, Any]]:
        first = source.first_item()
        size = cfg.image_size or int(first.shape[-1])
        channels = int(first.shape[1])
        if is_hf_backbone(name):
            encoder = build_pretrained_image_encoder(name, channels, size, **cfg.backbone_options)
            return encoder, {"image_size": size}
        encoder = build_image_encoder(name, channels, size, mean, std, **cfg.backbone_options)
        return encoder, {"image_size": size}

    def rebuild_encoder(self, spec: dict[str, Any]) -> Encoder:
        if is_hf_backbone(spec["backbone"]):
            return rebuild_pretrained_image_encoder(spec)
        return build_image_encoder(
            spec["backbone"],
            spec["in_channels"],
            spec["image_size"],
            spec["mean"],
            spec["std"],
            **spec["options"],
        )

    def prepare_input(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        if "image_size" not in spec:  # a custom backbone takes the data as it is
            return x
        _check_channels(spec["backbone"], spec["in_channels"], x.shape[1])
        return conform_images(x, spec["in_channels"], spec["image_size"])

    def raw_batch(self, x: torch.Tensor, source: Source) -> torch.Tensor:
        return conform_images(x, x.shape[1], RAW_MAX_SIDE) if x.shape[-1] > RAW_MAX_SIDE else x


def _check_channels(backbone: str, reads: int, given: int) -> None:
    """Refuse images an encoder cannot read in one line naming it: only gray and colour
    convert into each other.

    Example:
        >>> _check_channels("hf:dinov2-small", 3, 1)
        >>> _check_channels("hf:dinov2-small", 3, 5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: hf:dinov2-small reads 3-channel images and these have 5 channels; ...
    """
    if given != reads and {given, reads} != {1, 3}:
        raise ValueError(
            f"{backbone} reads {reads}-channel images and these have {given} channels; a "
            "built-in backbone (--backbone resnet18, vit-small, small-cnn) learns from any "
            "number of channels"
        )


def _patch_size(method: Any) -> int:
    """A method instance's ViT patch size (views cut into whole patches); 1 otherwise."""
    backbone = getattr(getattr(method, "encoder", None), "backbone", None)
    return int(getattr(backbone, "patch_size", 1))


def method_views(
    method: Any, image_size: int, channels: int, **overrides: Any
) -> tuple[ImageViews, ImageViewRecipe]:
    """The image views a method trains on: its recipe with ``overrides``, and its views.

    The method's ``num_local_views`` small multi-crop views follow its ``num_views`` global
    ones unless ``overrides`` set ``local_views`` (``local_views=0`` turns multi-crop off).
    For a method instance whose encoder is a ViT, the local views' side is a whole number of
    its patches.

    Args:
        method: a method class or instance (``view_recipes``, ``num_views``,
            ``num_local_views``).
        image_size: side of the square global views.
        channels: 1 for gray input, 3 for color.
        **overrides: recipe fields to replace, e.g. ``crop_scale=(0.25, 1.0)``.

    Returns:
        The views module and the recipe it uses, with ``local_views`` filled in (saved with
        the run).

    Example:
        >>> from selfsup.methods import SimCLR
        >>> views, recipe = method_views(SimCLR, 12, 1, blur_p=0.0)
        >>> [v.shape[0] for v in views(torch.rand(4, 1, 12, 12))], recipe.blur_p
        ([4, 4], 0.0)
    """
    recipe = image_recipe(IMAGE.recipe_name(method)).with_options(**overrides)
    if recipe.local_views is None:
        recipe = recipe.with_options(local_views=method.num_local_views)
    views = ImageViews(recipe, image_size, channels, method.num_views, _patch_size(method))
    return views, recipe


def build_image_encoder(
    backbone: str,
    in_channels: int,
    image_size: int,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    **options: Any,
) -> Encoder:
    """An image encoder from a registered backbone name and its options.

    Example:
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=16, width=8)
        >>> enc(torch.rand(2, 1, 16, 16)).shape
        torch.Size([2, 64])
    """
    module = build_backbone(backbone, in_channels=in_channels, image_size=image_size, **options)
    spec = {
        "modality": "image",
        "backbone": backbone,
        "in_channels": in_channels,
        "image_size": image_size,
        "options": options,
    }
    mean = mean if mean is not None else [0.5] * in_channels
    std = std if std is not None else [0.25] * in_channels
    return IMAGE.wrap(module, None, list(mean), list(std), spec)


def build_pretrained_image_encoder(
    name: str, in_channels: int, image_size: int | None = None, pooling: str | None = None
) -> Encoder:
    """The encoder of a pretrained image model ``hf:PATH_OR_ID`` (weights loaded), with the
    model's own normalization (``preprocessor_config.json``); gray images are read as three
    equal channels.

    Args:
        name: ``hf:`` and a folder or model id.
        in_channels: channels of the data (1 or 3; others are refused).
        image_size: the side it reads; the model's own by default.
        pooling: ``cls``, ``pooler`` or ``mean``; by default the model type's (see
            ``selfsup.backbones.hf``).
    """
    model = load_pretrained(name)
    if model.kind != "image":
        raise ValueError(f"{name}: a {model.kind} model, not an image model")
    _check_channels(name, int(getattr(model.config, "num_channels", 3)), in_channels)
    native, mean, std = image_preprocessing(model.folder, model.config)
    pooling = pooling or default_image_pooling(model.config)
    module = HFImageBackbone(model.module, pooling, native)
    spec = {
        "modality": "image",
        "backbone": name,
        "in_channels": in_channels,
        "image_size": image_size or native,
        "options": {"pooling": pooling},
        "pretrained": {
            "source": model.source,
            "sha256": model.sha256,
            "config": model.config,
            "image_size": native,
        },
    }
    return IMAGE.wrap(module, None, mean, std, spec)


def rebuild_pretrained_image_encoder(spec: dict[str, Any]) -> Encoder:
    """A pretrained image encoder as ``encoder.json``'s ``spec`` describes it, with random
    weights (a run's ``encoder.safetensors`` holds its own); the original folder is not read."""
    saved = spec["pretrained"]
    model = model_from_config(saved["config"])
    module = HFImageBackbone(model, spec["options"]["pooling"], int(saved["image_size"]))
    return IMAGE.wrap(module, None, spec["mean"], spec["std"], dict(spec))


IMAGE = ImageModality()
