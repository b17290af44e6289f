"""Loader workers on a CPU yield the cores to the training process, and give freed memory back."""

import os

from torch.utils.data import DataLoader, Dataset

from selfsup.data.loading import keep_batch, reading_worker, yield_to_training


class _Niceness(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return os.nice(0)


def test_a_worker_runs_at_the_lowest_priority_and_the_trainer_does_not() -> None:
    before = os.nice(0)
    loader = DataLoader(
        _Niceness(), batch_size=None, num_workers=1, collate_fn=keep_batch,
        worker_init_fn=yield_to_training,
    )  # fmt: skip
    assert list(loader) == [min(19, before + 19)] * 2
    assert os.nice(0) == before


class _Mapped(Dataset):
    """Whether a 2 MB block is mapped on its own (and so given back when freed) after a
    30 MB one was freed, which raises glibc's default threshold to 30 MB."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> bool:
        import ctypes

        import numpy as np

        class Info(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost",
            )]  # fmt: skip

        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        big = np.ones(30 << 20, np.uint8)
        del big
        before = libc.mallinfo2().hblks
        block = np.ones(2 << 20, np.uint8)
        mapped = libc.mallinfo2().hblks > before
        del block
        return mapped


def test_a_reading_worker_gives_freed_memory_back() -> None:
    """A worker reading a call centre's clips (64 log-mels a batch) grew from 0.5 to 2.5-3
    GB: glibc kept freed blocks of up to 32 MB in a heap that fragmented. A reading worker
    maps blocks of 1 MB and more on their own, which are unmapped when freed."""
    import platform

    import pytest

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    # Workers started afresh: a worker forked from a long test session may find a free
    # block of 2 MB in the heap it inherits, which malloc takes before mapping one.
    fresh = {"batch_size": None, "num_workers": 1, "collate_fn": keep_batch,
             "multiprocessing_context": "spawn"}  # fmt: skip
    plain = DataLoader(_Mapped(), **fresh)
    assert list(plain) == [False]  # the default: the freed 30 MB raised the threshold
    for init in (yield_to_training, reading_worker):
        assert list(DataLoader(_Mapped(), worker_init_fn=init, **fresh)) == [True]


class _SignalledSelf(Dataset):
    """Sends SIGINT to its own worker (as a terminal's Ctrl-C), then says it is still there."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> str:
        import signal
        import time

        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # a Python handler runs between two bytecodes
        return "read"


def test_a_reading_worker_outlives_ctrl_c() -> None:
    """A terminal's Ctrl-C reaches the loader's workers too: they leave it to the training
    process, which ends its step first (and may need another batch to end it together
    with the other DDP processes)."""
    for init in (yield_to_training, reading_worker):
        loader = DataLoader(
            _SignalledSelf(), batch_size=None, num_workers=1, collate_fn=keep_batch,
            worker_init_fn=init,
        )  # fmt: skip
        assert list(loader) == ["read"]


class _WhoReads:
    """A source whose batch is the process id of the process that read it."""

    def read_training_batch(self, rows: list[int]) -> int:
        return os.getpid()


def test_one_reading_worker_serves_every_epoch_and_ends_with_the_run() -> None:
    """A worker forked anew each epoch slows short epochs: the training process's pages are
    faulted back after each fork."""
    import time

    import torch

    from selfsup.data.loading import EpochReader

    with EpochReader(_WhoReads(), 1, torch.device("cpu"), seed=0) as reader:
        readers = [set(reader.epoch([[0], [1], [2]])) for _ in range(3)]
        cut = next(iter(reader.epoch([[0], [1], [2], [3]])))  # an epoch a budget cut short
        after_cut = list(reader.epoch([[4], [5]]))
    worker = readers[0].pop()
    assert worker != os.getpid()
    assert readers[1:] == [{worker}, {worker}] and cut == worker and after_cut == [worker] * 2
    deadline = time.time() + 10
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"  # a zombie has ended
