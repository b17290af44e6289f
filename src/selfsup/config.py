"""The configuration of a pretraining run: one validated object, from YAML and/or overrides.

Every command-line option of ``selfsup pretrain`` is a field here, so anything can be set in
a YAML file and overridden on the command line.

Fields left None are filled in by the data's modality (``selfsup.modalities.resolve_config``).

Example:
    >>> cfg = PretrainConfig(data="digits", method="byol", epochs=2)
    >>> cfg.method, cfg.epochs, cfg.batch_size
    ('byol', 2, None)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A configuration file or option is invalid; the message names the file and the field."""


class PretrainConfig(BaseModel):
    """Everything that defines a pretraining run.

    Attributes:
        data: a path (folder, .npy/.npz) or a named dataset (``fashion-mnist``, ``digits``...).
        modality: ``image``, ``series``, ``tabular`` or ``audio``; by default inferred from
            the data (``ucr:`` names and ``.ts`` files are series, CSV/Parquet files and named
            tables are tabular, folders of .wav/.flac/.ogg files audio, the rest images).
        method: the objective id (``simclr``, ``byol``, ``vicreg``, ``barlowtwins``,
            ``mocov3``, ``simsiam``, ``nnclr``, ``swav``, ``dino``, ``mae``, ``ijepa``,
            ``ts2vec``, ``scarf``, ``vime``; see ``selfsup.methods.METHODS``); default
            ``simclr`` for images, ``ts2vec`` for series, ``scarf`` for tables and ``byola``
            for audio.
        backbone: the backbone name; by default ``small-cnn`` for images up to 32 pixels,
            ``resnet18`` above, ``byola-cnn`` for audio. ``hf:PATH_OR_ID`` starts from a
            pretrained Hugging Face model (a folder written by ``save_pretrained``, or an id in
            the Hugging Face cache): text encoders of the BERT family with their own
            tokenizer, ViT, DINOv2, ConvNeXt, ResNet and CLIP/SigLIP vision towers with their
            own size and normalization (see ``selfsup.backbones.hf``).
        init: start from the encoder of an earlier run (its folder), with this run's method
            and data; the data is read as that run read its own (tokenizer, image size).
        teacher: ``--method distill``: the frozen teacher, a run folder or ``hf:PATH_OR_ID``.
        layer_decay: layer-wise learning-rate decay: heads and layers after the last block
            train at the full rate, the last block of the backbone at ``layer_decay`` times
            it, each block before at ``layer_decay`` times the next one's (BEiT's recipe;
            0.75 is usual). Needs a backbone that lists its blocks (built-in and ``hf:`` ones
            do).
        freeze_blocks: keep the first this many blocks of the backbone (embeddings first)
            as they are; they do not train.
        lora: train low-rank adapters of this rank (LoRA, Hu et al. 2021, through peft) in
            every linear layer of a pretrained ``hf:`` backbone, which itself stays frozen;
            the run's encoder file holds the adapters merged into the weights. 0 is off.
        lora_alpha: LoRA's scale numerator: the adapters' update is scaled by
            ``lora_alpha / lora`` (default ``lora``, a scale of 1).
        backbone_options: extra keyword arguments of the backbone (``width``, ``patch_size``...).
        method_options: hyperparameters of the method (``temperature``, ``projection_dim``...).
        views: overrides of the method's augmentation recipe (``crop_scale``, ``blur_p``...).
        image_size: side of the square training images; by default the data's own (the
            median shorter side of a sample of files), at most 128 pixels on a CPU and 224 on
            a GPU; image folders are decoded straight to it.
        epochs: passes over the data; when neither ``epochs``, ``steps`` nor a time budget is
            set, the modality decides (series: TS2Vec's 200 steps, 600 above 100,000 values;
            the others: 100 epochs).
        steps: optimizer steps in all (TS2Vec's ``n_iters``); with ``epochs`` the smaller wins.
        time_budget: minutes of training; the schedule is fitted to end within it.
        batch_size: items per step and process; default 256, but 64 for images above 64
            pixels on a CPU, 8 for series (TS2Vec's), and 64 for text (256 for a
            ``text-bag``), at most an eighth of the items (a power of two, at least 16) so an
            epoch has several steps, and lowered (to a power of two) when the step's
            estimated peak memory would not fit in the memory available; a batch size given
            that does not fit stops the run with the numbers.
        group_by_length: text: each step's items are of like length, so that they pad
            little (the items of every 50 steps, drawn at random, are sorted by length with a
            little random jitter, cut into steps, and the steps shuffled: Hugging Face's
            ``group_by_length``); on texts of mixed lengths (WordNet's glosses) a
            transformer's step costs under half (44 -> 94 texts/s,
            ``benchmarks/text_batches.py``). By default on for texts read by a transformer
            (the encoder or a teacher), off for a ``text-bag`` trained alone, which pays
            little for padding (4,663 -> 5,323 texts/s).
            ``--no-group-by-length``: plain shuffled batches (as runs saved before this
            option have, which resume so).
        accumulate: gradient accumulation: each optimizer step sums the gradients of this many
            batches of ``batch_size`` (a step's batch is ``batch_size x accumulate`` items per
            process; the learning rate, steps and epochs follow it), so a large batch trains
            in the memory of a small one. Objectives whose loss couples the items of a batch
            (contrastive negatives, batch statistics, batch norm) see each batch of
            ``batch_size`` on its own: accumulation changes them (each method says so).
        sync_batchnorm: under DDP, batch norm over the batch of every process together
            (``selfsup.methods.distributed.SyncBatchNorm``, CPU or GPU) instead of each
            process's own: with it, SimCLR, MoCo v3, VICReg, Barlow Twins, NNCLR, SwAV, DINO,
            BYOL and SimSiam on two processes of B items train as one process of 2B.
        lr: peak learning rate; by default the optimizer's base rate times the items of an
            optimizer step (batch_size x accumulate x processes) / 256
            for images (a fortieth of it for a pretrained ``hf:`` backbone, which a full rate
            would make forget), 0.001 for series (TS2Vec's), 5e-4 for text (3e-5 from a
            pretrained model, SimCSE's; 3e-3 for a ``text-bag``, at batch 256).
        optimizer: ``adamw``, ``sgd`` or ``lars``.
        weight_decay: by default the optimizer's usual value.
        warmup_epochs: linear warmup length (capped at a tenth of training).
        schedule: the learning rate after warmup: ``cosine`` decay to 0 over the run, or
            ``constant`` (TS2Vec's).
        precision: ``bf16`` (autocast), ``fp32``, or ``auto`` (bf16 where the CPU/GPU has it).
        devices: processes per machine (DDP through Lightning Fabric when more than one).
        num_nodes: machines.
        accelerator: ``auto`` (a GPU when one is present, else the CPU), ``cpu`` or ``gpu``.
        seed: seed of initialization, data order and augmentations.
        out: the run folder; by default ``runs/<method>-<data>-<time>``. A folder that holds a
            run already is refused unless ``overwrite`` is set.
        overwrite: replace the run in ``out`` (its files are deleted first).
        strict: fail on the first unreadable item instead of skipping it.
        num_workers: data-loading worker processes; by default 0 for data in memory and,
            for folders of files to decode (images, audio), half the CPU cores (at least 1,
            at most 4) when training on the CPU and all cores but two (at most 16) on a GPU,
            so decoding overlaps training; they serve every epoch of the run
            (:class:`~selfsup.data.loading.EpochReader`).
        compile: use ``torch.compile`` on the training step (about 30 s of compiling first,
            not counted in the pace a time budget is planned with). It pays when every batch
            has the same shapes; I-JEPA, whose context length changes with each batch's
            masks, recompiles and was not faster with it in a short trial. On a 2-core CPU
            it was within the noise of the defaults for SimCLR with the small CNN,
            ResNet-18 and ViT-Tiny (0.84-1.10x, ``benchmarks/throughput.py``), so it is off
            by default.
        log_every: steps between two rows of metrics.
        monitor_items: training items held out to measure label-free metrics after every
            epoch (RankMe, alpha-ReQ...); 0 turns monitoring off.
        measure_every: minutes of training between two measurements of the held-out items
            inside an epoch, for epochs that take longer (200,000 photos: 2 hours an epoch
            on 2 cores); none is made when the epoch's or the run's end is under half this
            away. By default every 5 minutes while the monitor's time stays under a tenth
            of training's; a number given is kept to whatever the measurements cost (they
            are paid from a time budget); 0: at epoch ends only.
        stop_on_collapse: stop the run with an error when the embeddings collapse, instead
            of warning.
        select_by: keep the encoder of the epoch with the best value of this monitored
            number (``rankme``, ``alpha_req``, ``neighbour_agreement``, ``uniformity``,
            ``online_probe``, ``labelled_knn`` (data labelled on a few items: a kNN vote of
            each labelled training item from the others), or ``heldout_loss``, the
            objective's loss on the held-out items where it has one) instead of the
            ``last`` one. ``auto`` takes the method's choice: ``heldout_loss`` for
            distillation (a student overfits its training texts over many epochs), ``last``
            for the others; ``last`` without monitoring.
        patience: stop training when the ``--select-by`` number has not improved for this
            many measurements (early stopping; the best one's encoder is kept): one per
            epoch, and those inside long epochs (``--measure-every``); off when not given.
        online_probe: train a linear probe on detached features when the data has labels.
        checkpoint_every: minutes between two checkpoints inside an epoch (a killed run
            loses at most this much work and resumes exactly where the checkpoint was); an
            epoch's end writes one when a minute or more passed since the last, and the last
            step always does.
        keep_checkpoints: also keep every epoch's encoder weights, and the starting ones as
            epoch 0 (``checkpoints/epoch-NNNN.safetensors``), e.g. to study training
            afterwards.
        id_column: the column (JSONL: field) of item ids in tables and text files, used in
            every output (a JSONL ``id`` field is used without it); series in a long-form
            table: the column naming each row's series. Without one, row ids are row numbers
            counted from 0 (header excluded) in every modality. A ``--labels`` table: its
            column of file names.
        time_column: series in a long-form table: the column ordering a series' rows
            (default: one named ``timestamp``, ``time``, ``date``... or of datetime type);
            rows with datetimes are placed on their regular step, missing rows as absent
            steps. A table or folder of logs with one but no ``--id-column`` is one machine.
        window: series: cut every series into windows of this many steps (or of a duration,
            ``1d``, ``6h``, ``30min``, where rows have datetimes), the items every
            command reads (ids ``ID@START``, START the first step's time where rows have
            datetimes; in a long-form table a window's label is its rows' most common one),
            e.g. a day of a year-long sensor log.
        window_stride: series: steps (or a duration) between two windows' starts (default:
            the window, no overlap); the last window ends with its series.
        label_column: tables and series tables: the column of class labels (not a feature);
            a ``--labels`` table: its label column (default ``label``).
        labels: image and audio folders (sensor logs: below): a CSV, TSV, Parquet or JSONL
            table labelling the files, one row per file: a column of file names (relative
            to the folder;
            ``file_name`` as in Hugging Face's metadata.csv, ``file``, ``path``, or
            ``--id-column``) and ``--label-column``; files it does not label are unlabelled
            items. A ``metadata.csv`` at the folder's top is read without it. Sensor logs
            (series with a time column): an events table (a maintenance log), one row per
            event with a unit (the data's ``--id-column``, ``unit``, ``asset``, ``machine``...),
            ``start``, ``end`` and ``--label-column``; a window takes the label of the event
            covering most of it (needs ``--window``).
        outside_label: series labelled by a ``--labels`` events table: the label of windows
            that overlap no event (default ``normal``; ``''``: they are unlabelled items).
        channel_pattern: image folders stored one file per channel (a plate reader's
            ``r01c01f01-ch1.tiff`` to ``-ch5.tiff``): a regular expression whose group is
            the channel in a file's name (``-ch([0-9]+)``, ``_w([0-9])``); the files differing
            only there are one image of as many channels (of NIfTI volumes, an MR study's
            sequences, ``_(t1|t2|flair)``: the channels of each slice).
        pixel_bits: images: the significant bits of integer pixels stored in more (a
            microscope camera's or a scanner's 12 bits in 16-bit TIFFs and PNGs), which are
            divided by ``2**bits - 1`` instead of 65535; by default the even count that holds
            the largest value a sample of 16 files stores. The run keeps it, so later data
            is read on the same scale.
        tile: image folders of large images (satellite scenes, pathology slides, an
            inspection camera's frames): cut each into squares of this many pixels at its full
            size, each an item named ``FILE@xLEFT_yTOP`` and read at the training side (a
            TIFF's from the part of the file under it alone); labels of files label their
            tiles, and evaluation holds an image's tiles out together. The run keeps it.
        scan_window: images: scans (DICOM, NIfTI) shown through this window of their values,
            ``LOW,HIGH`` in the scan's units (a CT's Hounsfield units: ``-160,240`` for soft
            tissue, ``-1000,400`` for lungs; a radiologist's level 40 and width 400 is
            ``-160,240``), instead of each DICOM file's own window or each volume's
            percentiles. The run keeps it.
        whole_files: images cut into slices (volumes) or tiles (``--tile``): every command but
            pretrain takes each file as one item, embedded as the mean of its slices' or
            tiles' embeddings (a study, a scene), labelled as a file; pretrain reads the
            slices or tiles. The run keeps it.
        event_lead: series labelled by a ``--labels`` events table: the time before events
            labelled ``before LABEL`` too, the warning signs predictive maintenance looks
            for: ``3d`` before every event, or ``'bearing failure=3d,seal leak=36h'`` before
            those alone (steps where the logs are timed by numbers).
        categorical_columns: tables: columns to treat as categorical whatever their type.
        numeric_columns: tables: columns to treat as numeric whatever their type.
        drop_columns: tables and series tables: columns that are neither features nor
            labels (ids, free text, a per-step state).
        text_column: text in JSONL/CSV files: the field holding the documents (default
            ``text``); setting it reads a CSV as text rather than as a table.
        max_length: text: the most tokens kept per document (default 64).
        vocab_size: text: the size of the BPE vocabulary trained on the data (default 8000).
        sample_rate: audio: the rate files are resampled to (default 16000).
        clip_seconds: audio: the length clips are centre-cropped or zero-padded to (default
            0.95, BYOL-A's).
        clip_hop: audio: cut every file into clips of ``clip_seconds``, one every this many
            seconds (the last ending with the file), the items of every command (ids
            ``FILE@STARTs``); without it each file gives its centre clip.
        n_mels: audio: mel bands of the log-mel spectrograms (default 64).
        n_fft: audio: window length in samples (default 1024).
        hop_length: audio: samples between frames (default 160).
        f_min: audio: lowest mel band edge in Hz (default 60).
        f_max: audio: highest mel band edge in Hz (default min(7800, sample_rate / 2)).
        audio_input: audio: what the encoder reads, ``logmel`` spectrograms (built-in
            backbones) or ``waveform`` clips (pretrained wav2vec2, HuBERT and AST models,
            which compute their own features); chosen with the backbone.
    """

    model_config = ConfigDict(extra="forbid")

    data: str
    modality: str | None = None
    method: str | None = None
    backbone: str | None = None
    backbone_options: dict[str, Any] = Field(default_factory=dict)
    init: str | None = None
    teacher: str | None = None
    layer_decay: float | None = Field(default=None, gt=0, le=1)
    freeze_blocks: int = Field(default=0, ge=0)
    lora: int = Field(default=0, ge=0, le=1024)
    lora_alpha: float | None = Field(default=None, gt=0)
    method_options: dict[str, Any] = Field(default_factory=dict)
    views: dict[str, Any] = Field(default_factory=dict)
    image_size: int | None = None
    epochs: int | None = None
    steps: int | None = None
    time_budget: float | None = None
    batch_size: int | None = None
    group_by_length: bool | None = None
    accumulate: int = 1
    sync_batchnorm: bool = False
    lr: float | None = None
    optimizer: Literal["adamw", "sgd", "lars"] = "adamw"
    weight_decay: float | None = None
    warmup_epochs: float = 1.0
    schedule: Literal["cosine", "constant"] = "cosine"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    devices: int = 1
    num_nodes: int = 1
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    strict: bool = False
    num_workers: int | None = Field(default=None, ge=0)
    compile: bool = False
    log_every: int = 20
    monitor_items: int = 2048
    measure_every: float | None = Field(default=None, ge=0)
    stop_on_collapse: bool = False
    select_by: Literal[
        "auto",
        "last",
        "rankme",
        "alpha_req",
        "neighbour_agreement",
        "uniformity",
        "online_probe",
        "labelled_knn",
        "heldout_loss",
    ] = "auto"
    patience: int | None = Field(default=None, ge=1)
    online_probe: bool = True
    checkpoint_every: float = Field(default=5.0, gt=0)
    keep_checkpoints: bool = False
    id_column: str | None = None
    time_column: str | None = None
    window: int | str | None = None
    window_stride: int | str | None = None
    label_column: str | None = None
    labels: str | None = None
    outside_label: str | None = None
    event_lead: str | None = None
    channel_pattern: str | None = None
    pixel_bits: int | None = Field(default=None, ge=1, le=16)
    tile: int | None = Field(default=None, ge=16)
    scan_window: str | None = None
    whole_files: bool = False
    categorical_columns: list[str] | None = None
    numeric_columns: list[str] | None = None
    drop_columns: list[str] = Field(default_factory=list)
    text_column: str | None = None
    max_length: int | None = None
    vocab_size: int | None = None
    sample_rate: int | None = None
    clip_seconds: float | None = None
    clip_hop: float | None = Field(default=None, gt=0)
    n_mels: int | None = None
    n_fft: int | None = None
    hop_length: int | None = None
    f_min: float | None = None
    f_max: float | None = None
    audio_input: Literal["logmel", "waveform"] | None = None

    @field_validator("batch_size", "accumulate", "devices", "num_nodes", "log_every", "steps")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("scan_window")
    @classmethod
    def _scan_window(cls, v: str | None) -> str | None:
        from selfsup.data.volumes import parse_window

        if v is None:
            return None
        low, high = parse_window(v)
        return f"{low:g},{high:g}"

    @field_validator("window", "window_stride", mode="before")
    @classmethod
    def _steps_or_duration(cls, v: Any, info: Any) -> int | str | None:
        """Steps (``1440``) or a duration of a log with datetimes (``1d``, ``6h``, ``30min``)."""
        if v is None:
            return None
        least = 2 if info.field_name == "window" else 1
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool):
            if v < least:
                raise ValueError(f"must be at least {least} steps")
            return v
        if isinstance(v, str):
            import pandas as pd

            try:
                span = pd.Timedelta(v.strip())
            except ValueError:
                span = None
            if span is not None and span > pd.Timedelta(0):
                return v.strip()
        raise ValueError(f"{v!r} is neither steps (1440) nor a duration (1d, 6h, 30min)")

    @field_validator("monitor_items")
    @classmethod
    def _not_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be 0 (off) or more")
        return v

    @field_validator("epochs")
    @classmethod
    def _positive_epochs(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("time_budget")
    @classmethod
    def _positive_budget(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be a positive number of minutes")
        return v

    def to_yaml(self) -> str:
        """The config as YAML text, as written to the run folder."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> PretrainConfig:
    """Read a YAML config (optional) and apply overrides (``None`` values are ignored).

    Example:
        >>> load_config(None, data="digits", epochs=3).epochs
        3
    """
    values: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value at the top level")
        values.update(loaded or {})
    values.update(
        {
            k: str(v) if isinstance(v, os.PathLike) else v
            for k, v in overrides.items()
            if v is not None
        }
    )
    try:
        return PretrainConfig(**values)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid config: {validation_problems(err)}") from None


def validation_problems(err: ValidationError) -> str:
    """Each problem of a pydantic validation as ``option: message``, joined by "; ".

    Example:
        >>> try:
        ...     PretrainConfig(data="x", lora=-1)
        ... except ValidationError as err:
        ...     print(validation_problems(err))
        lora: Input should be greater than or equal to 0
    """
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
