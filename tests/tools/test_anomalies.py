"""Anomaly scores: outliers score higher, the threshold keeps its false-positive rate."""

import numpy as np
import pytest

from selfsup.data.arrays import ArraySource
from selfsup.tools.anomalies import (
    MahalanobisScorer,
    anomalous_items,
    detection_quality,
    fit_detector,
    knn_distance,
    score_for_run,
    self_scores,
)


def _normal_and_outliers(seed=0, normal_items=2000):
    rng = np.random.default_rng(seed)
    normal = (
        rng.normal(size=(normal_items, 6)) + 4
    )  # away from the origin, so normalizing keeps shape
    outliers = rng.normal(size=(50, 6)) + 4
    outliers[:, :3] += rng.choice([-6, 6], size=(50, 3))
    return normal, outliers


@pytest.mark.parametrize("scorer", ["knn", "mahalanobis"])
def test_outliers_score_higher_and_the_threshold_keeps_the_target_fpr(scorer) -> None:
    normal, outliers = _normal_and_outliers(normal_items=10000)
    detector = fit_detector(normal, scorer=scorer, k=5, fpr=0.05, seed=0)
    fresh_normal, _ = _normal_and_outliers(seed=1, normal_items=4000)
    flagged = detector.flag(fresh_normal).mean()
    # 5% target: the quantile of 2,000 held-out scores and the share of 4,000 fresh items
    # each vary by about 0.4%, so 1.5% is over 2.5 standard deviations of both together.
    assert 0.035 <= flagged <= 0.065
    quality = detection_quality(
        detector.score(np.concatenate([fresh_normal, outliers])),
        np.repeat([False, True], [4000, 50]),
    )
    assert quality.auroc > 0.95 and quality.auprc > 0.7


def test_knn_distance_is_the_kth_neighbour_and_leaves_itself_out() -> None:
    ref = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert knn_distance(ref, np.array([[2.0]]), k=2, normalize=False).tolist() == [1.0]
    assert knn_distance(ref, ref, k=2, leave_one_out=True, normalize=False).tolist() == [
        3.0, 2.0, 3.0, 6.0,
    ]  # fmt: skip
    with_unreadable = self_scores(np.array([[0.0], [np.nan], [1.0], [2.0]]), k=1, normalize=False)
    assert np.isnan(with_unreadable).tolist() == [False, True, False, False]


@pytest.mark.parametrize("normalize", [False, True])
def test_above_the_most_items_each_is_scored_among_a_random_sample_of_the_others(
    normalize,
) -> None:
    """Ten million transactions scored among all of them would search for half an hour
    (n^1.5): above ``most`` items each is scored by its k-th neighbour among a random sample
    (its own row left out where it is one), computed here by brute force, and the outliers
    still rank first."""
    from selfsup.tools.anomalies import SELF_REFERENCE_MOST

    normal, outliers = _normal_and_outliers(normal_items=600)
    z = np.concatenate([normal, outliers]).astype(np.float32)
    scores = self_scores(z, k=3, normalize=normalize, most=200, seed=4)
    sample = np.sort(np.random.default_rng(4).choice(len(z), 200, replace=False))
    x = z / np.linalg.norm(z, axis=1, keepdims=True) if normalize else z
    distances = np.linalg.norm(x[:, None, :] - x[None, sample, :], axis=2)
    distances[sample, np.arange(200)] = np.inf  # a sampled row is not its own neighbour
    expected = np.sort(distances, axis=1)[:, 2]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    quality = detection_quality(scores, np.repeat([False, True], [600, 50]))
    assert quality.auroc > 0.95
    assert SELF_REFERENCE_MOST >= 1_000_000  # a million items are still scored among all
    whole = self_scores(z, k=3, normalize=normalize, most=len(z))
    exact = knn_distance(z, z, k=3, leave_one_out=True, normalize=normalize)
    np.testing.assert_allclose(whole, exact)


def test_a_detector_of_more_normal_items_is_fitted_on_a_sample_and_keeps_its_rate(
    tmp_path, monkeypatch
) -> None:
    """Ten million normal transactions: the reference is a random sample (here 1,000 of
    8,000), the threshold is set on held-out items scored against the same sample (here 500
    of 2,000), read from a read-only memory map, and new normal items keep the rate asked."""
    import selfsup.tools.anomalies as anomalies

    normal, outliers = _normal_and_outliers(normal_items=14000)
    np.save(tmp_path / "normal.npy", normal[:10000].astype(np.float32))
    mapped = np.load(tmp_path / "normal.npy", mmap_mode="r")
    monkeypatch.setattr(anomalies, "CALIBRATE_MOST", 500)
    for scorer in ("knn", "mahalanobis"):
        detector = fit_detector(mapped, scorer, fpr=0.1, reference_most=1000)
        assert detector.reference.shape == (1000, 6), scorer
        assert detector.calibration_items == 500  # the threshold's own sampling error
        assert set(map(tuple, detector.reference)) <= set(map(tuple, mapped[:]))
        new_normal = detector.flag(normal[10000:]).mean()
        assert abs(new_normal - 0.1) < 3 * np.sqrt(0.1 * 0.9 / 500) + 0.02, (scorer, new_normal)
        assert detector.flag(outliers).mean() > 0.9, scorer
    whole = fit_detector(normal[:1000], "knn", fpr=0.1)  # below the most: all of them
    assert len(whole.reference) == 800


def test_mahalanobis_uses_the_covariance() -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(4000, 2)) * np.array([10.0, 1.0])  # wide along x, narrow along y
    scorer = MahalanobisScorer(normal)
    along_x, along_y = scorer.score(np.array([[10.0, 0.0], [0.0, 10.0]]))
    assert along_x == pytest.approx(1.0, rel=0.1) and along_y == pytest.approx(100.0, rel=0.1)


def test_detection_quality_by_hand_and_with_flags() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8, np.nan])
    truth = np.array([False, False, True, True, True])
    quality = detection_quality(scores, truth, flagged=scores > 0.3)
    assert quality.auroc == pytest.approx(0.75)  # 3 of the 4 pairs ordered right
    assert quality.auprc == pytest.approx((1 + 2 / 3) / 2)
    assert quality.flagged_fpr == 0.5 and quality.flagged_recall == 1.0 and quality.items == 4
    with pytest.raises(ValueError, match="both normal and anomalous"):
        detection_quality(np.array([0.1, 0.2]), np.array([False, False]))


def test_anomalous_items_from_names_or_the_normal_classes() -> None:
    data = ArraySource(np.zeros((4, 2, 2), np.uint8), labels=np.array(["ok", "bad", "ok", "odd"]))
    normal = ArraySource(np.zeros((2, 2, 2), np.uint8), labels=np.array(["ok", "ok"]))
    assert anomalous_items(data, None, normal).tolist() == [False, True, False, True]
    assert anomalous_items(data, ["odd"]).tolist() == [False, False, False, True]
    assert anomalous_items(data, None) is None
    with pytest.raises(ValueError, match=r"anomaly labels \['nope'\] are not classes"):
        anomalous_items(data, ["nope"])


def test_score_for_run_holds_out_one_class(clusters_run, clusters_data, tmp_path) -> None:
    x, y = np.load(clusters_data[0])["X"], np.load(clusters_data[0])["y"]
    np.savez(tmp_path / "normal.npz", X=x[y != 3], y=y[y != 3])
    report = score_for_run(clusters_run, str(clusters_data[1]), str(tmp_path / "normal.npz"))
    assert list(report.table.columns) == ["id", "score", "flagged"]
    assert report.quality is not None and report.quality.anomalies == 16  # class 3 of the test
    assert report.quality.auroc > 0.5
    # Normal here means "of a class the normal data holds": the note says so, and how else.
    told = [n for n in report.notes if "normal items (normal: of a class" in n]
    assert len(told) == 1 and "normal.npz holds; --anomaly-label CLASS" in told[0], report.notes
    alone = score_for_run(clusters_run, str(clusters_data[1]), anomaly_labels=["3"], fpr=0.25)
    assert alone.table["flagged"].sum() == 16  # the top quarter of 64 items
    # Without normal data no threshold was set on normal items: no warning that it fails.
    assert not [n for n in alone.notes if n.startswith("warning")], alone.notes
    assert any("the top 0.25 of all items are flagged, anomalies among them" in n
               for n in alone.notes)  # fmt: skip
    with pytest.raises(ValueError, match="needs normal data"):
        score_for_run(clusters_run, str(clusters_data[1]), scorer="mahalanobis")


def test_the_threshold_is_set_on_rows_the_encoder_never_trained_on(
    clusters_run, clusters_data, tmp_path
) -> None:
    from selfsup.data.splits import held_out_rows
    from selfsup.run import pretrain

    train, test = (str(p) for p in clusters_data)
    run = pretrain(train, epochs=1, batch_size=64, out=tmp_path / "run", monitor_items=32,
                   backbone_options={"width": 4}, show_progress=False)  # fmt: skip
    report = score_for_run(run, test, train)
    held = held_out_rows(256, 32, 0)
    assert len(held) == 25
    assert any("the 25 items of" in n and "never trained on" in n for n in report.notes)
    # The same threshold as fitting by hand with those rows for calibration.
    normal_z = run.embed(train)
    by_hand = fit_detector(normal_z, calibrate_rows=held)
    assert report.threshold == pytest.approx(by_hand.threshold)
    # A run that held nothing out cannot do this, and says what follows.
    report = score_for_run(clusters_run, test, train)
    assert any("trained on and the run held no items out" in n for n in report.notes)
    # Nor can one that read the data as other items (long series cut into windows): its
    # held-out rows are not rows of the data as opened now.
    run.summary = {**run.summary, "items": 1000}
    report = score_for_run(run, test, train)
    assert any("read then as 1,025 items" in n for n in report.notes), report.notes
    assert not any("never trained on" in n for n in report.notes)


def test_a_measured_false_positive_rate_far_from_the_target_is_reported() -> None:
    from selfsup.tools.anomalies import AnomalyReport  # noqa: F401 - the notes live there

    normal, outliers = _normal_and_outliers(normal_items=400)
    shifted = normal + 0.8  # new normal data unlike the normal reference
    detector = fit_detector(normal, "mahalanobis", fpr=0.05)
    flagged = detector.flag(np.concatenate([shifted, outliers]))
    is_anomaly = np.r_[np.zeros(400, bool), np.ones(50, bool)]
    quality = detection_quality(
        detector.score(np.concatenate([shifted, outliers])), is_anomaly, flagged
    )
    assert quality.flagged_fpr > 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
