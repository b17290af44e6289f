"""Ctrl-C and SIGTERM stop a run at a step's end with a checkpoint (``test_resume`` resumes
one to the uninterrupted run's weights); two DDP processes stop together."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfsup.engine.checkpoint import load_checkpoint
from selfsup.engine.interrupt import StopRequests


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)


def test_sigterm_to_one_ddp_process_stops_both_at_the_same_step(tmp_path, clusters_npz) -> None:
    """``timeout`` or a scheduler may signal rank 0 alone: rank 1 learns it at the next
    step's exchange, both stop after the same step (else one would wait forever for the
    other's gradients) and exit; rank 0 writes the checkpoint."""
    out = tmp_path / "ddp"
    (tmp_path / "small.yaml").write_text("backbone_options: {width: 4}\nlog_every: 1\n")
    cmd = [
        sys.executable, "-m", "selfsup", "pretrain", str(clusters_npz), "--method", "vicreg",
        "--devices", "2", "--epochs", "200", "--batch-size", "32", "--precision", "fp32",
        "--out", str(out), "--config", str(tmp_path / "small.yaml"), "--num-workers", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _wait_for(out / "metrics.csv", proc)
    proc.send_signal(signal.SIGTERM)  # rank 0 only
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert proc.returncode == 143, stderr[-2000:]
    state = load_checkpoint(out / "checkpoints" / "last.ckpt")["state"]
    assert 0 < state["step"] < state["total_steps"]
    assert f"stopped by SIGTERM after step {state['step']} of" in stdout
    deadline = time.time() + 60  # rank 1 ends too
    while _group_alive(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _group_alive(proc.pid)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_second_ctrl_c_stops_at_once_and_handlers_are_restored() -> None:
    # Python's own handler, as in a terminal (a suite started in the background ignores it).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopRequests(announce=False) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.signal_name == "SIGINT"
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler runs between two bytecodes
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    """A job started in the background of a script ignores SIGINT: so does its run."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopRequests():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
