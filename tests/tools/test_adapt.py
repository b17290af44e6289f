"""Few-shot adaptation: the heads, temperature scaling, saving, fine-tuning."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup.tools.adapt import (
    AdaptedModel,
    adapt,
    backbone_blocks,
    draw_shots,
    fit_head,
    write_predictions,
)
from selfsup.tools.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)


def test_prototype_head_is_the_nearest_class_mean_by_hand() -> None:
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    stats = (torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]))
    head = fit_head(z, torch.tensor([0, 0, 1, 1]), 2, "prototype", stats)
    # Standardized class means: ((2-1)/2, (0-1)/2) and ((0-1)/2, (5-1)/2).
    p0, p1 = torch.tensor([0.5, -0.5]), torch.tensor([-0.5, 2.0])
    assert torch.allclose(head.linear.weight, 2 * torch.stack([p0, p1]))
    assert torch.allclose(head.linear.bias, -torch.stack([p0, p1]).square().sum(1))
    queries = torch.tensor([[2.5, 0.5], [0.5, 4.5], [5.0, 1.0]])
    x = (queries - stats[0]) / stats[1]
    nearest = torch.cdist(x, torch.stack([p0, p1])).argmin(1)
    assert torch.equal(head(queries).argmax(1), nearest)
    # Logit differences are differences of negated squared distances.
    distances = torch.cdist(x, torch.stack([p0, p1])).square()
    logits = head(queries).detach()
    assert torch.allclose(logits[:, 0] - logits[:, 1], distances[:, 1] - distances[:, 0])


def test_a_class_without_labels_is_named() -> None:
    stats = (torch.zeros(1), torch.ones(1))
    with pytest.raises(ValueError, match=r"classes \[2\] have no labelled example"):
        fit_head(torch.zeros(2, 1), torch.tensor([0, 1]), 3, "prototype", stats)
    linear = fit_head(torch.tensor([[-1.0], [1.0]]), torch.tensor([0, 1]), 3, "linear", stats)
    assert linear(torch.tensor([[-2.0], [2.0]])).argmax(1).tolist() == [0, 1]
    with pytest.raises(ValueError, match="class 'b' has 1 labelled items, fewer than 2"):
        draw_shots(np.array([0, 0, 1]), 2, 0, ["a", "b"])


def test_temperature_scaling_lowers_the_nll_of_an_over_confident_classifier() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    # Right 70% of the time, with logits that claim 99.9%.
    predicted = np.where(rng.random(300) < 0.7, labels, (labels + 1) % 3)
    logits = np.full((300, 3), 0.0)
    logits[np.arange(300), predicted] = 8.0
    temperature = fit_temperature(logits, labels)
    assert temperature > 1  # over-confident: soften
    before = negative_log_likelihood(logits, labels)
    after = negative_log_likelihood(logits, labels, temperature)
    assert after < before / 3
    # The optimum puts the accuracy a on the predicted class and (1 - a) / 2 on each other:
    # exp(8 / T) / (exp(8 / T) + 2) = a, so 8 / T = log(2a / (1 - a)).
    a = (predicted == labels).mean()
    assert temperature == pytest.approx(8 / np.log(2 * a / (1 - a)), rel=1e-4)
    probs = lambda t: torch.softmax(torch.from_numpy(logits / t), 1).numpy()  # noqa: E731
    assert expected_calibration_error(probs(temperature), labels) < 0.05
    assert expected_calibration_error(probs(1.0), labels) > 0.25


def test_expected_calibration_error_by_hand() -> None:
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 0])
    # Bins: {0.95, 0.95} accuracy 0.5 -> |0.5 - 0.95| * 2/4; {0.6, 0.6} accuracy 0.5 -> 0.1 * 2/4.
    assert expected_calibration_error(probs, labels) == pytest.approx(0.225 + 0.05)


@pytest.mark.parametrize("head", ["prototype", "linear", "propagation"])
def test_a_saved_model_reloads_with_identical_predictions(clusters_run, clusters_data, head,
                                                          tmp_path) -> None:  # fmt: skip
    train, test = clusters_data
    model = adapt(clusters_run, str(train), shots=8, head=head, seed=1)
    assert model.classes == ["0", "1", "2", "3"]
    assert model.metrics["calibration"] == "cv" and model.metrics["labelled"] == 32
    assert model.metrics["nll_after"] <= model.metrics["nll_before"] + 1e-9
    probs = model.predict_proba(str(test))
    assert probs.shape == (64, 4) and np.allclose(probs.sum(1), 1)
    model.save(tmp_path / "model")
    again = AdaptedModel.load(tmp_path / "model")
    assert np.array_equal(again.predict_proba(str(test)), probs)
    assert np.array_equal(again.predict(str(test)), probs.argmax(1))
    assert again.run_path == clusters_run.path.resolve() and again.temperature == model.temperature
    # The module maps raw items to the same probabilities.
    items = clusters_run.open(str(test)).read_batch(range(64)).items
    with torch.no_grad():
        from_module = again.module()(items).double().numpy()
    assert np.allclose(from_module, probs, atol=1e-5)
    labels = np.load(test)["y"]
    assert (probs.argmax(1) == labels).mean() > 0.5  # four classes: chance is 0.25
    table = write_predictions(again, str(test), tmp_path / "p.csv")
    assert list(table.columns) == ["id", "predicted", "p_0", "p_1", "p_2", "p_3"]
    assert np.array_equal(table["predicted"].astype(int).to_numpy(), probs.argmax(1))


def test_held_out_temperature_scaling_fits_the_head_without_the_held_out_labels(
    clusters_run, clusters_data
) -> None:
    model = adapt(clusters_run, str(clusters_data[0]), head="linear", calibration="temperature")
    # 64 per class: a fifth (13) of each class is held out.
    assert model.metrics["held_out_labels"] == 4 * 13
    assert model.metrics["fit_labels"] == 4 * 51


def test_fine_tuning_changes_only_the_last_blocks(clusters_run, clusters_data, tmp_path) -> None:
    model = adapt(clusters_run, str(clusters_data[0]), shots=10, finetune_blocks=1,
                  finetune_epochs=2, calibration="temperature")  # fmt: skip
    before = backbone_blocks(clusters_run.encoder.backbone)
    after = backbone_blocks(model.finetuned_encoder.backbone)
    for block, (a, b) in enumerate(zip(before, after, strict=True)):
        same = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
        assert same == (block < len(before) - 1), block
    model.save(tmp_path / "tuned")
    again = AdaptedModel.load(tmp_path / "tuned")
    test = str(clusters_data[1])
    assert np.array_equal(again.predict_proba(test), model.predict_proba(test))
    with pytest.raises(ValueError, match="held-out labels"):
        adapt(clusters_run, str(clusters_data[0]), shots=10, finetune_blocks=1, calibration="cv")


def test_fine_tuning_an_unknown_backbone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"Linear does not list its blocks \(a block_list"):
        backbone_blocks(torch.nn.Linear(2, 2))


def test_unlabelled_data_is_refused(clusters_run, tmp_path) -> None:
    path = tmp_path / "unlabelled.npy"
    np.save(path, np.zeros((8, 12, 12), dtype=np.uint8))
    with pytest.raises(
        ValueError, match=r"unlabelled\.npy.*adaptation needs labels.*--label-column"
    ):
        adapt(clusters_run, str(path))


@pytest.mark.parametrize(
    ("name", "options", "count"),
    [("resnet18", {"width": 4}, 1 + 8), ("vit-tiny", {"depth": 2, "patch_size": 4}, 1 + 2)],
)
def test_backbone_blocks_run_from_input_to_output(name, options, count) -> None:
    from selfsup.backbones import build_backbone

    backbone = build_backbone(name, in_channels=1, image_size=8, **options)
    blocks = backbone_blocks(backbone)
    assert len(blocks) == count
    owned = {id(p) for p in backbone.parameters()}
    assert all(id(p) in owned for block in blocks for p in block.parameters())
    # The last block holds the parameters nearest the output (the final norm of a ViT).
    last = {id(p) for p in blocks[-1].parameters()}
    final = list(backbone.parameters())[-1]
    assert id(final) in last


def test_adapt_works_on_a_table_run(tmp_path) -> None:
    from tests.modalities.tabular.conftest import make_table

    import selfsup

    frame = make_table(n=200)
    run = selfsup.pretrain(frame, label_column="y", epochs=1, batch_size=32, out=tmp_path / "run",
                           backbone_options={"hidden": 16, "depth": 1},
                           show_progress=False)  # fmt: skip
    model = adapt(run, frame, shots=10, head="linear")
    probs = model.predict_proba(frame)
    assert probs.shape == (200, len(model.classes))
    model.save(tmp_path / "model")
    assert np.array_equal(AdaptedModel.load(tmp_path / "model").predict_proba(frame), probs)
    rows = run.open(frame).read_batch(range(5)).items
    with torch.no_grad():
        assert np.allclose(model.module()(rows).double().numpy(), probs[:5], atol=1e-5)


def test_a_tampered_model_file_is_named_in_one_line(clusters_run, clusters_data, tmp_path) -> None:
    import json

    train, _ = clusters_data
    adapt(clusters_run, str(train), shots=8, head="linear", seed=1).save(tmp_path / "model")
    path = tmp_path / "model" / "model.json"
    good = json.loads(path.read_text())
    cases = {
        "temperature": (0, "temperature: Input should be greater than 0"),
        "classes": (["0"], "classes: List should have at least 2 items"),
        "head": ("knn", "head: Input should be 'prototype', 'linear' or 'propagation'"),
        "shots": (-3, "shots: Input should be greater than or equal to 1"),
    }
    for key, (value, message) in cases.items():
        path.write_text(json.dumps({**good, key: value}))
        with pytest.raises(ValueError, match=message):
            AdaptedModel.load(tmp_path / "model")
    path.write_text(json.dumps({**good, "classes": ["0", "1", "2"]}))  # the head has 4
    with pytest.raises(ValueError, match="does not match the 3 classes"):
        AdaptedModel.load(tmp_path / "model")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        AdaptedModel.load(tmp_path / "model")
    # A relative run path is the model folder's, wherever the command runs.
    relative = Path(os.path.relpath(clusters_run.path.resolve(), (tmp_path / "model").resolve()))
    path.write_text(json.dumps({**good, "run": str(relative)}))
    assert AdaptedModel.load(tmp_path / "model").run_path == clusters_run.path.resolve()


def test_kept_embeddings_mapped_read_only_are_predicted_without_a_warning(tmp_path) -> None:
    """``predict`` reads a run's kept embeddings as a read-only map; torch warns once a
    process about such arrays, so the check runs in a process of its own."""
    import subprocess
    import sys

    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    script = (
        "import numpy as np, torch; from selfsup.tools.adapt.model import AdaptedModel, "
        "EmbeddingHead; head = EmbeddingHead(torch.zeros(3), torch.ones(3), torch.ones(2, 3), "
        "torch.zeros(2)); model = AdaptedModel('.', ['a', 'b'], 'linear', head, 1.0); "
        f"z = np.load({str(tmp_path / 'e.npy')!r}, mmap_mode='r'); "
        "p = model.predict_proba_embeddings(z); print(p.shape, z.flags.writeable)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(40, 2) False" and "not writable" not in done.stderr


def test_predictions_are_made_a_block_of_rows_at_a_time(monkeypatch) -> None:
    from selfsup.tools.adapt import model as adapted

    torch.manual_seed(0)
    head = adapted.EmbeddingHead(torch.randn(3), torch.rand(3) + 0.5, torch.randn(4, 3),
                                 torch.randn(4))  # fmt: skip
    model = adapted.AdaptedModel(".", list("abcd"), "linear", head, 1.5)
    z = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    whole = model.predict_proba_embeddings(z)
    monkeypatch.setattr(adapted, "PREDICT_BLOCK", 7)
    np.testing.assert_allclose(model.predict_proba_embeddings(z), whole, atol=1e-12)
    assert model.predict_proba_embeddings(z[:0]).shape == (0, 4)
