"""Commands writing to read-only and full file systems, run inside a private mount namespace.

``python -m tests.output_faults WORK RUN DATA`` is started by ``tests/test_output_faults.py``
under ``unshare --mount`` (or ``unshare --user --map-root-user --mount`` without root): there
it mounts small tmpfs folders, read-only or filled to the last byte, that vanish with the
process, runs each command in-process as ``selfsup`` would, and prints one JSON object per
command: its name, exit status, output and the files left in the folder it wrote to.

Example:
    $ unshare --mount --propagation private python -m tests.output_faults /tmp/w runs/r d.npz
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.broken_inputs import run_cli


def mount_tmpfs(folder: Path, size: str, read_only: bool = False) -> None:
    """Mount a tmpfs of ``size`` at ``folder`` (made first)."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write zeros to ``folder`` until its file system is full."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def main(work: Path, run: Path, data: Path) -> None:
    """Set up the faulty folders under ``work`` and run every command."""
    read_only, full = work / "read-only", work / "full"
    mount_tmpfs(read_only, "1m", read_only=True)
    mount_tmpfs(full, "1m")
    fill(full)
    # A run folder on a read-only disk, and one on a disk that fills up after it was copied.
    ro_run, full_run = work / "ro-run", work / "full-run"
    mount_tmpfs(ro_run, "64m")
    shutil.copytree(run, ro_run, dirs_exist_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(ro_run)], check=True)
    mount_tmpfs(full_run, "64m")
    shutil.copytree(run, full_run, dirs_exist_ok=True)
    fill(full_run)

    commands = {
        "embed to a read-only folder": (["embed", run, data, "--out", read_only / "e.npy"],
                                        read_only),
        "embed to a missing folder on a read-only disk": (
            ["embed", run, data, "--out", read_only / "new" / "e.npy"], read_only),
        "embed to a full disk": (["embed", run, data, "--out", full / "e.npy"], full),
        "embed as .npz to a full disk": (["embed", run, data, "--out", full / "e.npz"], full),
        "pretrain into a read-only folder": (
            ["pretrain", data, "--steps", "2", "--out", read_only / "run"], read_only),
        "pretrain onto a full disk": (
            ["pretrain", data, "--steps", "2", "--out", full / "run"], full),
        "adapt into a read-only folder": (
            ["adapt", run, data, "--shots", "4", "--out", read_only / "model"], read_only),
        "export into a read-only folder": (
            ["export", run, "--format", "safetensors", "--out", read_only / "x"], read_only),
        "evaluate a run on a read-only disk": (["evaluate", ro_run, data], ro_run),
        "evaluate a run on a full disk": (["evaluate", full_run, data], full_run),
        "report of a run on a read-only disk": (["report", ro_run], ro_run),
    }  # fmt: skip
    for name, (args, folder) in commands.items():
        before = {p for p in folder.rglob("*")}
        status, output = run_cli([str(a) for a in args])
        left = sorted(str(p.relative_to(folder)) for p in set(folder.rglob("*")) - before)
        print(json.dumps({"name": name, "status": status, "output": output, "left": left}))


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:4]))
