"""Benchmark: BYOL-A on SYNTHETIC spoken words, scored on unseen voices, next to MFCC statistics.

The data is made by ``selfsup datasets make spoken-words`` (espeak-ng: the ten Speech
Commands keywords, 7 English accents x 16 voice variants, 2 speeds, 2 pitches), built into
``runs/data/spoken-words`` when missing. Train and test are split by voice: no test voice is
heard in training. It is synthetic speech, not recordings of people.

- selfsup pretrains BYOL-A (AudioNTT2020 CNN on 64-band log-mels, mixup + random resize
  crop views) on the train split for ``--minutes`` of training, labels unused (no online
  probe, no held-out monitoring);
- the frozen embeddings of train and test are scored with the linear probe (logistic
  regression, L2 penalty chosen on a validation split of the train labels) and weighted kNN
  (k=20, cosine), fitted on the train voices' labels, accuracy on the unseen test voices;
- the baseline is MFCC statistics: 20 MFCCs (orthonormal DCT-II of the same log-mels), their
  mean and standard deviation over time (40 numbers per clip), standardized with the train
  split's statistics, with the same two classifiers.

Usage:
    python benchmarks/audio.py                     # 5 minutes of training
    python benchmarks/audio.py --minutes 0.3 --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.fft import dct

from common import ROOT, RUNS, load_average, write_section
from selfsup.data.base import Source
from selfsup.data.spoken_words import SYNTHETIC_NOTE, make_spoken_words
from selfsup.embedding import embed_source
from selfsup.engine.monitor import load_encoder_weights
from selfsup.evaluation.fewshot import few_shot
from selfsup.evaluation.knn import knn_accuracy
from selfsup.evaluation.linear import linear_probe, standardize
from selfsup.modalities import load_encoder, open_source
from selfsup.run import _machine, pretrain

DATA = ROOT / "runs" / "data" / "spoken-words"
MFCC_COEFFICIENTS = 20
#: Labelled train clips per word in the few-shot column (of 336 per word).
SHOTS = 2


def mfcc_statistics(source: Source, coefficients: int = MFCC_COEFFICIENTS) -> np.ndarray:
    """Mean and std over time of the first ``coefficients`` MFCCs of each clip, (n, 2c).

    The MFCCs are the orthonormal DCT-II, over the mel bands, of the source's own log-mels.
    """
    rows = []
    for start in range(0, len(source), 512):
        batch = source.read_batch(list(range(start, min(len(source), start + 512))))
        if batch.skipped:
            raise ValueError(f"{source.name}: unreadable clips {batch.skipped}")
        logmel = batch.items[:, 0].numpy()  # (n, n_mels, frames)
        mfcc = dct(logmel, type=2, norm="ortho", axis=1)[:, :coefficients]
        rows.append(np.concatenate([mfcc.mean(axis=2), mfcc.std(axis=2)], axis=1))
    return np.concatenate(rows).astype(np.float32)


def backbone_options(args: argparse.Namespace) -> dict[str, int]:
    """The byola-cnn options given on the command line (none: BYOL-A's sizes)."""
    given = {"width": args.width, "feature_dim": args.feature_dim}
    return {k: v for k, v in given.items() if v}


def score(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int
) -> dict[str, float]:
    """Linear-probe, kNN and few-shot (``SHOTS`` labels per word, 10 draws) test accuracy."""
    return {
        "linear": linear_probe(train_x, train_y, test_x, test_y, seed=seed).accuracy,
        "knn": knn_accuracy(train_x, train_y, test_x, test_y, k=20),
        "fewshot": few_shot(
            train_x, train_y, test_x, test_y, shots=SHOTS, draws=10, seed=seed
        ).mean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="spoken-words folder")
    parser.add_argument("--minutes", type=float, default=5.0, help="training per seed")
    parser.add_argument("--seeds", type=int, default=1)
    # A higher rate than selfsup's default (5e-4 at batch 64) helped in short CPU runs.
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4, help="BYOL-A's rate")
    parser.add_argument("--backbone", default="byola-cnn")
    parser.add_argument(
        "--width", type=int, default=None, help="byola-cnn channels (default: BYOL-A's 64)"
    )
    parser.add_argument(
        "--feature-dim", type=int, default=None, help="byola-cnn feature size (BYOL-A's 2048)"
    )
    parser.add_argument("--method", default="byola")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    started, load_before = time.time(), load_average()
    if not (args.data / "metadata.json").exists():
        print(f"building the synthetic spoken-word set in {args.data} ...", flush=True)
        make_spoken_words(args.data)
    metadata = json.loads((args.data / "metadata.json").read_text())
    train = open_source(args.data / "train", "audio")
    test = open_source(args.data / "test", "audio")
    print(f"{train.describe()}; {test.describe()}", flush=True)

    mfcc_train, mfcc_test = standardize(
        torch.from_numpy(mfcc_statistics(train)), torch.from_numpy(mfcc_statistics(test))
    )
    baseline = score(mfcc_train.numpy(), train.labels, mfcc_test.numpy(), test.labels, seed=0)
    print("MFCC statistics", json.dumps(baseline), flush=True)

    runs = []
    for seed in range(args.seeds):
        run = pretrain(
            args.data / "train",
            modality="audio",
            method=args.method,
            backbone=args.backbone,
            backbone_options=backbone_options(args),
            time_budget=args.minutes,
            batch_size=args.batch_size,
            lr=args.lr,
            precision=args.precision,
            accelerator=args.accelerator,
            seed=seed,
            monitor_items=0,
            online_probe=False,
            keep_checkpoints=True,  # epoch 0 is the untrained encoder, scored below
            out=RUNS / "audio" / f"{args.method}-seed{seed}",
            show_progress=False,
        )
        scores = score(run.embed(train), train.labels, run.embed(test), test.labels, seed)
        untrained = load_encoder(run.path)
        load_encoder_weights(untrained, run.path / "checkpoints" / "epoch-0000.safetensors")
        before = score(
            embed_source(untrained, train), train.labels, embed_source(untrained, test),
            test.labels, seed,
        )  # fmt: skip
        runs.append({**scores, **{k: run.summary[k] for k in ("train_seconds", "steps", "epochs")}})
        runs[-1].update(
            precision=run.summary["precision"],
            items_per_second=run.summary["items_per_second"],
            untrained_linear=before["linear"],
            untrained_knn=before["knn"],
            untrained_fewshot=before["fewshot"],
        )
        print(args.method, seed, json.dumps(runs[-1]), flush=True)

    minutes = (time.time() - started) / 60
    text = render(runs, baseline, metadata, train, test, args, load_before, minutes)
    print(text)
    if not args.no_write:
        write_section("audio", text)


def render(
    runs: list[dict],
    baseline: dict[str, float],
    metadata: dict,
    train: Source,
    test: Source,
    args: argparse.Namespace,
    load_before: str,
    minutes: float,
) -> str:
    """The BENCHMARKS.md section."""

    def mean_std(key: str) -> str:
        values = [r[key] for r in runs]
        spread = f" ± {np.std(values):.3f}" if len(values) > 1 else ""
        return f"{np.mean(values):.3f}{spread}"

    train_minutes = np.mean([r["train_seconds"] for r in runs]) / 60
    lines = [
        "## Audio: BYOL-A on synthetic spoken words, unseen voices, next to MFCC statistics",
        "",
        f"**{SYNTHETIC_NOTE}** The set: {len(metadata['words'])} words (Speech Commands' "
        f"keywords), {len(metadata['accents'])} espeak-ng English accents x "
        f"{len(metadata['variants'])} voice variants, speeds {metadata['speeds']} words/min, "
        f"pitches {metadata['pitches']}; split by voice (accent + variant): "
        f"{len(metadata['train_voices'])} train voices ({len(train)} clips), "
        f"{len(metadata['test_voices'])} test voices never heard in training ({len(test)} "
        f"clips).",
        "",
        f"selfsup pretrains {args.method} ({args.backbone}"
        + "".join(f", {k} {v}" for k, v in backbone_options(args).items())
        + f", 64-band log-mels of 0.95 s at 16 kHz, batch {args.batch_size}, AdamW lr "
        f"{args.lr:g}) on the train clips for {args.minutes:g} minutes of "
        f"training, labels unused; the frozen embeddings are scored with the linear probe "
        f"(logistic regression, L2 penalty chosen on a validation split of the train labels) "
        f"and weighted kNN (k=20, cosine), fitted on the train voices, accuracy on the unseen "
        f"test voices. The baseline is MFCC statistics: the mean and standard deviation over "
        f"time of {MFCC_COEFFICIENTS} MFCCs (orthonormal DCT-II of the same log-mels), "
        f"standardized, with the same classifiers. Few-shot: logistic regression on {SHOTS} "
        f"labelled train clips per word, mean of 10 draws. The untrained row is the same "
        f"network at its random initialization, to show what pretraining adds."
        + (f" Mean ± std over {len(runs)} seeds." if len(runs) > 1 else ""),
        "",
        f"| features | linear probe | kNN | {SHOTS}-shot | training |",
        "| --- | --- | --- | --- | --- |",
        f"| selfsup {args.method} ({args.backbone}) | {mean_std('linear')} | "
        f"{mean_std('knn')} | {mean_std('fewshot')} | {train_minutes:.1f} min, "
        f"{np.mean([r['steps'] for r in runs]):.0f} steps, "
        f"{np.mean([r['epochs'] for r in runs]):.0f} epochs, "
        f"{np.mean([r['items_per_second'] for r in runs]):.0f} clips/s, {runs[0]['precision']} |",
        f"| same network, untrained | {mean_std('untrained_linear')} | "
        f"{mean_std('untrained_knn')} | {mean_std('untrained_fewshot')} | none |",
        f"| MFCC statistics (2 x {MFCC_COEFFICIENTS}) | {baseline['linear']:.3f} | "
        f"{baseline['knn']:.3f} | {baseline['fewshot']:.3f} | none |",
        "",
        f"Machine: {_machine()}; load average (1, 5, 15 min) before: {load_before}, after: "
        f"{load_average()}. Whole benchmark (synthesis if needed, training, evaluation): "
        f"{minutes:.1f} minutes.",
        "",
        f"Reproduce: `python benchmarks/audio.py --minutes {args.minutes:g} --seeds "
        f"{args.seeds} --batch-size {args.batch_size} --lr {args.lr:g}"
        + "".join(f" --{k.replace('_', '-')} {v}" for k, v in backbone_options(args).items())
        + "`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
