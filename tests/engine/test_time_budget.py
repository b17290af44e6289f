"""A time budget is turned into a number of steps that ends training within it."""

import time

import lightning
import yaml

from selfsup.config import PretrainConfig
from selfsup.engine.train import TrainState, _fit_to_budget
from selfsup.run import pretrain


def test_training_ends_near_its_time_budget(tmp_path, clusters_npz) -> None:
    budget_minutes = 0.05  # 3 seconds
    run = pretrain(
        clusters_npz, method="vicreg", time_budget=budget_minutes, batch_size=32,
        backbone_options={"width": 4}, out=tmp_path / "run", show_progress=False,
        method_options={"projection_dim": 64, "hidden_dim": 64},
    )  # fmt: skip
    seconds = run.summary["train_seconds"]
    assert 0.5 * budget_minutes * 60 < seconds < 1.5 * budget_minutes * 60 + 1
    # More than one epoch of 8 steps fits in 3 seconds, and the run kept going across epochs.
    assert run.summary["epochs"] > 1


def test_a_budget_with_a_sliver_of_an_epoch_left_ends_now_instead_of_opening_one() -> None:
    cfg = PretrainConfig(data="-", time_budget=1.0)  # 60 seconds
    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    # 100 steps per epoch at 0.5 s a step: 2 steps (2% of an epoch) fit in the 1 s left.
    # At an epoch's end they would open a new one: training ends now.
    done = TrainState(step=100, epoch=1, train_seconds=59.0)
    assert _fit_to_budget(cfg, done, steps_per_epoch=100, fabric=fabric) == 100
    # Inside an epoch under way they are trained.
    inside = TrainState(step=118, epoch=1, train_seconds=59.0, batch_in_epoch=18)
    assert _fit_to_budget(cfg, inside, steps_per_epoch=100, fabric=fabric) == 120
    # A huge epoch (a million items) is cut where the budget ends: 44 steps at 2.7 s a step.
    big = TrainState(step=1, epoch=0, train_seconds=2.7, batch_in_epoch=1)
    big_cfg = PretrainConfig(data="-", time_budget=2.0)
    assert _fit_to_budget(big_cfg, big, steps_per_epoch=3898, fabric=fabric) == 1 + 43
    # 10 s left is 20 steps, a fifth of an epoch: training goes on.
    going = TrainState(step=100, epoch=1, train_seconds=50.0)
    assert _fit_to_budget(cfg, going, steps_per_epoch=100, fabric=fabric) == 120
    # An epoch the budget cut at step 14 of 99; at 7.5 s a step 2 more steps fit in the 2
    # minutes: the next epoch starts at 14, so they are a sliver of it and are not begun.
    cut = TrainState(step=14, epoch=1, train_seconds=105.0)
    assert _fit_to_budget(big_cfg, cut, steps_per_epoch=99, fabric=fabric) == 14
    # Steps that take less time than one measurement of the monitor are a sliver too: 20
    # steps fit (0.4 s each), a fifth of an epoch, but one measurement takes 12 s.
    slow = TrainState(step=100, epoch=1, train_seconds=40.0, monitor_seconds=12.0,
                      measures=1)  # fmt: skip
    assert _fit_to_budget(cfg, slow, steps_per_epoch=100, fabric=fabric) == 100


def test_the_monitors_last_measurement_is_paid_from_the_budget_before_it_is_made() -> None:
    """A year of minute logs: TS2Vec trains 8 windows of a day in 1.4 s a step, and the
    monitor's 438 held-out days then took 40 s past a 3-minute budget (3:41 in all)."""
    cfg = PretrainConfig(data="-", time_budget=3.0, batch_size=8)
    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    state = TrainState(step=10, epoch=0, train_seconds=14.0, batch_in_epoch=10)
    unplanned = _fit_to_budget(cfg, state, 490, fabric)
    assert unplanned == 10 + 118  # 166 s left at 1.4 s a step
    # Not measured yet, estimated at 38 s: 128 s left, 91 steps.
    planned = _fit_to_budget(cfg, state, 490, fabric, measure_seconds=38.0)
    assert planned == 10 + 91
    # Once measured (30 s), that cost is known and the last measurement is planned at it:
    # 180 - 14 - 30 (made) - 30 (to come) = 106 s left, 75 steps.
    measured = TrainState(step=10, epoch=2, train_seconds=14.0, monitor_seconds=30.0,
                          measures=1, batch_in_epoch=0)  # fmt: skip
    assert _fit_to_budget(cfg, measured, 5, fabric, measure_seconds=38.0) == 10 + 75


def test_the_measurement_is_timed_on_a_few_held_out_items_and_scaled(monkeypatch) -> None:
    """DINO adapting a ViT-S on photos: 68 s a step of 64, and 200 held-out photos measured
    in 50 s; half a step's seconds per item (the former guess) said 106 s and left out the
    second step of a 4-minute budget. The measurement is timed instead, and what it pays
    once is told from what each item costs: a call centre's clips took 0.35 s for 16, 0.28 s
    of it once, and 2,048 of them were estimated at 44 s where they took 10."""
    from pathlib import Path

    import numpy as np

    from selfsup.data.arrays import ArraySource
    from selfsup.engine.monitor import EpochMonitor

    met = []

    def measure(self, method, probe=None):  # 0.25 s once, 5 ms an item
        met.append(self.items)
        time.sleep(0.25 + 0.005 * self.items)
        return None, {}

    monkeypatch.setattr(EpochMonitor, "measure", measure)
    held_out = ArraySource(np.zeros((3000, 4, 4), dtype="float32"))
    monitor = EpochMonitor(held_out, lambda x: [x, x], Path("."), items=200)
    estimate = monitor.estimate_seconds(method=None)
    assert met == [16, 16, 64] and monitor.items == 200  # the monitor itself is unchanged
    assert 1.1 < estimate < 1.8  # 0.25 s and 200 items at 5 ms: 1.25 s (scaled whole: 4.1)


def test_a_budget_run_plans_the_measurement_it_timed_before_its_first_step(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    from selfsup.engine.monitor import EpochMonitor

    timed = []

    def estimate(self, method, sample=16):  # a measurement that would take the whole budget
        timed.append(self.items)
        return 3.0

    monkeypatch.setattr(EpochMonitor, "estimate_seconds", estimate)
    options = dict(method="vicreg", time_budget=0.05, batch_size=32, show_progress=False,
                   backbone_options={"width": 4},
                   method_options={"projection_dim": 64, "hidden_dim": 64})  # fmt: skip
    run = pretrain(clusters_npz, out=tmp_path / "run", **options)
    assert timed and run.summary["steps"] == 1  # no time left after the first step
    unmeasured = pretrain(clusters_npz, out=tmp_path / "free", monitor_items=0, **options)
    assert len(timed) == 1 and unmeasured.summary["steps"] > 1  # no monitor, nothing timed


def test_slow_first_steps_such_as_compilation_do_not_set_the_pace() -> None:
    cfg = PretrainConfig(data="-", time_budget=1.0)  # 60 seconds
    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    # Two steps took 20 s (compiling), the next 10 took 1 s: 0.1 s a step, 39 s left.
    state = TrainState(step=12, epoch=0, train_seconds=21.0)
    assert _fit_to_budget(cfg, state, 1000, fabric, pace_from=(2, 20.0)) == 12 + 390
    # Over all steps the pace would be 1.75 s a step: 22 more steps.
    assert _fit_to_budget(cfg, state, 100, fabric) == 12 + 22


def test_the_monitor_is_bounded_by_time_not_paid_after_every_epoch() -> None:
    from selfsup.engine.train import MONITOR_SHARE, monitor_due

    spent = TrainState(step=30, epoch=3, total_steps=100, train_seconds=10.0)
    spent.monitor_seconds = MONITOR_SHARE * 10.0 + 0.01
    assert not monitor_due(spent)
    spent.monitor_seconds = MONITOR_SHARE * 10.0 - 0.01
    assert monitor_due(spent)
    assert monitor_due(TrainState(step=10, epoch=1, total_steps=100, monitor_seconds=99.0))
    assert monitor_due(TrainState(step=100, epoch=9, total_steps=100, monitor_seconds=99.0))


def test_a_measurement_too_long_for_the_budget_reads_fewer_held_out_items(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    """MiniLM on windows of long documents: 2,048 held-out windows took 75 s a measurement
    and left a 2-minute run one step. Beyond its share of the budget fewer items are measured
    (never fewer than MIN_MEASURED), said in a note and kept for a resumed run."""
    import torch

    from selfsup.engine import train
    from selfsup.engine.monitor import EpochMonitor

    monkeypatch.setattr(train, "MIN_MEASURED", 8)
    monkeypatch.setattr(EpochMonitor, "estimate_seconds", lambda self, method: 0.1 * self.items)
    options = dict(method="vicreg", time_budget=0.05, batch_size=32, show_progress=False,
                   backbone_options={"width": 4}, monitor_items=24,
                   method_options={"projection_dim": 64, "hidden_dim": 64})  # fmt: skip
    run = pretrain(clusters_npz, out=tmp_path / "run", **options)
    log = (run.path / "train.log").read_text()
    assert "held-out measurement: 8 of the 24 items held out, as all would take about 2 s" in log
    state = torch.load(run.path / "checkpoints" / "last.ckpt", weights_only=True)["state"]
    assert state["measured_items"] == 8


def test_a_budget_that_fits_few_steps_says_so_at_the_end(tmp_path, clusters_npz,
                                                         monkeypatch) -> None:  # fmt: skip
    import time

    from selfsup.engine import train

    real_step = train.training_step

    def slow_step(*args, **kwargs):  # BYOL-A on 2 cores: 21 s a step of 256 clips
        time.sleep(0.5)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "training_step", slow_step)
    run = pretrain(
        clusters_npz, method="vicreg", time_budget=0.05, batch_size=32,
        backbone_options={"width": 4}, out=tmp_path / "run", show_progress=False,
        method_options={"projection_dim": 64, "hidden_dim": 64}, monitor_items=0,
    )  # fmt: skip
    steps = run.summary["steps"]
    assert 0 < steps < 10
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"only {steps} optimizer steps fit in the 0.05-minute --time-budget" in log
    assert "a smaller --batch-size gives it more steps" in log


def test_a_methods_fill_is_paid_from_the_budget_but_does_not_set_the_pace() -> None:
    cfg = PretrainConfig(data="-", time_budget=1.5)  # 90 seconds
    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    # MSF filled its bank in 39 s, then one step took 4 s: 47 s left, 11 more steps. Taken
    # for the pace, the fill would leave one 43-second step and nothing more.
    state = TrainState(step=1, epoch=0, train_seconds=4.0, fill_seconds=39.0, batch_in_epoch=1)
    assert _fit_to_budget(cfg, state, steps_per_epoch=21, fabric=fabric) == 1 + 11


def test_a_teachers_first_epoch_is_not_taken_for_the_pace_of_the_next() -> None:
    """Distillation computes its teacher's targets in the first epoch and keeps them: after
    20 of 100 steps of 8 items at 0.25 s of student and 1 s of teacher a step, the other 80
    steps of the first epoch cost 1.25 s each and every later step 0.25 s."""
    from selfsup.engine.train import TimeBudget
    from selfsup.methods.base import OnceWork

    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    state = TrainState(step=20, epoch=0, train_seconds=25.0, batch_in_epoch=20)

    def budget_after_20_steps(minutes: float, limit: int = 10**6) -> TimeBudget:
        work = [OnceWork(seconds=0.0, items=0, limit=limit)]  # as training starts
        cfg = PretrainConfig(data="-", time_budget=minutes)
        budget = TimeBudget(cfg, 100, fabric, 0, lambda: work[0], epoch_items=800)
        work[0] = OnceWork(seconds=2.0, items=16, limit=limit)
        budget.after_step(TrainState(step=2, train_seconds=2.5))  # the pace starts here
        work[0] = OnceWork(seconds=20.0, items=160, limit=limit)
        return budget

    # 275 s left: 80 steps at 1.25 s (100 s), then 700 steps at 0.25 s.
    assert budget_after_20_steps(5.0).plan(state) == 20 + 80 + 700
    # Taken for every step's pace, the teacher would plan 220 more steps in all.
    five_minutes = PretrainConfig(data="-", time_budget=5.0)
    assert _fit_to_budget(five_minutes, state, 100, fabric, pace_from=(2, 2.5)) == 20 + 220
    # A budget that ends inside the first epoch: 35 s left at 1.25 s a step.
    assert budget_after_20_steps(1.0).plan(state) == 20 + 28
    # Beyond the limit of kept items, the teacher runs on every visit: part of each step.
    assert budget_after_20_steps(5.0, limit=160).once_left() == (0.0, 0)


def test_a_long_distillation_is_told_at_the_pace_of_its_later_epochs() -> None:
    """Without a time budget, the note of how long a run takes counts the teacher's first
    epoch once: 39,970 steps at 0.25 s plus 70 s of teacher, 2 h 48 min (not 13.9 h at the
    first epoch's 1.25 s a step)."""
    from selfsup.engine.train import TimeBudget
    from selfsup.methods.base import OnceWork

    work = [OnceWork(seconds=0.0, items=0, limit=10**6)]
    cfg = PretrainConfig(data="-", epochs=400)
    budget = TimeBudget(cfg, 100, None, 0, lambda: work[0], epoch_items=800)
    work[0] = OnceWork(seconds=2.0, items=16, limit=10**6)
    budget.after_step(TrainState(step=2, train_seconds=2.5, total_steps=40_000))
    work[0] = OnceWork(seconds=30.0, items=240, limit=10**6)
    state = TrainState(step=30, train_seconds=37.5, total_steps=40_000)
    note = budget.length_note(state)
    assert note is not None and "take about 2 h 48 min more" in note
    # The progress's ETA says the same: 39,970 x 0.25 s + 560 texts x 0.125 s.
    assert budget.remaining(state) == 39_970 * 0.25 + 70.0


def test_the_progress_eta_takes_an_estimate_that_knows_better(tmp_path) -> None:
    from selfsup.core.progress import TrainingProgress

    log = tmp_path / "train.log"
    with TrainingProgress(total=100, description="distill", enabled=False, log_file=log) as bar:
        bar.advance(10, 80, 1.0)
        bar.remaining = lambda: 3725.0
        bar._plain()
        bar.remaining = lambda: None  # not known yet: the mean pace of the steps so far
        bar._plain()
    lines = [line for line in log.read_text().splitlines() if "ETA" in line]
    assert lines[0].endswith("ETA 1:02:05")
    assert not any(line.endswith("ETA 1:02:05") for line in lines[1:])


def test_an_epoch_the_budget_cut_short_ends_the_run(tmp_path, clusters_npz, monkeypatch) -> None:
    """A hospital's run planned 105 steps, cut epoch 8 at 104 when a plan said 104, then
    opened a ninth epoch of one step when the next plan said 105 again: a cut epoch ends it."""
    from selfsup.engine import train

    def noisy(cfg, state, steps_per_epoch, *args, **kwargs):  # 8 steps an epoch
        return 14 if state.step >= 13 and not state.batch_in_epoch else 13  # 14 at 13's end

    monkeypatch.setattr(train, "_fit_to_budget", noisy)
    run = pretrain(
        clusters_npz, method="vicreg", time_budget=5.0, batch_size=32, steps=100,
        backbone_options={"width": 4}, out=tmp_path / "run", show_progress=False,
        method_options={"projection_dim": 16, "hidden_dim": 16}, monitor_items=0,
    )  # fmt: skip
    assert (run.summary["steps"], run.summary["epochs"]) == (13, 2)


def test_a_longer_budget_goes_on_with_the_epoch_the_last_one_cut(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    """200,000 photos, 3 minutes then --time-budget 5: the 2 minutes more were a sliver of a
    new epoch and trained nothing, without a word; they go on with the epoch the first
    run cut, and a budget too short to train says so."""
    from selfsup.engine import train

    target = {"steps": 3}

    def plan(cfg, state, steps_per_epoch, *args, **kwargs):  # 8 steps an epoch
        # As the real plan: the steps that fit, but none in an epoch not begun (a sliver).
        begun = state.batch_in_epoch or state.step == 0
        steps = target["steps"] if begun else min(target["steps"], state.step)
        return min(steps, train.planned_steps(cfg, steps_per_epoch))  # --epochs, --steps

    monkeypatch.setattr(train, "_fit_to_budget", plan)
    options = {"method": "vicreg", "batch_size": 32, "backbone_options": {"width": 4},
               "show_progress": False, "monitor_items": 0,
               "method_options": {"projection_dim": 16, "hidden_dim": 16}}  # fmt: skip
    out = tmp_path / "run"
    first = pretrain(clusters_npz, time_budget=3.0, out=out, **options)
    assert (first.summary["steps"], first.summary["epochs"]) == (3, 1)
    target["steps"] = 5
    longer = pretrain(resume=out, time_budget=5.0, show_progress=False)
    assert (longer.summary["steps"], longer.summary["epochs"]) == (5, 1)
    log = (out / "train.log").read_text()
    assert "extending the finished run from 3 to 5 steps" in log
    assert "epoch 1 goes on from batch 4 of 8, where the run's end cut it" in log
    again = pretrain(resume=out, time_budget=5.5, show_progress=False)
    assert again.summary["steps"] == 5
    log = (out / "train.log").read_text()
    assert "the finished run is not extended: what --time-budget 5.5 leaves" in log
    # Not extended, the run stays as it finished: its config keeps the budget it trained by.
    assert yaml.safe_load((out / "config.yaml").read_text())["time_budget"] == 5.0
    # A run that ended at its --epochs: a longer budget is not what stops it, and no word
    # blames the budget.
    target["steps"] = 100
    capped = tmp_path / "capped"
    pretrain(clusters_npz, time_budget=3.0, epochs=1, out=capped, **options)
    pretrain(resume=capped, time_budget=5.0, show_progress=False)
    assert "is not extended" not in (capped / "train.log").read_text()
