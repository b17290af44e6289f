"""A run is a folder; ``pretrain`` makes one and ``load`` rebuilds the run object from it.

A run folder holds ``config.yaml``, ``checkpoints/last.ckpt``, ``metrics.csv``, TensorBoard
events, ``encoder.safetensors`` with ``encoder.json``, ``skipped.txt``, ``train.json`` (time,
throughput) and evaluation results as JSON.

Example:
    >>> import tempfile
    >>> run = pretrain("digits", epochs=1, batch_size=128, out=tempfile.mkdtemp(),
    ...                backbone_options={"width": 8}, show_progress=False)
    >>> run.embed("digits:test").shape
    (359, 64)
    >>> load(run.path).encoder.feature_dim
    64
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from selfsup.config import PretrainConfig, load_config
from selfsup.data import open_source, train_test_sources
from selfsup.data.base import Source
from selfsup.data.named import is_named_spec
from selfsup.data.splits import hold_out
from selfsup.data.tabular import TablePreprocessor, is_tabular_spec
from selfsup.data.text import has_test_split, tokenizer_of, with_tokenizer
from selfsup.data.tokenizer import TextTokenizer
from selfsup.embedding import EmbeddingFile, embed_source, embed_timestamps, write_embeddings
from selfsup.encoder import Encoder
from selfsup.engine.monitor import BEST_WEIGHTS, EpochMonitor, load_encoder_weights
from selfsup.engine.precision import resolve_precision
from selfsup.engine.train import fit
from selfsup.evaluation.labelfree import LabelFreeMetrics, measure_label_free
from selfsup.evaluation.report import Evaluation, evaluate_encoder
from selfsup.methods import METHODS, build_method
from selfsup.views import (
    AudioViews,
    SeriesViews,
    TabularViews,
    audio_method_views,
    audio_recipe,
    method_views,
    series_method_views,
    series_recipe,
    tabular_method_views,
    tabular_recipe,
    text_method_views,
    text_recipe,
)
from selfsup.views.text import TextViews

CONFIG_FILE = "config.yaml"
#: The config fields that set how audio files become log-mels (the audio source's options).
AUDIO_OPTIONS = ("sample_rate", "clip_seconds", "n_mels", "n_fft", "hop_length", "f_min", "f_max")
TRAIN_FILE = "train.json"
_RUN_DIR_ENV = "SELFSUP_RUN_DIR"


class Run:
    """A trained run: its folder, config, encoder and training summary.

    Args:
        path: the run folder.
        encoder: the trained encoder.
        config: the run's configuration as plain data.
        summary: what ``train.json`` says (steps, seconds, throughput, machine).
    """

    def __init__(
        self, path: Path, encoder: Encoder, config: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        self.path = Path(path)
        self.encoder = encoder
        self.config = config
        self.summary = summary

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, method={self.config.get('method')!r})"

    @cached_property
    def source_encoding(self) -> TablePreprocessor | None:
        """The column encoding a table run was trained with (None for other modalities)."""
        return TablePreprocessor.load_if_saved(self.path)

    @cached_property
    def tokenizer(self) -> TextTokenizer | None:
        """The tokenizer a text run was trained with (None for other modalities)."""
        return TextTokenizer.load_if_saved(self.path)

    def _source(self, data: str | os.PathLike | Source) -> Source:
        """Open ``data`` as the run's modality, with the run's table column options (and a
        text run's tokenizer)."""
        if isinstance(data, Source):
            if self.tokenizer is not None and data.modality == "text":
                return with_tokenizer(data, self.tokenizer)  # ids as in training
            return data
        cfg = self.config
        options: dict[str, Any] = {}
        if self.source_encoding is not None:  # tables: encode as in training
            options["preprocessor"] = self.source_encoding
            options["drop_columns"] = cfg.get("drop_columns")
            options["require_label"] = False  # later data may come without its labels
        if self.tokenizer is not None:  # text: token ids as in training
            options["tokenizer"] = self.tokenizer
            options["text_column"] = cfg.get("text_column")
            options["require_label"] = False  # later data may come without its labels
        return open_source(
            data,
            cfg.get("modality"),
            id_column=cfg.get("id_column"),
            time_column=cfg.get("time_column"),
            label_column=cfg.get("label_column"),
            **options,
            **{name: cfg.get(name) for name in AUDIO_OPTIONS},
        )

    def _split_source(self, data: str | os.PathLike | Source | None) -> Any:
        """Named data stays a name (so its official test split is found), the rest opens."""
        if data is None or isinstance(data, Source):
            return data
        text = str(data)
        if text.startswith("ucr:") or is_named_spec(text):
            return text
        return self._source(data)

    def embed(self, data: str | os.PathLike | Source, batch_size: int = 512) -> np.ndarray:
        """Embeddings (n, D) of ``data`` (a path, dataset name or Source), in input order."""
        return embed_source(self.encoder, self._source(data), batch_size)

    def embed_timestamps(
        self, data: str | os.PathLike | Source, batch_size: int = 512
    ) -> np.ndarray:
        """Embeddings per time step ``(n, length, D)`` of series data, NaN at absent steps
        (the padding of shorter series); see ``selfsup.embedding.embed_timestamps``."""
        return embed_timestamps(self.encoder, self._source(data), batch_size)

    def embed_to_file(
        self, data: str | os.PathLike | Source, out: str | os.PathLike, batch_size: int = 512
    ) -> EmbeddingFile:
        """Write embeddings of ``data`` to ``.npy`` or ``.parquet`` with bounded memory."""
        return write_embeddings(self.encoder, self._source(data), out, batch_size)

    def evaluate(
        self,
        data: str | os.PathLike | Source,
        test: str | os.PathLike | Source | None = None,
        protocols: tuple[str, ...] | None = None,
        save: bool = True,
        **options: Any,
    ) -> Evaluation:
        """Evaluate on labelled ``data`` next to raw inputs; see ``selfsup.evaluation``.

        ``data`` is split into fit and test parts: a named dataset uses its official test
        split, otherwise ``test`` must be given or a stratified 80/20 split is made.
        """
        named = isinstance(data, str) and (is_tabular_spec(data) or has_test_split(data))
        if test is None and named:
            test = data.removesuffix(":train") + ":test"  # a named set's official split
        train, held_out = train_test_sources(self._split_source(data), self._split_source(test))
        result = evaluate_encoder(self.encoder, train, held_out, protocols, **options)
        if save:
            result.save(self.path / f"evaluation-{_slug(train.name)}.json")
        return result

    def evaluate_label_free(
        self,
        data: str | os.PathLike | Source,
        items: int = 4096,
        seed: int = 0,
        save: bool = True,
    ) -> LabelFreeMetrics:
        """Label-free metrics of the encoder on ``data``; no labels are read.

        Two views of each item come from the run's own augmentation recipe.

        Args:
            data: any data of the run's modality (a path, dataset name or Source).
            items: how many items to sample.
            seed: seed of the sample and the views.
            save: write ``label-free-<data>.json`` into the run folder.
        """
        source = self._source(data)
        spec = self.encoder.spec or {}
        method = METHODS[self.config.get("method") or "simclr"]
        views_options = {**self.config.get("views", {}), "local_views": 0}
        if source.modality in ("series", "tabular", "text", "audio"):
            views = monitor_views(method, views_options, source.modality)
        else:
            first = source.read_batch([0]).items
            channels = spec.get("in_channels", first.shape[1])
            size = spec.get("image_size", first.shape[-1])
            views, _ = method_views(method, size, channels, **views_options)
        result = measure_label_free(self.encoder, source, views, items, seed)
        if save:
            path = self.path / f"label-free-{_slug(source.name)}.json"
            path.write_text(json.dumps(result.to_dict(), indent=2))
        return result


def _slug(name: str) -> str:
    """A file-name-safe form of a data name: a path's last part, other characters as dashes.

    Example:
        >>> _slug("/data/photos/"), _slug("fashion-mnist:test")
        ('photos', 'fashion-mnist-test')
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name or name).strip("-")


def _default_out(cfg: PretrainConfig) -> Path:
    return Path("runs") / f"{cfg.method}-{_slug(str(cfg.data))}-{time.strftime('%Y%m%d-%H%M%S')}"


def _channel_statistics(source: Source, limit: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over an evenly spaced sample of up to ``limit`` items
    (images or series; NaN values of series are left out)."""
    indices = np.linspace(0, len(source) - 1, min(limit, len(source))).astype(int)
    x = source.read_batch(indices.tolist()).items
    per_channel = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    present = ~torch.isnan(per_channel)
    count = present.sum(dim=1).clamp_min(1)
    mean = torch.nan_to_num(per_channel).sum(dim=1) / count
    var = (torch.nan_to_num(per_channel - mean[:, None]) ** 2).sum(dim=1) / (count - 1).clamp_min(1)
    return mean.float().tolist(), var.sqrt().clamp_min(1e-3).float().tolist()


def monitor_views(method: Any, options: dict[str, Any], modality: str = "series") -> nn.Module:
    """Two augmented views per series or table row for the label-free metrics: the method's
    own views, or the modality's generic recipe for methods that take the batch as it is
    (TS2Vec, VIME, SimCSE, MLM) or keep one view clean (SCARF)."""
    if modality == "text":
        views, recipe = text_method_views(method, **options)
        if recipe.identity or views.num_views < 2:
            return TextViews(text_recipe("text"), num_views=2)
        return views
    if modality == "audio":
        views, recipe = audio_method_views(method, **options)
        if recipe.identity or views.num_views < 2:
            return AudioViews(audio_recipe("audio"), num_views=2)
        return views
    if modality == "tabular":
        views, recipe = tabular_method_views(method, **options)
        if recipe.identity or recipe.keep_first or views.num_views < 2:
            return TabularViews(tabular_recipe("tabular"), num_views=2)
        return views
    views, recipe = series_method_views(method, **options)
    if recipe.identity or views.num_views < 2:
        return SeriesViews(series_recipe("series"), num_views=2)
    return views


def _checksum(module: nn.Module) -> torch.Tensor:
    """A float64 fingerprint of all parameters (position-weighted, so order matters)."""
    flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
    weights = torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64, device=flat.device)
    return (flat * weights).sum()


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def _open_training_data(
    cfg: PretrainConfig,
    frame: pd.DataFrame | None = None,
    preprocessor: TablePreprocessor | None = None,
    tokenizer: TextTokenizer | None = None,
) -> Source:
    """The training data the config names (or ``frame``), tables encoded with
    ``preprocessor`` and texts tokenized with ``tokenizer`` when given (a resumed run's)."""
    return open_source(
        cfg.data if frame is None else frame,
        cfg.modality,
        image_size=cfg.image_size,
        id_column=cfg.id_column,
        time_column=cfg.time_column,
        label_column=cfg.label_column,
        categorical_columns=cfg.categorical_columns,
        numeric_columns=cfg.numeric_columns,
        drop_columns=cfg.drop_columns,
        preprocessor=preprocessor,
        text_column=cfg.text_column,
        max_length=cfg.max_length,
        vocab_size=cfg.vocab_size,
        tokenizer=tokenizer,
        **{name: getattr(cfg, name) for name in AUDIO_OPTIONS},
    )


def _build_encoder(
    cfg: PretrainConfig,
    source: Source,
    custom: nn.Module | None,
    feature_dim: int | None,
    run_dir: Path,
    resume: bool,
) -> tuple[Encoder, PretrainConfig]:
    """The encoder to train (rebuilt from the run folder on resume), and the config with the
    backbone (and image size) it chose filled in."""
    if resume:
        return Encoder.load(run_dir, custom), cfg
    if cfg.modality == "tabular":
        pre = source.preprocessor  # type: ignore[attr-defined]
        if custom is not None:
            width = pre.numeric_width + len(pre.cardinalities)
            return Encoder(
                custom, feature_dim, [0.0] * width, [1.0] * width, modality="tabular"
            ), cfg
        name = cfg.backbone or "mlp"
        encoder = Encoder.build_tabular(
            pre.numeric_width, pre.cardinalities, name, **cfg.backbone_options
        )
        return encoder, cfg.model_copy(update={"backbone": name})
    if cfg.modality == "text":
        if custom is not None:
            return Encoder(custom, feature_dim, [0.0], [1.0], modality="text"), cfg
        tokenizer = tokenizer_of(source)  # trained on the training texts here
        name = cfg.backbone or "text-transformer"
        encoder = Encoder.build_text(
            name, tokenizer.vocab_size, tokenizer.max_length, **cfg.backbone_options
        )
        return encoder, cfg.model_copy(update={"backbone": name})
    mean, std = _channel_statistics(source)
    if custom is not None:
        return Encoder(custom, feature_dim, mean, std, modality=cfg.modality), cfg
    first = source.read_batch([0]).items
    channels = first.shape[1]
    if cfg.modality == "audio":
        name = cfg.backbone or "byola-cnn"
        n_mels, frames = first.shape[-2:]
        encoder = Encoder.build_audio(name, n_mels, frames, mean[0], std[0], **cfg.backbone_options)
        return encoder, cfg.model_copy(update={"backbone": name})
    if cfg.modality == "series":
        name = cfg.backbone or "ts2vec"
        encoder = Encoder.build_series(name, channels, mean, std, **cfg.backbone_options)
        return encoder, cfg.model_copy(update={"backbone": name})
    size = cfg.image_size or int(first.shape[-1])
    name = cfg.backbone or ("small-cnn" if size <= 32 else "resnet18")
    encoder = Encoder.build(name, channels, size, mean, std, **cfg.backbone_options)
    return encoder, cfg.model_copy(update={"backbone": name, "image_size": size})


def _training_views(
    cfg: PretrainConfig, method: Any, source: Source
) -> tuple[nn.Module, Any, nn.Module]:
    """The views the method trains on, their recipe, and the two-view module the label-free
    monitor measures with."""
    if cfg.modality == "series":
        views, recipe = series_method_views(method, **cfg.views)
        return views, recipe, monitor_views(method, cfg.views, "series")
    if cfg.modality == "tabular":
        views, recipe = tabular_method_views(method, **cfg.views)
        return views, recipe, monitor_views(method, cfg.views, "tabular")
    if cfg.modality == "text":
        views, recipe = text_method_views(method, **cfg.views)
        return views, recipe, monitor_views(method, cfg.views, "text")
    if cfg.modality == "audio":
        views, recipe = audio_method_views(method, **cfg.views)
        return views, recipe, monitor_views(method, cfg.views, "audio")
    first = source.read_batch([0]).items
    size = cfg.image_size or int(first.shape[-1])  # a custom backbone leaves it unset
    views, recipe = method_views(method, size, first.shape[1], **cfg.views)
    return views, recipe, views


def pretrain(
    data: str | os.PathLike | Source | pd.DataFrame | None = None,
    *,
    config: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    backbone: str | nn.Module | None = None,
    show_progress: bool = True,
    **options: Any,
) -> Run:
    """Pretrain an encoder and return the run.

    Args:
        data: a path or dataset name (see ``selfsup datasets list``).
        config: a YAML file of options; keyword options override it.
        resume: a run folder to continue from its last checkpoint (its config is reused;
            ``epochs`` and ``time_budget`` may be raised).
        backbone: a backbone name, or any ``nn.Module`` mapping a batch of images to feature
            vectors (it needs a ``feature_dim`` attribute, or pass ``feature_dim=`` in options).
        show_progress: draw a progress bar.
        **options: any field of ``PretrainConfig`` (``method``, ``epochs``, ``time_budget``...).
    """
    custom = backbone if isinstance(backbone, nn.Module) else None
    feature_dim = options.pop("feature_dim", None)
    if isinstance(backbone, str):
        options["backbone"] = backbone
    in_memory = None if data is None or isinstance(data, (str, os.PathLike)) else data
    if in_memory is not None:  # a Source or a DataFrame from Python
        if isinstance(in_memory, pd.DataFrame):
            options.setdefault("modality", "tabular")
            data = "DataFrame"
        else:
            options.setdefault("modality", in_memory.modality)
            data = in_memory.name
    if resume is not None:
        run_dir = Path(resume)
        saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
        allowed = {k: v for k, v in options.items() if k in ("epochs", "time_budget")}
        cfg = load_config(None, **{**saved, **allowed}).resolved()
    else:
        cfg = load_config(config, data=None if data is None else str(data), **options).resolved()
        run_dir = (
            Path(cfg.out) if cfg.out else Path(os.environ.get(_RUN_DIR_ENV) or _default_out(cfg))
        )
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; available: {', '.join(sorted(METHODS))}")
    if cfg.modality not in METHODS[cfg.method].modalities:
        usable = sorted(m for m, c in METHODS.items() if cfg.modality in c.modalities)
        raise ValueError(
            f"method {cfg.method} does not work on {cfg.modality} data; methods that do: "
            f"{', '.join(usable)}"
        )
    # Processes started by Fabric's launcher inherit the environment, so they find this folder.
    os.environ[_RUN_DIR_ENV] = str(run_dir)

    multi = cfg.devices * cfg.num_nodes > 1
    fabric = lightning.Fabric(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy="ddp" if multi else "auto",
        precision=resolve_precision(cfg.precision, cfg.accelerator),
    )
    fabric.launch()
    run_dir = Path(fabric.broadcast(str(run_dir), src=0))  # torchrun ranks agree on the folder
    fabric.seed_everything(cfg.seed, verbose=False)

    if isinstance(in_memory, Source):
        opened = in_memory
    else:
        saved = TablePreprocessor.load_if_saved(run_dir) if resume is not None else None
        tokenizer = TextTokenizer.load_if_saved(run_dir) if resume is not None else None
        opened = _open_training_data(cfg, in_memory, saved, tokenizer)
    source, held_out = hold_out(opened, cfg.monitor_items, cfg.seed)
    encoder, cfg = _build_encoder(cfg, source, custom, feature_dim, run_dir, resume is not None)
    # A batch never asks for more items than one process's share of the data.
    share = max(2, len(source) // (cfg.devices * cfg.num_nodes))
    if cfg.batch_size > share:
        cfg = cfg.model_copy(update={"batch_size": share})
    method = build_method(cfg.method, encoder, **cfg.method_options)
    views, recipe, watch = _training_views(cfg, method, source)

    if fabric.global_rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(cfg.to_yaml())
        if resume is None:
            encoder.save(run_dir)  # the initial encoder: a resumed run rebuilds it from here
            preprocessor = getattr(opened, "preprocessor", None)
            if preprocessor is not None:  # tables: the fitted column encoding
                preprocessor.save(run_dir)
            if cfg.modality == "text":  # the tokenizer trained on the training texts
                tokenizer_of(opened).save(run_dir)
    fabric.barrier()

    monitor = None
    if held_out is not None:
        monitor = EpochMonitor(
            held_out,
            watch,
            run_dir,
            select_by=cfg.select_by,
            stop_on_collapse=cfg.stop_on_collapse,
            items=cfg.monitor_items,
            seed=cfg.seed,
            precision=cfg.precision,
        )
    elif cfg.select_by != "last":
        raise ValueError(f"--select-by {cfg.select_by} needs monitoring (--monitor-items > 0)")
    state = fit(
        method, source, views, cfg, run_dir, fabric, resume is not None, show_progress, monitor
    )
    if method.export_encoder() is not encoder:  # DINO, I-JEPA: keep the teacher's weights
        encoder.load_state_dict(method.export_encoder().state_dict())
    # Every process's weights, reduced to one number each: DDP keeps them equal.
    checksums = fabric.all_gather(_checksum(method)).reshape(-1).tolist()
    summary = {
        "method": cfg.method,
        "data": cfg.data,
        "items": len(source),
        "held_out_items": 0 if held_out is None else len(held_out),
        "monitor_seconds": round(state.monitor_seconds, 2),
        "steps": state.step,
        "epochs": state.epoch,
        "items_seen": state.items_seen,
        "train_seconds": round(state.train_seconds, 2),
        "items_per_second": round(state.items_seen / max(state.train_seconds, 1e-9), 1),
        "precision": fabric.strategy.precision.precision,
        "world_size": fabric.world_size,
        "machine": _machine(),
        "view_recipe": recipe.to_dict(),
        "method_options": method.options(),
        "replica_checksums": checksums,
    }
    if monitor is not None and monitor.best_epoch is not None:
        # --select-by: the run's encoder is the best epoch's, not the last one.
        load_encoder_weights(encoder, run_dir / BEST_WEIGHTS)
        summary["selected"] = {
            "by": cfg.select_by,
            "epoch": monitor.best_epoch,
            "value": monitor.best,
        }
    if fabric.global_rank == 0:
        encoder.save(run_dir)
        (run_dir / TRAIN_FILE).write_text(json.dumps(summary, indent=2))
    fabric.barrier()
    return Run(run_dir, encoder, cfg.model_dump(mode="json"), summary)


def load(path: str | os.PathLike, backbone: nn.Module | None = None) -> Run:
    """Rebuild a run from its folder alone (``backbone`` only for custom-module encoders)."""
    path = Path(path)
    if not (path / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{path}: not a run folder (no {CONFIG_FILE})")
    config = yaml.safe_load((path / CONFIG_FILE).read_text())
    summary_file = path / TRAIN_FILE
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return Run(path, Encoder.load(path, backbone), config, summary)
