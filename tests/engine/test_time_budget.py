"""A time budget is turned into a number of steps that ends training within it."""

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
