"""The modalities: one file each, one registry line each.

Everything that differs between images, series, tables, text and audio lives in a
:class:`Modality` (see ``base.py``); the rest of selfsup looks the modality up by name and asks
it. Adding a modality is one new file here and one line in ``MODALITIES``.

Example:
    >>> infer_modality("ucr:GunPoint"), infer_modality("x.csv"), infer_modality("digits")
    ('series', 'tabular', 'image')
    >>> open_source("digits:test").describe()
    'digits:test: 359 image items, 10 classes'
    >>> train, test = train_test_sources("digits")
    >>> train.name, test.name
    ('digits', 'digits:test')
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from selfsup.config import ConfigError, PretrainConfig
from selfsup.core.errors import one_line
from selfsup.core.weights import load_weights_into
from selfsup.data.base import Source, require_labels
from selfsup.data.splits import (
    SubsetSource,
    labelled_part,
    period_groups,
    split_group_ids,
    stratified_group_split,
    stratified_split,
    time_split,
)
from selfsup.encoder import SPEC_FILE, WEIGHTS_FILE, Encoder, read_encoder_spec
from selfsup.modalities.audio import AUDIO
from selfsup.modalities.base import Modality, channel_statistics
from selfsup.modalities.image import IMAGE
from selfsup.modalities.series import SERIES
from selfsup.modalities.tabular import TABULAR
from selfsup.modalities.text import TEXT

__all__ = [
    "MODALITIES",
    "Modality",
    "channel_statistics",
    "get_modality",
    "infer_modality",
    "load_encoder",
    "modality_of",
    "open_source",
    "resolve_config",
    "train_test_sources",
]

#: Every modality by name, in the order ``infer_modality`` asks them (images last: they take
#: whatever no other modality claims).
MODALITIES: dict[str, Modality] = {m.name: m for m in (SERIES, TEXT, TABULAR, AUDIO, IMAGE)}
#: The modality of data no other modality claims.
_FALLBACK = IMAGE


def get_modality(name: str | None) -> Modality:
    """The modality called ``name``; the error (a ``ConfigError``) lists the known ones.

    Example:
        >>> get_modality("series").default_method
        'ts2vec'
    """
    if name not in MODALITIES:
        raise ConfigError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}")
    return MODALITIES[name]


def modality_of(source: Source) -> Modality:
    """The modality of an opened source."""
    return get_modality(source.modality)


def infer_modality(spec: str | os.PathLike | pd.DataFrame) -> str:
    """The modality a ``DATA`` argument implies when ``--modality`` is not given.

    ``ucr:NAME`` and ``.ts`` files are series; ``.txt`` and ``.jsonl`` files and the named
    corpora (``rotten-tomatoes``...) are text; CSV/TSV/Parquet files, DataFrames and the named
    tables (``breast-cancer``, ``islp:Default``) are tabular (a CSV is text only with
    ``--modality text`` or a ``text_column``); a folder whose first media file is a
    .wav/.flac/.ogg is audio, one whose first is a .txt is text; everything else (folders,
    arrays, the image datasets) is read as images. Arrays in memory: 2-d ones are table
    rows, the others images (pass ``modality="series"`` for series).
    """
    if isinstance(spec, pd.DataFrame):
        return TABULAR.name
    if isinstance(spec, (np.ndarray, torch.Tensor)):  # rows of a table, or images
        return TABULAR.name if spec.ndim == 2 else IMAGE.name
    text = str(spec)
    for modality in MODALITIES.values():
        if modality.claims(text):
            return modality.name
    return _FALLBACK.name


def claimed_modality(spec: Any, options: Mapping[str, Any]) -> str:
    """The modality of ``spec`` read with ``options``: the one an option claims it for
    (``--window`` makes a CSV file a machine's log, ``--text-column`` texts), else
    :func:`infer_modality`'s, so that ``datasets show``, ``pretrain`` and the tools read a
    file alike.

    Example:
        >>> claimed_modality("log.csv", {"window": 60}), claimed_modality("log.csv", {})
        ('series', 'tabular')
    """
    claimed = [m.name for m in MODALITIES.values() if m.claims_by_options(spec, options)]
    return claimed[0] if claimed else infer_modality(spec)


def open_source(
    spec: str | os.PathLike | pd.DataFrame, modality: str | None = None, **options: Any
) -> Source:
    """Open the data a ``DATA`` argument names, as ``modality`` (default: inferred).

    Images: a named dataset (``fashion-mnist``, ``digits:test``), a folder of images or a
    ``.npy``/``.npz`` array. Series: ``ucr:NAME[:test]``, ``.ts``, ``.npy``/``.npz``,
    CSV/TSV or Parquet files. Tables: named tables, CSV/TSV/Parquet files or DataFrames. Text:
    ``.txt``, ``.jsonl``, ``.csv``/``.tsv`` files, folders of ``.txt`` files, DataFrames or
    the named corpora. Audio: a folder of .wav/.flac/.ogg files.

    Args:
        spec: a named dataset spec, a path or a DataFrame.
        modality: the kind of items; by default :func:`infer_modality` decides.
        **options: the sources' options (each modality's ``source_options``). Options set to
            None, and options of the other modalities, are ignored (a run's config carries
            every modality's).

    Raises:
        ValueError: an unknown modality or a file of another type.
        TypeError: an option no source takes.
        FileNotFoundError: nothing at ``spec``; the message lists the named datasets.

    Example:
        >>> open_source("digits").item_shape
        (1, 8, 8)
    """
    kind = get_modality(modality or claimed_modality(spec, options))
    every = set().union(*(m.source_options for m in MODALITIES.values()))
    unknown = sorted(set(options) - every)
    if unknown:
        known = ", ".join(sorted(kind.source_options))
        raise TypeError(f"unknown {kind.name} source options {unknown}; known: {known}")
    mine = {k: v for k, v in options.items() if v is not None and k in kind.source_options}
    return kind.open(spec, mine)


def official_test(spec: str) -> str | None:
    """The official test split of a named dataset (``ucr:GunPoint`` -> ``ucr:GunPoint:test``),
    or None for any other data.

    Example:
        >>> official_test("fashion-mnist"), official_test("ucr:GunPoint"), official_test("x/")
        ('fashion-mnist:test', 'ucr:GunPoint:test', None)
    """
    for modality in MODALITIES.values():
        test = modality.official_test(spec)
        if test is not None:
            return test
    return None


def train_test_sources(
    data: str | os.PathLike | Source,
    test: str | os.PathLike | Source | None = None,
    test_fraction: float = 0.2,
    split_by: str = "auto",
    **options: Any,
) -> tuple[Source, Source]:
    """The split to fit probes on and the split to score them on.

    ``test`` when given; else a named dataset's official test split (``fashion-mnist`` pairs
    with ``fashion-mnist:test``, ``ucr:GunPoint`` with ``ucr:GunPoint:test``); else a
    deterministic stratified split of ``data``: of its items, or with ``split_by="folder"``
    of its first folders (a hospital export's patients: the slices of one patient are near
    copies, and on both sides they would make the score a measure of memory), see
    :func:`selfsup.data.splits.stratified_group_split`; ``"auto"`` splits by folder where
    the source knows its folders are such groups (``Source.split_groups``: patients, a
    machine's windows) and has enough to hold out ``test_fraction`` of them, else by item.
    ``options`` go to :func:`open_source`. Of data whose label column is empty on some rows,
    the labelled rows (``labelled_part``).
    """

    def opened(spec: str | os.PathLike | Source) -> Source:
        return labelled_part(spec if isinstance(spec, Source) else open_source(spec, **options))

    if test is None and isinstance(data, str):
        test = official_test(data)
    if test is not None:
        if split_by not in ("item", "auto"):
            raise ValueError(
                f"--split-by {split_by} splits the data when no test data is given, but "
                f"{getattr(test, 'name', test)} is its test data: leave one of them out"
            )
        return opened(data), opened(test)
    source = opened(data)
    labels = require_labels(source, "evaluation")
    groups = None
    what = source.split_groups or "folders"
    few = ""  # groups too few to hold some out whole: said where items are split instead
    if split_by == "folder" or (split_by == "auto" and source.split_groups):
        groups = split_group_ids(source.ids, source.name, source.split_groups)
    if split_by == "auto":  # by group where there are groups enough to hold some out
        least = max(2, round(1 / test_fraction))
        enough = groups is not None and len(set(groups)) >= least
        if not enough and source.split_groups == "units":  # too few machines: split by time
            groups, what = period_groups(source.ids), "periods"
            enough = len(set(groups)) >= least
        if groups is not None and not enough:
            few = f"too few {what} ({len(set(groups))}) to hold {what} out whole"
        split_by = "folder" if enough else "item"
    if split_by == "folder" and groups is not None:
        fit, held_out = stratified_group_split(labels, groups, test_fraction)
        counts = [len(set(groups[part])) for part in (fit, held_out)]
        sides = [f"{n:,} {what[:-1] if n == 1 else what}" for n in counts]  # 1 unit
    elif split_by == "item":
        fit, held_out = stratified_split(labels, test_fraction)
        sides = ["", f"items: {few}" if few else ""]
    elif split_by == "time":
        found = source.times()
        if found is None:
            raise ValueError(
                f"--split-by time: {source.name} has no date and time column to split by"
            )
        fit, held_out, cut = time_split(found[1], test_fraction)
        sides = [f"{found[0]} before {cut}", f"{found[0]} from {cut}"]
    else:
        raise ValueError(f"unknown split {split_by!r}; known: auto, item, folder, time")
    return (
        SubsetSource(source, fit, f"{source.name}[fit{', ' * bool(sides[0])}{sides[0]}]"),
        SubsetSource(source, held_out, f"{source.name}[test{', ' * bool(sides[1])}{sides[1]}]"),
    )


def resolve_config(cfg: PretrainConfig) -> PretrainConfig:
    """``cfg`` with its modality's defaults filled in: the modality (from the options, else
    inferred from the data), the method, and what the modality sets (batch size, learning
    rate, precision).

    Example:
        >>> cfg = resolve_config(PretrainConfig(data="digits", method="byol", epochs=2))
        >>> cfg.method, cfg.batch_size, cfg.modality
        ('byol', 256, 'image')
        >>> series = resolve_config(PretrainConfig(data="ucr:GunPoint"))
        >>> series.method, series.batch_size, series.lr
        ('ts2vec', 8, 0.001)
    """
    name = cfg.modality
    if name is None:
        name = claimed_modality(cfg.data, dict(cfg))
    modality = get_modality(name)
    _refuse_foreign_options(cfg, modality)
    method = cfg.method or modality.default_method_for(cfg)
    modality.check_method(method)
    with_method = cfg.model_copy(update={"modality": name, "method": method})
    return with_method.model_copy(update=modality.config_defaults(with_method))


def _refuse_foreign_options(cfg: PretrainConfig, modality: Modality) -> None:
    """Stop where ``cfg`` sets a data option that ``modality``'s data does not read
    (``--window`` on a table, ``--labels`` on a JSONL file): ignoring it would train on data
    read otherwise than the user asked."""
    refuse_foreign_options(dict(cfg), modality)


def refuse_foreign_options(options: Mapping[str, Any], modality: Modality) -> None:
    """Stop where ``options`` set a data option that ``modality``'s data does not read
    (``--window`` on a table, ``--tile`` on a CSV file): ignored, it would describe or train
    on data read otherwise than the user asked.

    Raises:
        ConfigError: the option(s) and the data options the modality reads.

    Example:
        >>> refuse_foreign_options({"tile": 256}, get_modality("tabular"))
        Traceback (most recent call last):
        ...
        selfsup.config.ConfigError: --tile: not read by tabular data; its data options: --id-column, --label-column, --categorical-columns, --numeric-columns, --drop-columns
    """  # noqa: E501 (a doctest's line is the error's line)
    every = set().union(*(m.source_options for m in MODALITIES.values()))
    message = foreign_options([n for n in every if options.get(n)], modality)
    if message:
        raise ConfigError(message)


def foreign_options(given: Iterable[str], modality: Modality, whose: str = "") -> str | None:
    """The message refusing the data options among ``given`` that ``modality``'s data does
    not read (``whose``: what follows the modality's name), or None when it reads them all.

    Example:
        >>> foreign_options(["window", "image_size"], get_modality("image"))[:41]
        '--window: not read by image data; its dat'
    """
    foreign = sorted(name for name in given if name not in modality.source_options)
    if not foreign:
        return None
    flags = ", ".join(f"--{name.replace('_', '-')}" for name in foreign)
    own = ", ".join(
        f"--{name.replace('_', '-')}"
        for name in PretrainConfig.model_fields
        if name in modality.source_options
    )
    return f"{flags}: not read by {modality.name} data{whose}; its data options: {own}"


def load_encoder(folder: str | os.PathLike, backbone: nn.Module | None = None) -> Encoder:
    """Rebuild an encoder from a folder written by ``Encoder.save``.

    Args:
        folder: the folder holding ``encoder.safetensors`` and ``encoder.json``.
        backbone: the module to load the weights into when the encoder was built from a
            custom module (``encoder.json`` then says ``"backbone": "custom"``).

    Example:
        >>> import tempfile, torch
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=16, width=8)
        >>> folder = tempfile.mkdtemp()
        >>> enc.save(folder)
        >>> again = load_encoder(folder)
        >>> torch.equal(enc(torch.ones(1, 1, 16, 16)), again(torch.ones(1, 1, 16, 16)))
        True
    """
    folder = Path(folder)
    spec_path = folder / SPEC_FILE
    if not spec_path.exists():
        raise FileNotFoundError(f"{spec_path}: no encoder spec here (is this a run folder?)")
    spec = read_encoder_spec(spec_path)
    try:
        modality = get_modality(spec["modality"])
    except ConfigError as err:
        raise ValueError(f"{spec_path}: modality: {err}") from None
    if spec["backbone"] == "custom":
        if backbone is None:
            raise ValueError(
                f"{spec_path}: the encoder was trained with a custom backbone; pass the "
                "same module as `backbone=` to load its weights"
            )
        encoder = modality.wrap(backbone, spec["feature_dim"], spec["mean"], spec["std"])
    else:
        _check_size(spec_path, folder / WEIGHTS_FILE, lambda: modality.rebuild_encoder(spec))
        try:
            encoder = modality.rebuild_encoder(spec)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{spec_path}: describes no encoder this version builds ({one_line(err)})"
            ) from None
    load_weights_into(encoder, folder / WEIGHTS_FILE)
    try:
        encoder.set_center(spec.get("center"))
    except ValueError as err:
        raise ValueError(f"{spec_path}: center: {err}") from None
    return encoder


def _check_size(spec_path: Path, weights: Path, build: Any) -> None:
    """Refuse a spec that describes another model than the weights file holds (an edited
    ``"width": 200000`` would otherwise allocate terabytes): the encoder is first built on
    PyTorch's meta device, which allocates nothing, and its values counted against the
    tensors the safetensors header lists."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), "pt") as f:
            stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    except Exception as err:  # a damaged or missing file: named when it is read
        raise ValueError(f"{weights}: not a readable safetensors file ({err})") from None
    try:
        with torch.device("meta"):
            described = sum(t.numel() for t in build().state_dict().values())
    except Exception:  # a builder that cannot run on the meta device: checked by loading
        return
    if described != stored:
        raise ValueError(
            f"{spec_path}: describes an encoder of {described:,} values, but {weights.name} "
            f"holds {stored:,}: the spec does not belong to these weights"
        )
