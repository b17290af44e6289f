"""An interrupted and resumed run ends with exactly the weights of an uninterrupted one."""

import signal
import subprocess
import sys
import time

import torch

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
    ]  # fmt: skip


def test_killed_then_resumed_run_equals_uninterrupted_run(tmp_path, clusters_npz) -> None:
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
    epoch_at_kill = load_checkpoint(checkpoint)["state"]["epoch"]
    assert epoch_at_kill < OPTIONS["epochs"], "the run finished before it could be interrupted"

    resumed = pretrain(resume=interrupted, show_progress=False)
    straight = pretrain(clusters_npz, out=tmp_path / "straight", show_progress=False, **OPTIONS)

    assert resumed.summary["steps"] == straight.summary["steps"]
    a, b = resumed.encoder.state_dict(), straight.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The metrics of the interrupted epoch were rewritten, not duplicated.
    steps = (interrupted / "metrics.csv").read_text().splitlines()[1:]
    assert len(steps) == len({row.split(",")[0] for row in steps})
