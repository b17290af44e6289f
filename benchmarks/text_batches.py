"""Benchmark: training speed of text batches grouped by length against plain shuffled ones.

A batch of texts is padded to its longest; ``--group-by-length`` (the default for texts a
transformer reads) batches texts of like length. In one run, on WordNet's glosses (5 to 64
tokens) and on Rotten Tomatoes' snippets, each encoder trains for ``--minutes`` with each
setting, and the texts per second of its training steps are compared (same seed, same
options otherwise; the held-out monitor is off so only steps are timed):

- the default ``text-transformer`` with SimCSE (from scratch);
- the ``text-bag`` with Sent2Vec, which grouping leaves alone by default (a bag of tokens pays
  nothing for padding), forced on here to show why.

Usage:
    python benchmarks/text_batches.py                 # about 8 minutes
    python benchmarks/text_batches.py --minutes 0.3 --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import tempfile
import time

from common import load_average, write_section
from selfsup.run import _machine, pretrain

ENCODERS = {
    "text-transformer, SimCSE": {"method": "simcse", "backbone": "text-transformer"},
    "text-bag, Sent2Vec": {
        "method": "sent2vec", "backbone": "text-bag", "batch_size": 256, "lr": 3e-3,
    },
}  # fmt: skip
DATASETS = {"WordNet glosses": "wordnet-glosses", "Rotten Tomatoes": "rotten-tomatoes"}


def texts_per_second(data: str, minutes: float, grouped: bool, **options) -> float:
    """Texts per second of the training steps of one run."""
    with tempfile.TemporaryDirectory() as out:
        run = pretrain(data, time_budget=minutes, group_by_length=grouped, monitor_items=0,
                       out=f"{out}/run", show_progress=False, **options)  # fmt: skip
        return run.summary["items_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="training per run")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    begun, load_before = time.perf_counter(), load_average()
    rows = []
    for label, options in ENCODERS.items():
        for name, data in DATASETS.items():
            plain = texts_per_second(data, args.minutes, False, **options)
            grouped = texts_per_second(data, args.minutes, True, **options)
            rows.append(f"| {label} | {name} | {plain:,.0f} | {grouped:,.0f} | "
                        f"{grouped / plain:.2f}x |")  # fmt: skip
            print(rows[-1], flush=True)
    minutes = (time.perf_counter() - begun) / 60
    text = "\n".join([
        "## Text batches grouped by length (benchmarks/text_batches.py)",
        "",
        f"Machine: {_machine()}; load before {load_before}, after {load_average()}; "
        f"{minutes:.0f} minutes in this invocation. Each run trains for {args.minutes:g} min "
        "(time budget; no held-out monitor) with its defaults otherwise; texts/s of the "
        "training steps. Reproduce: `python benchmarks/text_batches.py`.",
        "",
        "| encoder | texts | plain shuffled batches, texts/s | grouped by length, texts/s "
        "| ratio |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        "The text-bag gains little (its steps cost little per padding token), and batches of "
        "like length change which texts Sent2Vec's steps weigh together, so grouping is on by "
        "default only for texts a transformer reads (the encoder or a distillation teacher).",
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        write_section("text_batches", text)


if __name__ == "__main__":
    main()
