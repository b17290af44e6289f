"""Time series and sensor logs: ``ucr:NAME``, ``.ts`` files, arrays and CSV/Parquet tables.

Items are float tensors (n, channels, length) with NaN at absent steps. The default objective
is TS2Vec with its dilated convolutional encoder, trained with TS2Vec's own settings (batch 8,
lr 0.001, fp32); the raw-input baseline is the series with absent steps as 0; evaluation
follows TS2Vec (an SVM) next to kNN and a linear probe.

Example:
    >>> SERIES.claims("ucr:GunPoint"), SERIES.claims("walk.ts"), SERIES.claims("x.csv")
    (True, True, False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from selfsup.backbones import build_series_backbone
from selfsup.config import PretrainConfig
from selfsup.data.base import Source
from selfsup.data.sensor_logs import is_log_folder
from selfsup.data.series import SeriesSource, load_series_file, open_ucr, windowed
from selfsup.data.table_files import TABLE_SUFFIXES
from selfsup.encoder import Encoder
from selfsup.modalities.base import Modality, folder_media
from selfsup.views.series import SeriesViews, series_recipe

#: ``embed`` holds a batch's per-step features (B x T x D): at most this many time steps a batch.
SERIES_STEPS_PER_BATCH = 2**18
#: TS2Vec trains 200 iterations on data of at most this many values, 600 above.
TS2VEC_SMALL_DATA = 100_000
#: TS2Vec's ``max_train_length``: pretraining cuts series at least twice as long into windows
#: of this many steps (its recipe), unless ``--window`` cuts them for every command.
TS2VEC_MAX_TRAIN_LENGTH = 3000


class SeriesModality(Modality):
    """Series: UCR/UEA sets, ``.ts``/``.npy``/``.npz`` files, wide or long tables."""

    name = "series"
    memory_remedy = "a shorter --window or a smaller --backbone"
    source_options: ClassVar[frozenset[str]] = frozenset(
        {
            "id_column",
            "time_column",
            "value_columns",
            "label_column",
            "drop_columns",
            "require_label",
            "window",
            "window_stride",
            "labels",
            "outside_label",
            "event_lead",
        }
    )
    stat_dims = 1
    default_method = "ts2vec"
    default_protocols = ("svm", "knn", "linear")
    # TS2Vec's embeddings (max-pooled over time) share one direction: mean cosine similarity
    # 0.81-0.97 on GunPoint, ArrowHead, ItalyPowerDemand, PickupGestureWiimoteZ; centered,
    # kNN rose from 0.660 / 0.531 / 0.905 / 0.780 to 0.873 / 0.749 / 0.954 / 0.900 (SVM and the
    # linear probe standardize: unchanged). Images, text and audio measured no better centered
    # (Fashion-MNIST 0.853 / 0.851, Rotten Tomatoes 0.652 / 0.650, spoken words 0.857 / 0.819).
    centers_embeddings = True
    default_recipe = "series"
    fallback_backbone = "ts2vec"
    views_class = SeriesViews
    recipe = staticmethod(series_recipe)

    def claims(self, spec: str) -> bool:
        """``ucr:NAME``, ``.ts`` files, and folders of tables with a time column (sensor
        logs, :func:`~selfsup.data.sensor_logs.is_log_folder`); a single table is a table
        unless a series option (``--time-column``, ``--window``) or ``--modality`` says so."""
        if spec.startswith("ucr:") or Path(spec).suffix.lower() == ".ts":
            return True
        # A photo folder with an annotation export holding dates is photos, not logs.
        return folder_media(spec) is None and is_log_folder(spec)

    def claims_by_options(self, data: Any, options: Mapping[str, Any]) -> bool:
        """Options only series read (``--time-column``, ``--window``...) make a table file
        series (a machine's log), not rows; on other data they are refused, not obeyed."""
        return Path(str(data)).suffix.lower() in TABLE_SUFFIXES and any(
            options.get(name) is not None
            for name in ("time_column", "window", "window_stride", "outside_label", "event_lead")
        )

    def open(self, spec: str | os.PathLike | Any, options: dict[str, Any]) -> Source:
        """``ucr:NAME[:test]``, a ``.ts``/``.npy``/``.npz``/table file, or series in memory:
        an array (n, length) or (n, channels, length), NaN where absent, or a list of
        (channels, length_i) arrays."""
        window, stride = options.get("window"), options.get("window_stride")
        if isinstance(spec, (np.ndarray, torch.Tensor, list)):
            items = spec if isinstance(spec, list) else np.asarray(spec)
            return windowed(SeriesSource(items, name="array"), window, stride)
        if isinstance(spec, str) and spec.startswith("ucr:"):
            return windowed(open_ucr(spec), window, stride)
        path = Path(spec).expanduser()
        if path.is_file() or path.is_dir():
            return load_series_file(path, **options)
        raise FileNotFoundError(f"{spec}: no such file or folder, and not a ucr:NAME set")

    def official_test(self, spec: str) -> str | None:
        return f"{spec}:test" if spec.startswith("ucr:") and spec.count(":") == 1 else None

    def run_source_options(self, run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Later data may come without the label column (or a dropped one)."""
        return {"require_label": False}

    def config_defaults(self, cfg: PretrainConfig) -> dict[str, Any]:
        """TS2Vec's batch 8 and lr 0.001; fp32 where the precision is ``auto``: series
        convolutions gain no speed from bf16 autocast on CPU (TS2Vec: 544 steps a minute in
        fp32, 516 in bf16) and lose a little accuracy."""
        return {
            "batch_size": cfg.batch_size or 8,
            "lr": 1e-3 if cfg.lr is None else cfg.lr,
            "precision": "fp32" if cfg.precision == "auto" else cfg.precision,
        }

    def build_named(
        self, name: str, cfg: PretrainConfig, source: Source, mean: list[float], std: list[float]
    ) -> tuple[Encoder, dict[str, Any]]:
        channels = int(source.first_item().shape[1])
        return build_series_encoder(name, channels, mean, std, **cfg.backbone_options), {}

    def rebuild_encoder(self, spec: dict[str, Any]) -> Encoder:
        return build_series_encoder(
            spec["backbone"], spec["in_channels"], spec["mean"], spec["std"], **spec["options"]
        )

    def training_source(self, source: Source, cfg: PretrainConfig) -> tuple[Source, str | None]:
        """Series of at least twice ``TS2VEC_MAX_TRAIN_LENGTH`` steps are trained on in
        windows of that length, as TS2Vec's code splits them: an epoch of 20 three-month
        logs then holds 880 items instead of 20, and every objective's memory is bounded,
        not only TS2Vec's (whose own crop to ``max_length`` stays as a fallback). The
        encoder still reads series of any length.

        Example:
            >>> src = SeriesSource(np.zeros((2, 7000)))
            >>> cut, note = SeriesModality().training_source(src, PretrainConfig(data="-"))
            >>> len(cut), "trained on 6 windows of 3,000 steps" in note
            (6, True)
        """
        if cfg.window is not None or not isinstance(source, SeriesSource):
            return source, None
        if source.length < 2 * TS2VEC_MAX_TRAIN_LENGTH:
            return source, None
        cut = windowed(source, TS2VEC_MAX_TRAIN_LENGTH)
        return cut, (
            f"series of up to {source.length:,} steps: trained on {len(cut):,} windows of "
            f"{TS2VEC_MAX_TRAIN_LENGTH:,} steps, as TS2Vec does; --window N makes windows "
            "the items of every command (embed, evaluate)"
        )

    def default_steps(self, source: Source) -> int | None:
        """TS2Vec's rule: 200 iterations, 600 when the data holds more than 100,000 values."""
        values = len(source) * int(np.prod(source.first_item().shape[1:]))
        return 200 if values <= TS2VEC_SMALL_DATA else 600

    def embed_batch_size(self, source: Source, batch_size: int) -> int:
        """Lowered so a batch holds at most ``SERIES_STEPS_PER_BATCH`` time steps."""
        length = int(source.first_item().shape[-1])
        return max(1, min(batch_size, SERIES_STEPS_PER_BATCH // max(length, 1)))

    #: Series of any number of steps, not only as long as the windows an export is checked on.
    free_axes: ClassVar[dict[int, str]] = {0: "batch", 2: "steps"}

    def describe_inputs(
        self,
        spec: dict[str, Any],
        run_dir: Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        """The series an exported encoder takes: any number of steps (the export's length
        axis is free), raw values, NaN where a step is absent.

        Example:
            >>> SERIES.describe_inputs({"in_channels": 3})[:46]
            'float32 series (batch, 3, steps) of the values'
        """
        channels = spec.get("in_channels")
        window = (config or {}).get("window")
        steps = " steps" if isinstance(window, int) else ""
        cut = (
            f"the run reads windows of {window}{steps} (`--window`): cut the same to get its rows"
            if window
            else "the run embeds each series whole"
        )
        return (
            f"float32 series (batch, {channels}, steps) of the values as the data holds them, "
            "channels in the order selfsup reads them (each channel's normalization is "
            "inside), NaN where a step is absent (a gap in a log, the end of a shorter series "
            f"in the batch); any number of steps: {cut}."
        )

    def raw_batch(self, x: torch.Tensor, source: Source) -> torch.Tensor:
        return torch.nan_to_num(x, nan=0.0)


def build_series_encoder(
    backbone: str,
    in_channels: int,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    **options: Any,
) -> Encoder:
    """A series encoder from a registered series backbone name and its options.

    Example:
        >>> enc = build_series_encoder("ts2vec", in_channels=2, out_dim=8, depth=1)
        >>> enc(torch.randn(3, 2, 20)).shape, enc.timestamps(torch.randn(3, 2, 20)).shape
        (torch.Size([3, 8]), torch.Size([3, 20, 8]))
    """
    module = build_series_backbone(backbone, in_channels=in_channels, **options)
    spec = {
        "modality": "series",
        "backbone": backbone,
        "in_channels": in_channels,
        "options": options,
    }
    mean = mean if mean is not None else [0.0] * in_channels
    std = std if std is not None else [1.0] * in_channels
    return SERIES.wrap(module, None, list(mean), list(std), spec)


SERIES = SeriesModality()
