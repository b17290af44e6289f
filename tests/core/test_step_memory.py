"""Memory freed and made again by repeated steps stays in the process (glibc), is given back
where the process outgrows its first steps, and glibc's settings return afterwards."""

import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import selfsup
from selfsup.core import memory
from selfsup.core.memory import StepMemory, steps_reuse_memory

glibc = pytest.mark.skipif(memory._mallopt() is None, reason="the C library is not glibc")

#: A buffer above glibc's largest mmap threshold (32 MB): mapped on its own by default.
BIG = 64 * 2**20


#: Run in a fresh process: what glibc does with a freed buffer depends on what the process
#: made and freed before (earlier tests).
FAULTS = """
import json, resource, torch
from selfsup.core.memory import steps_reuse_memory

def faults(times=4):  # page faults of making, filling and freeing a 64 MB buffer
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(2**24)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

seen = {"outside": faults()}
with steps_reuse_memory(sizes_repeat=False) as memory:
    seen["varying_kept"] = memory.kept
    seen["varying"] = faults()
with steps_reuse_memory() as memory:
    seen["kept"] = memory.kept
    faults(8)  # the heap grows for the first few (their holes are reused after that)
    seen["inside"] = faults(8)
    with steps_reuse_memory():  # nested: the outer one restores
        pass
    seen["after_inner"] = faults(8)
print(json.dumps(seen))
"""


@glibc
def test_a_buffer_freed_and_made_again_is_not_faulted_back_inside_the_steps() -> None:
    done = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    pages = BIG // resource.getpagesize()
    # Outside: each buffer mapped anew, its pages faulted in again; so where items vary.
    assert seen["outside"] > 3 * pages, seen
    assert not seen["varying_kept"] and seen["varying"] > 3 * pages, seen
    # Inside: 8 buffers made again without faulting 8 buffers' pages (the heap may still
    # grow once: glibc's aligned buffers do not always fit the hole the last one left).
    assert seen["kept"] and seen["inside"] < 2 * pages, seen
    assert seen["after_inner"] < 2 * pages, seen


@glibc
def test_glibc_is_set_on_entering_the_outer_steps_and_restored_on_leaving_it(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(memory, "_mallopt", lambda: lambda param, value: calls.append(param) or 1)
    monkeypatch.setattr(memory, "give_back_freed", lambda: calls.append("trim") or True)
    with steps_reuse_memory():
        with steps_reuse_memory():
            pass
        assert calls == [p for p, _ in memory._DURING_STEPS]
    assert calls[len(memory._DURING_STEPS) :] == [p for p, _ in memory._AFTER_STEPS] + ["trim"]
    # Where sizes vary, nothing is set.
    calls.clear()
    with steps_reuse_memory(sizes_repeat=False):
        pass
    assert calls == []


def test_the_heap_is_given_back_when_a_step_ends_past_the_bar(monkeypatch) -> None:
    held = iter([100, 120, 110, 125, 140, 100, 200, 200, 150])
    monkeypatch.setattr(memory, "resident_bytes", lambda: next(held))
    given = []
    monkeypatch.setattr(memory, "give_back_freed", lambda: given.append(1) or True)
    steps = StepMemory(kept=True)
    for _ in range(3):  # 100, 120, 110: the bar is the most, 120
        steps.after_step()
    assert (steps.bar, steps.trims) == (120, 0)
    steps.after_step()  # 125 <= 132: kept
    assert steps.trims == 0
    steps.after_step()  # 140 > 132: given back, 100 left
    assert (steps.trims, steps.bar) == (1, 120)
    steps.after_step()  # 200: given back, still 200 (live tensors): the bar rises
    assert (steps.trims, steps.bar) == (2, 200)
    steps.after_step()  # 150: under the new bar
    assert steps.trims == 2 and len(given) == 2
    idle = StepMemory(kept=False)
    idle.after_step()
    assert idle.steps == 0


def test_training_and_embedding_report_each_step(tmp_path, monkeypatch) -> None:
    counted = []
    original = StepMemory.after_step
    monkeypatch.setattr(StepMemory, "after_step", lambda self: counted.append(1) or original(self))
    x = np.random.default_rng(0).standard_normal((96, 6)).astype(np.float32)
    run = selfsup.pretrain(x, modality="tabular", steps=5, batch_size=32, monitor_items=0,
                           show_progress=False, out=tmp_path / "run")  # fmt: skip
    trained = len(counted) if memory._mallopt() is not None else 5
    assert trained == 5, counted
    run.embed(x, batch_size=32)
    if memory._mallopt() is not None:
        assert len(counted) == 5 + 3
