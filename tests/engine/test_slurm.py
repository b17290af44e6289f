"""Under SLURM (``srun``), the Fabric a run builds takes its ranks and master address from
SLURM's variables, and a ``--devices``/``--num-nodes`` that contradicts the job is refused in
one line that says which."""

import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment

from selfsup.config import PretrainConfig
from selfsup.run import build_fabric

#: What ``srun`` sets for task 3 of a job of 2 nodes x 2 tasks (the second task of node 1).
SLURM_TASK = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "pretrain",
    "SLURM_NNODES": "2",
    "SLURM_NTASKS": "4",
    "SLURM_NTASKS_PER_NODE": "2",
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_NODELIST": "gpu[07-08]",
}


@pytest.fixture
def slurm_task(monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in SLURM_TASK.items():
        monkeypatch.setenv(name, value)


def test_the_fabric_of_a_slurm_task_takes_its_ranks_from_slurm(slurm_task) -> None:
    cfg = PretrainConfig(data="digits", accelerator="cpu", devices=2, num_nodes=2)
    fabric = build_fabric(cfg)
    environment = fabric._connector.cluster_environment  # what Fabric detected
    assert isinstance(environment, SLURMEnvironment)
    assert (fabric.world_size, fabric.global_rank, fabric.local_rank, fabric.node_rank) == (
        4, 3, 1, 1
    )  # fmt: skip
    assert environment.main_address == "gpu07"  # the first node of the list
    assert environment.main_port == 15000 + 4242  # from the job id: one port per job


def test_devices_that_contradict_the_slurm_job_are_refused(slurm_task) -> None:
    # Checked when the run launches its processes, before anything else happens.
    with pytest.raises(ValueError, match=r"ntasks-per-node=2.*devices=2"):
        build_fabric(
            PretrainConfig(data="digits", accelerator="cpu", devices=4, num_nodes=2)
        ).launch()
    with pytest.raises(ValueError, match=r"nodes=2.*num_nodes=2"):
        build_fabric(
            PretrainConfig(data="digits", accelerator="cpu", devices=2, num_nodes=1)
        ).launch()


def test_auto_is_the_default_accelerator_and_picks_the_gpu_precision(monkeypatch) -> None:
    import torch

    from selfsup.core.precision import resolve_precision, uses_gpu

    assert PretrainConfig(data="digits").accelerator == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert uses_gpu("auto") and resolve_precision("auto", "auto") == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not uses_gpu("auto") and resolve_precision("fp32", "auto") == "32-true"


def test_a_gpu_asked_for_where_there_is_none_is_one_line(monkeypatch) -> None:
    import torch

    from selfsup.config import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"--accelerator gpu: PyTorch sees no GPU.*auto"):
        build_fabric(PretrainConfig(data="digits", accelerator="gpu"))
