"""Benchmark: how well do label-free metrics predict linear-probe accuracy?

Reads every checkpoint that ``benchmarks/methods.py`` kept (each method's starting encoder
and one per epoch), and for each one measures, on the Fashion-MNIST test images:

- the label-free metrics (RankMe, alpha-ReQ, alignment, uniformity, normalized std,
  neighbour agreement) on 4,096 test images, labels unused;
- the linear-probe accuracy: logistic regression fitted on 10,000 labelled training images
  (a stratified subset, to keep 30+ probes affordable), scored on the 10,000 test images.

It then reports the Spearman rank correlation between each metric and the accuracy over all
checkpoints, a scatter plot per metric (``benchmarks/figures/labelfree.png``) and the
per-checkpoint numbers (``benchmarks/figures/labelfree.csv``).

Usage:
    python benchmarks/labelfree.py                 # after benchmarks/methods.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from common import ROOT, RUNS, load_average, write_section
from selfsup.data.splits import SubsetSource, stratified_split
from selfsup.embedding import embed_source
from selfsup.engine.monitor import load_encoder_weights
from selfsup.evaluation import linear_probe, measure_label_free
from selfsup.methods import METHODS
from selfsup.modalities import open_source
from selfsup.modalities.image import method_views
from selfsup.run import _machine, load

FIGURES = ROOT / "benchmarks" / "figures"
#: metric -> (column, sign): sign +1 when higher should mean better accuracy.
METRICS = {
    "RankMe": ("rankme", 1),
    "alpha-ReQ, -|alpha - 1|": ("alpha_distance", -1),
    "alignment (lower better)": ("alignment", -1),
    "uniformity (lower better)": ("uniformity", -1),
    "normalized std": ("normalized_std", 1),
    "neighbour agreement": ("neighbour_agreement", 1),
}


def checkpoints(runs: Path) -> list[tuple[str, int, Path]]:
    """(method, epoch, weights) of every distinct kept checkpoint under ``runs``.

    Methods that share a backbone and seed start from the same random weights: that starting
    point is measured once, so copies of one encoder do not weigh in the correlation.
    """
    found, seen = [], set()
    for folder in sorted(runs.iterdir()):
        if not (folder / "bench.json").exists():
            continue
        for path in sorted((folder / "checkpoints").glob("epoch-*.safetensors")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                found.append((folder.name, int(path.stem.split("-")[1]), path))
    return found


def measure(runs: Path, train_items: int, metric_items: int) -> pd.DataFrame:
    """One row per checkpoint: method, epoch, label-free metrics, linear-probe accuracy."""
    train = open_source("fashion-mnist:train")
    test = open_source("fashion-mnist:test")
    keep, _ = stratified_split(train.labels, 1 - train_items / len(train), seed=0)
    train = SubsetSource(train, keep, "fashion-mnist:train (subset)")
    rows = []
    for method, epoch, weights in checkpoints(runs):
        started = time.perf_counter()
        run = load(weights.parent.parent)
        load_encoder_weights(run.encoder, weights)
        views_options = {**run.config.get("views", {}), "local_views": 0}
        views, _ = method_views(METHODS[method], 28, 1, **views_options)
        metrics = measure_label_free(run.encoder, test, views, items=metric_items)
        probe = linear_probe(
            embed_source(run.encoder, train), train.labels,
            embed_source(run.encoder, test), test.labels,
        )  # fmt: skip
        row = {"method": method, "epoch": epoch, **metrics.to_dict(), "linear": probe.accuracy}
        row["alpha_distance"] = abs(row["alpha_req"] - 1.0)
        rows.append(row)
        print(
            f"{method} epoch {epoch}: linear {probe.accuracy:.4f}, RankMe {metrics.rankme:.1f}, "
            f"alpha {metrics.alpha_req:.2f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path: Path) -> None:
    """One scatter plot per metric against linear-probe accuracy, coloured by method."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 9))
    methods = sorted(frame["method"].unique())
    colours = dict(zip(methods, plt.cm.tab20(np.linspace(0, 1, len(methods))), strict=True))
    for ax, (title, (column, _)) in zip(axes.flat, METRICS.items(), strict=True):
        for method in methods:
            part = frame[frame["method"] == method]
            ax.scatter(part[column], part["linear"], color=colours[method], label=method, s=25)
        rho = spearmanr(frame[column], frame["linear"]).statistic
        ax.set_title(f"{title}: Spearman rho {rho:+.2f}")
        ax.set_xlabel(column)
        ax.set_ylabel("linear probe accuracy")
    axes.flat[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--train-items", type=int, default=10000)
    parser.add_argument("--metric-items", type=int, default=4096)
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    started, load_before = time.time(), load_average()
    frame = measure(Path(args.runs), args.train_items, args.metric_items)
    FIGURES.mkdir(parents=True, exist_ok=True)
    frame.to_csv(FIGURES / "labelfree.csv", index=False)
    plot(frame, FIGURES / "labelfree.png")
    lines = [
        "## Do label-free metrics predict accuracy?",
        "",
        f"Every checkpoint kept by `benchmarks/methods.py` ({len(frame)} checkpoints: "
        f"{frame['method'].nunique()} methods after every epoch, and their random starting "
        "points, each distinct one once) is "
        f"measured on the Fashion-MNIST test images: the label-free metrics on "
        f"{args.metric_items} of them (labels unused), and the linear probe fitted on "
        f"{args.train_items} labelled training images and scored on all 10,000 test images. "
        "Spearman's rank correlation is over all checkpoints; its sign is oriented so that "
        "positive means the metric ranks checkpoints the way accuracy does.",
        "",
        "| metric | Spearman rho | p-value |",
        "| --- | --- | --- |",
    ]
    summary = {}
    for title, (column, sign) in METRICS.items():
        test = spearmanr(sign * frame[column], frame["linear"])
        summary[title] = test.statistic
        cell = title.replace("|", "\\|")  # a literal bar inside a Markdown table cell
        lines.append(f"| {cell} | {test.statistic:+.3f} | {test.pvalue:.2g} |")
    best = max(summary, key=summary.get)
    lines += [
        "",
        f"Best predictor: {best} (rho {summary[best]:+.3f}; target >= 0.7).",
        "",
        "![label-free metrics against linear-probe accuracy](benchmarks/figures/labelfree.png)",
        "",
        "Per-checkpoint numbers: `benchmarks/figures/labelfree.csv`.",
        "",
        f"Machine: {_machine()}; load average before: {load_before}. Time: "
        f"{(time.time() - started) / 60:.0f} minutes.",
        "",
        "Reproduce: `python benchmarks/methods.py && python benchmarks/labelfree.py`.",
    ]
    text = "\n".join(lines)
    print(text)
    print(json.dumps(summary))
    if not args.no_write:
        write_section("labelfree", text)


if __name__ == "__main__":
    main()
