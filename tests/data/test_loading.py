"""Loader workers on a CPU yield the cores to the training process."""

import os

from torch.utils.data import DataLoader, Dataset

from selfsup.data.loading import keep_batch, yield_to_training


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
