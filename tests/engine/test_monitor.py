"""Monitoring during training: label-free metrics per epoch, collapse alarm, selection."""

import warnings

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from selfsup.engine.monitor import CollapseError, CollapseWarning
from selfsup.run import load, pretrain

# VICReg without its variance and covariance terms keeps only invariance; at a high learning
# rate its projection collapses to a constant within a few epochs (VICReg's Table 4 ablation).
COLLAPSING = {"variance_weight": 0.0, "covariance_weight": 0.0, "hidden_dim": 32,
              "projection_dim": 16}  # fmt: skip
HEALTHY = {"hidden_dim": 64, "projection_dim": 32}


def _train(clusters_npz, out, method_options, lr, **options):
    return pretrain(
        clusters_npz, method="vicreg", batch_size=32, backbone_options={"width": 8},
        method_options=method_options, out=str(out), show_progress=False, lr=lr,
        precision="fp32", **options,
    )  # fmt: skip


def test_collapse_alarm_warns_on_a_collapsing_run_and_not_on_a_healthy_one(
    tmp_path, clusters_npz
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        _train(clusters_npz, tmp_path / "healthy", HEALTHY, 0.01, epochs=4)
    healthy = pd.read_csv(tmp_path / "healthy" / "epochs.csv")
    assert not healthy["collapsed"].any()

    with pytest.warns(CollapseWarning, match="the embeddings collapsed at epoch"):
        _train(clusters_npz, tmp_path / "collapsing", COLLAPSING, 0.2, epochs=10)
    collapsing = pd.read_csv(tmp_path / "collapsing" / "epochs.csv")
    assert collapsing["collapsed"].iloc[-1] == 1
    assert collapsing["projection_normalized_std"].iloc[-1] < 0.05
    assert healthy["projection_normalized_std"].min() > 0.3


def test_stop_on_collapse_stops_with_a_clear_message(tmp_path, clusters_npz) -> None:
    with pytest.raises(CollapseError, match=r"collapsed at epoch \d.*--stop-on-collapse"):
        _train(clusters_npz, tmp_path / "run", COLLAPSING, 0.2, epochs=20, stop_on_collapse=True)
    epochs = pd.read_csv(tmp_path / "run" / "epochs.csv")
    assert len(epochs) < 20 and epochs["collapsed"].iloc[-1] == 1
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_select_by_rankme_keeps_the_best_epoch(tmp_path, clusters_npz) -> None:
    run = _train(clusters_npz, tmp_path / "run", HEALTHY, 0.01, epochs=4, select_by="rankme",
                 keep_checkpoints=True)  # fmt: skip
    epochs = pd.read_csv(tmp_path / "run" / "epochs.csv")
    best = int(epochs.loc[epochs["rankme"].idxmax(), "epoch"])
    assert run.summary["selected"]["epoch"] == best
    assert run.summary["selected"]["value"] == pytest.approx(epochs["rankme"].max())
    kept = load_file(str(tmp_path / "run" / "checkpoints" / f"epoch-{best:04d}.safetensors"))
    reloaded = load(tmp_path / "run").encoder.state_dict()
    assert all(torch.equal(kept[k], reloaded[k]) for k in kept)
    # The starting point (epoch 0) and the four epochs.
    assert len(list((tmp_path / "run" / "checkpoints").glob("epoch-*.safetensors"))) == 5


def test_nan_embeddings_are_named_in_one_line_not_a_linear_algebra_traceback(
    tmp_path, clusters_npz
) -> None:
    from selfsup.data.arrays import load_array_file
    from selfsup.engine.monitor import EpochMonitor
    from selfsup.methods import build_method
    from selfsup.modalities.image import build_image_encoder, method_views

    source = load_array_file(clusters_npz)
    encoder = build_image_encoder("small-cnn", 1, 12, width=8)
    method = build_method("simclr", encoder, hidden_dim=16, projection_dim=8)
    with torch.no_grad():  # weights that diverged
        encoder.backbone.features[0].weight[0, 0, 0, 0] = float("nan")
    views, _ = method_views(method, 12, 1)
    monitor = EpochMonitor(source, views, tmp_path, items=64, precision="fp32")
    with pytest.raises(FloatingPointError, match="NaN or infinite embeddings for 64 of 64"):
        monitor.measure(method)


def _scripted_student(tmp_path, clusters_npz, monkeypatch, losses):
    """A function training a student distilled from a small teacher run into
    ``tmp_path/student``, whose held-out losses are ``losses`` in turn (before training, then
    after every epoch, each epoch measured)."""
    from selfsup.engine import monitor as monitor_module
    from selfsup.engine import train as train_module

    scripted = iter(losses)
    monkeypatch.setattr(monitor_module, "measure_heldout_loss", lambda *a, **k: next(scripted))
    monkeypatch.setattr(train_module, "monitor_due", lambda state: True)  # every epoch
    teacher = pretrain(
        clusters_npz, epochs=1, batch_size=32, backbone_options={"width": 4},
        out=str(tmp_path / "teacher"), show_progress=False,
    )  # fmt: skip

    def distill(**options):
        return pretrain(
            clusters_npz, method="distill", teacher=str(teacher.path), batch_size=32,
            backbone_options={"width": 4}, monitor_items=32, out=str(tmp_path / "student"),
            show_progress=False, **options,
        )  # fmt: skip

    return distill


def test_patience_stops_after_that_many_epochs_without_a_better_number(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    losses = [2.0, 1.0, 0.5, 0.6, 0.55, 0.4]  # the start, then epochs 1, 2, ...
    run = _scripted_student(tmp_path, clusters_npz, monkeypatch, losses)(epochs=10, patience=2)
    # Epoch 2 is the best (0.5); epochs 3 and 4 are not better: it stops after epoch 4.
    assert run.summary["epochs"] == 4
    assert run.summary["selected"] == {"by": "heldout_loss", "epoch": 2, "value": 0.5}
    assert run.summary["heldout_loss_start"] == 2.0
    assert pd.read_csv(tmp_path / "student" / "epochs.csv")["heldout_loss"].tolist() == [
        1.0, 0.5, 0.6, 0.55
    ]  # fmt: skip
    log = (tmp_path / "student" / "train.log").read_text()
    assert "stopped early after epoch 4" in log and "since epoch 2 (--patience 2)" in log


def test_selection_options_that_cannot_be_measured_are_refused_before_reading(
    tmp_path,
) -> None:
    from selfsup.config import ConfigError

    def refused(match: str, **options) -> None:
        with pytest.raises(ConfigError, match=match):
            pretrain("no-such-data", out=str(tmp_path / "run"), show_progress=False, **options)

    refused("needs monitoring", select_by="rankme", monitor_items=0)
    refused("simclr has no loss that means something on held-out items .*distill",
            select_by="heldout_loss")  # fmt: skip
    refused("--patience stops when .* keeps the last epoch", patience=3)
    refused("--patience", method="distill", teacher="x", patience=3, monitor_items=0)


def test_a_resumed_run_keeps_its_starting_loss_and_its_best_epoch(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    # The start, epochs 1-2, then resumed: 3-4.
    first = _scripted_student(tmp_path, clusters_npz, monkeypatch, [2.0, 1.0, 0.5, 0.7, 0.3])(
        epochs=2
    )
    assert first.summary["selected"]["epoch"] == 2
    resumed = pretrain(resume=tmp_path / "student", epochs=4, show_progress=False)
    assert resumed.summary["heldout_loss_start"] == 2.0  # measured once, before epoch 1
    assert resumed.summary["selected"] == {"by": "heldout_loss", "epoch": 4, "value": 0.3}


def test_selection_on_data_too_small_to_hold_out_is_refused(tmp_path) -> None:
    from selfsup.config import ConfigError

    texts = tmp_path / "few.txt"
    texts.write_text("\n".join(f"text number {i}" for i in range(100)) + "\n")
    with pytest.raises(ConfigError, match="has 100 items, too few to hold out 16"):
        pretrain(texts, select_by="rankme", steps=1, out=str(tmp_path / "run"),
                 show_progress=False)  # fmt: skip


def test_a_long_epoch_is_measured_inside_without_changing_what_is_trained(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    plain = _train(clusters_npz, tmp_path / "plain", HEALTHY, 0.01, epochs=2, measure_every=0)
    # A gap given (a minute's millionth: every step) is kept to, whatever it costs.
    inside = _train(clusters_npz, tmp_path / "inside", HEALTHY, 0.01, epochs=2,
                    measure_every=1e-6)  # fmt: skip
    per_epoch = plain.summary["steps"] // 2
    assert per_epoch >= 3 and inside.summary["steps"] == plain.summary["steps"]
    rows = pd.read_csv(tmp_path / "inside" / "epochs.csv")
    # Every step but each epoch's last is measured inside, as epochs done; the epoch's end
    # at its last step, as before.
    steps = list(range(1, 2 * per_epoch + 1))
    assert rows["step"].tolist() == steps
    assert rows["epoch"].tolist() == pytest.approx([round(s / per_epoch, 3) for s in steps])
    assert pd.read_csv(tmp_path / "plain" / "epochs.csv")["step"].tolist() == [
        per_epoch, 2 * per_epoch
    ]  # fmt: skip
    # Measuring draws no random number training draws, nor moves its batch norm statistics.
    trained, measured = plain.encoder.state_dict(), inside.encoder.state_dict()
    assert all(torch.equal(trained[k], measured[k]) for k in trained)
    log = (tmp_path / "inside" / "train.log").read_text()
    assert f"step 1 (epoch {1 / per_epoch:.2f}): held-out: RankMe" in log


def test_patience_stops_inside_a_long_epoch_where_a_longer_run_would_go_on(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    # The start, then after steps 1, 2, 3, 4: step 2 is the best, 3 and 4 are not better.
    losses = [2.0, 1.0, 0.5, 0.6, 0.55] + [0.9] * 100
    distill = _scripted_student(tmp_path, clusters_npz, monkeypatch, losses)
    run = distill(epochs=3, patience=2, measure_every=1e-6)
    assert run.summary["steps"] == 4 and run.summary["epochs"] == 1
    per_epoch = 7  # 256 items less 25 held out, batches of 32 (the last, 7 items, kept)
    assert run.summary["selected"] == {
        "by": "heldout_loss", "epoch": round(2 / per_epoch, 3), "value": 0.5
    }  # fmt: skip
    rows = pd.read_csv(tmp_path / "student" / "epochs.csv")
    assert rows["heldout_loss"].tolist() == [1.0, 0.5, 0.6, 0.55]  # not measured again at 4
    log = (tmp_path / "student" / "train.log").read_text()
    assert "stopped early at step 4: the loss on the held-out items has not improved for 2 " in log
    # The epoch was cut at its fourth batch: a run extended later finishes it first.
    from selfsup.engine.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "student" / "checkpoints" / "last.ckpt")["state"]
    assert state["cut_at"] == 4 and state["measured_step"] == 4
