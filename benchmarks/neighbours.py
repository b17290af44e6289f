"""Benchmark: neighbour searches on a million embeddings, in bounded memory and time.

A million real items: Fashion-MNIST's 70,000 images under 15 transforms each (those of
``benchmarks/shards.py``), the first 1,000,000, as one uint8 ``.npy``. Then, each step a
fresh process whose memory (PSS) is sampled twice a second:

1. ``selfsup pretrain fashion-mnist --time-budget M`` (SimCLR, the defaults);
2. ``selfsup embed RUN items.npy --out embeddings.npy``: all million, streamed;
3. kNN evaluation (``knn_accuracy``, k=20): the items of the 60,000 train images are the
   keys, those of the 10,000 test images the queries;
4. anomaly scores (``fit_detector``, the k-th neighbour distance): class 0 (T-shirt/top) is
   the anomaly, the detector is fitted on the other classes' train items, then all
   1,000,000 items are scored; AUROC on the test items;
5. label propagation: the k-NN graph of all million items and label spreading from 1% of
   the train items' labels; accuracy on the test items;
6. selection: TypiClust and k-center greedy choose 100 items among the million;
7. recall@20 of the index (what steps 3-6 search with above ``EXACT_KEYS`` keys) against
   exact search, on 2,000 random queries among all million keys, with both speeds.

Usage:
    python benchmarks/neighbours.py                  # 1,000,000 items (about 25 minutes)
    python benchmarks/neighbours.py --items 200000 --minutes 1
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from common import load_average, watch, write_section
from shards import TRANSFORMS, _images, _transform

STEPS = ("knn", "anomalies", "propagation", "selection", "recall")
#: Queries of the recall step (exact search of each compares it with every key).
QUERIES = 2_000


def make_items(folder: Path, items: int) -> float:
    """``items.npy`` (uint8 ``(items, 28, 28)``), ``labels.npy`` and ``train.npy`` (whether
    the item comes from a train image) in ``folder``, kept when present; seconds."""
    if (folder / "train.npy").exists():
        return 0.0
    folder.mkdir(parents=True, exist_ok=True)
    x, y = _images()
    started = time.perf_counter()
    out = np.lib.format.open_memmap(folder / "items.npy", "w+", np.uint8, (items, 28, 28))
    source = np.arange(items) % len(x)
    for t in range(TRANSFORMS):
        rows = np.flatnonzero(np.arange(items) // len(x) % TRANSFORMS == t)
        for i in rows:
            out[i] = _transform(x[source[i]], t)
    out.flush()
    del out
    np.save(folder / "labels.npy", y[source].astype(np.int64))
    np.save(folder / "train.npy", source < 60_000)
    return time.perf_counter() - started


def step(name: str, work: Path) -> dict:
    """One measured step, run in its own process (``--step``)."""
    import warnings

    import torch

    # The embeddings are a read-only memory map, as a user's file is; nothing writes to them.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    from selfsup.core.neighbours import EXACT_KEYS, PROBES, cosine_topk
    from selfsup.evaluation.knn import knn_accuracy
    from selfsup.tools.anomalies import fit_detector
    from selfsup.tools.propagation import knn_graph, label_spreading
    from selfsup.tools.selection import select

    z = np.load(work / "embeddings.npy", mmap_mode="r")  # as a user's file is read
    labels = np.load(work / "data" / "labels.npy")
    train = np.load(work / "data" / "train.npy")
    started = time.perf_counter()
    result: dict = {"items": len(z), "dim": int(z.shape[1])}
    if name == "knn":
        result["accuracy"] = knn_accuracy(z[train], labels[train], z[~train], labels[~train], k=20)
        result.update(keys=int(train.sum()), queries=int((~train).sum()))
    elif name == "anomalies":
        normal = train & (labels != 0)
        detector = fit_detector(z[normal], k=5)
        scores = detector.score(z)
        from sklearn.metrics import roc_auc_score

        result["auroc"] = float(roc_auc_score(labels[~train] == 0, scores[~train]))
        result.update(keys=len(detector.reference), scored=len(z))
    elif name == "propagation":
        rng = np.random.default_rng(0)
        labelled = np.sort(rng.choice(np.flatnonzero(train), int(0.01 * train.sum()), False))
        graph = knn_graph(torch.from_numpy(z), k=20)
        scores = label_spreading(graph, labelled, labels[labelled], 10)
        predicted = scores.argmax(axis=1)
        result["accuracy"] = float((predicted[~train] == labels[~train]).mean())
        result["labelled"] = len(labelled)
    elif name == "selection":
        for strategy in ("typiclust", "kcenter"):
            begun = time.perf_counter()
            chosen = select(z, 100, strategy)
            classes = len(set(labels[chosen.indices].tolist()))
            result[strategy] = {"seconds": round(time.perf_counter() - begun, 1),
                                "classes_covered": classes}  # fmt: skip
    elif name == "recall":
        keys = torch.from_numpy(z)
        queries = keys[np.random.default_rng(1).choice(len(z), QUERIES, replace=False)]
        begun = time.perf_counter()
        exact = cosine_topk(queries, keys, 20, exact=True)[1]
        exact_s = time.perf_counter() - begun
        begun = time.perf_counter()
        approximate = cosine_topk(queries, keys, 20, exact=False)[1]
        index_s = time.perf_counter() - begun
        hits = sum(
            len(set(a.tolist()) & set(b.tolist())) for a, b in zip(approximate, exact, strict=True)
        )
        result.update(recall_at_20=hits / exact.numel(), exact_s=round(exact_s, 1),
                      index_s=round(index_s, 1), probes=PROBES, exact_keys=EXACT_KEYS)  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["max_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=3.0, help="Pretraining budget.")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/neighbours"))
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", nargs="+", choices=STEPS, help="Rerun these steps, keep the others' results."
    )
    args = parser.parse_args()
    work = args.work / f"items-{args.items}"
    if args.step:
        print(json.dumps(step(args.step, work)), flush=True)
        return
    from selfsup.run import _machine

    results: dict = {"machine": _machine(), "load_before": load_average(), "items": args.items}
    made = make_items(work / "data", args.items)
    print(f"{args.items:,} items in {work / 'data'} (made in {made:.0f} s)", flush=True)
    selfsup = [sys.executable, "-m", "selfsup"]
    run = work / "run"
    if not (run / "train.json").exists():
        results["pretrain"] = watch(
            [*selfsup, "pretrain", "fashion-mnist", "--time-budget", str(args.minutes),
             "--out", str(run)], work / "pretrain.log")  # fmt: skip
    out, measured = work / "embeddings.npy", work / "embed.json"
    results["embed_reused"] = out.exists() and measured.exists()
    if not results["embed_reused"]:  # kept: embedding a million takes minutes
        out.unlink(missing_ok=True)
        embedded = watch(
            [*selfsup, "embed", str(run), str(work / "data" / "items.npy"), "--out", str(out)],
            work / "embed.log",
        )
        measured.write_text(json.dumps({**embedded, "load_before": results["load_before"]}))
    results["embed"] = json.loads(measured.read_text())
    log = (work / "embed.log").read_text().splitlines() if (work / "embed.log").exists() else []
    progress = [line for line in log if "items/s" in line]  # the last line says where it wrote
    results["embed"]["last_progress"] = progress[-1] if progress else results["embed"]["last_line"]
    print("embed", json.dumps(results["embed"]), flush=True)
    kept = work / "neighbours.json"
    if args.only and kept.exists():
        results = {**json.loads(kept.read_text()), **results}
    for name in args.only or STEPS:
        command = [sys.executable, __file__, "--items", str(args.items),
                   "--work", str(args.work), "--step", name]  # fmt: skip
        measured = watch(command, work / f"{name}.log")
        results[name] = {**measured, **json.loads(measured["last_line"])}
        print(name, json.dumps(results[name]), flush=True)
    results["load_after"] = load_average()
    (work / "neighbours.json").write_text(json.dumps(results, indent=2))
    write_section("neighbours", report(results, args))
    print(json.dumps(results, indent=2))


def report(r: dict, args: argparse.Namespace) -> str:
    n = f"{r['items']:,}"
    e, k, a, p, s, c = (r[x] for x in ("embed", "knn", "anomalies", "propagation",
                                       "selection", "recall"))  # fmt: skip
    lines = [
        f"## Neighbours among {n} embeddings (benchmarks/neighbours.py)",
        "",
        f"{n} real items (Fashion-MNIST's 70,000 images under 15 transforms) embedded by a "
        f"SimCLR small CNN ({k['dim']}-d); every step a fresh process, peak memory the PSS "
        f"sampled twice a second. Above {c['exact_keys']:,} keys every search goes through "
        f"the inverted-file index of `selfsup.core.neighbours` (sqrt(n) k-means groups, "
        f"{c['probes']} probed per query, the keys found scored exactly); below it, exact. "
        f"Load when the embedding began: {e.get('load_before', '?')}. Machine: {r['machine']}; "
        f"load before {r['load_before']}, after "
        f"{r['load_after']}. Reproduce: `python benchmarks/neighbours.py --items {r['items']}`.",
        "",
        "| step | what | seconds | peak memory | result |",
        "| --- | --- | --- | --- | --- |",
        f"| embed | `selfsup embed RUN items.npy --out embeddings.npy`, {n} items streamed | "
        f"{e['wall_s']} | {e['peak_pss_gb']} GB | {e['lines']} lines of output, the last "
        f"progress line: {e.get('last_progress', e['last_line']).split(': ', 1)[-1]} |",
        f"| kNN evaluation | {k['queries']:,} queries among {k['keys']:,} keys, k=20 | "
        f"{k['wall_s']} | {k['peak_pss_gb']} GB | accuracy {k['accuracy']:.4f} |",
        f"| anomaly scores | detector fitted on {a['keys']:,} normal items, {a['scored']:,} "
        f"scored | {a['wall_s']} | {a['peak_pss_gb']} GB | AUROC {a['auroc']:.4f} "
        "(class 0 held out) |",
        f"| label propagation | k-NN graph of {n} items, {p['labelled']:,} labels spread | "
        f"{p['wall_s']} | {p['peak_pss_gb']} GB | accuracy {p['accuracy']:.4f} on test items |",
        f"| selection | 100 of {n}: TypiClust {s['typiclust']['seconds']} s, k-center "
        f"{s['kcenter']['seconds']} s | {s['wall_s']} | {s['peak_pss_gb']} GB | classes "
        f"covered: {s['typiclust']['classes_covered']} and {s['kcenter']['classes_covered']} |",
        f"| index recall | {QUERIES:,} queries among {n} keys: exact {c['exact_s']} s, index "
        f"{c['index_s']} s | {c['wall_s']} | {c['peak_pss_gb']} GB | recall@20 "
        f"{c['recall_at_20']:.4f} |",
        "",
        "Seconds are the wall time of each process, loading the embeddings included."
        + (
            " The embed row was measured when the embeddings were first written, in an "
            "earlier invocation (they are kept between invocations); every other step ran in "
            "this one."
            if r.get("embed_reused")
            else ""
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
