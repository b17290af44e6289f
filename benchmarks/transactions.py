"""A fraud team's transactions at their real size: VIME and SCARF next to raw features.

**Synthetic data**: no table of millions of labelled rows installs offline (DATASETS.md's are
569 to 49,097 rows), so the script writes one: card transactions over six months as a fraud
team exports them (an id, an ISO time, 250,000 cards of about 12 rows each, 56,000 merchants
drawn by Zipf's law, merchant category codes, log-normal amounts, countries, channel, device,
card age, the day's count of the card's transactions, distance from home with 0.4% missing,
a CVV check) and a ``fraud`` label (about 1.25%) drawn from amount, a foreign country, night
hours, a new card, velocity, risky categories and on-line payments. Each method pretrains for
``--minutes`` with the README's command, then ``selfsup evaluate`` scores a linear probe's
AUROC on its embeddings and on the raw features (80/20 split, stratified), each command timed
with its peak memory (PSS, workers included), as a user runs them.

The merchant category codes are integers; ``selfsup`` warns that they look like codes and
names ``--categorical-columns mcc``, so a third row follows the warning's advice (VIME, mcc
read as categories). Then ``select`` (TypiClust and k-center greedy, 100 items),
``anomalies`` (scored against the fraud label) and ``audit`` (by country) run on the first
method's run over all the rows, each timed with its peak memory.

Usage: python benchmarks/transactions.py [--rows 3000000] [--minutes 3]
    [--methods vime,scarf,vime+mcc]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RUNS, load_average, watch, write_section

SELFSUP = [sys.executable, "-m", "selfsup"]


def write_transactions(path: Path, rows: int, seed: int = 7) -> float:
    """Write the synthetic transactions to ``path`` (CSV); returns the share of fraud."""
    rng = np.random.default_rng(seed)
    cards = rng.integers(0, 250_000, rows)
    card_age = rng.gamma(2.0, 400.0, 250_000)[cards].round().astype(int)
    home = rng.choice(60, 250_000, p=np.r_[0.6, np.full(59, 0.4 / 59)])[cards]
    seconds = np.sort(rng.integers(0, 180 * 86400, rows))
    hour = (seconds % 86400) / 3600
    codes = [5411, 5812, 5541, 5999, 4111, 5311, 7011, 4511, 5732, 5944, 6011, 5912, 5814, 7995,
             4829, 5967]  # fmt: skip
    shares = np.array([18, 14, 12, 8, 8, 7, 3, 2, 4, 1, 6, 5, 8, 1, 1, 2]) / 100
    mcc = rng.choice(np.array(codes), rows, p=shares)
    channel = rng.choice(["pos", "online", "atm", "contactless"], rows, p=[0.35, 0.3, 0.05, 0.3])
    country = np.where(rng.random(rows) < 0.9, home, rng.integers(0, 60, rows))
    amount = np.round(np.exp(rng.normal(3.3, 1.1, rows)), 2)
    velocity = rng.poisson(2.0, rows)
    distance = np.where(country == home, rng.gamma(1.5, 6, rows), rng.gamma(3, 400, rows))
    score = (
        -6.2
        + 0.9 * (np.log(amount) > 5)
        + 1.3 * (country != home)
        + 0.8 * (hour < 5)
        + 1.1 * (card_age < 30)
        + 0.35 * np.minimum(velocity, 8)
        + 1.2 * np.isin(mcc, [7995, 4829, 5967])
        + 0.7 * (channel == "online")
        + rng.normal(0, 0.5, rows)
    )
    fraud = (rng.random(rows) < 1 / (1 + np.exp(-score))).astype(int)
    frame = pd.DataFrame(
        {
            "transaction_id": np.char.add("T", np.arange(10**7, 10**7 + rows).astype(str)),
            "timestamp": (np.datetime64("2025-01-01T00:00:00") + seconds.astype("m8[s]")).astype(
                str
            ),
            "card_id": np.char.add("C", cards.astype(str)),
            "merchant_id": np.char.add("M", (rng.zipf(1.3, rows) % 60_000).astype(str)),
            "mcc": mcc,
            "amount": amount,
            "currency": np.where(country < 40, "EUR", "USD"),
            "country": np.char.add("K", country.astype(str)),
            "home_country": np.char.add("K", home.astype(str)),
            "channel": channel,
            "device": np.where(
                channel == "online", rng.choice(["ios", "android", "web"], rows), ""
            ),
            "card_age_days": card_age,
            "tx_last_24h": velocity,
            "distance_km": np.round(distance, 1),
            "cvv_match": np.where(
                rng.random(rows) < 0.03, "", np.where(rng.random(rows) < 0.98, "Y", "N")
            ),
            "fraud": fraud,
        }
    )
    frame.loc[rng.random(rows) < 0.004, "distance_km"] = np.nan
    frame.to_csv(path, index=False)
    return float(fraud.mean())


#: The tools on the first method's run, what a fraud team asks of its embeddings next, and
#: the starts of the output lines that tell what each found.
TOOLS = {
    "select (typiclust)": (["select", "--budget", "100", "--out", "{out}/typiclust.csv"],
                           "wrote"),
    "select (kcenter)": (["select", "--budget", "100", "--strategy", "kcenter", "--out",
                          "{out}/kcenter.csv"], "wrote"),
    "anomalies": (["anomalies", "--anomaly-label", "1", "--out", "{out}/anomalies"], "AUROC"),
    "audit by country": (["audit", "--group", "country"], "audited", "large gap"),
}  # fmt: skip


def tool_rows(run: Path, data: Path, folder: Path) -> list[str]:
    """``select``, ``anomalies`` and ``audit`` on ``run`` over all of ``data``, each timed
    with its peak memory as a user runs it; the lines of their table."""
    out = folder / f"{run.name}-tools"
    out.mkdir(exist_ok=True)
    rows = []
    for name, (options, *telling) in TOOLS.items():
        command = [*SELFSUP, options[0], str(run), str(data),
                   *(o.format(out=out) for o in options[1:])]  # fmt: skip
        log = out / f"{name.split()[0]}-{len(rows)}.log"
        measured = watch(command, log)
        said = " / ".join(
            line.split(" to /")[0]  # not the output's path
            for line in log.read_text().splitlines()
            if line.startswith(tuple(telling))
        )
        print(name, measured, said, flush=True)
        rows.append(
            f"| {name} | {measured['wall_s']:.0f} s | {measured['peak_pss_gb']:.1f} GB "
            f"({measured['peak_anonymous_gb']:.1f} GB) | {said} |"
        )
    return [
        f"The tools on the {run.name.split('-')[0]} run, over all {data.name}'s rows "
        "(`selfsup TOOL RUN tx.csv ...`; the file's embeddings, kept in the run by the first "
        "command that makes them, are read in place, as a memory map): seconds and peak "
        "memory (PSS; in brackets, its anonymous part, without the pages of the mapped "
        "embeddings file, which the system reclaims under pressure), and what each said.",
        "",
        "| tool | seconds | peak memory (anonymous) | said |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--minutes", type=float, default=3.0, help="pretraining per method")
    parser.add_argument(
        "--methods", default="vime,scarf,vime+mcc", help="M+mcc: M with mcc as categories"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    started, load_before = time.time(), load_average()
    folder = RUNS / "transactions"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"tx-{args.rows}.csv"
    fraud = write_transactions(data, args.rows)
    lines, machine, first_run = [], "", None
    for row in args.methods.split(","):
        method, _, codes = row.partition("+")
        run = folder / f"{method}{'-mcc' if codes else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
        common = ["--label-column", "fraud", "--id-column", "transaction_id"]
        if codes:
            common += ["--categorical-columns", codes]
        train = watch(
            [*SELFSUP, "pretrain", str(data), *common, "--method", method, "--time-budget",
             str(args.minutes), "--out", str(run)],
            run.parent / f"{run.name}-pretrain.log",
        )  # fmt: skip
        scored = watch(
            [*SELFSUP, "evaluate", str(run), str(data)], run.parent / f"{run.name}-evaluate.log"
        )
        summary = json.loads((run / "train.json").read_text())
        machine = summary["machine"]
        first_run = run if first_run is None else first_run
        evaluation = json.loads(next(run.glob("evaluation-*.json")).read_text())
        auroc = next(r for r in evaluation["rows"] if r["protocol"] == "auroc")
        print(row, auroc["selfsup"], auroc["raw"], flush=True)
        name = f"{method}, {codes} as categories" if codes else method
        lines.append(
            f"| {name} | {summary['items_per_second']:,.0f} | {auroc['selfsup']:.4f} | "
            f"{auroc['raw']:.4f} | {train['wall_s']:.0f} s, {train['peak_pss_gb']:.1f} GB | "
            f"{scored['wall_s']:.0f} s, {scored['peak_pss_gb']:.1f} GB |"
        )
    tools = tool_rows(first_run, data, folder) if first_run is not None else []
    text = "\n".join(
        [
            "## A fraud team's transactions at their real size (benchmarks/transactions.py)",
            "",
            f"**Synthetic** card transactions (see the script): {args.rows:,} rows, "
            f"{fraud:.2%} fraud. Each method pretrains for {args.minutes:g} minutes with "
            "`selfsup pretrain tx.csv --label-column fraud --id-column transaction_id --method "
            "M` (the last row adds `--categorical-columns mcc`, as the warning about the "
            "merchant category codes advises), then `selfsup evaluate RUN tx.csv` scores a "
            "linear probe's AUROC on a stratified 20% of the rows (at most 250,000 of them, "
            "the probe fitted on at most 500,000 of the other 80%), on the embeddings and on "
            "the raw features (numbers standardized, categories one-hot), in the same call. "
            "Rows/s: training throughput; seconds and peak memory (PSS) of each command as a "
            "user runs it.",
            "",
            "| method | rows/s | AUROC selfsup | AUROC raw | pretrain | evaluate |",
            "| --- | --- | --- | --- | --- | --- |",
            *lines,
            "",
            *tools,
            f"{machine}; load before {load_before}; {(time.time() - started) / 60:.0f} minutes "
            "in all, the data written included.",
        ]
    )
    print(text)
    if not args.no_write:
        write_section("transactions", text)


if __name__ == "__main__":
    main()
