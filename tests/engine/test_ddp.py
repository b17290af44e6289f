"""Two processes on CPU (gloo, DDP through Lightning Fabric) train and stay in sync."""

import json
import subprocess
import sys


def test_two_process_ddp_run_ends_with_equal_weights(tmp_path, clusters_npz) -> None:
    out = tmp_path / "ddp"
    (tmp_path / "small.yaml").write_text(
        "backbone_options: {width: 4}\nlog_every: 2\nmeasure_every: 0.0001\n"
    )
    cmd = [
        sys.executable, "-m", "selfsup", "pretrain", str(clusters_npz), "--method", "vicreg",
        "--devices", "2", "--epochs", "2", "--batch-size", "32", "--precision", "fp32",
        "--out", str(out), "--config", str(tmp_path / "small.yaml"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "train.json").read_text())
    assert summary["world_size"] == 2
    # 256 items less 25 held out for monitoring, / (32 per process x 2 processes) = 3 steps
    # per epoch.
    assert summary["held_out_items"] == 25
    assert summary["steps"] == 6
    first, second = summary["replica_checksums"]
    assert first == second
    # Measured inside the first epoch too (rank 0 decides, both processes go on together):
    # after step 2 of its 3, then at the epochs' ends.
    epochs = [line.split(",")[1] for line in (out / "epochs.csv").read_text().splitlines()]
    assert epochs[:3] == ["epoch", "0.667", "1"], epochs
    assert (out / "encoder.safetensors").exists()
