"""A time budget is turned into a number of steps that ends training within it."""

import lightning

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
