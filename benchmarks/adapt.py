"""Benchmark: label efficiency on Fashion-MNIST with `selfsup adapt` and `selfsup select`.

On a SimCLR run pretrained on the 60k Fashion-MNIST training images without labels (by
default the cached demo-recipe run of ``benchmarks/methods.py``, ``runs/bench/simclr``; if it
is missing it is pretrained here for ``--minutes``):

- adapt: ``--shots`` labels per class drawn from the training split (``--seeds`` draws), the
  prototype, linear and propagation heads of :func:`selfsup.tools.adapt.adapt` with their
  temperature (cross-validated), scored on the official 10k test split: accuracy, and NLL and
  ECE of the calibrated probabilities; the propagation head spreads the shots' labels over the
  other training images (their labels unused); optionally fine-tuning of the last
  ``--finetune-blocks`` blocks;
- select: ``--budget`` labels chosen by TypiClust, k-center greedy and at random from the
  training split (no label read to choose), the same linear head fitted on them, test
  accuracy (mean over ``--seeds`` seeds of k-means / the random draw);
- raw pixels: the same heads and selections on the 784 pixels, in the same run.

Usage:
    python benchmarks/adapt.py
    python benchmarks/adapt.py --run runs/bench/vicreg --seeds 3 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from common import ROOT, RUNS, load_average, pretrain_options, write_section
from selfsup.embedding import embed_source
from selfsup.evaluation.fewshot import FEW_SHOT_WEIGHT_DECAY
from selfsup.modalities import open_source
from selfsup.run import _machine, load, pretrain
from selfsup.tools.adapt import (
    adapt,
    draw_shots,
    embedding_statistics,
    fit_head,
    propagation_fitter,
)
from selfsup.tools.calibration import expected_calibration_error, negative_log_likelihood
from selfsup.tools.selection import select

DATA = "fashion-mnist"
TARGET = 0.78


def the_run(path: Path, minutes: float, epochs: int | None = None):
    """The pretrained run at ``path``, or a SimCLR run pretrained there now: for ``epochs``
    when given, else for ``minutes``."""
    if (path / "train.json").exists():
        return load(path)
    budget = {"epochs": epochs} if epochs else {"time_budget": minutes}
    print(f"{path}: no finished run there; pretraining SimCLR ({budget})", flush=True)
    return pretrain(DATA, method="simclr", out=str(path), **budget,
                    **pretrain_options("simclr"))  # fmt: skip


def test_scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, NLL and ECE of probabilities on the test labels."""
    logits = np.log(np.clip(probs, 1e-300, None))
    return {
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "nll": negative_log_likelihood(logits, labels),
        "ece": expected_calibration_error(probs, labels),
    }


def head_accuracy(
    features: torch.Tensor, labels: np.ndarray, chosen: np.ndarray, test: torch.Tensor,
    test_labels: np.ndarray, statistics: tuple[torch.Tensor, torch.Tensor],
) -> float:  # fmt: skip
    """Test accuracy of the linear head fitted on the ``chosen`` items (any classes)."""
    head = fit_head(features[chosen], torch.from_numpy(labels[chosen]), 10, "linear",
                    statistics, FEW_SHOT_WEIGHT_DECAY)  # fmt: skip
    with torch.no_grad():
        return float((head(test).argmax(1).numpy() == test_labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=RUNS / "simclr", help="pretrained run")
    parser.add_argument("--minutes", type=float, default=10.0, help="pretraining if no run")
    parser.add_argument("--epochs", type=int, default=None,
                        help="pretraining if no run: epochs instead of --minutes")  # fmt: skip
    parser.add_argument("--shots", type=int, default=10, help="labels per class for adapt")
    parser.add_argument("--budget", type=int, default=100, help="labels chosen by select")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--finetune-blocks", type=int, default=0,
                        help="also adapt with the last N blocks fine-tuned (0: skip)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="use the first N items of "
                        "each split (smoke tests only)")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    started, load_before = time.time(), load_average()
    run = the_run(args.run, args.minutes, args.epochs)
    train, test = open_source(DATA), open_source(f"{DATA}:test")
    if args.limit:
        from selfsup.data.splits import SubsetSource

        train = SubsetSource(train, range(min(args.limit, len(train))), DATA)
        test = SubsetSource(test, range(min(args.limit, len(test))), f"{DATA}:test")
    y, y_test = np.asarray(train.labels), np.asarray(test.labels)
    z = embed_source(run.encoder, train, precision="fp32")
    z_test = embed_source(run.encoder, test, precision="fp32")
    pixels = train.read_batch(range(len(train))).items.flatten(1)
    pixels_test = test.read_batch(range(len(test))).items.flatten(1)
    embedded = time.time() - started
    print(f"embedded {len(z)} + {len(z_test)} items in {embedded:.0f} s", flush=True)

    results: dict = {"adapt": {}, "select": {}, "unlabelled": len(y) - 10 * args.shots}
    # adapt: the tool itself on the run's embeddings; the raw-pixel rows use its head fit.
    variants = [("prototype", 0), ("linear", 0), ("propagation", 0)]
    if args.finetune_blocks:
        variants.append(("linear", args.finetune_blocks))
    for head, blocks in variants:
        # Fine-tuning is calibrated on a held-out fifth of the shots, which it does not train on.
        tuned = f", last {blocks} blocks fine-tuned on 80% of the shots" if blocks else ""
        name = f"selfsup {head}{tuned}"
        for seed in range(args.seeds):
            tick = time.time()
            model = adapt(run, train, shots=args.shots, head=head, seed=seed,
                          finetune_blocks=blocks, embeddings=z)  # fmt: skip
            with torch.no_grad():
                embedded_test = model.embed(test) if blocks else z_test
                logits = model.head(torch.from_numpy(embedded_test)).double()
            scores = test_scores(torch.softmax(logits / model.temperature, 1).numpy(), y_test)
            uncalibrated = torch.softmax(logits, 1).numpy()
            scores["ece_uncalibrated"] = expected_calibration_error(uncalibrated, y_test)
            scores["seconds"] = time.time() - tick
            results["adapt"].setdefault(name, []).append(scores)
            print(name, seed, json.dumps(scores), flush=True)
    pixel_stats = embedding_statistics(pixels)
    classes = [str(c) for c in range(10)]
    for head in ("prototype", "linear", "propagation"):
        for seed in range(args.seeds):
            chosen = draw_shots(y, args.shots, seed, classes)
            if head == "propagation":
                others = np.setdiff1d(np.arange(len(y)), chosen)
                fit_on, _ = propagation_fitter(pixels[chosen].numpy(), y[chosen],
                                               pixels[others].numpy(), 10, pixel_stats,
                                               FEW_SHOT_WEIGHT_DECAY)  # fmt: skip
                fitted = fit_on(np.arange(len(chosen)))
            else:
                labels = torch.from_numpy(y[chosen])
                fitted = fit_head(pixels[chosen], labels, 10, head, pixel_stats)
            with torch.no_grad():
                accuracy = float((fitted(pixels_test).argmax(1).numpy() == y_test).mean())
            results["adapt"].setdefault(f"raw pixels {head}", []).append({"accuracy": accuracy})

    # select: which budget items to label, the same linear head on them.
    z_t, z_test_t = torch.from_numpy(z), torch.from_numpy(z_test)
    statistics = embedding_statistics(z_t)
    for features, feature_test, stats, label in (
        (z_t, z_test_t, statistics, "selfsup"),
        (pixels, pixels_test, pixel_stats, "raw pixels"),
    ):
        candidates = features.numpy()
        for strategy in ("typiclust", "kcenter", "random"):
            seeds = 1 if strategy == "kcenter" else args.seeds  # k-center greedy is deterministic
            for seed in range(seeds):
                chosen = select(candidates, args.budget, strategy, seed=seed).indices
                accuracy = head_accuracy(features, y, chosen, feature_test, y_test, stats)
                covered = len(np.unique(y[chosen]))
                results["select"].setdefault(f"{label} {strategy}", []).append(
                    {"accuracy": accuracy, "classes": covered}
                )
                print(label, strategy, seed, accuracy, covered, flush=True)

    minutes = (time.time() - started) / 60
    text = render(results, args, run, load_before, minutes)
    print(text)
    if not args.no_write:
        write_section("adapt", text)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def render(results: dict, args: argparse.Namespace, run, load_before: str, minutes: float) -> str:
    """The BENCHMARKS.md section."""
    summary = run.summary
    trained = (
        f"{summary.get('method', 'simclr')} pretrained for {summary.get('epochs', '?')} epochs "
        f"({summary.get('steps', '?')} steps; {summary.get('train_seconds', 0):.0f} s of wall "
        f"time, which depends on the machine's load) on the {DATA} training images, labels unused"
    )
    shown = os.path.relpath(args.run.resolve(), ROOT)
    lines = [
        f"## Label efficiency on Fashion-MNIST: adapt with {args.shots} labels per class, "
        f"select {args.budget} labels",
        "",
        f"Encoder: `{shown}`, {trained}. Embeddings in fp32. `adapt`: {args.shots} labels "
        f"per class drawn from the training split ({args.seeds} draws, mean ± std), head fitted "
        f"on embeddings standardized with all training embeddings' statistics, temperature "
        f"from cross-validated logits; scored on the 10,000 test images. Target: accuracy >= "
        f"{TARGET}. The propagation head (`--head propagation`) also reads the other "
        f"{results['unlabelled']:,} training images without their labels: it spreads the "
        f"shots' labels over their k-NN graph (label spreading, Zhou et al. 2004, as Iscen et "
        f"al. 2019 use it) and fits the linear head on the pseudo-labels; it then predicts "
        f"the test images like the linear head. Raw pixels: the same heads on the 784 pixels.",
        "",
        "| head | test accuracy | meets 0.78 | test NLL | test ECE (calibrated) | "
        "test ECE (T = 1) | seconds per adapt |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rows in results["adapt"].items():
        accuracy = [r["accuracy"] for r in rows]
        cells = [_mean_std(accuracy), "yes" if np.mean(accuracy) >= TARGET else "no"]
        for key in ("nll", "ece", "ece_uncalibrated"):
            cells.append(_mean_std([r[key] for r in rows]) if key in rows[0] else "")
        cells.append(f"{np.mean([r['seconds'] for r in rows]):.1f}" if "seconds" in rows[0] else "")
        if name.startswith("raw"):
            cells[1] = ""
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    random_accuracy = np.mean([r["accuracy"] for r in results["select"]["selfsup random"]])
    lines += [
        "",
        f"`select`: {args.budget} training images chosen without reading a label (TypiClust, "
        f"k-center greedy; random: a uniform draw), then labelled and used to fit the same "
        f"linear head (weight decay {FEW_SHOT_WEIGHT_DECAY}); test accuracy, mean ± std over "
        f"{args.seeds} seeds of k-means or of the draw (k-center greedy is deterministic: one "
        f"run). 'classes' is how many of the 10 classes the choice holds.",
        "",
        "| features | choice | test accuracy | classes covered | beats random |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rows in results["select"].items():
        label, strategy = name.rsplit(" ", 1)
        accuracy = [r["accuracy"] for r in rows]
        reference = np.mean([r["accuracy"] for r in results["select"][f"{label} random"]])
        beats = "" if strategy == "random" else ("yes" if np.mean(accuracy) > reference else "no")
        lines.append(
            f"| {label} | {strategy} | {_mean_std(accuracy)} | "
            f"{np.mean([r['classes'] for r in rows]):.1f} | {beats} |"
        )
    finetune = f" --finetune-blocks {args.finetune_blocks}" if args.finetune_blocks else ""
    # How the run was pretrained, so the command rebuilds it where it is missing.
    epochs = run.config.get("epochs") if run.config.get("time_budget") is None else None
    budget = f" --epochs {epochs}" if epochs else f" --minutes {run.config.get('time_budget')}"
    lines += [
        "",
        f"Random choice with selfsup features: {random_accuracy:.4f}. Machine: {_machine()}; "
        f"load average (1, 5, 15 min) before: {load_before}, after: {load_average()}. Whole "
        f"benchmark: {minutes:.1f} minutes.",
        "",
        f"Reproduce: `python benchmarks/adapt.py --run {shown}{budget} --shots {args.shots} "
        f"--budget {args.budget} --seeds {args.seeds}{finetune}`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
