"""Two processes with batch B train as one process with batch 2B: the same loss and, after a
few steps, the same weights (with ``SyncBatchNorm`` for the batch norms), for every image
method where it should hold. Real DDP: two processes on gloo, the views fixed."""

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

#: Items per process and steps.
BATCH, STEPS = 8, 3
#: Each method with small heads: those that gather across processes (SimCLR, MoCo v3, VICReg,
#: Barlow Twins), those that all-reduce what couples the batch (SwAV's Sinkhorn sums, DINO's
#: centre), those whose loss is a mean of per-item terms (BYOL, SimSiam), and NNCLR, whose
#: support queue every process fills with the gathered projections of all.
METHODS = {
    "simclr": {"projection_dim": 16, "hidden_dim": 32},
    "mocov3": {"projection_dim": 16, "hidden_dim": 32},
    "vicreg": {"projection_dim": 16, "hidden_dim": 32},
    "barlowtwins": {"projection_dim": 16, "hidden_dim": 32},
    "swav": {"projection_dim": 16, "hidden_dim": 32, "num_prototypes": 10},
    "dino": {"hidden_dim": 32, "bottleneck_dim": 16, "out_dim": 20},
    "byol": {"projection_dim": 16, "hidden_dim": 32},
    "simsiam": {"projection_dim": 16, "hidden_dim": 32},
    "nnclr": {"projection_dim": 16, "hidden_dim": 32, "queue_size": 24},  # wraps in 3 steps
}


def make_method(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    encoder = Encoder(build_backbone("small-cnn", in_channels=1, image_size=12, width=8))
    return build_method(name, encoder, **METHODS[name])


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
        (model.module if hasattr(model, "module") else model).on_step_end(0.5)  # EMA updates
        losses.append(loss.item())
    if dist.is_initialized():  # the mean of the processes' losses: a per-item loss is local
        mean = torch.tensor(losses)
        dist.all_reduce(mean)
        losses = (mean / dist.get_world_size()).tolist()
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
        dist.barrier()  # neither process leaves (closing its connections) before the other
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", sorted(METHODS))
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
