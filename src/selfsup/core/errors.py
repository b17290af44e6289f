"""Errors told in one line: what went wrong, where, and what to do.

Every command ends an expected failure with one line (``selfsup.cli.main``); messages from
libraries (numpy, pandas, the operating system) are brought to that form here.

Example:
    >>> one_line(ValueError("bad header\\n  at byte 12"))
    'bad header'
"""

from __future__ import annotations

import errno

#: What to do about an operating-system error, by its code.
_OS_ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EROFS: "write elsewhere (--out)",
    errno.EACCES: "write elsewhere or change the permissions",
    errno.EPERM: "write elsewhere or change the permissions",
    errno.EISDIR: "give a file name",
    errno.ENOTDIR: "a file stands where a folder should be",
}


def one_line(err: BaseException) -> str:
    """An error as one line: an operating-system error as ``path: reason; what to do``,
    any other as its message's first line.

    Example:
        >>> one_line(OSError(errno.ENOSPC, "No space left on device", "out/e.npy"))
        'out/e.npy: no space left on device; free some space or write elsewhere'
        >>> one_line(MemoryError())
        'out of memory: lower --batch-size, or use a machine with more memory'
    """
    if isinstance(err, MemoryError) and not str(err).strip():  # a plan's own says more
        return "out of memory: lower --batch-size, or use a machine with more memory"
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename is not None else ""
        advice = _OS_ADVICE.get(err.errno)
        reason = err.strerror[0].lower() + err.strerror[1:]
        return f"{where}{reason}" + (f"; {advice}" if advice and advice not in reason else "")
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
