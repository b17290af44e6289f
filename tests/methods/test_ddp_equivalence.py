"""Two processes with batch B train as one process with batch 2B: the same loss and, after a
few steps, the same weights (with ``SyncBatchNorm`` for the batch norms), for every method
where it should hold. Real DDP: two processes on gloo, the views fixed; one pair of processes
trains every case in turn (process start-up is most of the cost).

Where it cannot hold exactly, and why (each method's docstring says the same):

- I-JEPA draws one block scale and aspect per batch and cuts every item's context to the
  batch's shortest, so its masks depend on the batch, not only on the item;
- TS2Vec draws one crop length and its offsets per batch;
- VIME, MLM and Sent2Vec are means of per-item (per-token) terms, but their masks and
  negatives are drawn at random inside the loss, per process.

Distillation's loss is a mean over items, and so is MAE's and MSF's (its memory bank gets
the targets of every process, in rank order) (a constant number of masked
patches each); the test gives every MAE item the same mask so that both runs draw it alike.
SimCSE's augmentation is dropout, drawn per process; the test turns it off to compare the rest
exactly (and BYOL-A's, whose mixup and crops are views, fixed here).
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import selfsup.methods.mae as mae_module
from selfsup.backbones import build_backbone
from selfsup.encoder import Encoder
from selfsup.methods import build_method
from selfsup.methods.distributed import sync_batch_norm
from selfsup.modalities.audio import build_audio_encoder
from selfsup.modalities.tabular import build_tabular_encoder
from selfsup.modalities.text import build_text_encoder

#: Items per process and steps.
BATCH, STEPS = 8, 3
#: Image methods with small heads: those that gather across processes (SimCLR, MoCo v3,
#: VICReg, Barlow Twins), those that all-reduce what couples the batch (SwAV's Sinkhorn sums,
#: DINO's centre), those whose loss is a mean of per-item terms (BYOL, SimSiam), and NNCLR,
#: whose support queue every process fills with the gathered projections of all.
IMAGE_METHODS = {
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


def _image(name: str) -> torch.nn.Module:
    encoder = Encoder(build_backbone("small-cnn", in_channels=1, image_size=12, width=8))
    return build_method(name, encoder, **IMAGE_METHODS[name])


def _mae() -> torch.nn.Module:
    vit = build_backbone("vit-tiny", in_channels=1, image_size=12, patch_size=4, depth=1)
    return build_method("mae", Encoder(vit), decoder_dim=16, decoder_depth=1, decoder_heads=2)


def _scarf() -> torch.nn.Module:
    return build_method("scarf", build_tabular_encoder(numeric=6, hidden=16, depth=2), head_dim=8)


def _simcse() -> torch.nn.Module:
    # Dropout is SimCSE's augmentation, drawn per process: off, to compare the rest.
    encoder = build_text_encoder("text-transformer", 50, 10, dim=16, depth=1, heads=2, dropout=0.0)
    return build_method("simcse", encoder)


def _distill() -> torch.nn.Module:
    teacher = Encoder(build_backbone("small-cnn", in_channels=1, image_size=12, width=4))
    student = Encoder(build_backbone("small-cnn", in_channels=1, image_size=12, width=8))
    return build_method("distill", student, teacher=teacher)


def _msf() -> torch.nn.Module:
    # A bank of 24 wraps in the third step of 16 items: the FIFO is compared too.
    encoder = Encoder(build_backbone("small-cnn", in_channels=1, image_size=12, width=8))
    return build_method("msf", encoder, k=3, bank_size=24)


def _byola() -> torch.nn.Module:
    encoder = build_audio_encoder("byola-cnn", 16, 24, feature_dim=16, width=4, dropout=0.0)
    return build_method("byola", encoder, projection_dim=8, hidden_dim=16)


def _spectrograms(items: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(items, 1, 16, 24, generator=generator) for _ in range(2)]


def _images(items: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.rand(items, 1, 12, 12, generator=generator) for _ in range(2)]


def _rows(items: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(items, 6, generator=generator) for _ in range(2)]


def _texts(items: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (items, 10), generator=generator)
    ids[::3, 7:] = 0  # some padding
    return [ids]


#: Each case: the method (built from seed 0) and its fixed views for a number of items.
CASES: dict[str, tuple[Callable[[], torch.nn.Module], Callable[[int], list[torch.Tensor]]]] = {
    **{name: ((lambda n=name: _image(n)), _images) for name in IMAGE_METHODS},
    "mae": (_mae, _images),
    "byola": (_byola, _spectrograms),
    "distill": (_distill, _images),
    "msf": (_msf, _images),
    "scarf": (_scarf, _rows),
    "simcse": (_simcse, _texts),
}


def same_mask_for_every_item(
    batch_size: int, num_patches: int, mask_ratio: float, device=None, generator=None
):
    """MAE's masking with one draw shared by every item, so 2 x B and 2B mask alike."""
    keep, mask = REAL_MASKING(1, num_patches, mask_ratio, device, torch.Generator().manual_seed(3))
    return keep.expand(batch_size, -1), mask.expand(batch_size, -1)


REAL_MASKING = mae_module.random_masking


def make_method(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return CASES[name][0]()


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


#: The file rank 0 writes once both processes have trained every case (after a barrier).
TRAINED = "trained"


def worker(rank: int, names: list[str], init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    mae_module.random_masking = same_mask_for_every_item
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        for name in names:
            model = DistributedDataParallel(sync_batch_norm(make_method(name)))
            views = CASES[name][1](2 * BATCH)
            mine = [v[rank * BATCH : (rank + 1) * BATCH] for v in views]
            losses = train(model, mine)
            if rank == 0:
                state = model.module.state_dict()
                torch.save({"losses": losses, "state": state}, Path(out) / f"{name}.pt")
        dist.barrier()  # neither process leaves (closing its connections) before the other
        if rank == 0:  # both trained every case and rank 0 saved them all
            (Path(out) / TRAINED).touch()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """Every case trained by one pair of DDP processes; the folder of their results."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path_factory.mktemp("ddp")
    with tempfile.NamedTemporaryFile(dir=out, delete=True) as rendezvous:
        init_file = rendezvous.name
    try:
        mp.spawn(worker, args=(sorted(CASES), init_file, str(out)), nprocs=2, join=True)
    except mp.ProcessExitedException as error:
        # About one pair in 30 aborts in gloo's teardown ("terminate called without an
        # active exception") after the barrier that follows the training: its results
        # stand. A process lost before the barrier leaves no mark and fails the tests.
        if error.signal_name != "SIGABRT" or not (out / TRAINED).exists():
            raise
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_processes_of_b_train_as_one_process_of_2b(
    name: str, two_processes: Path, monkeypatch
) -> None:
    monkeypatch.setattr(mae_module, "random_masking", same_mask_for_every_item)
    ddp = torch.load(two_processes / f"{name}.pt", weights_only=True)

    single = make_method(name)
    losses = train(single, CASES[name][1](2 * BATCH))

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
    frozen = sync_batch_norm(torch.nn.BatchNorm1d(4).requires_grad_(False).eval())
    assert not any(p.requires_grad for p in frozen.parameters())  # a momentum copy's
    assert not frozen.training  # a frozen teacher's stays in evaluation mode
    torch.testing.assert_close(synced(x), plain(x))
    torch.testing.assert_close(synced[1].running_var, plain[1].running_var)
