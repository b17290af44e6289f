"""Benchmark: anomaly scores of two million reviews, a third of them copies of popular ones.

A shop's reviews repeat: "Great product!" is written thousands of times, so a third of
two million reviews can be copies of a few. Their embeddings are copies too, and every
neighbour search among them used to compare each query with each copy. This measures
``selfsup anomalies`` on such data: each item's distance to its 5th neighbour among a
random sample of a million (``tools.anomalies.self_scores``), with distinct rows searched
once (``core.neighbours``, the default) and, in the same invocation, with every copy
searched as before.

Data (real sentences recombined; kept in ``--work`` between invocations):

* ``reviews.jsonl``: ``--rows`` rows (``id``, ``body``, ``created``, ``stars`` on 5%): a
  fifth are one Rotten Tomatoes snippet alone, drawn by a Zipf law of exponent 1.3 (a few
  snippets thousands of times), the rest a snippet followed by up to two WordNet glosses
  and, half the time, a second snippet (copies of their own where they are a snippet
  alone); stars from the snippet's fresh or rotten;
* ``selfsup pretrain reviews.jsonl --method sent2vec --time-budget 1``, then
  ``selfsup embed RUN reviews.jsonl --out embeddings.parquet`` (each a fresh process, timed,
  peak PSS sampled twice a second).

Each scoring is a fresh process; its quality is measured on 2,000 random items against
exact search of the same sample: the share whose score is the exact one (within 1e-4) and
the mean absolute error.

Usage:
    python benchmarks/reviews.py                  # 2,000,000 reviews (about 20 minutes)
    python benchmarks/reviews.py --rows 200000    # a smaller set
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from common import RUNS, load_average, watch, write_section

#: The neighbour whose distance is an item's score (``selfsup anomalies``' default).
K = 5
#: Items whose scores are checked against exact search.
CHECKED = 2_000
STEPS = ("distinct", "every_copy")


def make_reviews(path: Path, rows: int, seed: int = 0) -> dict:
    """Write ``rows`` reviews to ``path`` (JSON lines); the share of rows that are copies."""
    from selfsup.data.text import rotten_tomatoes, wordnet_glosses

    snippets, fresh = [], []
    for split in ("train", "test"):
        source = rotten_tomatoes(split)
        snippets += list(source.texts)
        fresh += [source.classes[int(y)] == "fresh" for y in source.labels]
    glosses = list(wordnet_glosses().texts)
    rng = np.random.default_rng(seed)
    popular = rng.zipf(1.3, size=rows) % len(snippets)
    seen: set[str] = set()
    copies = 0
    with path.open("w") as f:
        for i in range(rows):
            if rng.random() < 0.2:
                first = int(popular[i])
                body = snippets[first]
            else:
                first = int(rng.integers(len(snippets)))
                parts = [snippets[first]]
                parts += [glosses[j] for j in rng.integers(len(glosses), size=rng.integers(0, 3))]
                if rng.random() < 0.5:
                    parts.append(snippets[int(rng.integers(len(snippets)))])
                body = " ".join(parts)
            copies += body in seen
            seen.add(body)
            row = {"id": f"r{i:08d}", "body": body, "created": f"2025-{1 + i % 12:02d}-01"}
            if rng.random() < 0.05:
                row["stars"] = int(rng.integers(4, 6) if fresh[first] else rng.integers(1, 3))
            f.write(json.dumps(row) + "\n")
    return {"rows": rows, "copies": copies, "distinct": len(seen)}


def embeddings(parquet: Path) -> np.ndarray:
    """The readable rows of a ``selfsup embed`` Parquet file as a read-only memory map
    (written once beside it as ``.npy``), as ``selfsup anomalies`` maps a run's kept
    embeddings: the scoring's memory is then its own."""
    import pyarrow.parquet as pq

    path = parquet.with_suffix(".npy")
    if not path.exists():
        table = pq.read_table(parquet, columns=["embedding", "readable"])
        column = table["embedding"].combine_chunks()
        z = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
        np.save(path, np.ascontiguousarray(z[table["readable"].to_numpy()], dtype=np.float32))
    return np.load(path, mmap_mode="r")


def step(name: str, work: Path) -> dict:
    """Score every review (``self_scores``) with distinct rows searched once, or with every
    copy searched (``every_copy``); the scores are saved for :func:`quality`."""
    from selfsup.core import neighbours
    from selfsup.tools.anomalies import self_scores

    if name == "every_copy":  # the search before distinct rows were searched once
        neighbours._distinct_search = neighbours._index_search
    z = embeddings(work / "embeddings.parquet")
    started = time.perf_counter()
    scores = self_scores(z, k=K)
    seconds = time.perf_counter() - started
    np.save(work / f"scores-{name}.npy", scores)
    return {
        "items": len(z),
        "seconds": round(seconds, 1),
        "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def quality(work: Path) -> dict:
    """Each way's scores of ``CHECKED`` random items against their exact scores among the
    same sample (the rule ``self_scores`` follows): the share within 1e-4 and the mean
    absolute error; the distinct embeddings; how many flagged items (the 5% highest, as the
    command flags) both ways share."""
    import warnings

    import torch

    from selfsup.core import neighbours
    from selfsup.tools.anomalies import SELF_REFERENCE_MOST

    # The embeddings are a read-only memory map, as a user's file is; nothing writes to them.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    z = embeddings(work / "embeddings.parquet")
    copies = neighbours._copies(torch.from_numpy(np.ascontiguousarray(z)))
    most = min(SELF_REFERENCE_MOST, len(z))
    sample = np.sort(np.random.default_rng(0).choice(len(z), most, replace=False))
    rows = np.sort(np.random.default_rng(1).choice(len(z), CHECKED, replace=False))
    reference = torch.from_numpy(np.ascontiguousarray(z[sample]))
    queries = torch.from_numpy(np.ascontiguousarray(z[rows]))
    similarity = neighbours.cosine_topk(queries, reference, K + 1, exact=True)[0].double()
    column = np.where(np.isin(rows, sample), K, K - 1)
    nearest = similarity.numpy()[np.arange(CHECKED), column]
    exact = np.sqrt(np.clip(2 - 2 * nearest, 0, None))
    out: dict = {"distinct_embeddings": len(z) if copies is None else len(copies[0])}
    scores = {name: np.load(work / f"scores-{name}.npy") for name in STEPS}
    for name, s in scores.items():
        error = np.abs(s[rows] - exact)
        out[name] = {"exact_share": float((error <= 1e-4).mean()),
                     "mean_abs_error": float(error.mean())}  # fmt: skip
    flagged = [s >= np.quantile(s, 0.95) for s in scores.values()]
    out["flagged_same"] = float((flagged[0] & flagged[1]).sum() / flagged[0].sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--work", type=Path, default=RUNS / "reviews")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work / f"rows-{args.rows}"
    if args.step:
        print(json.dumps(step(args.step, work)), flush=True)
        return
    from selfsup.run import _machine

    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results: dict = {"machine": _machine(), "load_before": load_average(), "rows": args.rows}
    data, made = work / "reviews.jsonl", work / "reviews.json"
    if not made.exists():
        started = time.perf_counter()
        written = make_reviews(data, args.rows)
        made.write_text(json.dumps({**written, "seconds": round(time.perf_counter() - started)}))
    results["data"] = json.loads(made.read_text())
    print("reviews", json.dumps(results["data"]), flush=True)
    selfsup = [sys.executable, "-m", "selfsup"]
    run, out = work / "run", work / "embeddings.parquet"
    kept = work / "steps.json"
    steps = json.loads(kept.read_text()) if kept.exists() else {}
    if not (run / "train.json").exists():
        steps["pretrain"] = watch(
            [*selfsup, "pretrain", str(data), "--method", "sent2vec", "--time-budget", "1",
             "--text-column", "body", "--label-column", "stars", "--out", str(run),
             "--overwrite"], work / "pretrain.log")  # fmt: skip
        out.unlink(missing_ok=True)
    if not out.exists():
        steps["embed"] = watch([*selfsup, "embed", str(run), str(data), "--out", str(out)],
                               work / "embed.log")  # fmt: skip
    kept.write_text(json.dumps(steps))
    results.update(steps)
    embeddings(out)  # the .npy each way maps, written here: its memory not theirs
    for name in STEPS:
        command = [sys.executable, __file__, "--rows", str(args.rows), "--work",
                   str(args.work), "--step", name]  # fmt: skip
        measured = watch(command, work / f"{name}.log")
        results[name] = {**measured, **json.loads(measured["last_line"])}
        print(name, json.dumps(results[name]), flush=True)
    (work / "reviews-result.json").write_text(json.dumps(results, indent=2))  # if it fails
    checked = quality(work)
    for name in STEPS:
        results[name].update(checked.pop(name))
    results.update(checked)
    results["load_after"] = load_average()
    results["minutes"] = round((time.perf_counter() - began) / 60, 1)
    (work / "reviews-result.json").write_text(json.dumps(results, indent=2))
    write_section("reviews", report(results))
    print(json.dumps(results, indent=2))


def report(r: dict) -> str:
    d, new, old = r["data"], r["distinct"], r["every_copy"]
    rows = f"{r['rows']:,}"
    lines = [
        f"## Anomalies among {rows} reviews, {d['copies'] / d['rows']:.0%} of them copies "
        "(benchmarks/reviews.py)",
        "",
        f"{rows} reviews of real sentences recombined (Rotten Tomatoes snippets, WordNet "
        f"glosses): {d['copies']:,} rows are copies of another ({d['distinct']:,} distinct "
        "texts; a fifth of rows one snippet alone, drawn by a Zipf law, as popular reviews "
        "recur). `selfsup pretrain --method sent2vec --time-budget 1`, then `selfsup embed` "
        f"({new['items']:,} embeddings, {r['distinct_embeddings']:,} distinct). Each item "
        f"is scored by its distance to its {K}th neighbour among a random sample of "
        f"{min(new['items'], 1_000_000):,} of them, as "
        "`selfsup anomalies` does; each way in a fresh process, peak memory its PSS sampled "
        f"twice a second; quality on {CHECKED:,} random items against exact search of the "
        f"same sample. Machine: {r['machine']}; load before {r['load_before']}, after "
        f"{r['load_after']}; {r['minutes']} minutes (the reviews, the run and the "
        "embeddings are kept between invocations). Reproduce: "
        f"`python benchmarks/reviews.py --rows {r['rows']}`.",
        "",
        "| neighbour search | seconds scoring | process wall s | peak memory | scores exact "
        "(within 1e-4) | mean abs error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, x in (("every copy searched (before)", old), ("distinct rows once", new)):
        lines.append(
            f"| {label} | {x['seconds']} | {x['wall_s']} | {x['peak_pss_gb']} GB | "
            f"{x['exact_share']:.3f} | {x['mean_abs_error']:.4f} |"
        )
    lines += [
        "",
        f"Speed-up {old['seconds'] / new['seconds']:.2f}x; of the items either way flags (the "
        f"5% highest scores), {r['flagged_same']:.1%} are the same.",
    ]
    if "embed" in r:
        e = r["embed"]
        lines.append(
            f"Embedding them (`selfsup embed`, timed when they were written): {e['wall_s']} s, "
            f"{e['peak_pss_gb']} GB ({e['last_line'].split(' to ')[0]})."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
