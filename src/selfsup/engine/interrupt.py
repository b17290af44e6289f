"""Ctrl-C and SIGTERM stop training at a step's end, with a checkpoint, not mid-step.

A terminal's Ctrl-C (SIGINT) and a scheduler's or container's stop (SIGTERM: SLURM at a job's
time limit, ``docker stop``, Kubernetes) would otherwise kill a run where it stands and lose
everything since the last checkpoint: up to ``--checkpoint-every`` minutes. While
:class:`StopRequests` is active, the first such signal only asks the loop to stop; the loop
finishes the step it is in, writes a checkpoint and raises :class:`TrainingInterrupted`, so
``--resume`` goes on from the step after it. A second Ctrl-C stops at once (a plain
``KeyboardInterrupt``), for a step that never ends.

Under DDP every process decides together (:meth:`StopRequests.agreed`, an all-reduce of one
number per step): processes that stopped at different steps would wait for each other's
gradients forever. A Ctrl-C in a terminal reaches every process of the group, a scheduler
signals every task; one asked is enough.

Example:
    >>> import os, signal
    >>> with StopRequests() as stop:
    ...     os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would
    ...     stop.signal_name
    'SIGTERM'
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

#: The signals asking a run to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _said(signal_name: str) -> str:
    """How a user names the signal: Ctrl-C for SIGINT, else its own name."""
    return "Ctrl-C" if signal_name == "SIGINT" else signal_name


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal at a step's end, with a checkpoint of that step written.

    Attributes:
        step: optimizer steps done (the checkpoint's).
        total_steps: the steps planned.
        signal_name: ``SIGINT`` (Ctrl-C) or ``SIGTERM``.
        run_dir: the run's folder, which holds the checkpoint.
        exit_status: 130 or 143, as a shell reports a process killed by that signal.

    Example:
        >>> stop = TrainingInterrupted(40, 100, "SIGINT", Path("runs/photos"))
        >>> isinstance(stop, KeyboardInterrupt), stop.exit_status
        (True, 130)
        >>> for part in str(stop).split("; "):  # doctest: +NORMALIZE_WHITESPACE
        ...     print(part)
        stopped by Ctrl-C after step 40 of 100
        its checkpoint is in runs/photos:
        `selfsup pretrain --resume runs/photos` goes on from there
    """

    def __init__(self, step: int, total_steps: int, signal_name: str, run_dir: Path) -> None:
        self.step, self.total_steps, self.signal_name = step, total_steps, signal_name
        self.run_dir = run_dir
        self.exit_status = 128 + signal.Signals[signal_name].value  # as a shell reports it
        super().__init__(
            f"stopped by {_said(signal_name)} after step {step:,} of {total_steps:,}; its "
            f"checkpoint is in {run_dir}: `selfsup pretrain --resume {run_dir}` goes on from there"
        )


class StopRequests:
    """While active (a ``with`` block), SIGINT and SIGTERM set :attr:`signal_name` instead
    of stopping the process; the first one says on stderr that the run stops after its step
    (where ``announce``). A second SIGINT raises ``KeyboardInterrupt`` at once. Outside the
    main thread (signals cannot be caught there) nothing is installed and nothing is asked.

    Example:
        >>> import lightning
        >>> with StopRequests() as stop:
        ...     stop.agreed(lightning.Fabric(accelerator="cpu", devices=1)) is None
        True
    """

    def __init__(self, announce: bool = True) -> None:
        #: Whether the first signal is told on stderr (under DDP: by rank 0 alone).
        self.announce = announce
        #: The name of the first signal received, None while none was.
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}
        self._exchange: torch.Tensor | None = None

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is not threading.main_thread():
            return self
        for number in STOP_SIGNALS:
            # A signal ignored on purpose (a script's background job ignores SIGINT) stays so.
            if signal.getsignal(number) is not signal.SIG_IGN:
                self._previous[number] = signal.signal(number, self._asked)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            # None: a handler set outside Python, which cannot be set back; the default then.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _asked(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.signal_name is not None:
            if number == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signal_name = name
        if not self.announce:
            return
        line = (
            f"\n{_said(name)}: stopping after this step, "
            "with a checkpoint"
            + (" (Ctrl-C again: stop at once, without one)" if number == signal.SIGINT else "")
            + "\n"
        )
        try:  # os.write, not print: a handler may run inside another write to the stream
            os.write(sys.stderr.fileno(), line.encode())
        except (AttributeError, OSError, ValueError):  # a notebook's stream has no file
            sys.stderr.write(line)

    def agreed(self, fabric: Any) -> str | None:
        """The signal that asked any process to stop, or None: every process calls this
        after the same steps and gets the same answer. Under DDP on GPUs the answer is the
        exchange made at the previous call, read once this one's is sent, so a GPU never
        waits for it (one step later than asked); on CPUs (gloo) the exchange is over when
        sent, and one process alone needs none.

        Example:
            >>> import lightning
            >>> StopRequests().agreed(lightning.Fabric(accelerator="cpu", devices=1)) is None
            True
        """
        if fabric.world_size == 1:
            return self.signal_name
        number = signal.Signals[self.signal_name].value if self.signal_name else 0
        sent = torch.full((1,), float(number), device=fabric.device)
        # torch's own all-reduce: Fabric's puts a barrier first, which waits for the GPU.
        dist.all_reduce(sent, op=dist.ReduceOp.MAX)
        if fabric.device.type == "cpu":  # gloo's exchange is done already: no step later
            answer = sent
        else:
            answer, self._exchange = self._exchange, sent
        agreed = int(answer.item()) if answer is not None else 0
        return signal.Signals(agreed).name if agreed else None
