"""Command-line options generated from ``PretrainConfig``, so that no field can be missing.

Every field of :class:`~selfsup.config.PretrainConfig` becomes a ``selfsup pretrain`` option:
its name with dashes, its help from the field's line in the class docstring, its default shown,
its type from the annotation (booleans as ``--x/--no-x`` flags, choices from ``Literal``
types, lists as comma lists, mappings as ``key=value,key=value`` or a YAML mapping). An option
left out is None, so a value from ``--config FILE`` stands unless the command line says
otherwise. The fields that describe how data is read (``DATA_FIELDS``) are options of every
command that reads data.

Example:
    >>> parse_mapping("width=8,pool=mean"), parse_mapping("{crop_scale: [0.2, 1.0]}")
    ({'width': 8, 'pool': 'mean'}, {'crop_scale': [0.2, 1.0]})
    >>> "backbone_options" in config_options() and "data" not in config_options()
    True
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import re
import types
import typing
from collections.abc import Iterator
from enum import Enum
from functools import cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from selfsup.config import PretrainConfig
from selfsup.modalities import MODALITIES, foreign_options

if TYPE_CHECKING:
    from selfsup.run import Run

#: Help panels of ``selfsup pretrain --help``: which fields go under which heading.
PANELS = {
    "Data": (
        "modality", "image_size", "tile", "scan_window", "whole_files", "channel_pattern",
        "pixel_bits", "id_column",
        "time_column", "window", "window_stride", "label_column", "labels", "outside_label",
        "event_lead", "categorical_columns", "numeric_columns", "drop_columns", "text_column",
        "max_length",
        "vocab_size", "sample_rate", "clip_seconds", "clip_hop", "n_mels", "n_fft",
        "hop_length", "f_min", "f_max", "audio_input", "strict", "num_workers",
    ),
    "Method and model": ("method", "backbone", "backbone_options", "method_options", "views"),
    "Schedule": (
        "epochs", "steps", "time_budget", "batch_size", "group_by_length", "accumulate", "lr",
        "optimizer", "weight_decay", "warmup_epochs", "schedule", "seed",
    ),
    "Hardware": ("precision", "devices", "num_nodes", "accelerator", "sync_batchnorm", "compile"),
    "Monitoring and output": (
        "out", "overwrite", "log_every", "monitor_items", "measure_every", "stop_on_collapse",
        "select_by",
        "patience", "online_probe", "keep_checkpoints",
    ),
}  # fmt: skip
#: Config fields that describe how data is read: options of every command that reads data.
DATA_FIELDS = tuple(
    name
    for name in PretrainConfig.model_fields
    if any(name in m.source_options for m in MODALITIES.values())
)


@cache
def field_help() -> dict[str, str]:
    """Each field's description, read from the ``Attributes:`` section of the docstring.

    Example:
        >>> field_help()["time_budget"]
        'minutes of training; the schedule is fitted to end within it.'
    """
    doc = inspect.getdoc(PretrainConfig) or ""
    section = doc.split("Attributes:", 1)[1]
    found: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            current = match.group(1)
            found[current] = [match.group(2)]
        elif current is not None and line.startswith("        "):
            found[current].append(line.strip())
    return {name: " ".join(parts) for name, parts in found.items()}


def parse_mapping(text: str) -> dict[str, Any]:
    """``key=value,key=value`` (values read as YAML scalars) or a YAML mapping."""
    text = text.strip()
    if text.startswith("{"):
        value = yaml.safe_load(text)
        if not isinstance(value, dict):
            raise typer.BadParameter(f"{text!r} is not a mapping")
        return value
    result: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{part!r}: expected key=value")
        result[key.strip()] = yaml.safe_load(value)
    return result


def parse_list(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; an option left out (None) stays None.

    Example:
        >>> parse_list("a, b"), parse_list(None)
        (['a', 'b'], None)
    """
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> int; other annotations as they are."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


#: What the help shows as the default of options whose unset value is not taken from the data.
_UNSET_SHOWN = {"measure_every": "5, under a tenth of training", "patience": "off"}


def _option(name: str, field: Any, panel: str | None, unset: str | None = None) -> tuple[Any, Any]:
    """The annotation and default of the generated parameter for one config field; ``unset``
    is what the help shows as the default, when given."""
    kind = _base_type(field.annotation)
    default = field.get_default(call_default_factory=True)
    described = field_help().get(name, "")
    if unset is not None:
        shown: Any = unset
    elif default is None and name in _UNSET_SHOWN:
        shown = _UNSET_SHOWN[name]
    elif default is None or default in ([], {}):
        shown: Any = "from the data" if default is None else "none"
    else:
        shown = default
    flag = "--" + name.replace("_", "-")
    common = {"help": described, "show_default": str(shown), "rich_help_panel": panel}
    if kind is bool:
        return Annotated[bool | None, typer.Option(f"{flag}/--no-{flag[2:]}", **common)], None
    if typing.get_origin(kind) is typing.Literal:
        choices = Enum(f"{name}_choice", {str(v): str(v) for v in typing.get_args(kind)}, type=str)
        return Annotated[choices | None, typer.Option(flag, **common)], None  # type: ignore[valid-type]
    if typing.get_origin(kind) in (dict, list) or kind in (dict, list):
        return Annotated[str | None, typer.Option(flag, **common)], None
    return Annotated[kind | None, typer.Option(flag, **common)], None


@cache
def config_options(
    fields: tuple[str, ...] | None = None, unset: str | None = None
) -> dict[str, inspect.Parameter]:
    """One keyword parameter per config field (or per one of ``fields``) except ``data`` (the
    command's argument); ``unset`` replaces the defaults shown in the help."""
    panel_of = {f: panel for panel, fields in PANELS.items() for f in fields}
    params = {}
    for name, field in PretrainConfig.model_fields.items():
        if name == "data" or (fields is not None and name not in fields):
            continue
        annotation, default = _option(name, field, panel_of.get(name), unset)
        params[name] = inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
        )
    return params


def data_options() -> dict[str, inspect.Parameter]:
    """The parameters of the data-describing fields (``DATA_FIELDS``), for commands that
    read data with a run."""
    return config_options(DATA_FIELDS, "as the run was trained")


def to_config_values(given: dict[str, Any]) -> dict[str, Any]:
    """Command-line values as config values: None dropped, enums as their value, comma lists
    and mappings parsed."""
    values: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        field = PretrainConfig.model_fields.get(name)
        kind = _base_type(field.annotation) if field is not None else None
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, str) and kind is not None:
            origin = typing.get_origin(kind) or kind
            if origin is dict:
                value = parse_mapping(value)
            elif origin is list:
                value = parse_list(value)
        values[name] = value
    return values


def with_parameters(function: Any, extra: dict[str, inspect.Parameter]) -> Any:
    """``function`` whose signature (what typer reads) gains the ``extra`` keyword parameters;
    it receives them in ``**options``."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function, include_extras=True)  # resolve string annotations
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.kind != p.VAR_KEYWORD
    ]
    names = {p.name for p in params}
    added = [p for name, p in extra.items() if name not in names]
    function.__signature__ = signature.replace(parameters=params + added)
    function.__annotations__ = {
        **{p.name: p.annotation for p in params + added},
        "return": hints.get("return"),
    }
    return function


def reads_data(function: Any) -> Any:
    """Decorator: the command takes the data options of ``selfsup pretrain`` in ``**options``,
    and says every few seconds what it is doing while no progress bar does (a
    :class:`~selfsup.core.progress.Preparing` ticker), so its output is never silent for long.
    """
    command = function.__name__.split("_")[0]

    @wraps(function)
    def speaking(*args: Any, **kwargs: Any) -> Any:
        subject = kwargs.get("data") or kwargs.get("run") or ""
        with ticking(f"{command} {subject}".strip()):
            return function(*args, **kwargs)

    return with_parameters(speaking, data_options())


@contextlib.contextmanager
def ticking(what: str) -> Iterator[None]:
    """A command's work after its libraries loaded: the console script's "loading
    libraries" lines stop, and a :class:`~selfsup.core.progress.Preparing` ticker says
    ``WHAT: preparing (N s)`` (or the step under way) while no progress bar runs."""
    from selfsup import _entry
    from selfsup.console import console
    from selfsup.core.progress import Preparing

    _entry.loading.clear()
    with Preparing(console, what):
        yield


#: ``--overwrite`` of the commands that write a file the user names (``--out``).
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace the --out file if it exists already.")
]


def new_output(out: str | os.PathLike, overwrite: bool) -> None:
    """Check, before any work, that ``out`` can be written and replaces no earlier result
    unasked: a file there already (the embeddings of another model, the items sent to the
    annotators last week) is refused unless ``overwrite``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (the line names it, its size
            and when it was written).
        IsADirectoryError: a folder is in the way of the file (whatever ``overwrite``).
        OSError: ``out`` cannot be written (see :func:`~selfsup.core.files.check_writable`).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
        >>> new_output(out, overwrite=False)
        >>> _ = out.write_text("id,score\\n")
        >>> new_output(out, overwrite=True)
        >>> new_output(out, overwrite=False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileExistsError: [Errno 17] exists already (9 bytes, written ...
    """
    import datetime

    from selfsup.core.files import check_writable, size_text

    path = Path(out)
    if path.is_dir():  # said now, not once the work is done and the file is written
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way of the file", str(path))
    if path.exists() and not overwrite:
        stat = path.stat()
        written = datetime.datetime.fromtimestamp(stat.st_mtime).strftime("%Y-%m-%d %H:%M")
        raise FileExistsError(
            errno.EEXIST,
            f"exists already ({size_text(stat.st_size)}, written {written}); give "
            "--overwrite to replace it, or another --out",
            str(path),
        )
    check_writable(path)


def can_save_in(folder: str | os.PathLike) -> bool:
    """Whether results can be saved in ``folder`` (checked before the work that makes them);
    when not (read-only, full), one line says they will be printed and not saved."""
    from selfsup.console import console
    from selfsup.core.files import check_writable

    try:
        check_writable(folder)
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        console.print(
            f"[yellow]note[/yellow]: {folder}: {reason}; the results are printed, not saved",
            soft_wrap=True,
            highlight=False,
        )
        return False
    return True


def open_run(path: str | os.PathLike, options: dict[str, Any], device: str = "cpu") -> Run:
    """The run in ``path`` with its encoder on ``device`` (``auto``: the GPU when present),
    reading data with the command line's data options over its own; a warning line when it
    did not finish training."""
    from selfsup.console import console
    from selfsup.run import TRAIN_FILE, load

    given = to_config_values(options)
    run = load(path, device=device)
    foreign = foreign_options(given, run.modality, f", which {path} reads")
    if foreign:  # a series option on a table, say: refused, not silently ignored
        raise ValueError(foreign)
    run = run.with_data_options(**given)
    if not run.finished:
        saved = any((run.path / "checkpoints").glob("*"))  # none: it stopped before step 1
        console.print(
            f"[bold red]warning[/bold red]: {path} did not finish training (no {TRAIN_FILE}): "
            + (
                "its encoder is its last checkpoint's"
                if saved
                else "its encoder is the one it started from (no checkpoint was written)"
            )
            + "; `selfsup pretrain --resume` continues it",
            soft_wrap=True,
        )
    return run
