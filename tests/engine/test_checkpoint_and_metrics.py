"""Atomic checkpoints and the metrics log."""

import pytest

from selfsup.engine.checkpoint import load_checkpoint, save_checkpoint
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
