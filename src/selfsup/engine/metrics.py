"""Training metrics written as CSV (one row per log step) and as TensorBoard events.

Example:
    >>> import tempfile
    >>> log = MetricsLog(tempfile.mkdtemp(), tensorboard=False)
    >>> log.write(step=1, loss=0.5)
    >>> log.rows()[0]["loss"]
    '0.5'
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

CSV_FILE = "metrics.csv"
EPOCHS_FILE = "epochs.csv"
TENSORBOARD_DIR = "tensorboard"


class MetricsLog:
    """Appends metric rows to ``metrics.csv`` and TensorBoard scalars under ``tensorboard/``.

    Args:
        folder: the run folder.
        resume_step: when resuming, rows after this step are dropped (they belong to the
            interrupted epoch, which is trained again).
        tensorboard: also write TensorBoard events.
        filename: the CSV file's name (``epochs.csv`` holds the monitor's measurements, after
            epochs and inside long ones).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        resume_step: int | None = None,
        tensorboard: bool = True,
        filename: str = CSV_FILE,
    ) -> None:
        self.path = Path(folder) / filename
        self._fields: list[str] | None = None
        if resume_step is not None and self.path.exists():
            kept = [r for r in self.rows() if int(float(r["step"])) <= resume_step]
            self.path.unlink()
            for row in kept:
                self._append(row)
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(
                str(Path(folder) / TENSORBOARD_DIR), purge_step=resume_step
            )

    def rows(self) -> list[dict[str, str]]:
        """All rows written so far."""
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _append(self, row: dict[str, Any]) -> None:
        if self._fields is None:
            self._fields = list(self.rows()[0].keys()) if self.path.exists() else list(row)
        new_fields = [k for k in row if k not in self._fields]
        if new_fields:
            # A new metric appeared: rewrite the file with the wider header.
            old = self.rows()
            self._fields += new_fields
            with self.path.open("w", newline="") as f:
                writer = csv.DictWriter(f, self._fields)
                writer.writeheader()
                writer.writerows(old)
        write_header = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, self._fields)
            if write_header:
                writer.writeheader()
            writer.writerow(row)

    def write(self, step: int, **metrics: float) -> None:
        """Write one row of metrics at ``step``."""
        self._append({"step": step, **metrics})
        if self._writer is not None:
            for name, value in metrics.items():
                self._writer.add_scalar(name, value, step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
