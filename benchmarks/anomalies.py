"""Benchmark: anomaly scores from self-supervised embeddings next to classical detectors.

Shuttle (``river.datasets.Shuttle()``, 49,097 rows of 9 numbers, 7.2% anomalies): a
stratified half of the rows is the training part, the rest the test part (seed 0).

- SCARF pretrains on the training rows' features for ``--seconds`` of training, labels
  unused (anomalies included, as in unlabeled data).
- Detectors are fitted on the normal training rows and score the test rows: kNN distance
  (k = 5, the 5th neighbour) and Mahalanobis on SCARF embeddings; on the raw features
  (standardized): kNN distance, scikit-learn's IsolationForest and LocalOutlierFactor
  (``novelty=True``, 20 neighbours). AUROC and AUPRC (chance: the share of anomalies).
- The kNN detector's threshold, set for a 5% false-positive rate on held-out normal
  training rows, is checked on the test rows.

Fashion-MNIST one-class-out: for each class, SimCLR (the demo recipe) pretrains for
``--minutes-per-class`` on the training images of the nine other classes, labels unused;
the test images are scored by kNN distance (k = 5, cosine) to the nine classes' training
embeddings, and the held-out class is the anomaly (AUROC per class and mean). Baseline: the
same kNN scores on raw pixels. A second protocol, reported apart: one encoder pretrained on
all training images without labels (it has seen unlabeled images of every class), the same
kNN scores.

Usage:
    python benchmarks/anomalies.py
    python benchmarks/anomalies.py --parts shuttle --seconds 20 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from common import ROOT, RUNS, load_average, pretrain_options, write_section
from selfsup.data.splits import SubsetSource, stratified_split
from selfsup.modalities import open_source
from selfsup.run import _machine, load, pretrain
from selfsup.tools.anomalies import fit_detector, knn_distance

FMNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
)  # fmt: skip


def quality(scores: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float]:
    return {
        "auroc": float(roc_auc_score(is_anomaly, scores)),
        "auprc": float(average_precision_score(is_anomaly, scores)),
    }


def shuttle_frame(limit: int | None = None) -> pd.DataFrame:
    """River's Shuttle rows as a table: f1..f9 and ``anomaly`` (1 for the non-normal classes)."""
    from river.datasets import Shuttle

    rows = []
    for features, label in Shuttle():
        rows.append({**features, "anomaly": int(label)})
        if limit and len(rows) >= limit:
            break
    return pd.DataFrame(rows)


def bench_shuttle(args: argparse.Namespace) -> dict:
    frame = shuttle_frame(args.limit)
    fit_rows, test_rows = stratified_split(frame["anomaly"].to_numpy(), 0.5)
    train, test = frame.iloc[np.sort(fit_rows)], frame.iloc[np.sort(test_rows)]
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    run = pretrain(train, method="scarf", label_column="anomaly", time_budget=args.seconds / 60,
                   out=str(RUNS / "anomalies" / "shuttle-scarf"), show_progress=False,
                   monitor_items=0)  # fmt: skip
    train_source, test_source = run.open(train), run.open(test)
    normal = train["anomaly"].to_numpy() == 0
    is_anomaly = test["anomaly"].to_numpy() == 1
    z, z_test = run.embed(train_source)[normal], run.embed(test_source)
    pre = train_source.preprocessor
    raw = pre.one_hot(train_source.values.numpy())[normal]
    raw_test = pre.one_hot(test_source.values.numpy())
    results = {}
    started = time.time()
    detector = fit_detector(z, "knn", k=5, fpr=0.05)
    flagged = detector.flag(z_test)
    results["selfsup SCARF + kNN distance"] = {
        **quality(knn_distance(z, z_test, k=5), is_anomaly),
        "fpr_at_5pct_threshold": float(flagged[~is_anomaly].mean()),
        "recall_at_5pct_threshold": float(flagged[is_anomaly].mean()),
    }
    mahalanobis = fit_detector(z, "mahalanobis", fpr=0.05)
    results["selfsup SCARF + Mahalanobis"] = quality(mahalanobis.score(z_test), is_anomaly)
    results["raw features + kNN distance"] = quality(
        knn_distance(raw, raw_test, k=5, normalize=False), is_anomaly
    )
    forest = IsolationForest(random_state=0).fit(raw)
    results["raw features + IsolationForest"] = quality(-forest.score_samples(raw_test), is_anomaly)
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(raw)
    results["raw features + LocalOutlierFactor"] = quality(-lof.score_samples(raw_test), is_anomaly)
    for name, value in results.items():
        print("shuttle", name, json.dumps(value), flush=True)
    return {
        "results": results,
        "train_rows": len(train),
        "normal_train_rows": int(normal.sum()),
        "test_rows": len(test),
        "test_anomalies": int(is_anomaly.sum()),
        "train_seconds": run.summary["train_seconds"],
        "scoring_seconds": time.time() - started,
    }


def _fmnist_run(source, out: Path, minutes: float):
    """A cached run at ``out`` trained for ``minutes``, or a new one."""
    marker, settings = out / "oneclass.json", {"minutes": minutes, "items": len(source)}
    if marker.exists() and json.loads(marker.read_text()) == settings:
        return load(out)
    run = pretrain(source, method="simclr", time_budget=minutes, out=str(out),
                   show_progress=False, **pretrain_options("simclr"))  # fmt: skip
    marker.write_text(json.dumps(settings))
    return run


def bench_fmnist(args: argparse.Namespace) -> dict:
    train, test = open_source("fashion-mnist"), open_source("fashion-mnist:test")
    if args.limit:
        train = SubsetSource(train, range(min(args.limit, len(train))), "fashion-mnist")
        test = SubsetSource(test, range(min(args.limit, len(test))), "fashion-mnist:test")
    y, y_test = np.asarray(train.labels), np.asarray(test.labels)
    pixels = train.read_batch(range(len(train))).items.flatten(1).numpy()
    pixels_test = test.read_batch(range(len(test))).items.flatten(1).numpy()
    all_run = load(args.all_run) if (args.all_run / "encoder.json").exists() else None
    if all_run is None:
        all_run = _fmnist_run(train, args.all_run, args.all_minutes)
    z_all, z_all_test = all_run.embed(train), all_run.embed(test)
    per_class = {}
    for c in [int(c) for c in args.classes.split(",")]:
        normal = np.flatnonzero(y != c)
        is_anomaly = y_test == c
        nine = SubsetSource(train, normal, f"fashion-mnist without class {c}")
        run = _fmnist_run(nine, RUNS / "anomalies" / f"fmnist-without-{c}", args.minutes_per_class)
        z_normal, z_test = run.embed(nine), run.embed(test)
        per_class[c] = {
            "selfsup, nine classes": quality(knn_distance(z_normal, z_test), is_anomaly)["auroc"],
            "raw pixels": quality(knn_distance(pixels[normal], pixels_test), is_anomaly)["auroc"],
            "selfsup, all images (other protocol)": quality(
                knn_distance(z_all[normal], z_all_test), is_anomaly
            )["auroc"],
            "train_seconds": run.summary.get("train_seconds"),
        }
        print("fashion-mnist", c, json.dumps(per_class[c]), flush=True)
    return {
        "per_class": per_class,
        "all_run": os.path.relpath(args.all_run.resolve(), ROOT),
        "all_run_seconds": all_run.summary.get("train_seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="shuttle,fmnist", help="shuttle and/or fmnist")
    parser.add_argument("--seconds", type=float, default=60.0, help="SCARF training on Shuttle")
    parser.add_argument("--minutes-per-class", type=float, default=1.5,
                        help="SimCLR training per held-out Fashion-MNIST class")  # fmt: skip
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9", help="held-out classes")
    parser.add_argument(
        "--all-run",
        type=Path,
        default=RUNS / "simclr",
        help="encoder pretrained on all training images (reused if present)",
    )
    parser.add_argument("--all-minutes", type=float, default=10.0,
                        help="its training when it has to be pretrained")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None,
                        help="use the first N rows / images (smoke tests only)")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    started, load_before = time.time(), load_average()
    parts = args.parts.split(",")
    shuttle = bench_shuttle(args) if "shuttle" in parts else None
    fmnist = bench_fmnist(args) if "fmnist" in parts else None
    minutes = (time.time() - started) / 60
    text = render(shuttle, fmnist, args, load_before, minutes)
    print(text)
    if not args.no_write:
        write_section("anomalies", text)


def render(shuttle, fmnist, args, load_before: str, minutes: float) -> str:
    """The BENCHMARKS.md section."""
    lines = ["## Anomaly scores from embeddings"]
    if shuttle is not None:
        chance = shuttle["test_anomalies"] / shuttle["test_rows"]
        knn = shuttle["results"]["selfsup SCARF + kNN distance"]
        lines += [
            "",
            f"### Shuttle (river), {shuttle['train_rows'] + shuttle['test_rows']} rows",
            "",
            f"Stratified halves (seed 0). SCARF pretrains on the {shuttle['train_rows']} "
            f"training rows for {shuttle['train_seconds']:.0f} s, labels unused; every detector "
            f"is fitted on the {shuttle['normal_train_rows']} normal training rows and scores "
            f"the {shuttle['test_rows']} test rows ({shuttle['test_anomalies']} anomalies, AUPRC "
            f"chance {chance:.3f}). Raw features: the 9 numbers standardized.",
            "",
            "| detector | AUROC | AUPRC |",
            "| --- | --- | --- |",
        ]
        for name, value in shuttle["results"].items():
            lines.append(f"| {name} | {value['auroc']:.4f} | {value['auprc']:.4f} |")
        lines += [
            "",
            f"The kNN threshold for a 5% false-positive rate (set on held-out normal training "
            f"rows) flags {knn['fpr_at_5pct_threshold']:.3f} of the normal test rows and "
            f"{knn['recall_at_5pct_threshold']:.3f} of the anomalies.",
        ]
    if fmnist is not None:
        rows = fmnist["per_class"]
        keys = ("selfsup, nine classes", "raw pixels", "selfsup, all images (other protocol)")
        lines += [
            "",
            "### Fashion-MNIST one-class-out",
            "",
            f"For each class, SimCLR (demo recipe) pretrains for {args.minutes_per_class:g} "
            f"minutes on the nine other classes' training images, labels unused; test images "
            f"are scored by the distance to their 5th nearest (cosine) training embedding of "
            f"the nine classes; the held-out class is the anomaly. Raw pixels: the same score "
            f"on the 784 pixels. The last column is another protocol: one encoder "
            f"(`{fmnist['all_run']}`, {fmnist['all_run_seconds'] or 0:.0f} s of training) "
            f"pretrained on all training images without labels, so it has seen unlabeled "
            f"images of the anomalous class; the same kNN reference (the nine classes).",
            "",
            "| held-out class | " + " | ".join(f"AUROC {k}" for k in keys) + " |",
            "| --- | --- | --- | --- |",
        ]
        for c, value in rows.items():
            name = FMNIST_CLASSES[c] if c < len(FMNIST_CLASSES) else str(c)
            lines.append(f"| {c} {name} | " + " | ".join(f"{value[k]:.4f}" for k in keys) + " |")
        means = [np.mean([value[k] for value in rows.values()]) for k in keys]
        lines.append("| **mean** | " + " | ".join(f"**{m:.4f}**" for m in means) + " |")
    lines += [
        "",
        f"Machine: {_machine()}; load average (1, 5, 15 min) before: {load_before}, after: "
        f"{load_average()}. Whole benchmark: {minutes:.1f} minutes.",
        "",
        f"Reproduce: `python benchmarks/anomalies.py --parts {args.parts}"
        + (f" --seconds {args.seconds:g}" if shuttle is not None else "")
        + (
            f" --minutes-per-class {args.minutes_per_class:g} --classes {args.classes} "
            f"--all-run {os.path.relpath(args.all_run.resolve(), ROOT)}"
            if fmnist is not None
            else ""
        )
        + "`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
