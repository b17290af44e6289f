"""Benchmark: distill selfsup's strongest Fashion-MNIST encoder into the small CNN, next to the
small CNN trained from scratch for the same minutes.

No vision foundation weights install offline, so the teacher is selfsup's own: SimCLR, the best
method of ``benchmarks/methods.py`` on Fashion-MNIST (kNN and 10-shot; linear within 0.001 of
VICReg), trained on the 60,000 training images (labels unused) for ``--teacher-minutes`` (at
least 30) with the demo's recipe (small CNN, batch 256, heads of 1024). Then, for the same
``--minutes`` each, from random weights:

1. **student**: ``--method distill --teacher TEACHER_RUN`` (the student regresses the frozen
   teacher's embedding of the same augmented view, loss 2 - 2 cos; ``methods/distill.py``);
2. **scratch**: SimCLR with the teacher's recipe, the way a user without a teacher trains.

Each is evaluated as ``benchmarks/methods.py`` does (official 10,000 test images: kNN, linear
probe, 10 labels per class over 5 draws), next to raw pixels in the same run. The question it
answers: given a strong encoder, does a new model learn more in N minutes from it than from
the data alone? The teacher's minutes are spent once (a foundation model's are spent by others).

Usage:
    python benchmarks/distill_images.py                              # ~55 minutes
    python benchmarks/distill_images.py --teacher-minutes 0.5 --minutes 0.3 --no-write  # smoke
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from common import RUNS, load_average, pretrain_options, protocol_cells, write_section
from selfsup.run import _machine, load, pretrain

TEACHER, STUDENT, SCRATCH = "teacher (SimCLR)", "student (distilled)", "scratch (SimCLR)"


def train(label: str, folder: Path, minutes: float, fresh: bool, **options) -> dict:
    """Pretrain one encoder for ``minutes`` and evaluate it, or read its cached result."""
    cached = folder / "bench.json"
    if cached.exists() and not fresh:
        result = json.loads(cached.read_text())
        if result["minutes"] == minutes and result["options"] == json.loads(json.dumps(options)):
            print(f"{label}: cached result from {cached}", flush=True)
            return {**result, "cached": True}
    if folder.exists():
        shutil.rmtree(folder)
    load_before = load_average()
    run = pretrain(
        "fashion-mnist", time_budget=minutes, out=str(folder), show_progress=False, **options
    )
    print(f"{label}: trained, evaluating", flush=True)
    evaluation = run.evaluate("fashion-mnist")
    result = {
        "label": label,
        "minutes": minutes,
        "options": json.loads(json.dumps(options)),
        "summary": run.summary,
        "evaluation": evaluation.to_dict(),
        "load_before": load_before,
        "parameters": run.encoder.describe()["parameters"],
    }
    cached.write_text(json.dumps(result, indent=2))
    scores = {r["protocol"]: round(r["selfsup"], 4) for r in result["evaluation"]["rows"]}
    print(f"{label}: {json.dumps(scores)}", flush=True)
    return result


def render(results: list[dict], args: argparse.Namespace, seconds: float) -> str:
    """The BENCHMARKS.md section."""
    lines = [
        "## Distilling selfsup's strongest Fashion-MNIST encoder into the small CNN "
        "(benchmarks/distill_images.py)",
        "",
        f"Teacher: SimCLR (small CNN, batch 256, heads of 1024, the demo's views) trained "
        f"{args.teacher_minutes:g} minutes on the 60,000 training images (labels unused). "
        f"Student and scratch: the same small CNN from random weights for {args.minutes:g} "
        "minutes each; the student regresses the frozen teacher's embedding of the same "
        "augmented view (`--method distill --teacher TEACHER_RUN`), the scratch model trains "
        "with SimCLR as the teacher did. Evaluated on the official 10,000 test images as in "
        "the methods table (kNN k=20, linear probe, 10 labels per class over 5 draws, mean ± "
        "95% CI); raw pixels in the same run.",
        "",
        "| encoder | minutes | linear probe | kNN | 10-shot | epochs | images/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        s = r["summary"]
        lines.append(
            f"| {r['label']} | {s['train_seconds'] / 60:.1f} | "
            + " | ".join(protocol_cells(r["evaluation"]))
            + f" | {s['items_seen'] / s['items']:.1f} | {s['items_per_second']:.0f} |"
        )
    raw = protocol_cells(results[0]["evaluation"], "raw")
    lines.append("| raw pixels | | " + " | ".join(raw) + " | | |")
    by = {r["label"]: {row["protocol"]: row["selfsup"] for row in r["evaluation"]["rows"]}
          for r in results}  # fmt: skip
    gains = ", ".join(
        f"{p} {by[STUDENT][p] - by[SCRATCH][p]:+.4f}" for p in ("linear", "knn", "fewshot-10")
    )
    kept = by[STUDENT]["linear"] / by[TEACHER]["linear"]
    lines += [
        "",
        f"Student minus scratch after the same {args.minutes:g} minutes: {gains}; the student "
        f"keeps {kept:.1%} of the teacher's linear-probe accuracy after "
        f"{args.minutes / args.teacher_minutes:.0%} of its training time.",
        "",
        f"Machine: {_machine()}; load before each run: "
        + "; ".join(f"{r['label']} {r['load_before']}" for r in results)
        + f". This invocation: {seconds / 60:.0f} minutes (cached runs are not retrained). "
        "The load average counts the benchmark's own 2 threads: above 2, other work shared "
        "the CPU.",
        "",
        f"Reproduce: `python benchmarks/distill_images.py --teacher-minutes "
        f"{args.teacher_minutes:g} --minutes {args.minutes:g}`.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-minutes", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=10.0, help="student and scratch")
    parser.add_argument("--runs", default=str(RUNS / "distill"))
    parser.add_argument("--fresh", action="store_true", help="retrain cached runs")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    runs, started = Path(args.runs), time.time()
    simclr = pretrain_options("simclr")
    recipe = {k: v for k, v in simclr.items() if k != "method_options"}
    teacher = train(TEACHER, runs / "teacher", args.teacher_minutes, args.fresh,
                    method="simclr", **simclr)  # fmt: skip
    load(str(runs / "teacher"))  # the student's teacher must load from its folder alone
    fresh = args.fresh or not teacher.get("cached")  # a new teacher makes a new student
    student = train(STUDENT, runs / "student", args.minutes, fresh, method="distill",
                    teacher=str(runs / "teacher"), **recipe)  # fmt: skip
    scratch = train(SCRATCH, runs / "scratch", args.minutes, args.fresh,
                    method="simclr", **simclr)  # fmt: skip
    results = [teacher, student, scratch]
    text = render(results, args, time.time() - started)
    print(text)
    (runs / "distill_images.json").write_text(json.dumps(results, indent=2))
    if not args.no_write:
        write_section("distill-images", text)


if __name__ == "__main__":
    main()
