"""Try one recipe change on Fashion-MNIST: pretrain for N minutes, then linear, kNN, 10-shot.

The quick check behind the recipe experiments in the issue notes (NT-Xent temperature, CNN
width, learning rates of MAE and I-JEPA): one method with ``benchmarks/methods.py``'s options,
plus the overrides given as JSON, evaluated on the official test split. Prints one JSON line.

Usage:
    python benchmarks/recipe.py simclr 10 '{"method_options": {"temperature": 0.1}}'
    python benchmarks/recipe.py mae 10 '{"lr": 0.0003}'
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import selfsup
from common import pretrain_options
from selfsup.embedding import embed_source
from selfsup.evaluation import linear_probe
from selfsup.evaluation.fewshot import few_shot
from selfsup.evaluation.knn import knn_accuracy
from selfsup.modalities import open_source


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    method, minutes = sys.argv[1], float(sys.argv[2])
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    options = pretrain_options(method)
    for key, value in extra.items():  # dict options merge, the rest replace
        both_dicts = isinstance(value, dict) and isinstance(options.get(key), dict)
        options[key] = {**options[key], **value} if both_dicts else value
    started = time.time()
    run = selfsup.pretrain(
        "fashion-mnist", method=method, time_budget=minutes, out=tempfile.mkdtemp(),
        show_progress=False, **options,
    )  # fmt: skip
    train, test = open_source("fashion-mnist:train"), open_source("fashion-mnist:test")
    a, b = embed_source(run.encoder, train), embed_source(run.encoder, test)
    result = {
        "method": method,
        "minutes": minutes,
        "extra": extra,
        "steps": run.summary["steps"],
        "items_per_second": run.summary["items_per_second"],
        "linear": round(linear_probe(a, train.labels, b, test.labels).accuracy, 4),
        "knn": round(knn_accuracy(a, train.labels, b, test.labels), 4),
        "fewshot": round(few_shot(a, train.labels, b, test.labels).mean, 4),
        "seconds": round(time.time() - started),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
