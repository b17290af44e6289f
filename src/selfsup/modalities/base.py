"""What a modality is: one small interface that every kind of item implements once.

A modality says how its data is opened from a path or name, which config defaults and backbone
suit each method, how training and monitoring views are made, how its encoder is built and
rebuilt from ``encoder.json``, what the raw-input baseline is and which evaluation protocols
run by default. The rest of selfsup asks the modality instead of comparing names.

Example:
    >>> from selfsup.modalities import get_modality
    >>> image = get_modality("image")
    >>> image.default_method, image.default_protocols
    ('simclr', ('knn', 'linear', 'fewshot'))
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from selfsup.backbones.hf import is_hf_backbone
from selfsup.data.audio import AUDIO_EXTENSIONS
from selfsup.data.base import EmptySourceError, Source, unit_items
from selfsup.data.folders import first_media
from selfsup.data.hub import AUDIO as HUB_AUDIO
from selfsup.data.hub import IMAGE as HUB_IMAGE
from selfsup.data.hub import hub_layout
from selfsup.data.image_folder import IMAGE_EXTENSIONS
from selfsup.data.loading import affordable_workers, read_ahead
from selfsup.data.webdataset import webdataset_media
from selfsup.encoder import Encoder
from selfsup.methods import METHODS
from selfsup.views.recipe import ViewRecipe

if TYPE_CHECKING:
    from selfsup.config import PretrainConfig

#: Batches of this many items are read at once for the raw-input baseline.
RAW_BATCH = 1024


#: What a folder of files holds, by the suffix of the first media file found in it.
FOLDER_MEDIA = {
    "audio": AUDIO_EXTENSIONS,
    "image": IMAGE_EXTENSIONS,
    "text": (".txt",),
}


def folder_media(path: str | os.PathLike) -> str | None:
    """``audio``, ``image`` or ``text``: what the first media file in the folder ``path`` is
    (None when ``path`` is no folder, or holds none); ``image`` or ``audio`` for a Hugging
    Face dataset of images or sounds (Parquet or Arrow files with a column of them); what
    WebDataset shards hold (a folder of ``.tar`` files, or one: images, sounds or texts).

    Example:
        >>> folder_media("/nonexistent") is None
        True
    """
    if Path(path).is_dir():  # a dataset download may hold a preview image beside its files
        layout = hub_layout(path)
        if layout is not None and layout.media:
            return {HUB_IMAGE: "image", HUB_AUDIO: "audio"}.get(layout.kind)
    # WebDataset shards (a folder of .tar files, or one): their members say.
    return first_media(path, FOLDER_MEDIA) or webdataset_media(path)


class Modality(ABC):
    """One kind of item (images, series, tables, text, audio): everything that differs.

    Class attributes:
        name: the id used in configs, ``--modality`` and ``encoder.json``.
        source_options: the options its sources take (``open_source`` drops the others).
        stat_dims: trailing singleton dimensions of the encoder's normalization statistics
            (2 for (n, C, H, W) per channel, 1 for (n, C, length), 0 for (n, columns)).
        normalizes_input: whether the encoder subtracts mean and divides by std (token ids
            pass unchanged).
        default_method: the objective when ``--method`` is not given (see
            :meth:`default_method_for`).
        default_protocols: the evaluation protocols when ``--protocol`` is not given.
        default_recipe: the view recipe of a method that names none for this modality.
        embed_precision: the precision of ``embed`` when ``auto`` is asked: ``auto`` (bf16
            where the hardware runs it fast) for images, texts and audio, whose convolutions
            and transformers it speeds up 1.3-2x and more; ``fp32`` where bf16 saves no time
            (series and table encoders) and costs digits.
        fallback_backbone: the backbone of a method that names none for this modality.
        views_class: the module that makes views of a batch from a recipe and a count.
        recipe: the named view recipes of this modality (a function of the name).
        memory_remedy: what makes this modality's training step smaller, for the memory
            plan's message when even its smallest batch does not fit.
    """

    name: ClassVar[str]
    source_options: ClassVar[frozenset[str]]
    stat_dims: ClassVar[int] = 0
    normalizes_input: ClassVar[bool] = True
    default_method: ClassVar[str]
    default_protocols: ClassVar[tuple[str, ...]]
    default_recipe: ClassVar[str]
    embed_precision: ClassVar[str] = "fp32"
    fallback_backbone: ClassVar[str]
    views_class: ClassVar[Callable[[Any, int], nn.Module]]
    recipe: ClassVar[Callable[[str], ViewRecipe]]
    memory_remedy: ClassVar[str] = "a smaller --backbone"

    def __repr__(self) -> str:
        return f"<modality {self.name}>"

    def default_method_for(self, cfg: PretrainConfig) -> str:
        """The objective of a run whose ``--method`` is not given: ``default_method``, unless
        the modality has a better one for what ``cfg`` starts from.

        Example:
            >>> from selfsup.config import PretrainConfig
            >>> from selfsup.modalities import get_modality
            >>> get_modality("image").default_method_for(PretrainConfig(data="digits"))
            'simclr'
        """
        return self.default_method

    def default_method_note(self, cfg: PretrainConfig) -> str | None:
        """Why :meth:`default_method_for` chose what it chose for ``cfg``, when it is not
        ``default_method`` (said as the run starts); None otherwise."""
        return None

    def preparation(self, cfg: PretrainConfig, source: Source | None = None) -> str:
        """What building the encoder computes from the data (``source`` where it has been
        read), printed with the time it took."""
        return "input statistics"

    def preparation_seconds(self, cfg: PretrainConfig, source: Source, seconds: float) -> float:
        """The time :meth:`preparation` took: ``seconds``, measured around building the
        encoder, unless the work was done before (a tokenizer trained when the data was
        opened)."""
        return seconds

    # --- data -----------------------------------------------------------------------------
    def claims(self, spec: str) -> bool:
        """Whether a ``DATA`` argument is of this modality when ``--modality`` is not given."""
        return False

    def claims_by_options(self, data: Any, options: Mapping[str, Any]) -> bool:
        """Whether ``options`` (a config's or a command's data options) make ``data`` of this
        modality, whatever its name."""
        return False

    @abstractmethod
    def open(self, spec: str | os.PathLike | Any, options: dict[str, Any]) -> Source:
        """Open the data ``spec`` names with this modality's ``options`` (None values gone)."""

    def official_test(self, spec: str) -> str | None:
        """The official test split of a named dataset's ``spec`` (``fashion-mnist`` ->
        ``fashion-mnist:test``), or None."""
        return None

    def run_source_options(self, run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Options that make later data open as the run's training data did (a table's
        fitted encoding, a text run's tokenizer)."""
        return {}

    def adopt(self, source: Source, run_dir: Path) -> Source:
        """A source opened elsewhere, made to read as the run's training data did."""
        return source

    def save_artifacts(self, source: Source, run_dir: Path) -> None:
        """Save what later data needs to be read as the training data was (resumes too)."""
        return None

    def frozen_encoder(self, name: str) -> tuple[Encoder, Callable[[Path], None]]:
        """The encoder of a pretrained model ``hf:PATH_OR_ID`` as it is, and what writes
        the files a run folder needs to read data for it (a tokenizer).

        Raises:
            ValueError: this modality reads no pretrained models.
        """
        raise ValueError(f"{name}: pretrained {self.name} models are not read yet")

    #: The axes of an exported encoder's input that take any size (ONNX's dynamic axes):
    #: the batch, and the tokens of texts or the steps of series.
    free_axes: ClassVar[dict[int, str]] = {0: "batch"}

    def describe_inputs(
        self,
        spec: dict[str, Any],
        run_dir: Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        """What an exported encoder of this modality takes, for its model card (``run_dir``:
        the run folder, whose saved encoding of the data some modalities describe;
        ``config``: the run's configuration, how it reads data)."""
        return f"float32 {self.name} items as selfsup reads them; the normalization is inside."

    def read_with(self, source: Source, options: dict[str, Any]) -> Source:
        """A source given in memory, read with ``options`` where they change how its items
        are read (text: another tokenizer); others are kept as they are."""
        return source

    def backbone_source_options(self, cfg: PretrainConfig) -> dict[str, Any]:
        """Options the chosen backbone needs the training data read with (a pretrained text
        model's own tokenizer)."""
        return {}

    def resume_options(self, run_dir: Path) -> dict[str, Any]:
        """Options that reopen a resumed run's training data exactly as before."""
        return {}

    # --- configuration --------------------------------------------------------------------
    def config_defaults(self, cfg: PretrainConfig) -> dict[str, Any]:
        """Fields of ``cfg`` filled in for this modality (batch size, learning rate...)."""
        return {"batch_size": cfg.batch_size or 256}

    def student_options(self, cfg: PretrainConfig, teacher: Encoder) -> dict[str, Any]:
        """Backbone options a distilled student (``--method distill``) takes from its
        ``teacher`` where they are not given; none unless the modality knows some."""
        return {}

    def default_batch(self, cfg: PretrainConfig) -> int:
        """The default batch once the encoder is chosen (``cfg`` holds its choices); the
        configured default unless the modality knows better (images: smaller for photos on
        a CPU)."""
        return int(cfg.batch_size)

    def check_method(self, method: str) -> None:
        """Refuse an unknown method, or one that does not work on this modality.

        Raises:
            ValueError: the message names the methods that do work here.
        """
        if method not in METHODS:
            known = ", ".join(sorted(METHODS))
            raise ValueError(f"unknown method {method!r}; available: {known}")
        if self.name not in METHODS[method].modalities:
            usable = sorted(m for m, c in METHODS.items() if self.name in c.modalities)
            raise ValueError(
                f"method {method} does not work on {self.name} data; methods that do: "
                f"{', '.join(usable)}"
            )

    def training_source(self, source: Source, cfg: PretrainConfig) -> tuple[Source, str | None]:
        """The items pretraining reads from the opened data, and a note when they differ
        from it (series: long series in windows); the data as it is by default."""
        return source, None

    def default_steps(self, source: Source) -> int | None:
        """Optimizer steps when neither ``--epochs``, ``--steps`` nor ``--time-budget`` is
        given; None: the engine's ``DEFAULT_EPOCHS`` epochs."""
        return None

    def default_backbone(self, method: str, source: Source | None, cfg: PretrainConfig) -> str:
        """The backbone ``method`` trains when ``--backbone`` is not given: the method's own
        choice for this modality, else ``fallback_backbone`` (``source`` None: before the
        data is read, for the defaults that follow the backbone)."""
        return dict(METHODS[method].backbones).get(self.name, self.fallback_backbone)

    # --- views ----------------------------------------------------------------------------
    def recipe_name(self, method: Any) -> str:
        """The view recipe ``method`` asks for on this modality (its ``view_recipes``)."""
        return dict(getattr(method, "view_recipes", {})).get(self.name, self.default_recipe)

    def make_views(
        self, recipe: ViewRecipe, num_views: int, source: Source | None, method: Any = None
    ) -> nn.Module:
        """The module that makes ``num_views`` views of a batch with ``recipe``."""
        return type(self).views_class(recipe, num_views)

    def method_views(
        self, method: Any, options: dict[str, Any], source: Source | None = None
    ) -> tuple[nn.Module, ViewRecipe]:
        """The views ``method`` trains on: its recipe for this modality with ``options``
        (the run's ``views``), and the recipe (saved with the run)."""
        options = {k: v for k, v in options.items() if k != "local_views"}
        recipe = self.recipe(self.recipe_name(method)).with_options(**options)
        return self.make_views(recipe, method.num_views, source, method), recipe

    def monitor_views(
        self, method: Any, options: dict[str, Any], source: Source | None = None
    ) -> nn.Module:
        """Two augmented views per item for the label-free metrics: the method's own views,
        or the modality's generic recipe where the method takes the batch as it is (TS2Vec,
        VIME, SimCSE, MLM) or keeps one view clean (SCARF)."""
        views, recipe = self.method_views(method, {**options, "local_views": 0}, source)
        if getattr(recipe, "identity", False) or getattr(recipe, "keep_first", False):
            return self.make_views(self.recipe(self.default_recipe), 2, source)
        return views

    def training_views(
        self, method: Any, options: dict[str, Any], source: Source
    ) -> tuple[nn.Module, ViewRecipe, nn.Module]:
        """The views ``method`` trains on, their recipe, and the two-view module the
        label-free monitor measures with during training."""
        views, recipe = self.method_views(method, options, source)
        return views, recipe, self.monitor_views(method, options, source)

    # --- encoder --------------------------------------------------------------------------
    def wrap(
        self,
        backbone: nn.Module,
        feature_dim: int | None,
        mean: list[float],
        std: list[float],
        spec: dict[str, Any] | None = None,
    ) -> Encoder:
        """An encoder of this modality around ``backbone`` with these statistics."""
        return Encoder(
            backbone,
            feature_dim,
            mean,
            std,
            spec,
            modality=self.name,
            stat_dims=self.stat_dims,
            normalize=self.normalizes_input,
        )

    def statistics(self, source: Source) -> tuple[list[float], list[float]]:
        """The encoder's fixed normalization statistics for ``source``: per-channel mean and
        std over a sample of items."""
        return channel_statistics(source)

    def build_encoder(
        self,
        cfg: PretrainConfig,
        source: Source,
        custom: nn.Module | None = None,
        feature_dim: int | None = None,
    ) -> tuple[Encoder, dict[str, Any]]:
        """The encoder to train on ``source`` (``custom`` wrapped, else the config's backbone
        or the default one) and the config fields it chose (backbone, image size...)."""
        if custom is not None:
            return self.wrap(custom, feature_dim, *self.statistics(source)), {}
        name = cfg.backbone or self.default_backbone(str(cfg.method), source, cfg)
        # A pretrained model normalizes as it was trained: the data's statistics go unused.
        mean, std = ([], []) if is_hf_backbone(name) else self.statistics(source)
        encoder, chosen = self.build_named(name, cfg, source, mean, std)
        return encoder, {"backbone": name, **chosen}

    @abstractmethod
    def build_named(
        self, name: str, cfg: PretrainConfig, source: Source, mean: list[float], std: list[float]
    ) -> tuple[Encoder, dict[str, Any]]:
        """An encoder with the registered backbone ``name`` for ``source``, and the config
        fields it fixed besides the backbone."""

    @abstractmethod
    def rebuild_encoder(self, spec: dict[str, Any]) -> Encoder:
        """The encoder ``encoder.json``'s ``spec`` describes, with fresh weights."""

    def prepare_input(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        """A batch of raw items made to fit an encoder built from ``spec`` (images: size and
        channels)."""
        return x

    def read_as_trained(self, source: Source, accelerator: str = "auto") -> None:
        """Set ``source`` to read its items as a run with default options trains on them
        (``datasets show --check`` reads every item so): image folders at the training side;
        the other sources read as they are.

        Example:
            >>> from selfsup.data.text import TextSource
            >>> from selfsup.modalities import get_modality
            >>> get_modality("text").read_as_trained(TextSource(["a b", "c"]))
        """
        return None

    def default_workers(self, source: Source, accelerated: bool = False) -> int:
        """Data-loading processes for ``source`` by default: none for data in memory; for
        files to decode, half the CPU cores (at least 1, at most 4) when the CPU trains too,
        and all cores but two (at least 1, at most 16) when a GPU trains (``accelerated``),
        whose steps decoding cannot keep up with otherwise (BENCHMARKS.md, "The GPU path",
        times a folder by worker count).

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> from selfsup.modalities import get_modality
            >>> get_modality("image").default_workers(ArraySource(np.zeros((4, 8, 8))))
            0
        """
        if not source.reads_files:
            return 0
        cores = os.cpu_count() or 2
        if accelerated:
            return min(16, max(1, cores - 2))
        return min(4, max(1, cores // 2))

    def embed_precision_of(self, encoder: Encoder) -> str:
        """What ``precision="auto"`` means when ``encoder`` embeds this modality's items:
        ``embed_precision``, where one precision suits every encoder of the modality."""
        return self.embed_precision

    def embed_batch_size(self, source: Source, batch_size: int) -> int:
        """The batch size ``embed`` uses on ``source`` (lower where items are large)."""
        return batch_size

    # --- evaluation -----------------------------------------------------------------------
    def raw_batch(self, x: torch.Tensor, source: Source) -> torch.Tensor:
        """One batch of items as raw-input baseline features (before flattening)."""
        return x

    def raw_baseline(self, train: Source, test: Source) -> tuple[np.ndarray, np.ndarray]:
        """The raw-input baseline's features of the fit and test splits (unreadable rows
        NaN), of equal width."""
        return _same_width(self.raw_features(train), self.raw_features(test))

    def raw_linear_features(self, train: Source, test: Source) -> tuple[Any, Any] | None:
        """Sparse features (scipy CSR, rows in the splits' order) the raw-input baseline's
        linear probe reads instead of :meth:`raw_baseline`'s dense ones, where a modality's
        usual baseline is sparse and too wide to hold dense (TF-IDF of texts); None: the
        dense ones."""
        return None

    def raw_width(self, source: Source) -> int:
        """Values an item of the raw-input baseline holds (what its memory is planned by).

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> from selfsup.modalities import get_modality
            >>> get_modality("image").raw_width(ArraySource(np.zeros((4, 8, 8), np.uint8)))
            64
        """
        parts = source.parts()  # long recordings: a part's width, as raw_features reads
        read = source if parts is None else parts.source
        return int(self.raw_batch(read.first_item(), read).flatten(1).shape[1])

    def raw_features(self, source: Source, batch_size: int = RAW_BATCH) -> np.ndarray:
        """Flattened raw inputs of ``source`` as :meth:`raw_batch` makes them; for items
        embedded by their parts (long recordings), the mean of their parts' (NaN where no
        part can be read), as their embeddings are."""
        parts = source.parts()
        if parts is None:
            return np.concatenate(list(self._raw_blocks(source, batch_size)))
        total = count = None
        start = 0
        for block in self._raw_blocks(parts.source, batch_size):
            if total is None:
                total = np.zeros((len(source), block.shape[1]))
                count = np.zeros(len(source))
            owner = parts.owner[start : start + len(block)]
            read = ~np.isnan(block).any(axis=1)
            np.add.at(total, owner[read], block[read])
            np.add.at(count, owner[read], 1)
            start += len(block)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total / count[:, None]).astype(np.float32)

    def _raw_blocks(self, source: Source, batch_size: int) -> Iterator[np.ndarray]:
        """:meth:`raw_features` of ``source`` block by block (NaN rows: unreadable)."""
        n = len(source)
        # Files to decode are read ahead by worker processes, as embedding reads them.
        workers = affordable_workers(source, batch_size, self.default_workers(source))
        batches = read_ahead(source, batch_size, workers)
        for start, batch in zip(range(0, n, batch_size), batches, strict=True):
            rows = min(batch_size, n - start)
            if not batch.indices:  # every item of the batch unreadable
                yield np.full((rows, self.raw_width(source)), np.nan, dtype=np.float32)
                continue
            x = self.raw_batch(unit_items(batch.items), source)
            block = torch.full((rows, *x.shape[1:]), float("nan"))
            block[torch.as_tensor(batch.indices, dtype=torch.long) - start] = x
            yield block.flatten(1).numpy()

    # --- presentation ---------------------------------------------------------------------
    #: Items read best as text (reports show them as a table of texts, not as pictures).
    items_are_text: ClassVar[bool] = False
    #: Items are the rows of a table of named columns (scikit-learn's estimator counts and
    #: names the columns, and reads rows without names as those columns).
    items_are_rows: ClassVar[bool] = False
    #: A trained encoder subtracts the mean embedding of its training items from every
    #: embedding (``Encoder.set_center``), where its embeddings all point one way and cosine
    #: neighbours (kNN, anomalies, propagation) then see little but that direction. The center
    #: is measured when training ends: the training monitor (``epochs.csv``: RankMe, neighbour
    #: agreement) reads the backbone's output as it is.
    centers_embeddings: ClassVar[bool] = False


def _same_width(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the narrower of two raw feature matrices (series splits of different
    longest lengths) to the other's width.

    Example:
        >>> [m.shape for m in _same_width(np.ones((2, 3)), np.ones((1, 5)))]
        [(2, 5), (1, 5)]
    """
    width = max(a.shape[1], b.shape[1])
    return tuple(np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in (a, b))  # type: ignore[return-value]


def channel_statistics(
    source: Source,
    limit: int = 4096,
    chunk: int = 128,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over an evenly spaced sample of up to ``limit`` items
    (images or series; NaN values of series are left out), read ``chunk`` items at a time
    so memory stays that of one chunk whatever the items' size; of ``transform`` of each
    chunk where it is given (waveforms' log-mels).

    Example:
        >>> from selfsup.data.arrays import ArraySource
        >>> mean, std = channel_statistics(ArraySource(np.full((4, 2, 2), 255, np.uint8)))
        >>> mean, std
        ([1.0], [0.0010000000474974513])
    """
    indices = source.sample_rows(limit).tolist()
    count = total = squares = None
    shift = None  # the first chunk's mean: sums of shifted values keep float64 precise
    for start in range(0, len(indices), chunk):
        x = source.read_batch(indices[start : start + chunk]).items
        if x.shape[0] == 0:
            continue
        if transform is not None:
            x = transform(x)
        per_channel = x.transpose(0, 1).reshape(x.shape[1], -1)
        present = ~torch.isnan(per_channel)
        if shift is None:
            shift = torch.nan_to_num(per_channel).sum(1, dtype=torch.float64) / present.sum(
                1
            ).clamp_min(1)
            count = torch.zeros_like(shift)
            total, squares = torch.zeros_like(shift), torch.zeros_like(shift)
        values = torch.nan_to_num(per_channel.double() - shift[:, None]) * present
        count += present.sum(dim=1)
        total += values.sum(dim=1)
        squares += (values**2).sum(dim=1)
    if shift is None:
        raise EmptySourceError(f"{source.name}: none of the sampled items can be read")
    n = count.clamp_min(1)
    mean = shift + total / n
    var = ((squares - total**2 / n) / (n - 1).clamp_min(1)).clamp_min(0)
    return mean.float().tolist(), var.sqrt().clamp_min(1e-3).float().tolist()
