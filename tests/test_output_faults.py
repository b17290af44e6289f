"""Read-only folders and full disks, real ones (tmpfs in a private mount namespace): every
command answers in one line, before the work where it can, prints results before saving
them, and leaves no temporary file behind. Skipped where no mount namespace can be made."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import make_clusters

from selfsup.run import pretrain

REPO = Path(__file__).resolve().parents[1]
#: For each command of tests/output_faults.py: exit status and the line it ends with.
EXPECTED = {
    "embed to a read-only folder": (2, r"read-only/e\.npy: read-only file system; write else"),
    "embed to a missing folder on a read-only disk": (2, r"read-only/new/e\.npy: read-only"),
    "embed to a full disk": (2, r"full/e\.npy: needs .* kB but the disk has 0\.0 kB free"),
    "embed as .npz to a full disk": (2, r"full/e\.npz: needs .* but the disk has 0\.0 kB free"),
    "pretrain into a read-only folder": (2, r"read-only/run: read-only file system"),
    "pretrain onto a full disk": (2, r"full/run: needs \d+ MB but the disk has 0\.0 kB free"),
    "adapt into a read-only folder": (2, r"read-only/model: read-only file system"),
    "export into a read-only folder": (2, r"read-only/x: read-only file system"),
    "evaluate a run on a read-only disk": (0, r"in \d+ s$"),  # the table's last line
    "evaluate a run on a full disk": (2, r"evaluation-.*\.json: no space left on"),
    "report of a run on a read-only disk": (2, r"ro-run/report: read-only file system"),
}


def namespace_prefix() -> list[str] | None:
    """A command prefix that runs a program in its own mount namespace (as root, or as a
    user in a user namespace), or None where neither is allowed."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (
        ["unshare", "--mount", "--propagation", "private"],
        ["unshare", "--user", "--map-root-user", "--mount"],
    ):
        probe = subprocess.run([*prefix, "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
                               capture_output=True)  # fmt: skip
        if probe.returncode == 0:
            return prefix
    return None


def test_read_only_and_full_output_folders_are_answered_in_one_line(tmp_path) -> None:
    prefix = namespace_prefix()
    if prefix is None:
        pytest.skip("no mount namespace here (unshare refused): cannot make real full disks")
    x, y = make_clusters(n_per_class=32, size=12)
    data = tmp_path / "data.npz"
    np.savez(data, X=x, y=y)
    run = pretrain(str(data), steps=4, batch_size=32, out=tmp_path / "run", monitor_items=0,
                   backbone_options={"width": 8}, show_progress=False)  # fmt: skip
    command = [*prefix, sys.executable, "-m", "tests.output_faults", str(tmp_path / "work"),
               str(run.path), str(data)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert set(results) == set(EXPECTED)
    for name, (status, expect) in EXPECTED.items():
        result = results[name]
        output = result["output"]
        lines = [line for line in output.splitlines() if line.strip()]
        assert "Traceback" not in output, (name, output)
        assert result["status"] == status, (name, output)
        assert re.search(expect, lines[-1]), (name, expect, lines[-1])
        assert result["left"] == [], (name, result["left"])  # no partial or temporary file
        if status == 2:
            assert sum(line.startswith("error:") for line in lines) == 1, (name, output)
    # Results are printed before they are saved: a full disk loses the file, not the table.
    assert "knn" in results["evaluate a run on a full disk"]["output"]
    assert "printed, not saved" in results["evaluate a run on a read-only disk"]["output"]
    # A read-only folder is found before the data is opened.
    assert "data:" not in results["pretrain into a read-only folder"]["output"]
