"""A loss that turns NaN stops the run with the step named, and no checkpoint keeps its weights.

On a GPU the loop reads each step's loss only after queueing the next (so the GPU never waits
for the host), so the error comes one step later than the bad step; it must still name that
step. On a CPU it reads the loss at once; both are tested here.
"""

import re

import pytest
import torch

import selfsup
from selfsup.engine.checkpoint import load_checkpoint
from selfsup.methods.simclr import SimCLR


@pytest.mark.parametrize("read_late", [False, True])
def test_a_nan_loss_names_its_step_and_is_never_checkpointed(
    read_late: bool, clusters_npz, tmp_path, monkeypatch
) -> None:
    if read_late:  # as on a GPU: each loss read after the next step is queued
        monkeypatch.setattr("selfsup.engine.train.READ_AT_ONCE", frozenset())
    loss = SimCLR.loss
    calls = {"n": 0}

    def turns_nan(self, views: list[torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        value = loss(self, views)
        return value * float("nan") if calls["n"] == 6 else value

    monkeypatch.setattr(SimCLR, "loss", turns_nan)
    run_dir = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step") as err:
        selfsup.pretrain(
            str(clusters_npz),
            method="simclr",
            epochs=3,
            batch_size=32,
            out=str(run_dir),
            checkpoint_every=1e-9,  # a checkpoint after every step
            monitor_items=0,
            online_probe=False,
        )
    # The sixth loss is the fifth training step's (the memory plan computes one first):
    # steps 0-3 ran, step 4 turned NaN.
    assert re.search(r"at step (\d+) ", str(err.value)).group(1) == "4"
    # The weights of the steps before it are saved; the bad step's never are.
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["state"]["step"] == 4
    weights = checkpoint["method"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
