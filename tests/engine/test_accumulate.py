"""Gradient accumulation (``--accumulate N``): N batches of B make one optimizer step of N x B
items; for an objective whose loss is a mean over items, the step equals one on N x B."""

import types

import lightning
import pytest
import torch
from torch import nn

import selfsup
from selfsup.engine.train import TrainState, training_step


class ItemwiseLoss(nn.Module):
    """A stand-in method whose loss is a mean over items (no batch norm, no negatives)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(6, 3)

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        return ((self.layer(views[0]) - views[1][:, :3]) ** 2).mean()

    def on_step_end(self, progress: float) -> None:
        pass


def one_step(items: torch.Tensor, accumulate: int) -> tuple[torch.Tensor, float]:
    torch.manual_seed(0)
    model = ItemwiseLoss()
    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    wrapped, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.5))
    t = types.SimpleNamespace(
        model=wrapped, method=model, views=lambda x: [x, x.flip(1)], probe=None,
        optimizer=optimizer, accumulate=accumulate,
    )  # fmt: skip
    loss = training_step(t, items, 0.5, fabric, TrainState(total_steps=1))
    return torch.cat([p.detach().flatten() for p in model.parameters()]), loss.item()


@pytest.mark.parametrize("accumulate", [2, 4])
def test_an_accumulated_step_equals_one_step_on_the_whole_batch(accumulate) -> None:
    items = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    whole, whole_loss = one_step(items, 1)
    parts, parts_loss = one_step(items, accumulate)
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-6)
    assert parts_loss == pytest.approx(whole_loss, rel=1e-5)


def test_a_run_with_accumulation_steps_over_the_larger_batch(tmp_path, clusters_npz) -> None:
    options = {"method": "byol", "epochs": 2, "precision": "fp32", "monitor_items": 0,
               "backbone_options": {"width": 8}, "show_progress": False}  # fmt: skip
    run = selfsup.pretrain(clusters_npz, batch_size=16, accumulate=4, out=tmp_path / "a", **options)
    # 256 items / (16 x 4) = 4 optimizer steps an epoch, as with batches of 64.
    assert run.summary["steps"] == 8 and run.config["accumulate"] == 4
    log = (tmp_path / "a" / "train.log").read_text()
    assert "accumulation: 4 batches of 16 per optimizer step (64 items)" in log
    plain = selfsup.pretrain(clusters_npz, batch_size=64, out=tmp_path / "b", **options)
    assert plain.summary["steps"] == run.summary["steps"]
    resumed = selfsup.pretrain(resume=tmp_path / "a", epochs=3, show_progress=False)
    assert resumed.summary["steps"] == 12


def test_the_methods_whose_loss_couples_a_batch_say_so() -> None:
    from selfsup.methods import METHODS

    coupled = {name for name, cls in METHODS.items() if cls.batch_coupling}
    assert {"simclr", "mocov3", "nnclr", "vicreg", "barlowtwins", "swav", "simcse"} <= coupled
    assert not coupled & {"byol", "simsiam", "mae", "ijepa", "mlm", "distill"}
