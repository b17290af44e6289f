"""Check: every image method on digits for one epoch, from the command line, finishes and
reports finite label-free metrics (issue 19: SwAV's NaN embeddings once crashed the monitor).

Each method runs as a user runs it, ``selfsup pretrain digits --method M --epochs 1 --out
RUNS/M`` (``--precision`` as given, the machine's default otherwise), output to a pipe. The
distillation student's teacher, and MSF's starting point (``--init``), is the SimCLR run
made first. A row per method: exit status, the held-out label-free metrics of the epoch
(``epochs.csv``), whether all are finite, and the seconds the command took.

Usage:
    python benchmarks/every_method.py                     # about 5 minutes on 2 cores
    python benchmarks/every_method.py --precision bf16 --methods swav,dino
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from common import load_average, write_section
from selfsup.methods import METHODS
from selfsup.run import _machine

METRICS = ("rankme", "alpha_req", "normalized_std", "neighbour_agreement")


def check(method: str, runs: Path, precision: str | None, teacher: Path | None) -> dict:
    """Run one method for an epoch on digits; its exit status, metrics and time."""
    out = runs / method
    command = [sys.executable, "-m", "selfsup", "pretrain", "digits", "--method", method,
               "--epochs", "1", "--out", str(out)]  # fmt: skip
    if precision:
        command += ["--precision", precision]
    if method == "distill":
        command += ["--teacher", str(teacher)]
    if METHODS[method].needs_pretrained:  # MSF adapts an encoder: the SimCLR run's
        command += ["--init", str(teacher)]
    begun = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - begun
    row: dict = {"method": method, "status": done.returncode, "seconds": seconds}
    epochs = out / "epochs.csv"
    if done.returncode == 0 and epochs.exists():
        last = pd.read_csv(epochs).iloc[-1]
        row.update({m: float(last[m]) for m in METRICS if m in last})
    row["finite"] = done.returncode == 0 and all(
        isinstance(row.get(m), float) and math.isfinite(row[m]) for m in METRICS
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        row["error"] = lines[-1] if lines else "(no output)"
    print(row, flush=True)
    return row


def render(rows: list[dict], args: argparse.Namespace, load_before: str, seconds: float) -> str:
    """The BENCHMARKS.md section."""
    lines = [
        "## Every image method on digits for one epoch (benchmarks/every_method.py)",
        "",
        "`selfsup pretrain digits --method M --epochs 1` from the command line, output to a "
        f"pipe, precision {args.precision or 'the default (auto)'}; the held-out label-free "
        "metrics of the epoch. The student's teacher is the SimCLR run.",
        "",
        "| method | exit | RankMe | alpha-ReQ | normalized std | neighbour agreement | "
        "finite | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [f"{r[m]:.3g}" if m in r else "-" for m in METRICS]
        lines.append(
            f"| {r['method']} | {r['status']} | " + " | ".join(cells)
            + f" | {'yes' if r['finite'] else 'NO: ' + r.get('error', '')} | {r['seconds']:.0f} |"
        )  # fmt: skip
    finished = sum(r["finite"] for r in rows)
    lines += [
        "",
        f"{finished} of {len(rows)} methods finished with finite metrics. Machine: "
        f"{_machine()}; load before {load_before}; {seconds / 60:.1f} minutes. Reproduce: "
        f"`python benchmarks/every_method.py"
        + (f" --precision {args.precision}" if args.precision else "")
        + "`.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    image = [m for m, cls in METHODS.items() if "image" in cls.modalities]
    parser.add_argument("--methods", default=",".join(["simclr", *sorted(set(image) - {"simclr"})]))
    parser.add_argument("--precision", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="every-method-"))
    started, load_before = time.time(), load_average()
    rows = []
    try:
        for method in args.methods.split(","):
            rows.append(check(method, runs, args.precision, runs / "simclr"))
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    text = render(rows, args, load_before, time.time() - started)
    print(text)
    if not args.no_write:
        write_section(f"every-method-{args.precision or 'auto'}", text)


if __name__ == "__main__":
    main()
