"""Check: broken inputs, full and read-only disks, and kill -9, as a user meets them.

Three parts, each run as a user runs selfsup, one ``selfsup`` process per command, output to
a pipe:

1. **Broken inputs**: every case of the corpus in ``tests/broken_inputs.py`` (damaged,
   foreign and hostile files for every reader, run folder and model folder); counts the
   cases that got their documented outcome and the tracebacks.
2. **Full and read-only disks** (real tmpfs folders in a private mount namespace; skipped
   where ``unshare`` is refused): the commands of ``tests/output_faults.py``.
3. **kill -9**: a SimCLR run on digits (the small CNN, fp32, a checkpoint every fraction of a
   second so that kills land in the middle of writes) is killed at random moments ``--kills``
   times, each time resumed from what the kill left; then it runs to its end and its encoder
   is compared, tensor by tensor, with the same run done without interruption. After every
   kill the files finished before it (the checkpoint, the encoder, the config) must read
   back; the bytes of any that do not are finished work lost.

Usage:
    python benchmarks/robustness.py               # about 15 minutes on 2 cores
    python benchmarks/robustness.py --kills 5 --no-write
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the corpus lives with the tests

from tests.broken_inputs import CASES, check_outcome, make_fixtures  # noqa: E402
from tests.test_output_faults import EXPECTED, namespace_prefix  # noqa: E402

from common import load_average, write_section  # noqa: E402
from selfsup.engine.checkpoint import load_checkpoint  # noqa: E402
from selfsup.run import _machine, load, read_run_config  # noqa: E402

#: Where each finished part's result is kept (``--reuse`` skips those parts).
PARTS = Path(tempfile.gettempdir()) / "selfsup-robustness-parts.json"
#: The run that is killed: small enough to finish in about a minute on 2 cores.
KILLED_RUN = ["digits", "--method", "simclr", "--epochs", "12", "--batch-size", "64",
              "--precision", "fp32", "--seed", "5", "--checkpoint-every", "0.002"]  # fmt: skip


def selfsup(args: list[str], cwd: Path, **popen: object) -> subprocess.CompletedProcess:
    """``selfsup ARGS`` as its own process, output captured (a pipe)."""
    streams = popen or {"capture_output": True}
    return subprocess.run([sys.executable, "-m", "selfsup", *args], cwd=cwd, text=True,
                          **streams)  # fmt: skip


def broken_inputs(work: Path) -> dict:
    """Run every corpus case as its own process; outcomes met, tracebacks, failures."""
    fixtures = make_fixtures(work)
    met, tracebacks, failures = 0, 0, []
    for number, case in enumerate(CASES):
        folder = work / f"case-{number}"
        args = case.make(folder / "input", fixtures)
        # Standard output and error merged in the order written, as `2>&1 | cat` shows them:
        # the error line must come last there, where a person reads it.
        done = selfsup(args, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = done.stdout
        tracebacks += "Traceback" in output
        try:
            check_outcome(case, done.returncode, output)
            met, verdict = met + 1, "ok"
        except AssertionError as err:
            failures.append(f"{case.id}: {str(err)[:300]}")
            verdict = "MISSED"
        print(f"[{number + 1}/{len(CASES)}] {case.id}: {verdict}", flush=True)
    return {"cases": len(CASES), "met": met, "tracebacks": tracebacks, "failures": failures}


def disk_faults(work: Path) -> dict:
    """The full and read-only disk commands, in a private mount namespace."""
    prefix = namespace_prefix()
    if prefix is None:
        return {"skipped": "unshare refused: no mount namespace on this machine"}
    fixtures = make_fixtures(work / "fixtures")
    command = [*prefix, sys.executable, "-m", "tests.output_faults", str(work / "faults"),
               str(fixtures.run), str(fixtures.data)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    missed = [
        f"{r['name']}: {r['output'].strip().splitlines()[-1]}"
        for r in results
        if r["status"] != EXPECTED[r["name"]][0]
        or re.search(EXPECTED[r["name"]][1], r["output"].strip().splitlines()[-1]) is None
        or r["left"]
    ]
    return {
        "commands": len(results),
        "met": len(results) - len(missed),
        "missed": missed,
        "tracebacks": sum("Traceback" in r["output"] for r in results),
        "left": sum(len(r["left"]) for r in results),
    }


def finished_files(run: Path) -> dict[str, int]:
    """The run's files that a kill must not damage, with their sizes; each is read back."""
    sizes = {}
    for name in ("checkpoints/last.ckpt", "encoder.safetensors", "encoder.json", "config.yaml"):
        path = run / name
        if path.exists():
            sizes[name] = path.stat().st_size
    return sizes


def unreadable_bytes(run: Path, sizes: dict[str, int]) -> int:
    """The bytes of the files in ``sizes`` that no longer read back."""
    lost = 0
    for name, size in sizes.items():
        path = run / name
        try:
            if name.endswith(".ckpt"):
                load_checkpoint(path)
            elif name == "config.yaml":
                read_run_config(path)
            elif name == "encoder.json":
                load(run)  # the spec and the weights together
        except Exception:  # any failure to read is lost work
            lost += size
    return lost


def kills(work: Path, count: int, seed: int) -> dict:
    """Kill a run ``count`` times at random moments, resume it each time, finish it, and
    compare it with the same run uninterrupted."""
    rng = random.Random(seed)
    run = work / "killed"
    checkpoint = run / "checkpoints" / "last.ckpt"
    survived, lost, steps, stale, tracebacks = 0, 0, [], 0, 0
    for attempt in range(count):
        args = [*KILLED_RUN, "--out", str(run)] if attempt == 0 else ["--resume", str(run)]
        before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        finished = finished_files(run)
        proc = subprocess.Popen([sys.executable, "-m", "selfsup", "pretrain", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if checkpoint.exists() and checkpoint.stat().st_mtime_ns != before:
                break  # the run made progress since the last kill
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is not None:
            print(f"kill {attempt + 1}: the run ended first", flush=True)
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tracebacks += "Traceback" in proc.stderr.read().decode(errors="replace")
        stale += len(list(run.rglob(".*.tmp*")))  # a kill in the middle of a write
        lost += unreadable_bytes(run, finished)
        state = load_checkpoint(checkpoint)["state"]
        steps.append(int(state["step"]))
        survived += 1
        print(f"kill {attempt + 1}: at step {state['step']} of {state['total_steps']}", flush=True)
    final = selfsup(["pretrain", "--resume", str(run)], cwd=work)
    straight = selfsup(["pretrain", *KILLED_RUN, "--out", str(work / "straight")], cwd=work)
    resumed, reference = (
        load(run).encoder.state_dict(),
        load(work / "straight").encoder.state_dict(),
    )
    equal = all(torch.equal(resumed[k], reference[k]) for k in reference)
    return {
        "kills": survived,
        "steps_at_kills": steps,
        "mid_write_kills": stale,
        "bytes_lost": lost,
        "tracebacks": sum("Traceback" in r.stdout + r.stderr for r in (final, straight))
        + tracebacks,
        "final_status": final.returncode,
        "straight_status": straight.returncode,
        "equal": equal,
        "stale_left": len(list(run.rglob(".*.tmp*"))),
    }


def render(inputs: dict, disks: dict, killed: dict, args, load_before: str, minutes: float) -> str:
    """The BENCHMARKS.md section."""
    lines = [
        "## Broken inputs, full disks and kill -9 (benchmarks/robustness.py)",
        "",
        "Every command as its own `selfsup` process, output to a pipe.",
        "",
        "| check | tried | documented outcome | tracebacks | finished work lost |",
        "| --- | --- | --- | --- | --- |",
        f"| broken inputs (corpus of tests/broken_inputs.py) | {inputs['cases']} | "
        f"{inputs['met']} | {inputs['tracebacks']} | - |",
    ]
    if "skipped" in disks:
        lines.append(f"| full and read-only disks | skipped: {disks['skipped']} | | | |")
    else:
        lines.append(
            f"| full and read-only disks (tmpfs) | {disks['commands']} | {disks['met']} | "
            f"{disks['tracebacks']} | {disks['left']} partial files |"
        )
    lines.append(
        f"| kill -9 at random moments, resumed each time | {killed['kills']} | "
        f"{'equal to the uninterrupted run' if killed['equal'] else 'NOT EQUAL'} | "
        f"{killed['tracebacks']} | "
        f"{killed['bytes_lost']} bytes |"
    )
    lines += [
        "",
        f"Kills landed at steps {killed['steps_at_kills']}; {killed['mid_write_kills']} of them "
        "in the middle of a write (a temporary file was left, and removed by the resume: "
        f"{killed['stale_left']} left at the end). The run: `selfsup pretrain "
        f"{' '.join(KILLED_RUN)}`.",
    ]
    missed = inputs["failures"] + disks.get("missed", [])
    if missed:
        lines += ["", "Missed:", *(f"- {f}" for f in missed)]
    lines += [
        "",
        f"Machine: {_machine()}; load before {load_before}; {minutes:.1f} minutes. Reproduce: "
        f"`python benchmarks/robustness.py --kills {args.kills}`.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--reuse", action="store_true", help=f"reuse the parts done ({PARTS})")
    args = parser.parse_args()
    load_before = load_average()
    # Each part's result is kept as soon as it is done: a failure later costs only that part.
    done = json.loads(PARTS.read_text()) if args.reuse and PARTS.exists() else {}
    parts = {
        "inputs": lambda work: broken_inputs(work),
        "disks": lambda work: disk_faults(work),
        "kills": lambda work: kills(work, args.kills, args.seed),
    }
    for name, part in parts.items():
        if name in done:
            print(f"{name}: reused from {PARTS}", flush=True)
            continue
        begun = time.time()
        with tempfile.TemporaryDirectory(prefix=f"robustness-{name}-") as folder:
            done[name] = {**part(Path(folder)), "minutes": (time.time() - begun) / 60}
        PARTS.write_text(json.dumps(done))
    minutes = sum(part["minutes"] for part in done.values())
    text = render(done["inputs"], done["disks"], done["kills"], args, load_before, minutes)
    print(text)
    if not args.no_write:
        write_section("robustness", text)


if __name__ == "__main__":
    main()
