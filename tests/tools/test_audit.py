"""Bias audit: a constructed disparity is found and ranked first; a balanced case is quiet."""

import json

import numpy as np
import pandas as pd
import pytest
from tests.modalities.tabular.conftest import make_table
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.modalities.image import build_image_encoder
from selfsup.tools.audit import (
    AuditResult,
    audit_arrays,
    audit_run,
    read_groups_file,
)
from selfsup.tools.audit.metrics import _one_vs_rest_rates
from selfsup.tools.calibration import calibration_error

PER_GROUP = 500


def _population(seed: int):
    """Two groups of the same size whose embeddings come from the same distribution:
    two classes, each a Gaussian blob in 16 dimensions."""
    rng = np.random.default_rng(seed)
    n = 2 * PER_GROUP
    groups = np.repeat(["A", "B"], PER_GROUP)
    y = rng.integers(0, 2, n)
    embeddings = rng.normal(0, 1, (n, 16)) + 2.0 * y[:, None] * np.eye(16)[0]
    return rng, groups, y, embeddings


def _predict(rng, y, error_rate):
    """Predictions wrong at random for a share ``error_rate`` of items, with confidences
    that match how often they are right (a calibrated model)."""
    wrong = rng.random(len(y)) < error_rate
    pred = np.where(wrong, 1 - y, y)
    confidence = np.full(len(y), 1 - error_rate)
    proba = np.where(np.eye(2)[pred] == 1, confidence[:, None], 1 - confidence[:, None])
    return pred, proba


def test_a_constructed_disparity_is_found_and_ranked_first() -> None:
    rng, groups, y, embeddings = _population(seed=0)
    pred, proba = _predict(rng, y, 0.05)
    # Group B: 35% of its positives are missed (predicted negative with confidence 0.95).
    missed = (groups == "B") & (y == 1) & (rng.random(len(y)) < 0.35)
    pred[missed] = 0
    proba[missed] = [0.95, 0.05]

    result = audit_arrays(y, pred, proba, groups, embeddings, n_boot=100)

    # The missed positives are ranked below B's negatives too: its AUROC drops as its FNR
    # rises, and the two gaps lead.
    assert {gap.check for gap in result.gaps[:2]} == {"fnr", "auroc"}
    top = next(gap for gap in result.gaps if gap.check == "fnr")
    assert (top.check, top.worst, top.best, top.large) == ("fnr", "B", "A", True)
    assert top.value == pytest.approx(
        result.by_group["fnr"]["B"] - result.by_group["fnr"]["A"], abs=1e-12
    )
    assert 0.3 < top.value < 0.45
    told = [line for line in result.summary()[:2] if line.startswith("The false negative rate")]
    assert len(told) == 1 and "group B" in told[0]
    # Missing positives also costs accuracy and calibration for B: reported after them.
    large = [gap.check for gap in result.large_gaps]
    assert set(large[:4]) == {"fnr", "auroc", "ece", "accuracy"}
    assert "fpr" not in large  # no negative of B was touched
    # The embedding is the same for both groups: none of its checks is large.
    assert not {"purity", "separability", "rankme"} & set(large)


def test_a_balanced_population_has_no_large_gap() -> None:
    rng, groups, y, embeddings = _population(seed=1)
    pred, proba = _predict(rng, y, 0.1)
    result = audit_arrays(y, pred, proba, groups, embeddings, n_boot=100)
    assert result.large_gaps == []
    assert result.summary()[0].startswith("No large gap between the groups.")
    assert {gap.check for gap in result.gaps} == {
        "accuracy", "ece", "fpr", "fnr", "auroc", "purity", "separability", "rankme",
    }  # fmt: skip
    assert all(gap.value < gap.threshold for gap in result.gaps)


def test_an_embedding_that_encodes_the_group_is_flagged() -> None:
    _, groups, _, embeddings = _population(seed=2)
    shifted = embeddings + 3.0 * (groups == "B")[:, None] * np.eye(16)[1]
    flat = shifted.copy()
    flat[groups == "B", 2:] *= 0.05  # B's embeddings also use far fewer directions
    result = audit_arrays(None, None, None, groups, flat)
    large = {gap.check: gap for gap in result.large_gaps}
    assert set(large) == {"purity", "separability", "rankme"}
    assert large["rankme"].worst == "B"
    assert result.by_group["separability"]["B"] > 0.9


def test_error_rates_and_calibration_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    # One-vs-rest: class 0 fpr 1/4 fnr 1/2; class 1 fpr 1/4 fnr 0; class 2 fpr 0 fnr 1/2.
    fpr, fnr = _one_vs_rest_rates(y, pred, 3)
    assert fpr == pytest.approx((0.25 + 0.25 + 0) / 3)
    assert fnr == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert _one_vs_rest_rates(np.array([0, 1, 1]), np.array([1, 1, 0]), 2) == (1.0, 0.5)
    # Two bins: confidence 0.55 (right 1 of 2) and 0.95 (right 2 of 2).
    correct = np.zeros(4) == np.array([0, 1, 0, 0])
    ece = calibration_error(correct, np.array([0.55, 0.55, 0.95, 0.95]))
    assert ece == pytest.approx(0.5 * abs(0.5 - 0.55) + 0.5 * abs(1.0 - 0.95))


def test_groups_file_must_cover_every_item(tmp_path) -> None:
    path = tmp_path / "groups.csv"
    pd.DataFrame({"id": ["a.png", "b.png"], "group": ["x", "y"]}).to_csv(path, index=False)
    assert read_groups_file(path, ["b.png", "a.png"]).tolist() == ["y", "x"]
    with pytest.raises(ValueError, match=r"1 of 3 items have no group, e.g. \['c.png'\]"):
        read_groups_file(path, ["a.png", "b.png", "c.png"])
    pd.DataFrame({"item": ["a.png"], "group": ["x"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="no column 'id'"):
        read_groups_file(path, ["a.png"])


def _pretrained_on(frame: pd.DataFrame, tmp_path, epochs: int):
    """``frame`` written to ``records.csv`` and a run pretrained on it from the command line
    (label ``y``, the ``site`` column dropped): the file, the run folder and the runner."""
    data = tmp_path / "records.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "run"
    runner = CliRunner()
    pretrain = ["pretrain", str(data), "--label-column", "y", "--drop-columns", "site",
                "--epochs", str(epochs), "--batch-size", "32", "--out", str(out)]  # fmt: skip
    assert runner.invoke(app, pretrain).exit_code == 0
    return data, out, runner


def test_audit_command_on_a_table_with_a_group_column(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = make_table(n=400, missing=0.0)
    frame["site"] = np.where(np.arange(len(frame)) % 2 == 0, "north", "south")
    south = frame["site"] == "south"
    # South's records are noisy: its classes are much harder to tell apart.
    frame.loc[south, "a"] += rng.normal(0, 250, south.sum())
    frame.loc[south, "b"] += rng.normal(0, 2.5, south.sum())
    frame.loc[south, "color"] = rng.choice(["red", "green", "blue"], south.sum())
    data, out, runner = _pretrained_on(frame, tmp_path, epochs=2)

    result = runner.invoke(app, ["audit", str(out), str(data), "--group", "site"])
    assert result.exit_code == 0, result.output
    assert "logistic regression" in result.output
    saved = AuditResult.load(out)
    assert (out / "audit.png").stat().st_size > 5000
    assert saved.counts == {"north": 200, "south": 200}
    assert saved.by_group["accuracy"]["south"] < saved.by_group["accuracy"]["north"] - 0.1
    accuracy = next(gap for gap in saved.gaps if gap.check == "accuracy")
    assert accuracy.large and accuracy.worst == "south"
    assert json.loads((out / "audit.json").read_text())["summary"]

    missing = runner.invoke(app, ["audit", str(out), str(data), "--group", "region"])
    assert missing.exit_code != 0
    assert "no column 'region'" in str(missing.exception)
    # Rows without a group are a group of their own, and said so (they were an error).
    frame.loc[:49, "site"] = None
    frame.to_csv(data, index=False)
    result = runner.invoke(app, ["audit", str(out), str(data), "--group", "site"])
    assert result.exit_code == 0, result.output
    assert "50 rows without a value in 'site' form the group (missing)" in result.output
    assert AuditResult.load(out).counts["(missing)"] == 50
    # Labels on some rows only (every third): the audit is of the labelled rows.
    frame["y"] = frame["y"].where(np.arange(len(frame)) % 3 == 0)
    frame.to_csv(data, index=False)
    result = runner.invoke(app, ["audit", str(out), str(data), "--group", "site"])
    assert result.exit_code == 0, result.output
    assert "audited the 134 labelled rows of 400" in result.output
    assert sum(AuditResult.load(out).counts.values()) == 134


def test_an_audit_above_its_most_items_reads_a_sample_stratified_by_group_and_class(
    tmp_path, monkeypatch
) -> None:
    """Ten million rows are audited on a million: here 400 on 100, each site and class
    keeping its share, and the note says so."""
    import selfsup.tools.audit.run as audit_module

    frame = make_table(n=400, missing=0.0)
    frame["site"] = np.where(np.arange(len(frame)) % 4 == 0, "north", "south")
    data, out, runner = _pretrained_on(frame, tmp_path, epochs=1)
    monkeypatch.setattr(audit_module, "AUDIT_MOST", 100)
    result = runner.invoke(app, ["audit", str(out), str(data), "--group", "site"])
    assert result.exit_code == 0, result.output
    assert "audited a random sample of 100 of the 400 items" in " ".join(result.output.split())
    assert AuditResult.load(out).counts == {"north": 25, "south": 75}
    site, label = frame["site"].to_numpy(), pd.factorize(frame["y"])[0]
    rows = audit_module.audited_rows(np.ones(400, bool), site, label, most=100)
    assert len(rows) == 100 and np.all(np.diff(rows) > 0)
    for name in ("north", "south"):  # each class keeps its share within each site
        for code in range(3):
            share = np.mean(label[site == name] == code)
            assert np.mean(label[rows][site[rows] == name] == code) == pytest.approx(
                share, abs=0.03
            )


def test_audit_of_an_adapted_model_uses_its_predictions(tmp_path, monkeypatch) -> None:
    import torch
    from tests.tools.adapted_stand_in import install
    from torch import nn

    from selfsup.run import Run

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (120, 8, 8)).astype(np.uint8)
    y = np.arange(120) % 2
    data = tmp_path / "items.npz"
    np.savez(data, X=x, y=y)
    torch.manual_seed(0)
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    adapted = install(monkeypatch)
    model = adapted(encoder, nn.Linear(encoder.feature_dim, 2), ["0", "1"], tmp_path / "run")
    adapted.saved["m"] = model
    groups = tmp_path / "groups.csv"
    pd.DataFrame({"id": [str(i) for i in range(120)], "group": np.repeat(["u", "v"], 60)}).to_csv(
        groups, index=False
    )
    run = Run(tmp_path / "run", encoder, {"modality": "image"}, {})
    result = audit_run(run, data, groups_file=groups, model="m", n_boot=20)
    assert result.notes[0] == "predictions of the adapted model m"
    predicted = model.predict_proba(run.open(data)).argmax(axis=1)
    for name, rows in (("u", slice(0, 60)), ("v", slice(60, 120))):
        expected = float((predicted[rows] == y[rows]).mean())
        assert result.by_group["accuracy"][name] == pytest.approx(expected)
    assert (tmp_path / "run" / "audit.json").exists()
    # Above AUDIT_MOST items, the model predicts the sampled items only, and they are scored.
    import selfsup.tools.audit.run as audit_module

    monkeypatch.setattr(audit_module, "AUDIT_MOST", 40)
    result = audit_run(run, data, groups_file=groups, model="m", n_boot=20)
    rows = audit_module.audited_rows(np.ones(120, bool), np.repeat(["u", "v"], 60), y, most=40)
    assert sum(result.counts.values()) == 40
    for name in ("u", "v"):
        mine = rows[(rows < 60) == (name == "u")]
        expected = float((predicted[mine] == y[mine]).mean())
        assert result.by_group["accuracy"][name] == pytest.approx(expected)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_counted_metrics_and_bootstrap_agree_with_fairlearn(num_classes):
    """The intervals come from bincounts per resample (fairlearn's MetricFrame took 108 s on
    20,000 rows with 200 resamples); the values and the intervals must still be fairlearn's."""
    from fairlearn.metrics import MetricFrame

    from selfsup.tools.audit.metrics import prediction_metrics, weighted_group_metrics

    rng = np.random.default_rng(num_classes)
    n = 3000
    groups = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])
    y_true = rng.integers(0, num_classes, n)
    y_true[(groups == "c") & (y_true == 0)] = 1  # a group without one class
    proba = rng.dirichlet(np.ones(num_classes), n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, proba.argmax(axis=1))
    confidence = proba.max(axis=1)
    codes = pd.Categorical(groups, categories=["a", "b", "c"]).codes.astype(np.int64)
    counted = weighted_group_metrics(codes, 3, y_true, y_pred, confidence, num_classes, np.ones(n))
    for g, name in enumerate("abc"):
        rows = groups == name
        fpr, fnr = _one_vs_rest_rates(y_true[rows], y_pred[rows], num_classes)
        assert counted["accuracy"][g] == pytest.approx(np.mean(y_true[rows] == y_pred[rows]))
        assert counted["ece"][g] == pytest.approx(
            calibration_error(y_true[rows] == y_pred[rows], confidence[rows])
        )
        assert (counted["fpr"][g], counted["fnr"][g]) == pytest.approx((fpr, fnr), nan_ok=True)
    values, intervals, _ = prediction_metrics(y_true, y_pred, proba, groups, n_boot=300)
    reference = MetricFrame(
        metrics={"accuracy": lambda t, p: float(np.mean(t == p))},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=pd.Series(groups, name="group"),
        n_boot=300,
        ci_quantiles=[0.025, 0.975],
        random_state=1,
    )
    low, high = reference.by_group_ci
    for name in "abc":
        assert values["accuracy"][name] == pytest.approx(reference.by_group["accuracy"][name])
        # Two bootstraps of 300 resamples: their 95% bounds agree to about a point.
        mine = intervals["accuracy"][name]
        assert mine == pytest.approx([low["accuracy"][name], high["accuracy"][name]], abs=0.015)


def test_separability_is_cross_validated_on_a_sample_stratified_by_group(monkeypatch) -> None:
    import selfsup.tools.audit.metrics as metrics

    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b", "rare"], [600, 394, 6])
    z = rng.normal(0, 0.05, (1000, 3)) + np.eye(3)[pd.factorize(groups)[0]]
    seen = []
    real = metrics.cross_validated_proba
    monkeypatch.setattr(
        metrics,
        "cross_validated_proba",
        lambda x, y, *a, **k: seen.append(len(x)) or real(x, y, *a, **k),
    )
    score, recall = metrics.group_separability(z, groups, most=100)
    assert seen == [104]  # 60 + 39 + 5 of the rare group's 6 (at least 5 where it has them)
    assert score == 1.0 and recall == {"a": 1.0, "b": 1.0, "rare": 1.0}


def test_the_picture_of_sixty_groups_lies_its_bars_down_in_taller_panels(tmp_path) -> None:
    from PIL import Image

    from selfsup.tools.audit.result import plot_audit

    def picture(count: int) -> tuple[int, int]:
        names = [f"country {i}" for i in range(count)]
        values = {g: 0.5 for g in names}
        result = AuditResult(
            names, dict.fromkeys(names, 10), {"accuracy": values, "purity": values}
        )
        return Image.open(plot_audit(result, tmp_path / f"{count}.png")).size

    few, many = picture(3), picture(60)
    assert many[1] > 3 * few[1]  # a row per group, named


def test_group_auroc_equals_sklearns_with_weights_and_ties() -> None:
    from sklearn.metrics import roc_auc_score

    from selfsup.tools.audit.metrics import GroupAUROC

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, 3000)
    positive = rng.random(3000) < np.where(codes == 3, 0.0, 0.05)  # group 3: no positive
    score = np.round(rng.random(3000) + 0.3 * positive * (codes + 1), 1)  # many ties
    weights = np.bincount(rng.integers(0, 3000, 3000), minlength=3000)  # a bootstrap resample
    got = GroupAUROC(codes, 4, positive, score)(weights)
    for g in range(3):
        rows = codes == g
        expected = roc_auc_score(positive[rows], score[rows], sample_weight=weights[rows])
        assert got[g] == pytest.approx(expected, abs=1e-12)
    assert np.isnan(got[3])


def test_a_rare_class_is_audited_by_its_auroc_per_group() -> None:
    """1% positives: nothing is predicted positive, so every group's false negative rate is
    1.0 and tells the groups apart no more; group B's scores rank its positives worse."""
    rng = np.random.default_rng(0)
    n = 20_000
    groups = np.repeat(["A", "B"], n // 2)
    y = (rng.random(n) < 0.01).astype(int)
    signal = np.where(groups == "A", 2.0, 0.5)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + signal * y - 5)))
    proba = np.c_[1 - score, score]
    result = audit_arrays(y, proba.argmax(1), proba, groups, n_boot=50)
    assert result.by_group["fnr"] == {"A": 1.0, "B": 1.0}
    assert result.by_group["auroc"]["A"] > 0.85 > 0.7 > result.by_group["auroc"]["B"]
    assert result.intervals["auroc"]["A"][0] > result.intervals["auroc"]["B"][1]
    gap = next(g for g in result.gaps if g.check == "auroc")
    assert gap.large and gap.worst == "B" and "AUROC" in gap.sentence


def test_more_classes_are_audited_by_their_mean_one_vs_rest_auroc(monkeypatch) -> None:
    """Four classes: each group's AUROC is sklearn's one-vs-rest macro mean, and a group whose
    scores rank its items worse shows a large gap, with intervals from fewer resamples where
    the bootstrap's work would be long."""
    from sklearn.metrics import roc_auc_score

    import selfsup.tools.audit.metrics as metrics

    rng = np.random.default_rng(0)
    n = 6000
    groups = np.repeat(["A", "B", "C"], n // 3)
    y = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += np.where(groups == "C", 0.5, 2.0)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    monkeypatch.setattr(metrics, "AUROC_WORK", 4 * n * 30)  # 30 resamples' work: the minimum
    monkeypatch.setattr(metrics, "MIN_AUROC_BOOT", 20)
    calls, call = [], metrics.MacroAUROC.__call__
    monkeypatch.setattr(metrics.MacroAUROC, "__call__", lambda *a: calls.append(1) or call(*a))
    result = audit_arrays(y, proba.argmax(1), proba, groups, n_boot=40)
    assert len(calls) == 2 + 30  # the values by group and overall, then 30 of 40 resamples
    for name in "ABC":
        rows = groups == name
        expected = roc_auc_score(y[rows], proba[rows], multi_class="ovr", average="macro")
        assert result.by_group["auroc"][name] == pytest.approx(expected, abs=1e-12)
        low, high = result.intervals["auroc"][name]
        assert low < result.by_group["auroc"][name] < high
    gap = next(g for g in result.gaps if g.check == "auroc")
    assert gap.large and gap.worst == "C"
