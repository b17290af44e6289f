"""Reading text files a user supplies (plain text, JSONL, CSV, ``.ts``) strictly as UTF-8.

A file of binary data (an image or archive renamed ``.txt``) is refused, not read as hundreds
of garbled documents; a line that is not UTF-8 (a Latin-1 export) is named with its line
number and the command that converts it, rather than decoded into replacement characters.
A UTF-8 byte-order mark is allowed.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = path.write_bytes("first\\ncaf\\xe9\\n".encode("latin-1"))
    >>> try:
    ...     list(text_lines(path))
    ... except ValueError as err:
    ...     print(str(err).split(": ", 1)[1].split(";")[0])
    line 2 is not UTF-8 text (byte 0xe9 at column 4)
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from pathlib import Path

#: How many bytes at the start of a file are searched for a NUL byte, the sign of binary data
#: (git and grep look the same way).
SNIFF_BYTES = 8192


def check_text(path: str | os.PathLike, head: bytes | None = None) -> None:
    """Refuse a file whose first bytes hold a NUL byte: binary data, or UTF-16 text.

    Args:
        path: the file.
        head: its first bytes when already read (else read here).

    Raises:
        ValueError: binary content; the message names the file and the offset.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "photo.txt"
        >>> _ = path.write_bytes(b"\\xff\\xd8\\xff\\xe0\\x00\\x10JFIF")
        >>> try:
        ...     check_text(path)
        ... except ValueError as err:
        ...     print(str(err).split(": ", 1)[1][:45])
        holds binary data (a NUL byte at offset 4), n
    """
    if head is None:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    nul = head.find(b"\0")
    if nul >= 0:
        raise ValueError(
            f"{path}: holds binary data (a NUL byte at offset {nul}), not text; is it the right "
            f"file? (UTF-16 text must be saved as UTF-8)"
        )


def text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file with their numbers from 1 (as editors count), line
    endings removed; the file is checked for binary data first.

    Raises:
        ValueError: binary content, or a line that is not UTF-8 (the message names the line
            and says how to convert the file).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> _ = path.write_bytes(codecs.BOM_UTF8 + "naïve\\r\\nok\\n".encode())
        >>> list(text_lines(path))
        [(1, 'naïve'), (2, 'ok')]
    """
    path = Path(path)
    with path.open("rb") as f:
        check_text(path, f.read(SNIFF_BYTES))
        f.seek(0)
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(not_utf8(path, number, raw, err)) from None
            yield number, line.rstrip("\r\n")


def read_text(path: str | os.PathLike) -> str:
    """The whole of a UTF-8 text file (checked as :func:`text_lines` checks it), lines joined
    by ``\\n``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "doc.txt"
        >>> _ = path.write_text("a\\nb\\n")
        >>> read_text(path)
        'a\\nb'
    """
    return "\n".join(line for _, line in text_lines(path))


def not_utf8(path: Path, number: int, raw: bytes, err: UnicodeDecodeError) -> str:
    """The message for line ``number`` of ``path`` that failed to decode as UTF-8."""
    bad = raw[err.start]
    converted = f"{path.stem}.utf8{path.suffix}"
    excel = "Excel: Save As 'CSV UTF-8'; " if path.suffix.lower() in (".csv", ".tsv") else ""
    return (
        f"{path}: line {number} is not UTF-8 text (byte 0x{bad:02x} at column {err.start + 1});"
        f" save the file as UTF-8 ({excel}from Windows' Western encoding, Latin-1 with €: "
        f"iconv -f cp1252 -t utf-8 {path.name} > {converted})"
    )
