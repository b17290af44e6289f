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

import os
import platform
import re
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import pandas as pd
import torch
import yaml
from pydantic import ValidationError
from torch import nn

from selfsup.backbones.hf import (
    add_lora,
    is_hf_backbone,
    model_kind,
    resolve_folder,
)
from selfsup.config import ConfigError, PretrainConfig, load_config, validation_problems
from selfsup.console import console
from selfsup.core.files import (
    check_writable,
    read_json_object,
    remove_stale_temporaries,
    write_json,
    write_text,
)
from selfsup.core.precision import embedding_device, resolve_precision, uses_gpu
from selfsup.core.progress import ShowProgress, activity
from selfsup.data.base import DataWarning, Source
from selfsup.data.folders import INDEX_FILE, FolderIndex, unreadable_lines
from selfsup.data.splits import hold_out
from selfsup.embedding import (
    CENTER_HELD_OUT,
    EmbeddingFile,
    cache_key,
    cached_embeddings,
    embed_source,
    embed_timestamps,
    embeddings_bytes,
    keep_embeddings,
    kept_embeddings,
    mean_embedding,
    write_embedding_rows,
    write_embeddings,
)
from selfsup.encoder import Encoder
from selfsup.engine.checkpoint import checkpoint_bytes, module_bytes
from selfsup.engine.memory import measure_step, plan_batch
from selfsup.engine.monitor import (
    BEST_WEIGHTS,
    EpochMonitor,
    has_heldout_loss,
    labelled_monitor_items,
    load_encoder_weights,
)
from selfsup.engine.train import TrainState, fit
from selfsup.evaluation.labelfree import LabelFreeMetrics, measure_label_free
from selfsup.evaluation.report import Evaluation, evaluate_encoder
from selfsup.methods import METHODS, build_method
from selfsup.methods.distributed import sync_batch_norm
from selfsup.modalities import (
    MODALITIES,
    Modality,
    get_modality,
    infer_modality,
    load_encoder,
    official_test,
    open_source,
    resolve_config,
    train_test_sources,
)

CONFIG_FILE = "config.yaml"
#: Config fields that describe how data is read (every modality's source options): a run
#: opens later data with the values it was trained with.
_DATA_FIELDS = sorted(
    set().union(*(m.source_options for m in MODALITIES.values())) & set(PretrainConfig.model_fields)
)
TRAIN_FILE = "train.json"
#: Where a run keeps the embeddings of large data its commands read (``Run.embeddings``).
EMBEDDINGS_DIR = "embeddings"
_RUN_DIR_ENV = "SELFSUP_RUN_DIR"


def _warned(source: Source) -> Source:
    """``source``, its warning (if any) given as a :class:`DataWarning` (the command line
    prints it as one line)."""
    if source.warning:
        warnings.warn(f"{source.name}: {source.warning}", DataWarning, stacklevel=3)
    return source


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
        #: Data options given for later data (``with_data_options``), not the run's own.
        self.given_options: set[str] = set()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, method={self.config.get('method')!r})"

    @property
    def finished(self) -> bool:
        """Whether training ended (``train.json`` is written last); an unfinished run's
        encoder is its last checkpoint's."""
        return (self.path / TRAIN_FILE).exists()

    @property
    def modality(self) -> Modality:
        """The modality of the run's data (what opens, views and evaluates it)."""
        return get_modality(self.config["modality"])  # a saved config always names it

    @cached_property
    def data_options(self) -> dict[str, Any]:
        """The options that open later data as the training data was read: the run's data
        options (columns, audio settings) and what its modality saved (a table's fitted
        encoding, a text run's tokenizer)."""
        options = {name: self.config.get(name) for name in _DATA_FIELDS}
        options.update(self.modality.run_source_options(self.path, self.config))
        return {k: v for k, v in options.items() if v is not None}

    def with_data_options(self, **options: Any) -> Run:
        """This run, reading later data with ``options`` (``text_column``, ``label_column``...)
        over those it was trained with; None values are left out.

        Example:
            >>> run = Run(Path("no-run"), None, {"modality": "text", "text_column": "t"}, {})
            >>> run.with_data_options(text_column="body").data_options["text_column"]
            'body'
        """
        given = {k: v for k, v in options.items() if v is not None}
        if not given:
            return self
        other = Run(self.path, self.encoder, self.config, self.summary)
        other.__dict__["data_options"] = {**self.data_options, **given}
        other.given_options = self.given_options | set(given)
        return other

    def open(self, data: str | os.PathLike | Source | Any, **options: Any) -> Source:
        """Open ``data`` (a path, dataset name, Source or DataFrame; for a text run, a list of
        texts too) as the run's training data was read; ``options`` (``text_column``,
        ``label_column``...) override the run's.

        Example:
            >>> import tempfile
            >>> run = pretrain("digits", epochs=1, out=tempfile.mkdtemp(), show_progress=False,
            ...                backbone_options={"width": 4}, monitor_items=0)
            >>> run.open("digits:test").describe()
            'digits:test: 359 image items, 10 classes'
        """
        return _warned(self._open(data, options))

    def open_as_trained(self, data: str | os.PathLike | Source | Any, **options: Any) -> Source:
        """``data`` opened as :meth:`open` opens it, in the items training read: series of
        6,000 steps or more in windows of 3,000, folders of long recordings in clips (see
        ``Modality.training_source``); other data as it is. For work whose cost grows with an
        item's size and that needs no item of the data as such (checking an export,
        the report's pictures): three months of readings as one item do not fit in memory.

        Example:
            >>> import tempfile
            >>> run = pretrain(np.zeros((2, 7000), np.float32), modality="series", steps=1,
            ...                method="simclr", out=tempfile.mkdtemp(), show_progress=False,
            ...                monitor_items=0, backbone_options={"hidden": 4, "out_dim": 8,
            ...                "depth": 1}, method_options={"projection_dim": 8, "hidden_dim": 8})
            >>> run.open_as_trained(np.zeros((2, 7000), np.float32)).item_shape
            (1, 3000)
        """
        source = self._open(data, options)
        read_as = load_config(
            None, data=source.name, window=self.config.get("window"),
            clip_hop=self.config.get("clip_hop"),
        )  # fmt: skip
        return _warned(self.modality.training_source(source, read_as)[0])

    def _open(self, data: str | os.PathLike | Source | Any, options: dict[str, Any]) -> Source:
        if isinstance(data, Source):
            return self.modality.adopt(data, self.path)
        given = {k: v for k, v in options.items() if v is not None}
        merged = {**self.data_options, **given}
        if "labels" not in self.given_options | set(given) and not self._is_training_data(data):
            merged.pop("labels", None)  # the run's labels table names its own folder's files
        return open_source(data, self.modality.name, **merged)

    def _is_training_data(self, data: Any) -> bool:
        """Whether ``data`` names the folder or file the run trained on."""
        if not isinstance(data, (str, os.PathLike)):
            return False
        return os.path.realpath(data) == os.path.realpath(self.config.get("data") or "")

    def embed(
        self,
        data: str | os.PathLike | Source | Sequence[str],
        batch_size: int = 512,
        precision: str = "auto",
        show_progress: ShowProgress = "auto",
    ) -> np.ndarray:
        """Embeddings (n, D) of ``data`` (a path, dataset name or Source; for a text run, a
        list of texts as well), in input order.

        ``precision="auto"`` computes images, texts and audio in bf16 where the processor has bf16
        matrix instructions (AVX512-BF16, AMX, a GPU), which moves values by about 1e-3;
        ``"fp32"`` gives the same rows on every machine (an exported model's, to 1e-4).
        ``show_progress="auto"`` shows progress once embedding has taken a few seconds (a
        folder of photos: yes; a few texts in a loop: nothing printed).
        """
        source = self.open(data)
        return embed_source(self.encoder, source, batch_size, precision, show_progress)

    def embeddings(self, source: Source, show_progress: ShowProgress = False) -> np.ndarray:
        """Embeddings (n, D) of an opened ``source`` (NaN rows: unreadable items), kept in
        ``RUN/embeddings`` for large data read from files, so the next command on the same
        files reads them back as a read-only memory map (see
        ``selfsup.embedding.cached_embeddings``); what the tools (anomalies, select, audit,
        explain) and ``evaluate`` embed with.

        Example:
            >>> import tempfile
            >>> run = pretrain("digits", epochs=1, out=tempfile.mkdtemp(), show_progress=False,
            ...                backbone_options={"width": 4}, monitor_items=0)
            >>> run.embeddings(run.open("digits:test")).shape
            (359, 32)
        """
        say = (lambda line: console.print(line, highlight=False)) if show_progress else None
        folder = self.path / EMBEDDINGS_DIR
        emb = cached_embeddings(self.encoder, source, folder, show_progress, say)
        said = source.__dict__.get("_unreadable_said", 0)  # each once, however often embedded
        if say is not None and len(source.unreadable) > said:
            count = len(source.unreadable)
            console.print(
                f"[yellow]{count:,} unreadable item{'s' if count > 1 else ''} of "
                f"{source.name}, left out:[/yellow]"
            )
            for line in unreadable_lines(source.unreadable.items()):
                say(line)
            source.__dict__["_unreadable_said"] = count
        return emb

    def embed_timestamps(
        self, data: str | os.PathLike | Source, batch_size: int = 512
    ) -> np.ndarray:
        """Embeddings per time step ``(n, length, D)`` of series data, NaN at absent steps
        (the padding of shorter series); see ``selfsup.embedding.embed_timestamps``."""
        return embed_timestamps(self.encoder, self.open(data), batch_size)

    def embed_to_file(
        self,
        data: str | os.PathLike | Source,
        out: str | os.PathLike,
        batch_size: int = 512,
        say: Callable[[str], None] | None = None,
    ) -> EmbeddingFile:
        """Write embeddings of ``data`` to ``.npy``, ``.npz`` or ``.parquet`` with bounded
        memory; the same call after an interruption goes on where it stopped (``say`` is
        told so). Embeddings another command kept (:meth:`embeddings`) are written as they
        are, without embedding again; large data read from files is kept in the run as those
        commands keep it, so that ``select``, ``anomalies`` or ``evaluate`` on the same files
        after ``embed`` read them back (200,000 photos: 20 minutes on two cores). See
        ``selfsup.embedding.write_embeddings``."""
        source = self.open(data)
        notes = [n for n in (source.index_note, source.labels_note) if n]
        if say is not None and notes:  # which files, which split: what was embedded
            say(f"data: {source.name}: {len(source):,} items ({'; '.join(notes)})")
        key = cache_key(self.encoder, source)  # also what an interrupted write's rows match
        folder = self.path / EMBEDDINGS_DIR
        kept = kept_embeddings(source, folder, key, say)
        if kept is None and key is not None:
            # Room for the output is checked before the embedding, not after it.
            check_writable(out, embeddings_bytes(len(source), self.encoder.feature_dim) * 2)
            keep_embeddings(self.encoder, source, folder, True, say, batch_size=batch_size)
            kept = kept_embeddings(source, folder, key)
        if kept is not None:
            check_writable(out, kept[0].stat().st_size)
            return write_embedding_rows(kept[0], source, kept[1], Path(out))
        return write_embeddings(self.encoder, source, out, batch_size, say=say, key=key)

    def evaluate(
        self,
        data: str | os.PathLike | Source,
        test: str | os.PathLike | Source | None = None,
        protocols: tuple[str, ...] | None = None,
        save: bool = True,
        show_progress: ShowProgress = "auto",
        split_by: str = "auto",
        **options: Any,
    ) -> Evaluation:
        """Evaluate on labelled ``data`` next to raw inputs; see ``selfsup.evaluation``.

        ``data`` is split into fit and test parts: a named dataset uses its official test
        split, otherwise ``test`` must be given or a stratified 80/20 split is made, of
        items or (``split_by="folder"``) of first folders, such as a hospital's patients
        (``"auto"``: by folder where the data's folders are patients, DICOM files with one
        PatientID per folder, else by item).
        ``show_progress`` shows the embedding's progress (``"auto"``: once it has taken a
        few seconds).
        """
        if test is None and isinstance(data, str):
            test = official_test(data)  # fashion-mnist pairs with fashion-mnist:test
        # Opened as the run reads later data (its --labels table only on its own folder).
        train, held_out = train_test_sources(
            self.open(data), None if test is None else self.open(test), split_by=split_by
        )
        result = evaluate_encoder(
            self.encoder,
            train,
            held_out,
            protocols,
            show_progress=show_progress,
            embed=lambda split: self.embeddings(split, show_progress),
            **options,
        )
        if save:
            result.save(self.evaluation_file(result.train_data))
        return result

    def evaluation_file(self, data_name: str) -> Path:
        """Where an evaluation on the data named ``data_name`` is saved in the run folder.

        Example:
            >>> Run(Path("runs/r"), None, {}, {}).evaluation_file("/data/photos/")
            PosixPath('runs/r/evaluation-photos.json')
        """
        return self.path / f"evaluation-{_slug(data_name)}.json"

    def label_free_file(self, data_name: str) -> Path:
        """Where label-free metrics on the data named ``data_name`` are saved."""
        return self.path / f"label-free-{_slug(data_name)}.json"

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
        source = self.open(data)
        method = METHODS[self.config.get("method") or self.modality.default_method]
        views = self.modality.monitor_views(
            _Described(method, self.encoder), self.config.get("views", {}), source
        )
        result = measure_label_free(self.encoder, source, views, items, seed)
        if save:
            write_json(self.label_free_file(source.name), result.to_dict())
        return result


def _slug(name: str) -> str:
    """A file-name-safe form of a data name: a path's last part, other characters as dashes.

    Example:
        >>> _slug("/data/photos/"), _slug("fashion-mnist:test")
        ('photos', 'fashion-mnist-test')
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name or name).strip("-")


def _holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run (its config file)."""
    return (folder / CONFIG_FILE).exists()


def _first_process() -> bool:
    """Whether this is the first process of a launch (processes started by Fabric or torchrun
    for other ranks find the folder their rank 0 is filling)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def data_spec(data: str | os.PathLike) -> str:
    """How a run's config keeps its data: a path that exists as an absolute path, so that
    ``--resume``, ``report`` and ``load(RUN).open`` find it from any working directory; a
    dataset name as it is.

    Example:
        >>> data_spec("digits"), data_spec("/tmp") == str(Path("/tmp").resolve())
        ('digits', True)
    """
    text = str(data)
    return str(Path(text).expanduser().resolve()) if Path(text).expanduser().exists() else text


class AutocastPrecision(lightning.fabric.plugins.MixedPrecision):
    """Lightning's mixed precision without its cast of the model's inputs: autocast alone
    decides what runs in bf16 (or fp16). Lightning casts every floating input to bf16 first,
    and a table's category codes are floats that bf16 rounds above 256 (merchant 3,737 read
    as 3,744): the embeddings trained were not those embedding later reads, and VIME's
    reconstruction targets fell outside their classes.

    Example:
        >>> plugin = AutocastPrecision("bf16-mixed", "cpu")
        >>> plugin.convert_input(torch.tensor([3737.0])).item()
        3737.0
    """

    def convert_input(self, data: Any) -> Any:
        """The inputs as they are."""
        return data


def fabric_precision(cfg: PretrainConfig) -> dict[str, Any]:
    """The precision argument of the Fabric a run trains with: ``32-true``, or a mixed
    precision plugin that leaves the inputs as they are (:class:`AutocastPrecision`).

    Example:
        >>> fabric_precision(PretrainConfig(data="digits", precision="fp32"))
        {'precision': '32-true'}
    """
    name = resolve_precision(cfg.precision, cfg.accelerator)
    if name == "32-true":
        return {"precision": name}
    device = "cpu"
    if uses_gpu(cfg.accelerator):
        device = "cuda" if torch.cuda.is_available() else "mps"
    return {"plugins": [AutocastPrecision(name, device)]}


def build_fabric(cfg: PretrainConfig) -> lightning.Fabric:
    """The Lightning Fabric a run trains with: its accelerator (a GPU when present, by
    default), processes and precision. Under SLURM (``srun``), torchrun or Fabric's own
    launcher, Fabric takes ranks and the master address from their environment variables,
    and checks ``--devices``/``--num-nodes`` against SLURM's tasks per node and nodes.

    Raises:
        ConfigError: ``accelerator="gpu"`` where PyTorch sees no GPU.

    Example:
        >>> build_fabric(PretrainConfig(data="digits", accelerator="cpu")).world_size
        1
    """
    if cfg.accelerator == "gpu" and not (
        torch.cuda.is_available() or torch.backends.mps.is_available()
    ):
        build = "a CPU-only build" if "+cpu" in torch.__version__ else "this build"
        raise ConfigError(
            f"--accelerator gpu: PyTorch sees no GPU here (torch {torch.__version__}, {build}); "
            "give --accelerator auto (a GPU when one is present) or cpu"
        )
    multi = cfg.devices * cfg.num_nodes > 1
    return lightning.Fabric(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy="ddp" if multi else "auto",
        **fabric_precision(cfg),
    )


def _default_out(cfg: PretrainConfig) -> Path:
    return Path("runs") / f"{cfg.method}-{_slug(str(cfg.data))}-{time.strftime('%Y%m%d-%H%M%S')}"


class _Described:
    """A method class seen with a trained encoder: views are made to the encoder's input
    size and patches, as in training."""

    def __init__(self, method: type, encoder: Encoder) -> None:
        self.method = method
        self.encoder = encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.method, name)


def _center(
    monitor: EpochMonitor | None, state: TrainState, encoder: Encoder, source: Source
) -> tuple[np.ndarray, int, str]:
    """The mean embedding a trained encoder subtracts, how many items it averages and which.

    The held-out items' embeddings the monitor measured after the last step serve where there
    are :data:`~selfsup.embedding.CENTER_HELD_OUT` of them and the run keeps those weights (no
    ``--select-by`` epoch): the mean of 500 already differs from all items' by about 1/22 of
    each dimension's spread, and a day of minute readings through TS2Vec costs 8 ms an item
    (7,320 items: 55 s past the time budget). Else up to ``CENTER_ITEMS`` training items are
    embedded again (:func:`~selfsup.embedding.mean_embedding`).
    """
    measured = None if monitor is None else monitor.clean_mean
    if (
        measured is not None
        and measured[1] >= CENTER_HELD_OUT
        and monitor is not None
        and monitor.best_epoch is None
        and state.measured_step == state.step
    ):
        return measured[0], measured[1], "held-out items, measured after the last step,"
    with activity("measuring the mean embedding of the training items"):
        center, counted = mean_embedding(encoder, source)
    return center, counted, "training items"


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


#: Options a resumed run may be given with new values: how long it trains, how it
#: checkpoints, logs and reads (not what it computes).
RESUME_OPTIONS = frozenset(
    {"epochs", "steps", "time_budget", "checkpoint_every", "num_workers", "log_every", "strict"}
)


def _resumable(run_dir: Path, data: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The saved config of the run in ``run_dir``, once the options given with ``--resume``
    are checked: options that would change what the run computes are refused by name, and a
    finished run is continued only with a larger ``epochs``, ``steps`` or ``time_budget``.

    Raises:
        ConfigError: no run there, a changed option, or a finished run given nothing more.
    """
    if not _holds_run(run_dir):
        raise ConfigError(f"{run_dir}: no run to resume (no {CONFIG_FILE})")
    saved = load_config(run_dir / CONFIG_FILE).model_dump(mode="json")
    if "group_by_length" not in (yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}):
        saved["group_by_length"] = False  # saved before the option: plain shuffled batches
    given = dict(options)
    if data is not None and data_spec(data) != data_spec(saved["data"]):
        given["data"] = str(data)
    changed = sorted(
        name
        for name, value in given.items()
        if name not in RESUME_OPTIONS and name in saved and value != saved[name]
    )
    if changed:
        listed = ", ".join(f"{name} ({saved[name]!r} -> {given[name]!r})" for name in changed)
        raise ConfigError(
            f"{run_dir}: cannot change {listed} when resuming; a resumed run may change only "
            f"{', '.join(sorted(RESUME_OPTIONS))} (start a new run with --out for the rest)"
        )
    if (run_dir / TRAIN_FILE).exists():  # finished: only a longer plan continues it
        longer = [
            name
            for name in ("epochs", "steps", "time_budget")
            if given.get(name) is not None
            and (saved.get(name) is None or given[name] > saved[name])
        ]
        if not longer:
            planned = ", ".join(
                f"{name} {saved[name]}"
                for name in ("epochs", "steps", "time_budget")
                if saved.get(name) is not None
            )
            raise ConfigError(
                f"{run_dir}: the run finished ({planned or 'its default plan'}); to train it "
                "further give a larger --epochs, --steps or --time-budget"
            )
        if "time_budget" not in longer:  # the budget it finished by no longer limits it
            saved["time_budget"] = None
        if _first_process():
            (run_dir / TRAIN_FILE).unlink()  # unfinished again until the extension ends
    return saved


def _finished_as(run_dir: Path) -> tuple[str, int] | None:
    """A finished run's config (as text) and its steps, put back when a resume given a
    longer plan trains nothing; None for a run that has not finished.

    Example:
        >>> _finished_as(Path("no-such-run")) is None
        True
    """
    try:
        steps = int(read_json_object(run_dir / TRAIN_FILE, "a run summary")["steps"])
        return (run_dir / CONFIG_FILE).read_text(), steps
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_starting_points(cfg: PretrainConfig, custom: bool = False) -> None:
    """Refuse a teacher without distillation (and the reverse), a method that adapts a
    pretrained encoder without one (``custom``: a module of the user's, taken as one), a
    ``--select-by`` that cannot be measured, an ``--init`` that is not a run folder, and
    ``--init`` with ``--backbone``, before any data is read.

    Raises:
        ConfigError: the message names the option.
    """
    if cfg.method == "distill" and not cfg.teacher:
        raise ConfigError("--method distill needs --teacher (a run folder or hf:PATH_OR_ID)")
    if cfg.teacher and cfg.method != "distill":
        raise ConfigError(f"--teacher is for --method distill, not {cfg.method}")
    method = METHODS.get(cfg.method)
    pretrained = cfg.init is not None or is_hf_backbone(cfg.backbone) or custom
    if method is not None and method.needs_pretrained and not pretrained:
        raise ConfigError(
            f"--method {cfg.method} adapts a pretrained encoder and learns nothing from "
            "random weights: give --backbone hf:PATH_OR_ID or --init RUN"
        )
    if cfg.select_by not in ("auto", "last") and cfg.monitor_items == 0:
        raise ConfigError(f"--select-by {cfg.select_by} needs monitoring (--monitor-items > 0)")
    if cfg.patience is not None:
        keeps = cfg.select_by
        if keeps == "auto":
            keeps = method.select_by if method is not None else "last"
        if keeps == "last" or cfg.monitor_items == 0:
            raise ConfigError(
                f"--patience stops when the --select-by number stops improving, but this run "
                f"keeps the last epoch (--select-by {cfg.select_by} with --method "
                f"{cfg.method}{', --monitor-items 0' if cfg.monitor_items == 0 else ''}): "
                "give --select-by rankme (or another monitored number) and --monitor-items > 0"
            )
    if cfg.select_by == "heldout_loss" and method is not None and not has_heldout_loss(method):
        having = sorted(k for k, m in METHODS.items() if has_heldout_loss(m))
        raise ConfigError(
            f"--select-by heldout_loss: --method {cfg.method} has no loss that means "
            f"something on held-out items (those that have: {', '.join(having)})"
        )
    if cfg.init is not None:
        if not (Path(cfg.init) / CONFIG_FILE).is_file():
            raise ConfigError(f"--init {cfg.init}: not a run folder (no {CONFIG_FILE})")
        if (
            cfg.backbone is not None
            and cfg.backbone != load_config(Path(cfg.init) / CONFIG_FILE).backbone
        ):
            raise ConfigError("--init starts from that run's encoder: leave out --backbone")


def planning_items(source: Source) -> torch.Tensor:
    """Two to four items to measure a training step on: the longest where lengths differ (a
    text batch is padded to its longest document, so a batch holding it costs the most),
    else the first readable ones.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> texts = ["short text"] * 30 + ["a much longer text, of many more words"]
        >>> planning_items(TextSource(texts)).shape[1] > TextSource(texts).read(0).shape[0]
        True
    """
    keys = source.length_keys(np.arange(len(source)))
    rows = list(range(min(len(source), 16))) if keys is None else np.argsort(keys)[-4:].tolist()
    readable = source.read_batch(rows).items[:4]
    if len(readable) < 2:
        first = source.first_item()
        readable = first.expand(2, *first.shape[1:])
    return readable


def _plan_memory(
    cfg: PretrainConfig,
    method: nn.Module,
    views: nn.Module,
    source: Source,
    fabric: lightning.Fabric,
    given: bool,
    remedy: str,
) -> tuple[int, str]:
    """The batch that fits in memory (see ``selfsup.engine.memory``) and the line saying so."""
    readable = planning_items(source)
    in_flight = 2 * max(1, cfg.num_workers) + 1
    plan = measure_step(method.to(fabric.device), views.to(fabric.device), readable, fabric,
                        in_flight)  # fmt: skip
    held = source.held_bytes()
    if held:  # each process reading keeps its own: the loader's workers and this one
        readers = max(0, cfg.num_workers or 0) + 1
        plan.data = held * readers
        plan.data_words = f"of decoded files kept by {readers} process(es)"
    side = f" at {cfg.image_size} px" if cfg.image_size else ""
    what = f"{cfg.backbone}{side}, {cfg.method}, {fabric.strategy.precision.precision}"
    return plan_batch(plan, int(cfg.batch_size), given, what, remedy)


def _open_training_data(
    cfg: PretrainConfig,
    frame: Any = None,
    resumed: dict[str, Any] | None = None,
) -> Source:
    """The training data the config names (or ``frame``, data in memory), read with what a
    resumed run saved (a table's fitted encoding, a text run's tokenizer)."""
    options = {**{name: getattr(cfg, name) for name in _DATA_FIELDS}, **(resumed or {})}
    return open_source(cfg.data if frame is None else frame, cfg.modality, **options)


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
        data: a path, a dataset name (see ``selfsup datasets list``), a Source, a DataFrame
            or an array (2-d: table rows; else images; ``modality="series"`` for series).
        config: a YAML file of options; keyword options override it.
        resume: a run folder to continue from its last checkpoint (its config is reused;
            ``epochs`` and ``time_budget`` may be raised).
        backbone: a backbone name, or any ``nn.Module`` mapping a batch of images to feature
            vectors (it needs a ``feature_dim`` attribute, or pass ``feature_dim=`` in options).
        show_progress: print the data read, progress and notes (``False``: the run's log
            file has them; a warning about the data still comes as a ``DataWarning``).
        **options: any field of ``PretrainConfig`` (``method``, ``epochs``, ``time_budget``...).
    """
    custom = backbone if isinstance(backbone, nn.Module) else None
    feature_dim = options.pop("feature_dim", None)
    if isinstance(backbone, str):
        options["backbone"] = backbone
    in_memory = None if data is None or isinstance(data, (str, os.PathLike)) else data
    if isinstance(in_memory, Source):
        options.setdefault("modality", in_memory.modality)
        data = in_memory.name
    elif in_memory is not None:  # a DataFrame, an array or a tensor from Python
        options.setdefault("modality", infer_modality(in_memory))
        data = type(in_memory).__name__
    batch_given = True  # a resumed run keeps its batch
    method_given = True  # ... and its method
    finished_as = None
    if resume is not None:
        run_dir = Path(resume)
        finished_as = _finished_as(run_dir)
        saved = _resumable(run_dir, data, options)
        if _first_process():  # what a killed run was writing when it died
            remove_stale_temporaries(run_dir)
        cfg = resolve_config(load_config(None, **{**saved, **options}))
    else:
        cfg = load_config(config, data=None if data is None else data_spec(data), **options)
        if cfg.labels is not None:  # later commands read it from wherever they run
            cfg = cfg.model_copy(update={"labels": data_spec(cfg.labels)})
        batch_given = cfg.batch_size is not None
        method_given = cfg.method is not None
        cfg = resolve_config(cfg)
        # Processes launched for other ranks take the folder their rank 0 chose.
        inherited = None if _first_process() else os.environ.get(_RUN_DIR_ENV)
        run_dir = Path(cfg.out or inherited or _default_out(cfg))
    _check_starting_points(cfg, custom is not None)
    replace = resume is None and _holds_run(run_dir) and _first_process()
    if replace and not cfg.overwrite:
        raise ConfigError(
            f"{run_dir}: holds a run already (its {CONFIG_FILE}); give --overwrite to replace "
            "it, --resume to continue it, or another --out"
        )
    if _first_process():
        check_writable(run_dir)  # a read-only or missing place, before the data is opened
    # A run's saved config never asks to replace a run: reusing it as --config must not.
    cfg = cfg.model_copy(update={"overwrite": False})
    # Processes started by Fabric's launcher inherit the environment, so they find this folder.
    os.environ[_RUN_DIR_ENV] = str(run_dir)

    fabric = build_fabric(cfg)
    fabric.launch()
    run_dir = Path(fabric.broadcast(str(run_dir), src=0))  # torchrun ranks agree on the folder
    if replace and fabric.global_rank == 0:  # --overwrite: nothing of the old run is left
        shutil.rmtree(run_dir)
    fabric.barrier()
    fabric.seed_everything(cfg.seed, verbose=False)

    notes: list[str] = []  # shown as they come, and written to the run's log by fit

    def say(line: str) -> None:
        notes.append(line)
        if show_progress and fabric.global_rank == 0:
            console.print(line, soft_wrap=True, highlight=False)

    modality = get_modality(cfg.modality)
    started = time.perf_counter()
    if resume is not None:
        resumed = modality.resume_options(run_dir)
    else:
        resumed = modality.backbone_source_options(cfg)
    if isinstance(in_memory, Source):
        opened = modality.read_with(in_memory, resumed)
    else:
        opened = _open_training_data(cfg, in_memory, resumed)
    opened, cut = modality.training_source(opened, cfg)
    source, held_out = hold_out(opened, cfg.monitor_items, cfg.seed)
    if (
        held_out is None
        and cfg.monitor_items
        and (cfg.select_by not in ("auto", "last") or cfg.patience is not None)
    ):
        wanted = f"--select-by {cfg.select_by}" if cfg.patience is None else "--patience"
        raise ConfigError(
            f"{wanted} measures held-out items, but {opened.name} has {len(opened):,} items, "
            "too few to hold out 16 (at most a tenth): give more data, or leave it out"
        )
    say(
        f"data: {opened.name}: {len(opened):,} {modality.name} items"
        + (f" in {len(opened.classes)} classes" if opened.classes else "")
        + (
            f", {len(partial.rows):,} of them labelled in {len(partial.classes)} classes"
            if (partial := opened.partial_labels) is not None
            else ""
        )
        + (f", {len(held_out):,} held out to monitor training" if held_out is not None else "")
        + f" (opened in {time.perf_counter() - started:.1f} s"
        + "".join(f"; {note}" for note in (opened.index_note, opened.labels_note) if note)
        + ")"
    )
    if opened.inputs_note:
        say(opened.inputs_note)
    if opened.warning:
        say(f"warning: {opened.warning}")
        if not show_progress:  # said nowhere else: Python's warnings show it
            _warned(opened)
    if cut:
        say(f"note: {cut}")
    if cfg.epochs is None and cfg.steps is None and cfg.time_budget is None:
        cfg = cfg.model_copy(update={"steps": modality.default_steps(source)})
    teacher = load(str(cfg.teacher)).encoder if cfg.method == "distill" else None
    if resume is not None:  # the encoder as the run folder describes it
        encoder = load_encoder(run_dir, custom)
    elif cfg.init is not None:  # an earlier run's encoder, trained on from here
        encoder = load_encoder(cfg.init)
        spec = encoder.spec or {}
        if spec.get("image_size"):
            source.read_at(int(spec["image_size"]))
        read_as = {k: spec[k] for k in _FROZEN_FIELDS if spec.get(k) is not None}
        if source.pixel_bits is not None:  # the earlier run's scale, kept for later data
            read_as["pixel_bits"] = source.pixel_bits
        cfg = cfg.model_copy(update={"backbone": spec.get("backbone"), **read_as})
        say(f"encoder: {cfg.backbone} from {cfg.init}, {cfg.method}")
    else:
        started = time.perf_counter()
        if teacher is not None:  # what the student takes from it (a text bag: its width)
            taken = modality.student_options(cfg, teacher)
            cfg = cfg.model_copy(update={"backbone_options": {**taken, **cfg.backbone_options}})
        encoder, chosen = modality.build_encoder(cfg, source, custom, feature_dim)
        cfg = cfg.model_copy(update=chosen)
        side = f" at {cfg.image_size} px" if cfg.image_size else ""
        say(
            f"encoder: {cfg.backbone or 'custom'}{side}, {cfg.method}; "
            f"{modality.preparation(cfg, source)} in "
            f"{modality.preparation_seconds(cfg, source, time.perf_counter() - started):.1f} s"
        )
        why = None if method_given else modality.default_method_note(cfg)
        if why:
            say(f"note: {why}")
    encoder.set_center(None)  # trained on what the backbone gives; centered again at the end
    if cfg.lora:  # before the method copies the encoder (momentum teachers) and on resume
        added = add_lora(encoder.backbone, cfg.lora, cfg.lora_alpha)
        encoder.spec = {**(encoder.spec or {}), "lora": {**added, "merged": True}}
        if resume is None:
            say(
                f"LoRA: rank {added['rank']}, alpha {added['alpha']:g}, in every linear layer; "
                f"{added['trainable']:,} of the backbone's parameters train"
            )
    if cfg.num_workers is None:
        workers = modality.default_workers(source, fabric.device.type != "cpu")
        cfg = cfg.model_copy(update={"num_workers": workers})
    # A batch never asks for more items than one process's share of the data, and a default
    # one leaves an epoch several steps.
    share = max(2, len(source) // (cfg.devices * cfg.num_nodes))
    if not batch_given:
        cfg = cfg.model_copy(update={"batch_size": modality.default_batch(cfg)})
        share = min(share, max(16, 1 << max(0, (len(source) // 8).bit_length() - 1)))
    if cfg.batch_size > share:
        cfg = cfg.model_copy(update={"batch_size": share})
    taught = {} if teacher is None else {"teacher": teacher}
    method = build_method(cfg.method, encoder, **cfg.method_options, **taught)
    if cfg.select_by == "auto":  # the method's choice; the last epoch without monitoring
        chosen = type(method).select_by if held_out is not None else "last"
        cfg = cfg.model_copy(update={"select_by": chosen})
    if cfg.group_by_length is None:  # texts, unless only a bag of tokens reads them
        lengths = source.varies_in_length()
        padding_costs = cfg.backbone != "text-bag" or cfg.teacher is not None
        cfg = cfg.model_copy(update={"group_by_length": lengths and padding_costs})
    if cfg.sync_batchnorm:  # batch statistics over every process's batch (DDP)
        sync_batch_norm(method)
    views, recipe, watch = modality.training_views(method, cfg.views, source)
    if resume is None and custom is None:
        batch, note = _plan_memory(
            cfg, method, views, source, fabric, batch_given, modality.memory_remedy
        )
        cfg = cfg.model_copy(update={"batch_size": batch})
        say(note)
    if cfg.accumulate > 1 and resume is None:
        coupling = type(method).batch_coupling
        say(
            f"accumulation: {cfg.accumulate} batches of {cfg.batch_size} per optimizer step "
            f"({cfg.accumulate * cfg.batch_size} items)"
            + (
                f"; {cfg.method}: {coupling}, so it sees each batch of {cfg.batch_size} on its own"
                if coupling
                else ""
            )
        )

    if fabric.global_rank == 0:
        # Room for two checkpoints (the last and the one replacing it) and the encoder.
        check_writable(run_dir, 2 * checkpoint_bytes(method) + module_bytes(encoder))
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / CONFIG_FILE, cfg.to_yaml())
        if resume is None:
            encoder.save(run_dir)  # the initial encoder: a resumed run rebuilds it from here
            modality.save_artifacts(opened, run_dir)  # a table's encoding, a tokenizer
            if isinstance(getattr(opened, "index", None), FolderIndex):  # a folder's file list
                opened.index.save(run_dir / INDEX_FILE)
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
            loss_views=views if has_heldout_loss(method) else None,
            patience=cfg.patience,
            labelled=labelled_monitor_items(source, cfg.seed),
        )
    state = fit(
        method,
        source,
        views,
        cfg,
        run_dir,
        fabric,
        resume is not None,
        show_progress,
        monitor,
        notes=notes,
    )
    if finished_as is not None and state.step == finished_as[1] and fabric.global_rank == 0:
        # A longer --time-budget that trained nothing (too short to begin another epoch):
        # the run stays as it finished, its config too, so a later --resume plans as before.
        write_text(run_dir / CONFIG_FILE, finished_as[0])
    if method.export_encoder() is not encoder:  # DINO, I-JEPA: keep the teacher's weights
        encoder.load_state_dict(method.export_encoder().state_dict())
    # Every process's weights, reduced to one number each: DDP keeps them equal.
    with warnings.catch_warnings():  # Lightning's own call of a gather torch deprecates
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated")
        checksums = fabric.all_gather(_checksum(method)).reshape(-1).tolist()
    summary = {
        "method": cfg.method,
        "data": cfg.data,
        "items": len(source),
        "held_out_items": 0 if held_out is None else len(held_out),
        "monitor_seconds": round(state.monitor_seconds, 2),
        "fill_seconds": round(state.fill_seconds, 2),
        "steps": state.step,
        "epochs": state.epoch,
        "items_seen": state.items_seen,
        "skipped_items": state.skipped,
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
    if modality.centers_embeddings:
        center, counted, which = _center(monitor, state, encoder, source)
        encoder.set_center(center)
        summary["center_items"] = counted
        say(f"embeddings centered: the mean of {counted:,} {which} is subtracted")
    if monitor is not None and monitor.start_loss is not None:
        summary["heldout_loss_start"] = monitor.start_loss
    if monitor is not None and monitor.start_knn is not None:
        summary["labelled_knn_start"] = monitor.start_knn
    if fabric.global_rank == 0:
        encoder.save(run_dir)
        write_json(run_dir / TRAIN_FILE, summary)
    fabric.barrier()
    return Run(run_dir, encoder, cfg.model_dump(mode="json"), summary)


def as_run(run: Run | str | os.PathLike) -> Run:
    """``run`` itself, or the run loaded from that folder."""
    return run if isinstance(run, Run) else load(run)


def load(
    path: str | os.PathLike,
    backbone: nn.Module | None = None,
    device: str | torch.device = "cpu",
) -> Run:
    """Rebuild a run from its folder alone (``backbone`` only for custom-module encoders), or
    a pretrained model ``hf:PATH_OR_ID`` as a run that trained nothing (see
    :func:`load_frozen`).

    ``device`` is where the encoder's weights go, and so where ``embed`` and ``evaluate``
    compute: ``cpu`` (the default), ``auto`` (the GPU when one is present: what
    ``selfsup embed`` and ``selfsup evaluate`` ask for) or a torch device such as ``cuda:1``.

    Example:
        >>> load("digits-run-that-is-not-there")
        Traceback (most recent call last):
        ...
        FileNotFoundError: digits-run-that-is-not-there: not a run folder (no config.yaml)
    """
    if is_hf_backbone(str(path)):
        run = load_frozen(str(path))
    else:
        path = Path(path)
        if not (path / CONFIG_FILE).exists():
            raise FileNotFoundError(f"{path}: not a run folder (no {CONFIG_FILE})")
        config = read_run_config(path / CONFIG_FILE)
        summary_file = path / TRAIN_FILE
        summary = read_json_object(summary_file, "a run summary", missing_ok=True)
        run = Run(path, load_encoder(path, backbone), config, summary)
    run.encoder.to(embedding_device(device))
    return run


def read_run_config(path: Path) -> dict[str, Any]:
    """A run's ``config.yaml``, validated as the options of ``pretrain`` (types, bounds, a
    known modality) before anything is built from it.

    Raises:
        ValueError: not YAML, a tag that is not plain data, or an option missing, unknown or
            out of range; named with the file and the option.
    """
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}: not a run's config ({problem})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a run's config (expected a mapping of option: value)")
    try:  # a run on data given in memory may name none
        checked = PretrainConfig.model_validate({"data": "", **config})
    except ValidationError as err:
        raise ValueError(f"{path}: {validation_problems(err)}") from None
    if checked.modality is not None:
        try:
            get_modality(checked.modality)
        except ConfigError as err:
            raise ValueError(f"{path}: modality: {err}") from None
    return config


#: Fields of a pretrained encoder's spec that say how data is read for it (the config of a
#: frozen run, or of a run started with ``--init``, keeps them).
_FROZEN_FIELDS = ("image_size", "max_length", "sample_rate", "clip_seconds", "audio_input")


def frozen_home() -> Path:
    """The folder that holds the run folders of frozen pretrained models."""
    return Path(os.environ.get("SELFSUP_CACHE", "~/.cache/selfsup")).expanduser() / "frozen"


def load_frozen(name: str) -> Run:
    """A pretrained model ``hf:PATH_OR_ID`` as a run that trained nothing, so that
    ``embed``, ``evaluate`` and the tools take it as they take a run.

    Its run folder (config, encoder with the model's weights and provenance, tokenizer) is
    written once under :func:`frozen_home`, named after the model and the first 12 hex digits
    of its weights' SHA-256; ``train.json`` says ``"frozen": true``.

    Raises:
        FileNotFoundError: no such model (see ``selfsup.backbones.hf.resolve_folder``).
        ValueError: a model that is neither a text encoder nor an image model.
    """
    folder = resolve_folder(name)
    kind = model_kind(
        read_json_object(folder / "config.json", missing_ok=True), str(folder / "config.json")
    )
    encoder, save_artifacts = get_modality(kind).frozen_encoder(name)
    spec = encoder.spec or {}
    digest = spec["pretrained"]["sha256"]
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-") or "model"
    run_dir = frozen_home() / f"{label}-{digest[:12]}"
    read_as = {k: spec.get(k) for k in _FROZEN_FIELDS}  # how later data is read for it
    cfg = PretrainConfig(
        data=str(folder), modality=kind, backbone=name, out=str(run_dir), **read_as
    )  # fmt: skip
    summary = {
        "frozen": True,
        "source": spec["pretrained"]["source"],
        "sha256": digest,
        "steps": 0,
        "epochs": 0,
        "train_seconds": 0.0,
    }
    if not (run_dir / TRAIN_FILE).exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / CONFIG_FILE, cfg.to_yaml())
        encoder.save(run_dir)
        save_artifacts(run_dir)  # a text model's tokenizer
        write_json(run_dir / TRAIN_FILE, summary)  # last: the folder is complete
    return Run(run_dir, encoder, cfg.model_dump(mode="json"), summary)
