"""Benchmark: do encoders pretrained on Fashion-MNIST transfer to MNIST-5k and digits?

Compares, on each target dataset's official test split (fit on its train split):

- encoders pretrained on Fashion-MNIST by ``benchmarks/methods.py`` (read from its runs),
  their inputs resized (digits are 8x8, upsampled to 28x28);
- the same recipe pretrained on the target dataset itself (in-domain, ``--minutes`` each);
- raw pixels of the target dataset.

Protocols: linear probe and kNN (k=20), as everywhere else.

Usage:
    python benchmarks/transfer.py                  # after benchmarks/methods.py
    python benchmarks/transfer.py --methods simclr,vicreg --minutes 2
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

from common import RUNS, load_average, pretrain_options, write_section
from selfsup.run import _machine, load, pretrain

TARGETS = ("mnist-5k", "digits")


def scores(evaluation) -> dict[str, tuple[float, float]]:
    """protocol -> (selfsup, raw) accuracy."""
    return {r.protocol: (r.selfsup, r.raw) for r in evaluation.rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="simclr,vicreg,dino")
    parser.add_argument("--minutes", type=float, default=3.0, help="in-domain training budget")
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    started, load_before = time.time(), load_average()
    protocols = ("linear", "knn")
    results: dict[str, dict[str, dict]] = {}  # row -> target -> protocol scores
    raw: dict[str, dict] = {}
    # Each finished (encoder, target) result is cached, so a stopped run continues.
    cache_path = Path(args.runs) / "transfer-results.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    notes = []

    def remember(key: str, result: dict) -> dict:
        cache[key] = result
        cache_path.write_text(json.dumps(cache, indent=1))
        return result

    for method in args.methods.split(","):
        source_run = Path(args.runs) / method
        if not (source_run / "bench.json").exists():
            raise SystemExit(f"{source_run}: run benchmarks/methods.py --methods {method} first")
        row = f"{method}, pretrained on fashion-mnist"
        for target in TARGETS:
            key = f"{method}|fashion-mnist|{target}"
            result = cache.get(key) or remember(
                key, scores(load(source_run).evaluate(target, protocols=protocols, save=False))
            )
            results.setdefault(row, {})[target] = result
            raw[target] = result
            print(row, target, json.dumps(result), flush=True)
        for target in TARGETS:
            key = f"{method}|{target}|{args.minutes}"
            if key not in cache:
                options = {**pretrain_options(method), "batch_size": 128}
                out = str(Path(args.runs) / f"transfer-{method}-{target}")
                train = partial(
                    pretrain, target, method=method, time_budget=args.minutes, out=out,
                    show_progress=False,
                )  # fmt: skip
                try:
                    own = train(**options)
                except FloatingPointError as err:  # bf16 overflow: the run's own advice
                    own = train(**{**options, "precision": "fp32"})
                    cache[f"{key}|note"] = f"{method} on {target}: bf16 failed ({err}); fp32"
                remember(key, scores(own.evaluate(target, protocols=protocols, save=False)))
            if f"{key}|note" in cache:
                notes.append(cache[f"{key}|note"])
            results.setdefault(f"{method}, pretrained on the target", {})[target] = cache[key]
            print(method, "in-domain", target, json.dumps(cache[key]), flush=True)

    header = " | ".join(f"{t} {p}" for t in TARGETS for p in protocols)
    lines = [
        "## Transfer: Fashion-MNIST encoders on MNIST-5k and digits",
        "",
        "Each encoder is frozen and evaluated on the target's official split (probes fitted on "
        "its train part, scored on its test part: MNIST-5k 4,000/1,000, digits 1,438/359). "
        "Fashion-MNIST encoders come from `benchmarks/methods.py`; target images are resized to "
        f"28x28. In-domain encoders use the same recipe for {args.minutes:g} minutes of "
        "training on the target's train split (batch 128).",
        "",
        f"| encoder | {header} |",
        "| --- | " + " | ".join("---" for _ in TARGETS for _ in protocols) + " |",
    ]
    for row, per_target in results.items():
        cells = [f"{per_target[t][p][0]:.4f}" for t in TARGETS for p in protocols]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    cells = [f"{raw[t][p][1]:.4f}" for t in TARGETS for p in protocols]
    lines += [
        "| raw pixels | " + " | ".join(cells) + " |",
        "",
        *(f"Note: {note}." for note in notes),
        "",
        f"Machine: {_machine()}; load average before: {load_before}. Time: "
        f"{(time.time() - started) / 60:.0f} minutes (this invocation; results cached in "
        f"runs/bench/transfer-results.json by an earlier one are not recomputed).",
        "",
        "Reproduce: `python benchmarks/methods.py && python benchmarks/transfer.py`.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("transfer", text)


if __name__ == "__main__":
    main()
