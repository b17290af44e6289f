"""Two processes with batch B train as one process with batch 2B: the same loss and, after a
few steps, the same weights, for the objectives that gather across processes (with
``SyncBatchNorm`` for the batch norms). Real DDP: two processes on gloo, the views fixed."""

import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from selfsup.backbones import build_backbone
from selfsup.encoder import Encoder
from selfsup.methods import build_method
from selfsup.methods.distributed import sync_batch_norm

#: Items per process, steps, and the objectives that gather across processes.
BATCH, STEPS = 8, 3
GATHERING = ["simclr", "mocov3", "vicreg", "barlowtwins"]


def make_method(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    encoder = Encoder(build_backbone("small-cnn", in_channels=1, image_size=12, width=8))
    return build_method(name, encoder, projection_dim=16, hidden_dim=32)


def fixed_views(items: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.rand(items, 1, 12, 12, generator=generator) for _ in range(2)]


def train(model: torch.nn.Module, views: list[torch.Tensor]) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(STEPS):
        loss = model(views)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def worker(rank: int, name: str, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model = DistributedDataParallel(sync_batch_norm(make_method(name)))
        mine = [v[rank * BATCH : (rank + 1) * BATCH] for v in fixed_views(2 * BATCH)]
        losses = train(model, mine)
        if rank == 0:
            torch.save({"losses": losses, "state": model.module.state_dict()}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", GATHERING)
def test_two_processes_of_b_train_as_one_process_of_2b(name, tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "ddp.pt"
    with tempfile.NamedTemporaryFile(dir=tmp_path, delete=True) as rendezvous:
        init_file = rendezvous.name
    mp.spawn(worker, args=(name, init_file, str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)

    single = make_method(name)
    losses = train(single, fixed_views(2 * BATCH))

    assert ddp["losses"] == pytest.approx(losses, rel=1e-4, abs=1e-5)
    reference = single.state_dict()
    for key, value in ddp["state"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, reference[key], rtol=1e-4, atol=1e-5, msg=key)


def test_sync_batch_norm_on_one_process_is_batch_norm() -> None:
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4))
    synced = sync_batch_norm(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4)))
    synced.load_state_dict(plain.state_dict())
    x = torch.randn(16, 5)
    frozen = sync_batch_norm(torch.nn.BatchNorm1d(4).requires_grad_(False))
    assert not any(p.requires_grad for p in frozen.parameters())  # a momentum copy's
    torch.testing.assert_close(synced(x), plain(x))
    torch.testing.assert_close(synced[1].running_var, plain[1].running_var)
