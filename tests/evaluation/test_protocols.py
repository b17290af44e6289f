"""Tests of the label-based protocols: kNN, linear probe and few-shot on tiny embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression

from selfsup.data.splits import stratified_split
from selfsup.evaluation import (
    few_shot,
    fit_logistic_regression,
    knn_accuracy,
    knn_leave_one_out,
    knn_predict,
    linear_probe,
    standardize,
)

GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def clusters(
    per_class: int, seed: int, spread: float = 8.0, classes: int = 5, dim: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters with unit noise around class means drawn with scale ``spread``."""
    g = torch.Generator().manual_seed(0)
    means = spread * torch.randn(classes, dim, generator=g)
    g.manual_seed(seed + 1)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return means[labels] + torch.randn(len(labels), dim, generator=g), labels


def noise(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings and labels that are independent of each other."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 16, generator=g), torch.randint(0, 5, (n,), generator=g)


def test_knn_separates_clusters() -> None:
    (x, y), (xt, yt) = clusters(60, seed=0), clusters(30, seed=1)
    assert knn_accuracy(x, y, xt, yt) > 0.95


def test_linear_probe_separates_clusters() -> None:
    (x, y), (xt, yt) = clusters(60, seed=0), clusters(30, seed=1)
    result = linear_probe(x, y, xt, yt)
    assert result.accuracy > 0.95
    assert result.weight_decay in GRID
    assert result.val_accuracy is not None and 0.0 <= result.val_accuracy <= 1.0
    assert result.note is None


@pytest.mark.parametrize(
    "protocol",
    [lambda *data: knn_accuracy(*data), lambda *data: linear_probe(*data).accuracy],
    ids=["knn", "linear"],
)
def test_noise_labels_stay_near_chance(protocol) -> None:
    (x, y), (xt, yt) = noise(300, seed=0), noise(300, seed=1)
    assert protocol(x, y, xt, yt) < 0.4


def test_knn_k1_is_the_nearest_neighbour_by_cosine() -> None:
    train = torch.tensor([[10.0, 0.0], [0.5, 0.5], [0.0, -2.0], [-1.0, 0.0]])
    test = torch.tensor([[3.0, 1.0], [1.0, 1.2], [0.1, -7.0], [-5.0, 0.5]])
    # [3, 1] is nearer to [0.5, 0.5] in Euclidean distance (2.5 against 7.1) but nearer to
    # [10, 0] in angle (cosines 0.949 against 0.894); the others are plainly nearest to
    # [1, 1], [0, -1] and [-1, 0] in angle.
    predicted = knn_predict(train, torch.tensor([0, 1, 2, 3]), test, k=1)
    assert predicted.tolist() == [0, 1, 2, 3]
    accuracy = knn_accuracy(
        train, torch.tensor([0, 1, 2, 3]), test, torch.tensor([0, 1, 2, 0]), k=1
    )
    assert accuracy == pytest.approx(0.75)


def test_knn_temperature_weighting_overrules_the_majority() -> None:
    # One neighbour of class 0 at cosine 1, two of class 1 at cosine 0.6: a plain majority
    # says 1; weights exp(s / 0.07) give class 0 exp(14.3) against 2 * exp(8.6).
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([0, 1, 1])
    test = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train, labels, test, k=3, temperature=0.07).tolist() == [0]
    assert knn_predict(train, labels, test, k=3, temperature=100.0).tolist() == [1]


def test_knn_batches_give_the_same_predictions() -> None:
    (x, y), (xt, _) = noise(50, seed=0), noise(23, seed=1)
    whole = knn_predict(x, y, xt, k=5, batch_size=1024)
    assert torch.equal(knn_predict(x, y, xt, k=5, batch_size=4), whole)


def test_knn_rejects_more_neighbours_than_train_examples() -> None:
    x, y = noise(10, seed=0)
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(x, y, x, k=11)


def test_logistic_regression_solves_the_same_problem_as_sklearn() -> None:
    # sklearn minimises ||W||^2 / 2 + C * sum(CE); ours mean(CE) + wd * ||W||^2, the same
    # problem when C = 1 / (2 * n * wd). Neither penalises the bias.
    x, y = noise(120, seed=0)
    x, wd = standardize(x)[0], 1e-2
    ours = fit_logistic_regression(x, y, 5, wd, max_iter=500)
    reference = LogisticRegression(C=1 / (2 * len(x) * wd), tol=1e-10, max_iter=5000)
    reference.fit(x.numpy().astype(np.float64), y.numpy())
    expected = reference.predict_proba(x.numpy().astype(np.float64))
    np.testing.assert_allclose(ours(x).softmax(1).numpy(), expected, atol=2e-3)


def test_linear_probe_leaves_the_global_torch_rng_alone() -> None:
    x, y = clusters(4, seed=0)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    linear_probe(x, y, x, y, weight_decays=(1e-3,))
    assert torch.equal(torch.rand(3), expected)


def test_stratified_split_keeps_class_proportions() -> None:
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    fit, val = stratified_split(labels, 0.1, np.random.default_rng(0), at_least_one=True)
    assert np.bincount(labels[val]).tolist() == [5, 3, 2]
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(100))


def test_linear_probe_uses_the_middle_weight_decay_when_a_class_has_one_example() -> None:
    x, y = clusters(10, seed=0)
    y = torch.cat([y, torch.tensor([5])])
    x = torch.cat([x, torch.zeros(1, x.shape[1])])
    result = linear_probe(x, y, x, y)
    assert result.weight_decay == 1e-4
    assert result.val_accuracy is None
    assert result.note is not None and "[5]" in result.note


def test_linear_probe_breaks_a_tie_of_accuracies_by_the_validation_cross_entropy() -> None:
    """With 2% positives every penalty predicts the common class, so the validation
    accuracies tie; the strongest penalty (the old tie rule) shrinks the small-variance
    direction that carries the signal and flattens the scores (AUROC 0.62 where the weak
    one gives 0.92), as it did on a fraud team's transactions (0.630 against 0.656)."""
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(6000, generator=g) < 0.02).long()
    x = torch.randn(6000, 1, generator=g) + 0.1 * torch.randn(6000, 8, generator=g)
    x[:, 1] += 0.2 * y  # the signal: feature 1 against its correlated neighbours
    data = (x[:4000], y[:4000], x[4000:], y[4000:])
    strong = linear_probe(*data, weight_decays=(1e-2,))
    weak = linear_probe(*data, weight_decays=(1e-6,))
    assert strong.auroc < 0.7 < 0.9 < weak.auroc
    chosen = linear_probe(*data, weight_decays=(1e-2, 1e-6))
    assert chosen.val_accuracy == pytest.approx(float((y[:4000] == 0).float().mean()), abs=0.01)
    assert chosen.weight_decay == 1e-6
    for folds in (1, 3):
        assert linear_probe(*data, weight_decays=(1e-2, 1e-6), folds=folds).weight_decay == 1e-6


def test_standardize_leaves_a_constant_feature_near_zero() -> None:
    x = torch.cat([torch.full((100, 1), 3.7), torch.randn(100, 1)], dim=1)
    out = standardize(x)[0]
    assert out[:, 0].abs().max() < 1e-5
    assert out[:, 1].std().item() == pytest.approx(1.0, abs=1e-5)


def test_few_shot_reports_each_draw_and_their_interval() -> None:
    (x, y), (xt, yt) = clusters(20, seed=0, spread=0.5), clusters(20, seed=1, spread=0.5)
    result = few_shot(x, y, xt, yt, shots=2, draws=4, seed=0)
    assert result.shots == 2
    assert len(result.accuracies) == 4
    assert len(set(result.accuracies)) > 1
    assert result.mean == pytest.approx(np.mean(result.accuracies))
    sem = np.std(result.accuracies, ddof=1) / math.sqrt(4)
    assert result.ci95 > 0
    assert result.ci95 == pytest.approx(stats.t.ppf(0.975, 3) * sem)


def test_few_shot_rejects_a_single_draw() -> None:
    x, y = clusters(5, seed=0)
    with pytest.raises(ValueError, match="draws"):
        few_shot(x, y, x, y, shots=2, draws=1)


def test_few_shot_names_the_class_with_too_few_examples() -> None:
    x, y = clusters(5, seed=0)
    keep = (y != 3) | (torch.arange(len(y)) % 5 < 2)  # class 3 keeps 2 of its 5 examples
    with pytest.raises(ValueError, match="class 3 has 2"):
        few_shot(x[keep], y[keep], x, y, shots=3, draws=2)


@pytest.mark.parametrize(
    "protocol",
    [
        lambda *data: knn_accuracy(*data, k=5),
        lambda *data: linear_probe(*data, weight_decays=(1e-4, 1e-2)),
        lambda *data: few_shot(*data, shots=3, draws=2),
    ],
    ids=["knn", "linear", "fewshot"],
)
def test_numpy_and_torch_inputs_agree(protocol) -> None:
    (x, y), (xt, yt) = clusters(20, seed=0, spread=0.5), clusters(20, seed=1, spread=0.5)
    from_torch = protocol(x, y, xt, yt)
    # float64 and int32 arrays, so the conversion is exercised too.
    arrays = [x.double().numpy(), y.int().numpy(), xt.double().numpy(), yt.int().numpy()]
    from_numpy = protocol(*arrays)
    assert from_numpy == from_torch


def test_linear_probe_folds_choose_the_penalty_by_cross_validation_as_by_hand() -> None:
    from sklearn.model_selection import StratifiedKFold

    # Few, noisy labels: the penalty matters, and 3 folds see every item once.
    x, y = clusters(8, seed=0, spread=0.6)
    xt, yt = clusters(40, seed=1, spread=0.6)
    grid = (1e-4, 1e-2, 1.0)
    result = linear_probe(x, y, xt, yt, weight_decays=grid, folds=3, seed=4)
    xs, _ = standardize(x, xt)
    hits = dict.fromkeys(grid, 0)
    folds = StratifiedKFold(3, shuffle=True, random_state=4).split(y.numpy(), y.numpy())
    for fit, val in folds:
        fit, val = torch.from_numpy(fit), torch.from_numpy(val)
        for wd in grid:
            model = fit_logistic_regression(xs[fit], y[fit], 5, wd, 200)
            hits[wd] += int((model(xs[val]).argmax(1) == y[val]).sum())
    assert hits == {1e-4: 32, 1e-2: 34, 1.0: 28}  # one split of a tenth would pick 1.0
    assert result.weight_decay == 1e-2
    assert result.val_accuracy == pytest.approx(34 / 40)
    # The rarest class caps the folds: 2 items of class 4 allow 2 folds, not 5.
    keep = torch.cat([torch.arange(32), torch.tensor([32, 33])])
    capped = linear_probe(x[keep], y[keep], xt, yt, weight_decays=grid, folds=5)
    assert capped.val_accuracy is not None
    with pytest.raises(ValueError, match="folds"):
        linear_probe(x, y, xt, yt, folds=0)


def test_a_raw_baseline_too_large_for_memory_is_fitted_on_a_stratified_sample(
    monkeypatch, capsys
) -> None:
    """Memory is planned: where the raw features of every train item would not fit, the raw
    baseline is fitted on a stratified sample that does, the encoder's on every item, and
    the result says so; where they fit, both are fitted on every item."""
    import selfsup.core.memory as memory
    from selfsup.console import print_evaluation
    from selfsup.data.arrays import ArraySource
    from selfsup.evaluation.report import RAW_COPIES, evaluate_encoder
    from selfsup.modalities.image import build_image_encoder

    rng = np.random.default_rng(0)
    labels = np.arange(600) % 3
    images = (rng.random((600, 8, 8)) * 60).astype(np.uint8)
    images[:, :, :4] += (labels * 90).astype(np.uint8)[:, None, None]  # classes by brightness
    train, test = ArraySource(images[:500], labels[:500]), ArraySource(images[500:], labels[500:])
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    per_item = 64 * 4 * RAW_COPIES  # 64 raw values an 8x8 gray image
    monkeypatch.setattr(memory, "available_memory", lambda device: 2 * 300 * per_item)
    result = evaluate_encoder(encoder, train, test, protocols=("linear",))
    assert result.note is not None and "fitted on 200 of 500 train items" in result.note
    assert result.train_items == 500 and result.rows[0].raw > 0.9  # the sample still learns
    print_evaluation(result, "t")
    assert "note: raw baseline fitted on 200 of 500" in capsys.readouterr().out
    assert result.to_dict()["note"] == result.note
    # Room for 120 items where the test alone holds 100: the raw baseline was fitted on 20
    # (6 at 2 a class, had it been less); now both splits are sampled in proportion.
    monkeypatch.setattr(memory, "available_memory", lambda device: 2 * 120 * per_item)
    tight = evaluate_encoder(encoder, train, test, protocols=("linear",))
    assert tight.note.startswith(
        "raw baseline fitted on 99 of 500 train items and scored on 21 of 100 test items"
    )
    assert tight.rows[0].raw > 0.9 and tight.test_items == 100
    monkeypatch.setattr(memory, "available_memory", lambda device: 2**34)
    assert evaluate_encoder(encoder, train, test, protocols=("linear",)).note is None


def test_a_split_above_the_most_items_is_evaluated_on_a_stratified_sample_never_embedded_whole(
    monkeypatch,
) -> None:
    """Ten million transactions: the protocols read a stratified sample of the fit and test
    items (the rare class kept in proportion), planned before any embedding, so only the
    sample is embedded and held; the result keeps the splits' sizes and says so."""
    import selfsup.evaluation.report as report
    from selfsup.data.arrays import ArraySource
    from selfsup.modalities.image import build_image_encoder

    rng = np.random.default_rng(0)
    labels = (np.arange(700) % 25 == 0).astype(int)  # 4% positive
    images = (rng.random((700, 8, 8)) * 60).astype(np.uint8)
    images[labels == 1, :, :4] += 150
    train, test = ArraySource(images[:500], labels[:500]), ArraySource(images[500:], labels[500:])
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    embedded: list[int] = []

    def embed(split):
        embedded.append(len(split))
        return report.embed_source(encoder, split)

    monkeypatch.setattr(report, "FIT_MOST", 100)
    monkeypatch.setattr(report, "TEST_MOST", 50)
    result = report.evaluate_encoder(
        encoder, train, test, protocols=("knn", "auroc"), k=5, embed=embed
    )
    assert embedded == [100, 50]
    assert (result.train_items, result.test_items) == (500, 200)
    assert result.note.startswith(
        "evaluated on a stratified sample of 100 of 500 fit items and 50 of 200 test items"
    )
    fit, scored, _ = report.evaluation_samples(train, test, 0, 100, 50)
    assert (int(fit.labels.sum()), int(scored.labels.sum())) == (4, 2)  # 4% of each
    assert fit.name == train.name  # the evaluation file keeps its name
    monkeypatch.setattr(report, "FIT_MOST", 10**6)
    monkeypatch.setattr(report, "TEST_MOST", 10**6)
    embedded.clear()
    whole = report.evaluate_encoder(encoder, train, test, protocols=("knn",), k=5, embed=embed)
    assert embedded == [500, 200] and "sample" not in (whole.note or "")


def test_few_labels_draw_as_many_shots_as_the_rarest_class_has() -> None:
    """300 labels among many items: a class with 4 fit items gives a few-shot row of 4 labels
    per class, named and explained, instead of stopping the evaluation after kNN and linear;
    a class with no fit item drops the row, with the reason."""
    from selfsup.data.arrays import ArraySource
    from selfsup.evaluation.report import evaluate_encoder
    from selfsup.modalities.image import build_image_encoder

    rng = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 4 + [0] * 10 + [1] * 5)
    images = (rng.random((len(labels), 8, 8)) * 60).astype(np.uint8)
    train = ArraySource(images[:34], labels[:34])
    test = ArraySource(images[34:], labels[34:])
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    result = evaluate_encoder(encoder, train, test, protocols=("knn", "fewshot"), k=3)
    assert [row.protocol for row in result.rows] == ["knn", "fewshot-4"]
    assert result.note == (
        "67% of the test items are of class '0': predicting it alone scores 0.667; "
        "few-shot with 4 labels per class, not 10: class 1 has 4 fit items"
    )
    names = ["0", "1", "2"]
    train = ArraySource(images[:34], labels[:34].astype(str), classes=names)
    new_class = ArraySource(images[34:], ["0"] * 10 + ["2"] * 5, classes=names)  # no fit 2
    result = evaluate_encoder(encoder, train, new_class, protocols=("knn", "fewshot"), k=3)
    assert [row.protocol for row in result.rows] == ["knn"]
    assert result.note.endswith("; no few-shot row: class 2 has no fit item")


def test_two_classes_are_also_ranked_by_auroc_by_default() -> None:
    """18 nodules among 194 scans: accuracy alone says little, so binary labels add AUROC."""
    from selfsup.data.arrays import ArraySource
    from selfsup.evaluation.report import evaluate_encoder
    from selfsup.modalities.image import build_image_encoder

    rng = np.random.default_rng(0)
    labels = np.array(([0] * 9 + [1]) * 6)
    images = (rng.random((len(labels), 8, 8)) * 60).astype(np.uint8)
    images[labels == 1] += 100
    train, test = ArraySource(images[:40], labels[:40]), ArraySource(images[40:], labels[40:])
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    rows = evaluate_encoder(encoder, train, test, k=3).rows
    assert [row.protocol for row in rows] == ["knn", "linear", "fewshot-4", "auroc"]
    assert rows[-1].raw > 0.9  # the bright ones are ranked first from raw pixels
    three = ArraySource(images[:40], np.arange(40) % 3)
    rows = evaluate_encoder(encoder, three, ArraySource(images[40:], np.arange(20) % 3)).rows
    assert "auroc" not in [row.protocol for row in rows]


def test_millions_of_labels_fit_probes_on_a_planned_sample(monkeypatch) -> None:
    """2.4 million labelled transactions: the penalty sweep and the probe ran on every row
    (six minutes, 16 GB). The penalty is chosen on a sample, the probe fitted on a stratified
    sample that keeps the rare class, and the result says so."""
    import selfsup.evaluation.linear as linear
    import selfsup.evaluation.report as report
    from selfsup.data.arrays import ArraySource
    from selfsup.modalities.image import build_image_encoder

    sizes: list[int] = []
    sweep = linear._select_weight_decay
    monkeypatch.setattr(
        linear, "_select_weight_decay", lambda fit, *a: sizes.append(len(fit[1])) or sweep(fit, *a)
    )
    x, y = clusters(200, seed=0, classes=2)
    sampled = linear_probe(x[:300], y[:300], x[300:], y[300:], sweep_most=100)
    assert sizes == [90] and sampled.accuracy > 0.95  # 90 fit + 10 validation of 100
    assert linear_probe(x[:300], y[:300], x[300:], y[300:]).accuracy > 0.95 and sizes[1] == 270

    rng = np.random.default_rng(0)
    labels = (np.arange(700) % 20 == 0).astype(int)  # 5% positive, as fraud is rare
    images = (rng.random((700, 8, 8)) * 60).astype(np.uint8)
    images[labels == 1] += 120
    train, test = ArraySource(images[:500], labels[:500]), ArraySource(images[500:], labels[500:])
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    monkeypatch.setattr(report, "PROBE_MOST", 200)
    result = report.evaluate_encoder(encoder, train, test, protocols=("linear", "auroc"))
    assert "linear probes fitted on a stratified sample of 200 train items (of 500" in result.note
    assert all(row.detail["probe_items_selfsup"] == 200 for row in result.rows)
    assert result.rows[1].raw > 0.95  # the sample keeps the 10 positives among its 200


def _left_out_by_hand(x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    right = []
    for i in range(len(x)):
        rest = torch.arange(len(x)) != i
        predicted = knn_predict(x[rest], y[rest], x[i : i + 1], k=min(k, len(x) - 1))
        right.append(int(predicted[0]) == int(y[i]))
    return float(np.mean(right))


def test_knn_leave_one_out_is_knn_of_each_item_on_all_the_others() -> None:
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(60, 8))).float()
    y = torch.from_numpy(rng.integers(0, 3, 60))
    x[5] = x[9]  # a copy elsewhere still votes for its twin
    assert knn_leave_one_out(x, y, k=7) == pytest.approx(_left_out_by_hand(x, y, 7))
    few = knn_leave_one_out(x[:3], y[:3], k=20)  # k lowered to the items but one
    assert few == pytest.approx(_left_out_by_hand(x[:3], y[:3], 20))
    with pytest.raises(ValueError, match="two items"):
        knn_leave_one_out(x[:1], y[:1])


def test_knn_leave_one_group_out_votes_with_other_groups_only() -> None:
    """Clips of one recording are near copies: voted by their siblings, noise labelled by
    recording scores 1.0; by other recordings' clips alone, it scores what kNN of each item
    on the other groups' items gives (chance here)."""
    rng = np.random.default_rng(4)
    recordings = np.repeat(np.arange(30), 6)  # 30 recordings of 6 clips
    centres = rng.normal(size=(30, 8))
    x = torch.from_numpy(centres[recordings] + 0.01 * rng.normal(size=(180, 8))).float()
    y = torch.from_numpy(rng.integers(0, 3, 30)[recordings])
    assert knn_leave_one_out(x, y, k=5) == 1.0  # the memory of a recording
    grouped = knn_leave_one_out(x, y, k=5, groups=[f"r{g}" for g in recordings])
    right = []
    for i in range(len(x)):
        rest = torch.from_numpy(recordings != recordings[i])
        predicted = knn_predict(x[rest], y[rest], x[i : i + 1], k=5)
        right.append(int(predicted[0]) == int(y[i]))
    assert grouped == pytest.approx(float(np.mean(right)))
    assert grouped < 0.6
    two = knn_leave_one_out(x[:12], y[:12], k=20, groups=recordings[:12])  # k lowered to 6
    assert 0.0 <= two <= 1.0
    with pytest.raises(ValueError, match="two groups"):
        knn_leave_one_out(x[:6], y[:6], groups=recordings[:6])
    with pytest.raises(ValueError, match="groups has 5 entries"):
        knn_leave_one_out(x[:6], y[:6], groups=recordings[:5])


def test_embeddings_mapped_read_only_are_evaluated_without_a_warning(tmp_path) -> None:
    """A run's kept embeddings are memory-mapped read-only; torch warns once a process about
    such arrays, so the check runs in a process of its own."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.normal(size=(40, 3)).astype(np.float32))
    script = (
        "import numpy as np; from selfsup.evaluation import knn_accuracy, linear_probe; "
        f"z = np.load({str(tmp_path / 'e.npy')!r}, mmap_mode='r'); y = np.arange(40) % 2; "
        "knn_accuracy(z[:30], y[:30], z[30:], y[30:], k=3); "
        "linear_probe(z[:30], y[:30], z[30:], y[30:]); print(z.flags.writeable)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False" and "not writable" not in done.stderr
