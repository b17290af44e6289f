"""The ``selfsup`` console script: says a long command has started before the libraries load.

Loading PyTorch and Lightning takes 10 s or more on a small machine; ``selfsup pretrain``
says so at once and every ``EVERY`` seconds until the command takes over
(:class:`selfsup.core.progress.Preparing`, then the training progress), so output to a file
or a pipe is never silent for long. This module imports nothing heavy.
"""

from __future__ import annotations

import sys
import threading
import time

EVERY = 5.0
#: Set while the libraries load; the command clears it when it shows its own progress.
loading = threading.Event()


def _tick(started: float) -> None:
    while not _stop.wait(EVERY):
        if loading.is_set():
            elapsed = time.perf_counter() - started
            print(f"selfsup pretrain: loading libraries ({elapsed:.0f} s)", flush=True)


_stop = threading.Event()


def main() -> None:
    """Announce ``pretrain``, then run the command line."""
    if sys.argv[1:2] == ["pretrain"] and not {"--help", "-h"} & set(sys.argv):
        print("selfsup pretrain: loading libraries", flush=True)
        loading.set()
        threading.Thread(target=_tick, args=(time.perf_counter(),), daemon=True).start()
    from selfsup.cli import main as cli_main

    try:
        cli_main()
    finally:
        _stop.set()
