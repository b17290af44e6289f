"""An interrupted and resumed run ends with exactly the weights of an uninterrupted one, and
``--resume`` extends a finished run or refuses what it cannot do."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import selfsup.engine.train as train_module
from selfsup.config import ConfigError
from selfsup.engine.checkpoint import load_checkpoint
from selfsup.run import pretrain

OPTIONS = {
    "method": "byol",  # the most state: online, target (EMA) and optimizer moments
    "epochs": 8,
    "batch_size": 32,
    "precision": "fp32",
    "backbone_options": {"width": 4},
    "seed": 3,
}


def _cli_args(data, out) -> list[str]:
    return [
        sys.executable, "-m", "selfsup", "pretrain", str(data), "--method", "byol",
        "--epochs", "8", "--batch-size", "32", "--precision", "fp32", "--seed", "3",
        "--out", str(out), "--config", str(out.parent / "width.yaml"),
        "--checkpoint-every", "0.0005",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def straight(clusters_npz_module, tmp_path_factory):
    """The run never interrupted, which every interrupted one must end as (its data: the
    same 256 images as ``clusters_npz``, in another folder)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    return pretrain(clusters_npz_module, out=out, show_progress=False, **OPTIONS)


def _same_weights(a, b) -> bool:
    a, b = a.encoder.state_dict(), b.encoder.state_dict()
    return all(torch.equal(a[k], b[k]) for k in a)


def test_killed_then_resumed_run_equals_uninterrupted_run(tmp_path, clusters_npz, straight) -> None:
    (tmp_path / "width.yaml").write_text("backbone_options: {width: 4}\n")
    interrupted = tmp_path / "interrupted"
    args = _cli_args(clusters_npz, interrupted)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = interrupted / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # a hard crash: no chance to clean up
    proc.wait()
    assert checkpoint.exists(), proc.stderr.read().decode()
    state = load_checkpoint(checkpoint)["state"]
    assert state["step"] < state["total_steps"], "the run finished before it was interrupted"
    assert not (interrupted / "train.json").exists()

    resumed = pretrain(resume=interrupted, show_progress=False)

    assert resumed.summary["steps"] == straight.summary["steps"]
    assert _same_weights(resumed, straight)
    # The metrics of the interrupted epoch were rewritten, not duplicated.
    steps = (interrupted / "metrics.csv").read_text().splitlines()[1:]
    assert len(steps) == len({row.split(",")[0] for row in steps})


def test_ctrl_c_stops_after_the_step_with_a_checkpoint_that_resumes_exactly(
    tmp_path, clusters_npz, straight
) -> None:
    """Ctrl-C reaches the whole process group (the loader's reading worker too, which must
    not die of it): the run ends its step, writes a checkpoint, says how to go on and exits
    with 130; resumed, it ends with the weights of a run never stopped."""
    (tmp_path / "width.yaml").write_text("backbone_options: {width: 4}\nlog_every: 1\n")
    out = tmp_path / "stopped"
    args = [
        sys.executable, "-m", "selfsup", "pretrain", str(clusters_npz), "--method", "byol",
        "--epochs", "8", "--batch-size", "32", "--precision", "fp32", "--seed", "3",
        "--out", str(out), "--config", str(tmp_path / "width.yaml"), "--num-workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # Ctrl-C as in a terminal, where Python catches it: a suite started in the background
        # of a script ignores SIGINT, and its children with it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not (out / "metrics.csv").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)  # metrics.csv: written at the first step (log_every: 1)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
    stdout, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 130, stderr[-2000:]
    state = load_checkpoint(out / "checkpoints" / "last.ckpt")["state"]
    assert 0 < state["step"] < state["total_steps"], "the run finished before Ctrl-C"
    assert "Ctrl-C: stopping after this step, with a checkpoint" in stderr
    told = (
        f"stopped by Ctrl-C after step {state['step']} of {state['total_steps']}; its "
        f"checkpoint is in {out}: `selfsup pretrain --resume {out}` goes on from there"
    )
    assert stdout.strip().splitlines()[-1] == told
    assert (out / "train.log").read_text().strip().endswith(told)
    assert not (out / "train.json").exists()

    resumed = pretrain(resume=out, show_progress=False)
    assert resumed.summary["steps"] == straight.summary["steps"]
    assert _same_weights(resumed, straight)


def test_run_killed_again_and_again_equals_uninterrupted_run(
    tmp_path, clusters_npz, straight
) -> None:
    """kill -9 at random moments (mid-step, mid-checkpoint-write), three times in a row, each
    time resuming from whatever the last kill left: the end is the uninterrupted run."""
    (tmp_path / "width.yaml").write_text("backbone_options: {width: 4}\n")
    out = tmp_path / "killed"
    checkpoint = out / "checkpoints" / "last.ckpt"
    rng = random.Random(7)
    steps_at_kill = []
    for attempt in range(3):
        resume = [sys.executable, "-m", "selfsup", "pretrain", "--resume", str(out)]
        args = _cli_args(clusters_npz, out) if attempt == 0 else resume
        before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:  # until a new checkpoint
            if checkpoint.exists() and checkpoint.stat().st_mtime_ns != before:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))  # anywhere in the steps and writes that follow
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        state = load_checkpoint(checkpoint)["state"]  # never a damaged checkpoint
        steps_at_kill.append(state["step"])
        assert state["step"] < state["total_steps"], "the run finished before the kill"
    assert steps_at_kill == sorted(steps_at_kill) and steps_at_kill[0] < steps_at_kill[-1]

    resumed = pretrain(resume=out, show_progress=False)
    assert not list(out.rglob(".*.tmp*")), "a killed writer's temporary file was left"
    assert resumed.summary["steps"] == straight.summary["steps"]
    assert _same_weights(resumed, straight)


def test_run_stopped_mid_epoch_resumes_exactly(
    tmp_path, clusters_npz, monkeypatch, straight
) -> None:
    """A run stopped in the middle of an epoch (checkpoints every step) resumes from that
    batch, with the random generators as they were, to an uninterrupted run's weights."""
    real_step = train_module.training_step

    def dies_at_step_11(t, items, lr, fabric, state, labels=None):
        if state.step == 11:  # the 5th batch of the 2nd epoch (7 steps per epoch)
            raise KeyboardInterrupt
        return real_step(t, items, lr, fabric, state, labels)

    monkeypatch.setattr(train_module, "training_step", dies_at_step_11)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        pretrain(clusters_npz, out=out, show_progress=False, checkpoint_every=1e-6, **OPTIONS)
    state = load_checkpoint(out / "checkpoints" / "last.ckpt")["state"]
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (11, 1, 4)
    monkeypatch.setattr(train_module, "training_step", real_step)

    resumed = pretrain(resume=out, show_progress=False)
    assert resumed.summary["steps"] == straight.summary["steps"] == 56
    assert _same_weights(resumed, straight)


def test_resume_with_more_epochs_extends_a_finished_run(tmp_path, clusters_npz) -> None:
    options = {**OPTIONS, "epochs": 2}
    out = tmp_path / "run"
    first = pretrain(clusters_npz, out=out, show_progress=False, **options)
    assert first.summary["steps"] == 14 and first.finished
    with pytest.raises(ConfigError, match=r"finished.*larger --epochs"):
        pretrain(resume=out, show_progress=False)
    with pytest.raises(ConfigError, match="finished"):
        pretrain(resume=out, epochs=2, show_progress=False)
    before = {k: v.clone() for k, v in first.encoder.state_dict().items()}

    extended = pretrain(resume=out, epochs=4, show_progress=False)
    assert extended.summary["steps"] == 28 and extended.summary["epochs"] == 4
    assert extended.config["epochs"] == 4 and extended.finished
    after = extended.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert "extending the finished run from 14 to 28 steps" in (out / "train.log").read_text()


def test_a_run_extended_after_its_end_cut_an_epoch_finishes_that_epoch_first(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    """200,000 photos trained 30 minutes at a time: each extension goes on through the
    epoch the last one cut, instead of drawing a new order and meeting some photos twice
    before others once."""
    real_step = train_module.training_step
    seen: dict[str, dict[int, torch.Tensor]] = {"cut": {}, "straight": {}}
    run = "cut"

    def records(t, items, lr, fabric, state, labels=None):
        seen[run][state.step] = items.clone()
        return real_step(t, items, lr, fabric, state, labels)

    monkeypatch.setattr(train_module, "training_step", records)
    options = {k: v for k, v in OPTIONS.items() if k != "epochs"}  # 7 steps an epoch
    out = tmp_path / "cut"
    pretrain(clusters_npz, out=out, steps=4, show_progress=False, **options)
    state = load_checkpoint(out / "checkpoints" / "last.ckpt")["state"]
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 0)
    extended = pretrain(resume=out, steps=7, show_progress=False)
    assert extended.summary["steps"] == 7 and extended.summary["epochs"] == 1
    log = (out / "train.log").read_text()
    assert "epoch 1 goes on from batch 5 of 7, where the run's end cut it" in log
    run = "straight"
    pretrain(clusters_npz, out=tmp_path / "straight", steps=7, show_progress=False, **options)
    assert sorted(seen["cut"]) == sorted(seen["straight"]) == list(range(7))
    for step in range(7):  # the same items in the same batches: one epoch's order
        assert torch.equal(seen["cut"][step], seen["straight"][step])


def test_resume_refuses_options_that_change_the_run(tmp_path, clusters_npz) -> None:
    out = tmp_path / "run"
    pretrain(clusters_npz, out=out, show_progress=False, **{**OPTIONS, "epochs": 1})
    with pytest.raises(ConfigError, match=r"cannot change batch_size \(32 -> 16\), method"):
        pretrain(resume=out, epochs=3, method="simclr", batch_size=16, show_progress=False)
    with pytest.raises(ConfigError, match="cannot change seed"):
        pretrain(resume=out, epochs=3, seed=9, show_progress=False)
    with pytest.raises(ConfigError, match="no run to resume"):
        pretrain(resume=tmp_path / "nothing", show_progress=False)
