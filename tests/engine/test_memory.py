"""The memory plan: measured before training, the default batch lowered to fit, a given one
refused with the numbers, and the default image side from the accelerator."""

import lightning
import numpy as np
import pytest
import torch

from selfsup.config import ConfigError
from selfsup.engine.memory import MemoryPlan, measure_step, plan_batch
from selfsup.methods import build_method
from selfsup.modalities.image import build_image_encoder, method_views, training_side


def _step(side: int, width: int = 8):
    encoder = build_image_encoder("resnet18", 3, side, width=width)
    method = build_method("simclr", encoder)
    views, _ = method_views(method, side, 3)
    fabric = lightning.Fabric(accelerator="cpu", devices=1, precision="32-true")
    return method, views, fabric


def test_the_measured_activations_grow_with_the_side_and_leave_the_model_as_it_was() -> None:
    plans = {}
    for side in (32, 64):
        method, views, fabric = _step(side)
        before = {k: v.clone() for k, v in method.state_dict().items()}
        items = torch.rand(4, 3, side, side)
        rng = torch.get_rng_state()
        plans[side] = measure_step(method, views, items, fabric)
        assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())
        assert torch.equal(rng, torch.get_rng_state())
    # Activations scale with the pixels (4x here); weights do not change with the side.
    ratio = plans[64].per_item / plans[32].per_item
    assert 3.0 < ratio < 4.5, ratio
    assert plans[64].fixed == plans[32].fixed
    assert plans[32].available > 0


def test_a_default_batch_is_lowered_to_fit_and_a_given_one_is_refused() -> None:
    plan = MemoryPlan(fixed=100 * 2**20, per_item=48 * 2**20, loader_per_item=0,
                      available=8 * 2**30)  # fmt: skip
    assert plan_batch(plan, 64, given=True, what="step")[0] == 64
    batch, line = plan_batch(plan, 256, given=False, what="resnet18 at 224 px")
    assert batch == 64 and "lowered from 256 to 64" in line
    assert plan.fits(batch) and not plan.fits(2 * batch)
    with pytest.raises(ConfigError, match=r"needs about 13\.3 GB at batch 256.*--batch-size 64"):
        plan_batch(plan, 256, given=True, what="resnet18 at 224 px")
    tiny = MemoryPlan(fixed=0, per_item=2**30, loader_per_item=0, available=2**30)
    with pytest.raises(ConfigError, match=r"give --precision bf16, or a shorter --window$"):
        plan_batch(tiny, 256, given=False, what="step", remedy="a shorter --window")


def test_the_default_training_side_follows_the_accelerator() -> None:
    assert training_side(480, "cpu") == 128 and training_side(480, "gpu") == 224
    assert training_side(28, "gpu") == 28


def test_photos_train_at_the_cpu_side_with_a_batch_that_leaves_several_steps(tmp_path) -> None:
    from PIL import Image

    from selfsup.run import pretrain

    rng = np.random.default_rng(0)
    for i in range(40):
        pixels = (rng.random((60, 80, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).resize((640, 480)).save(tmp_path / f"{i:02d}.jpg")
    run = pretrain(tmp_path, epochs=1, backbone_options={"width": 8}, out=tmp_path / "run",
                   show_progress=False)  # fmt: skip
    cfg = run.config
    assert (cfg["backbone"], cfg["image_size"], cfg["batch_size"]) == ("resnet18", 128, 16)
    assert cfg["num_workers"] >= 1
    log = (tmp_path / "run" / "train.log").read_text()
    assert "memory plan: resnet18 at 128 px" in log


class _Whole(torch.nn.Module):
    """Series views of the ``none`` recipe: the batch as it is."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x]


def test_a_ts2vec_plan_covers_its_largest_random_crop_and_the_backward_pass() -> None:
    from selfsup.core.memory import PeakTracker
    from selfsup.modalities.series import build_series_encoder

    torch.manual_seed(0)
    method = build_method("ts2vec", build_series_encoder("ts2vec", in_channels=2, hidden=8,
                                                         out_dim=16, depth=3))  # fmt: skip
    fabric = lightning.Fabric(accelerator="cpu", devices=1, precision="32-true")
    items = torch.randn(4, 2, 600)
    plan = measure_step(method, _Whole(), items[:2], fabric)
    assert all(p.grad is None for p in method.parameters())
    # Real steps (random crops, forward and backward) on a batch of 4 stay within the plan;
    # their (2T x 2T) temporal similarities are most of it, so the full crop is needed.
    peaks = []
    for _ in range(6):
        with PeakTracker([*method.parameters(), items]) as tracker:
            method([items]).backward()
        peaks.append(tracker.peak)
        method.zero_grad(set_to_none=True)
    assert max(peaks) <= plan.per_item * 4, (max(peaks), plan.per_item)
    assert plan.per_item * 4 > 2 * 4 * (2 * 600) ** 2 * 4  # two similarity copies at least
    half = measure_step(method, _Whole(), items[:2, :, :300], fabric)
    assert plan.per_item / half.per_item > 3.0  # quadratic in the length


def test_text_is_planned_on_its_longest_documents() -> None:
    from selfsup.data.text import TextSource
    from selfsup.run import planning_items

    texts = [f"note {i}" for i in range(50)] + ["a long " * 40]
    items = planning_items(TextSource(texts, max_length=64))
    assert items.shape[0] >= 2 and items.shape[1] == 64


def test_folders_get_more_decoding_workers_when_a_gpu_trains(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from selfsup.data.arrays import ArraySource
    from selfsup.data.image_folder import ImageFolderSource
    from selfsup.modalities import get_modality

    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    folder, image = ImageFolderSource(tmp_path), get_modality("image")
    for cores, on_cpu, on_gpu in [(2, 1, 1), (8, 4, 6), (16, 4, 14), (64, 4, 16)]:
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert image.default_workers(folder) == on_cpu
        assert image.default_workers(folder, accelerated=True) == on_gpu
    assert image.default_workers(ArraySource(np.zeros((4, 8, 8))), accelerated=True) == 0
