"""The ``selfsup`` console script: says a long command has started before the libraries load.

Loading PyTorch and Lightning takes 10 s or more on a small machine; ``selfsup pretrain``
and the other commands that read data (``ANNOUNCED``) say so at once and every ``EVERY``
seconds until the command takes over
(:class:`selfsup.core.progress.Preparing`, then the training progress), so output to a file
or a pipe is never silent for long. This module imports nothing heavy.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

EVERY = 5.0
#: Set while the libraries load; the command clears it when it shows its own progress.
loading = threading.Event()


#: Commands that load PyTorch and read data: they say so at once.
ANNOUNCED = frozenset(
    {
        "pretrain",
        "embed",
        "evaluate",
        "export",
        "adapt",
        "predict",
        "select",
        "anomalies",
        "audit",
        "explain",
        "report",
    }
)


def _tick(command: str, started: float) -> None:
    while not _stop.wait(EVERY):
        if loading.is_set():
            elapsed = time.perf_counter() - started
            print(f"selfsup {command}: loading libraries ({elapsed:.0f} s)", flush=True)


_stop = threading.Event()


def missing_data(argv: list[str]) -> str | None:
    """The one-line error for ``selfsup pretrain PATH ...`` whose PATH is plainly a path (it
    has a folder separator or a file suffix, and no ``name:`` prefix of a named set) and does
    not exist, so a typo is answered at once instead of after the libraries load; else None.

    Example:
        >>> missing_data(["pretrain", "/no/such/photos", "--epochs", "1"])
        'error: /no/such/photos: no such file or folder'
        >>> missing_data(["pretrain", "digits"]) is None, missing_data(["pretrain", "ucr:X"])
        (True, None)
    """
    if len(argv) < 2 or argv[0] != "pretrain" or "--traceback" in argv:
        return None
    spec = argv[1]
    if spec.startswith("-") or ":" in spec.split(os.sep, 1)[0]:
        return None
    path = Path(spec).expanduser()
    if (os.sep in spec or path.suffix) and not path.exists():
        return f"error: {spec}: no such file or folder"
    return None


def main() -> None:
    """Announce a command that loads the libraries, then run the command line."""
    error = missing_data(sys.argv[1:])
    if error is not None:
        print(error, flush=True)
        sys.exit(2)
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in ANNOUNCED and not {"--help", "-h"} & set(sys.argv):
        print(f"selfsup {command}: loading libraries", flush=True)
        loading.set()
        threading.Thread(target=_tick, args=(command, time.perf_counter()), daemon=True).start()
    from selfsup.cli import main as cli_main

    try:
        cli_main()
    finally:
        _stop.set()
