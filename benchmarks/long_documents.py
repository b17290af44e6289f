"""Benchmark: long documents read whole (windows) against their first read.

A legal team's folder of long documents, made from what every Debian machine holds: the
``/usr/share/doc/*/copyright`` files (one ``.txt`` a package; which packages, and so how many
files, depends on what the machine has installed: the count is printed), each labelled by the
licence of its first ``License:`` field (DEP-5), the licences of at least ``--min-class``
files kept and the other files unlabelled (pretraining and embedding read them all). One
read holds ``--max-length`` tokens, far less than most files. In one run:

- **all-MiniLM-L6-v2 frozen** (``hf:`` its folder, 128 tokens a read): each file embedded by
  its first read (``pooled`` off: what selfsup did before), and as the mean of up to 32
  windows spread over it (the default);
- **a text-transformer trained from scratch** with SimCSE for ``--minutes``: trained on the
  files' first reads and embedded by them (before), and trained on every window and embedded
  by the mean of windows (the default);
- **TF-IDF** of whole files with logistic regression: the baseline.

Linear probe and kNN accuracy on one stratified 80/20 split of the labelled files.

Usage:
    python benchmarks/long_documents.py               # about 12 minutes
    python benchmarks/long_documents.py --minutes 0.3 --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import load_average, write_section
from foundation import minilm_folder
from selfsup.modalities import open_source
from selfsup.run import _machine, load, pretrain

LICENCE = re.compile(r"^License:\s*([A-Za-z0-9.+-]+)", re.M)


def make_folder(root: Path, min_class: int) -> tuple[Path, Path, int, Counter]:
    """The copyright files as ``docs/PACKAGE.txt`` and a labels table of their licences."""
    docs = root / "docs"
    docs.mkdir()
    rows = []
    for path in sorted(Path("/usr/share/doc").glob("*/copyright")):
        text = path.read_text(errors="replace")
        name = f"{path.parent.name}.txt"
        (docs / name).write_text(text)
        found = LICENCE.search(text)
        if found:
            rows.append((name, re.split(r"[-+]", found.group(1))[0].upper()))
    counts = Counter(label for _, label in rows)
    kept = Counter({k: v for k, v in counts.items() if v >= min_class})
    table = root / "licences.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "licence"])
        writer.writerows(r for r in rows if r[1] in kept)
    return docs, table, len(list(docs.iterdir())), kept


def scores(run, docs: Path, table: Path, pooled: bool) -> tuple[float, float, float, float]:
    """(linear, kNN, TF-IDF linear, seconds) of ``run`` on the labelled files."""
    source = open_source(docs, "text", labels=table)
    source.pooled = pooled
    begun = time.perf_counter()
    result = run.evaluate(source, protocols=("linear", "knn"), save=False)
    rows = {r.protocol: r for r in result.rows}
    seconds = time.perf_counter() - begun
    return rows["linear"].selfsup, rows["knn"].selfsup, rows["linear"].raw, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="scratch training per run")
    parser.add_argument("--max-length", type=int, default=64, help="tokens a scratch read holds")
    parser.add_argument("--min-class", type=int, default=30, help="files a licence needs")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    begun, load_before = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs, table, files, kept = make_folder(root, args.min_class)
        source = open_source(docs, "text", max_length=args.max_length)
        lengths = source.sampled_tokens()
        print(f"{files} files, {sum(kept.values())} labelled: {dict(kept)}", flush=True)
        rows = []
        minilm = load(f"hf:{minilm_folder()}")
        for pooled in (False, True):
            linear, knn, tfidf, seconds = scores(minilm, docs, table, pooled)
            how = "mean of up to 32 windows" if pooled else "first read (126 tokens)"
            rows.append(f"| all-MiniLM-L6-v2, frozen | {how} | {linear:.3f} | {knn:.3f} | "
                        f"{tfidf:.3f} | {seconds:.0f} s |")  # fmt: skip
            print(rows[-1], flush=True)
        for windows in (False, True):
            data = open_source(docs, "text", max_length=args.max_length)
            data.pooled = windows  # off: neither trained on windows nor embedded by them
            run = pretrain(data, time_budget=args.minutes, out=root / f"scratch-{windows}",
                           monitor_items=0, show_progress=False)  # fmt: skip
            steps = run.summary["steps"]
            linear, knn, tfidf, seconds = scores(run, docs, table, windows)
            how = (f"trained on windows ({steps} steps), mean of up to 32 windows" if windows
                   else f"trained on first reads ({steps} steps), first read")  # fmt: skip
            rows.append(f"| text-transformer, SimCSE {args.minutes:g} min | {how} | "
                        f"{linear:.3f} | {knn:.3f} | {tfidf:.3f} | {seconds:.0f} s |")  # fmt: skip
            print(rows[-1], flush=True)
    minutes = (time.perf_counter() - begun) / 60
    text = "\n".join([
        "## Long documents read whole (benchmarks/long_documents.py)",
        "",
        f"Machine: {_machine()}; load before {load_before}, after {load_average()}; "
        f"{minutes:.0f} minutes in this invocation. {files} Debian copyright files of this "
        f"machine (tokens of 100 sampled, by the scratch run's tokenizer: median "
        f"{int(sorted(lengths)[len(lengths) // 2]):,}, longest {int(max(lengths)):,}), "
        f"{sum(kept.values())} labelled by licence in {len(kept)} classes "
        f"({', '.join(f'{k} {v}' for k, v in kept.most_common())}); one stratified 80/20 "
        f"split of them. Scratch reads hold {args.max_length} tokens. Reproduce: "
        "`python benchmarks/long_documents.py`.",
        "",
        "| encoder | a file is read as | linear | kNN | TF-IDF linear | evaluation time |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "The first read of a copyright file is mostly its header (format URL, upstream name "
        "and contact); the licence text comes later.",
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        write_section("long_documents", text)


if __name__ == "__main__":
    main()
