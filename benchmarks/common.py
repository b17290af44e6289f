"""What the benchmark scripts share: the per-method recipes, BENCHMARKS.md sections, load.

Every benchmark writes its own section of BENCHMARKS.md between two markers, so the scripts
can be rerun one at a time without overwriting each other's results.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.demo import DEMO_OPTIONS

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
RUNS = ROOT / "runs" / "bench"

ALL_METHODS = (
    "simclr", "byol", "vicreg", "barlowtwins", "mocov3", "simsiam", "nnclr", "swav", "dino",
    "mae", "ijepa",
)  # fmt: skip

_HEADS = DEMO_OPTIONS["method_options"]  # projection and hidden size 1024
# MAE and I-JEPA need a ViT: a 6-block ViT-Tiny on 4x4 patches (7x7 tokens at 28x28) with
# fixed 2-D sin-cos position embeddings, as both papers' encoders (a learned one can trade
# content for position to make masked tokens predictable), its features the mean of the patch
# tokens (I-JEPA's evaluation; MAE's linear probe uses it too) of each of the last 4 blocks,
# concatenated (DINO's linear evaluation of ViTs), and a learning rate of 3e-4, nearer their
# papers' batch-scaled rates (1.5e-4 and 1.25e-4 at batch 256) than the AdamW default of 2e-3.
_VIT = {
    "backbone": "vit-tiny",
    "backbone_options": {
        "patch_size": 4,
        "depth": 6,
        "pool": "mean",
        "pool_blocks": 4,
        "pos_embed": "sincos",
    },
    "lr": 3e-4,
}
# I-JEPA keeps its context encoder, not the EMA target the paper evaluates, which lags behind in
# a 10-minute run; its EMA starts at 0.99 (not 0.996) and its learning rate is 6e-4. One
# 10-minute trial of these options: 10k-image probe 0.833 for the context encoder, 0.826 for
# the target (at 3e-4: 0.829 and 0.822).
_IJEPA = {**_VIT, "lr": 6e-4, "method_options": {"export": "context", "base_momentum": 0.99}}

#: Options of ``selfsup.pretrain`` per method, on top of the demo's data recipe.
METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "simclr": {"method_options": _HEADS},
    "byol": {"method_options": _HEADS},
    "vicreg": {"method_options": _HEADS},
    "barlowtwins": {"method_options": _HEADS},
    "mocov3": {"method_options": _HEADS},
    "simsiam": {},
    "nnclr": {"method_options": _HEADS},
    "swav": {},
    "dino": {},
    "mae": _VIT,
    "ijepa": _IJEPA,
}


def pretrain_options(method: str) -> dict[str, Any]:
    """The demo's options (batch, backbone, views) with ``method``'s own on top."""
    options = {k: v for k, v in DEMO_OPTIONS.items() if k != "method_options"}
    return {**options, **METHOD_OPTIONS[method]}


def protocol_cells(evaluation: dict[str, Any], column: str = "selfsup") -> list[str]:
    """Linear probe, kNN and 10-shot (± its 95% CI) of a saved evaluation
    (``Run.evaluate(...).to_dict()``), for the encoder (``selfsup``) or raw inputs (``raw``),
    as table cells."""
    rows = {row["protocol"]: row for row in evaluation["rows"]}
    shot = rows["fewshot-10"]
    return [
        f"{rows['linear'][column]:.4f}",
        f"{rows['knn'][column]:.4f}",
        f"{shot[column]:.4f} ± {shot['detail'][f'ci95_{column}']:.4f}",
    ]


def write_section(name: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``text``."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(current):
        current = pattern.sub(lambda _: block, current)
    else:
        current = current.rstrip() + "\n\n" + block
    path.write_text(current)


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB (``VmHWM``: of its own memory
    map, unlike ``ru_maxrss``, which a spawned process inherits from the one that forked
    it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status: a Linux kernel is needed")


def in_process(function: Any, *args: Any) -> Any:
    """``function(*args)`` in a fresh process, whose peak memory (:func:`peak_mb`) is its own."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def read_rate(read: Any, order: np.ndarray, batch: int, name: str) -> float:
    """Items/s of ``read`` (a source's ``read_batch`` or ``read_training_batch``) over the rows
    ``order`` in batches of ``batch``; stops on an unreadable item of ``name``."""
    started = time.perf_counter()
    for start in range(0, len(order), batch):
        found = read(order[start : start + batch].tolist())
        if found.skipped:
            raise SystemExit(f"{name}: {found.skipped[0]}")
    return len(order) / (time.perf_counter() - started)


def publish(name: str, lines: list[str], smoke: bool) -> None:
    """Print a benchmark's section and, unless it was a smoke run, write it to BENCHMARKS.md
    (:func:`write_section`)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if not smoke:
        write_section(name, text)


def load_average() -> str:
    """The 1/5/15-minute load averages, to report the load a benchmark ran under."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def process_memory(pid: int) -> tuple[int, int]:
    """Proportional set size in bytes of ``pid`` and all its descendants (shared pages split,
    so forked workers are not counted twice), and its anonymous part: the memory the system
    cannot take back, without the pages of mapped files (kept embeddings a tool reads in
    place), which it reclaims under pressure."""
    total, anonymous, stack = 0, 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                elif line.startswith("Pss_Anon:"):
                    anonymous += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total, anonymous


def process_pss(pid: int) -> int:
    """Proportional set size in bytes of ``pid`` and all its descendants (see
    :func:`process_memory`)."""
    return process_memory(pid)[0]


def watch(command: list[str], log: Path, limit: float | None = None) -> dict:
    """Run ``command`` with output to a pipe; its wall time, peak PSS (and of it, anonymous
    memory) and the longest gap between two output lines (from the start). After ``limit``
    seconds it is stopped (``stopped`` is then true)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, peak_anonymous, stamps, lines = 0, 0, [], []

    def read() -> None:
        for line in proc.stdout:
            stamps.append(time.perf_counter())
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stopped = False
    while proc.poll() is None:
        total, anonymous = process_memory(proc.pid)
        peak, peak_anonymous = max(peak, total), max(peak_anonymous, anonymous)
        time.sleep(0.5)
        if limit is not None and time.perf_counter() - started > limit:
            proc.terminate()
            proc.wait()
            stopped = True
    reader.join()
    wall = time.perf_counter() - started
    log.write_text("\n".join(lines) + "\n")
    gaps = np.diff([started, *stamps, started + wall])
    if proc.returncode != 0 and not stopped:
        sys.exit(f"failed ({proc.returncode}): {' '.join(command)}\n" + "\n".join(lines[-20:]))
    return {
        "wall_s": round(wall, 1),
        "peak_pss_gb": round(peak / 2**30, 2),
        "peak_anonymous_gb": round(peak_anonymous / 2**30, 2),
        "lines": len(lines),
        "longest_gap_s": round(float(gaps.max()), 1),
        "first_line_s": round(float(gaps[0]), 1),
        "stopped": stopped,
        "last_line": lines[-1] if lines else "",
    }
