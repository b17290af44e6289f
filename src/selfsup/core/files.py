"""Writing the files a user keeps atomically: a temporary file beside the target, flushed to
disk, then renamed over it. A crash or a full disk leaves the previous file whole and no
temporary file behind, and the error names the file the user asked for (not the temporary
one). Before long work, :func:`check_writable` finds a read-only folder or a full disk; JSON
files a run or model folder holds are read by :func:`read_json`, which names the file when it
is damaged.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "result.json"
    >>> write_json(path, {"accuracy": 0.9})
    >>> path.read_text()
    '{\\n  "accuracy": 0.9\\n}'
    >>> sorted(p.name for p in path.parent.iterdir())
    ['result.json']
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it is flushed to disk and
    renamed over ``path``, on any failure it is removed.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way of the file", str(path))
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if err.filename in (None, str(tmp), tmp):  # name the user's file, not the temporary one
            raise type(err)(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write (``kill -9``, a power cut)
    left under ``folder``: ``.NAME.tmpPID`` files of processes that no longer run. Returns
    what was deleted.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / ".last.ckpt.tmp999999999").write_bytes(b"half a checkpoint")
        >>> [p.name for p in remove_stale_temporaries(folder)]
        ['.last.ckpt.tmp999999999']
    """
    removed = []
    for path in Path(folder).rglob(".*.tmp*"):
        pid = path.name.rpartition(".tmp")[2]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (numpy scalars as floats)."""
    write_text(path, json.dumps(data, indent=2, default=float))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path`` (UTF-8).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not UTF-8 or not JSON; the message names the file and where it breaks.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.json"
        >>> _ = path.write_text('{"steps": 3')
        >>> try:
        ...     read_json(path)
        ... except ValueError as err:
        ...     print(str(err).split(": ", 1)[1].split(";")[0])
        not valid JSON (line 1, column 12: Expecting ',' delimiter)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); not a JSON file") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); was the "
            f"file edited or cut short?"
        ) from None


def read_json_object(
    path: str | os.PathLike, what: str = "a JSON object", missing_ok: bool = False
) -> dict[str, Any]:
    """The JSON object in ``path`` (as :func:`read_json`), or {} for an absent file when
    ``missing_ok``.

    Raises:
        ValueError: not JSON, or JSON but not an object; the message says the file is not
            ``what``.

    Example:
        >>> read_json_object("/nonexistent/config.json", missing_ok=True)
        {}
    """
    if missing_ok and not Path(path).is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: not {what} (expected a JSON object, found {type(data).__name__})"
        )
    return data


def check_writable(path: str | os.PathLike, need_bytes: int = 0) -> None:
    """Fail at once, before long work, when ``path`` (a file or folder to be written) cannot
    be written: its folder cannot be made, is read-only, or lacks ``need_bytes`` of space.

    A probe file is created and removed in the nearest folder that exists (nothing is left
    behind, not even a new folder): permission bits alone do not tell a read-only file system,
    nor what root may do.

    Raises:
        OSError: the reason, with the path (``EROFS``, ``EACCES``, ``ENOSPC``...).

    Example:
        >>> import tempfile, pathlib
        >>> check_writable(pathlib.Path(tempfile.mkdtemp()) / "runs" / "embeddings.npy", 10)
        >>> check_writable("/proc/embeddings.npy")
        Traceback (most recent call last):
        ...
        FileNotFoundError: [Errno 2] No such file or directory: '/proc/embeddings.npy'
        >>> sorted(p.name for p in pathlib.Path(tempfile.gettempdir()).glob(".selfsup-probe*"))
        []
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, "a file stands where a folder should be", str(folder)
        )
    probe = folder / f".selfsup-probe{os.getpid()}"
    try:
        probe.touch()
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    free = shutil.disk_usage(folder).free
    if need_bytes > free:
        raise OSError(
            errno.ENOSPC,
            f"needs {_megabytes(need_bytes)} but the disk has {_megabytes(free)} free",
            str(path),
        )


def size_text(n: float) -> str:
    """A size in bytes for people: ``5.1 GB``, ``332 MB``, ``28 kB``, ``9 bytes`` (powers
    of 1024).

    Example:
        >>> size_text(5.1 * 2**30), size_text(332 * 2**20), size_text(28_000), size_text(9)
        ('5.1 GB', '332 MB', '27 kB', '9 bytes')
    """
    for unit, size in (("GB", 2**30), ("MB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if unit == "GB" else f"{n / size:,.0f} {unit}"
    return f"{n / 2**10:,.0f} kB" if n >= 2**10 else f"{n:,.0f} bytes"


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"
