"""Atomic checkpoints and the metrics log."""

import pytest

from selfsup.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from selfsup.engine.metrics import MetricsLog


def test_checkpoint_round_trip_leaves_no_temporary_file(tmp_path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path) == {"step": 2}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path) -> None:
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails mid-write
        save_checkpoint(path, {"step": 2, "bad": lambda: None})
    assert load_checkpoint(path) == {"step": 1}


def test_missing_checkpoint_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.ckpt"):
        load_checkpoint(tmp_path / "nothing.ckpt")


def test_metrics_log_truncates_rows_of_the_interrupted_epoch_on_resume(tmp_path) -> None:
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        log.write(step, loss=1.0 / step)
    log.write(40, loss=0.01, rankme=3.0)  # a new column widens the header
    resumed = MetricsLog(tmp_path, resume_step=20, tensorboard=False)
    assert [r["step"] for r in resumed.rows()] == ["10", "20"]
    resumed.write(30, loss=0.5)
    assert [r["step"] for r in resumed.rows()] == ["10", "20", "30"]


class _Payload:
    """Unpickling this object runs ``touch`` on a marker file: what an attacker would ship."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_is_refused_and_does_not_run(tmp_path) -> None:
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "last.ckpt"
    torch.save({"state": {"step": 1}, "payload": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match=r"last\.ckpt: refused"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"\x00\x01garbage" * 100, "damaged|refused"),
        (None, "damaged"),  # a real checkpoint cut in half
    ],
)
def test_damaged_checkpoints_get_one_named_error(tmp_path, content, match) -> None:
    import torch

    path = tmp_path / "last.ckpt"
    if content is None:
        save_checkpoint(path, {"w": torch.randn(1000)})
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "last.ckpt" in str(info.value) and "\n" not in str(info.value)


def test_a_failed_write_leaves_no_temporary_file(tmp_path) -> None:
    path = tmp_path / "last.ckpt"
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails mid-write
        save_checkpoint(path, {"bad": lambda: None})
    assert list(tmp_path.iterdir()) == []


def test_a_disk_filling_up_mid_checkpoint_is_told_as_a_full_disk(tmp_path, monkeypatch) -> None:
    """PyTorch's writer says only "unexpected pos" when the disk fills up; the error names
    the checkpoint and the full disk, and the previous checkpoint stays whole."""
    import errno
    import shutil

    import torch

    path = tmp_path / "last.ckpt"
    save_checkpoint(path, {"step": 1, "w": torch.zeros(1000)})

    def full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 8")

    monkeypatch.setattr(torch, "save", full_disk)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10))
    with pytest.raises(OSError) as info:
        save_checkpoint(path, {"step": 2, "w": torch.zeros(1000)})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert "previous checkpoint is kept" in info.value.strerror
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path) -> None:
    import os

    from selfsup.core.files import remove_stale_temporaries

    (tmp_path / "checkpoints").mkdir()
    dead = tmp_path / "checkpoints" / ".last.ckpt.tmp999999999"
    alive = tmp_path / f".config.yaml.tmp{os.getpid()}"  # this process still writes it
    dead.write_bytes(b"half")
    alive.write_bytes(b"half")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert alive.exists() and not dead.exists()
