"""Attribution maps: a planted discriminative patch receives most of the attribution."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.modalities.image import build_image_encoder
from selfsup.run import Run
from selfsup.tools.explain import (
    attribute,
    explain_item,
    probability_forward,
    similarity_forward,
    token_attributions,
)

SIZE, PATCH = 16, 4


def planted_patches(n: int, seed: int):
    """Gray noise images; class 1 carries a bright 4x4 patch at a random place."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.5, (n, 1, SIZE, SIZE)).astype(np.float32)
    y = np.arange(n) % 2
    corners = rng.integers(0, SIZE - PATCH, (n, 2))
    for i in np.flatnonzero(y):
        r, c = corners[i]
        x[i, 0, r : r + PATCH, c : c + PATCH] = 1.0
    return torch.from_numpy(x), torch.from_numpy(y), corners


@pytest.fixture(scope="module")
def patch_classifier():
    """A small CNN encoder plus a linear head trained to find the patch (about a second)."""
    torch.manual_seed(0)
    x, y, _ = planted_patches(256, seed=0)
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=SIZE, width=8)
    model = nn.Sequential(encoder, nn.Linear(encoder.feature_dim, 2), nn.Softmax(dim=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        rows = torch.randint(0, len(x), (64,))
        loss = nn.functional.nll_loss(model(x[rows]).log(), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return encoder.eval(), model.eval()


def _share_in_patch(heat: np.ndarray, corner) -> float:
    positive = np.clip(heat, 0, None)
    r, c = corner
    return float(positive[r : r + PATCH, c : c + PATCH].sum() / positive.sum())


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_the_planted_patch_gets_most_of_the_attribution(patch_classifier, method) -> None:
    encoder, model = patch_classifier
    x, y, corners = planted_patches(20, seed=1)
    assert (model(x).argmax(1) == y).float().mean() > 0.9  # the model found the patch
    baseline = torch.full((1, SIZE, SIZE), 0.35)  # the background's mean
    for i in np.flatnonzero(y.numpy()):
        prediction = attribute(probability_forward(model, 1), x[i], baseline, method)
        with torch.no_grad():
            own = encoder(x[i : i + 1])[0]
        similarity = attribute(similarity_forward(encoder, own), x[i], baseline, method)
        # The patch is 16 of 256 pixels (6%), yet holds most of the positive attribution.
        assert _share_in_patch(prediction.sum(0), corners[i]) > 0.5
        assert _share_in_patch(similarity.sum(0), corners[i]) > 0.5


def test_integrated_gradients_add_up_to_the_change_of_the_output(patch_classifier) -> None:
    _, model = patch_classifier
    x, _, _ = planted_patches(2, seed=2)
    baseline = torch.full_like(x[1], 0.35)
    forward = probability_forward(model, 1)
    values = attribute(forward, x[1], baseline, "ig", steps=64)
    with torch.no_grad():
        change = float(forward(x[1:2])[0] - forward(baseline[None])[0])
    assert values.sum() == pytest.approx(change, abs=0.03)


def test_integrated_gradients_of_a_large_item_run_a_few_steps_at_a_time(
    patch_classifier, monkeypatch
) -> None:
    """Three months of readings: not all steps' copies of the item at once; same values."""
    from selfsup.tools.explain import attribution

    _, model = patch_classifier
    x, _, _ = planted_patches(2, seed=2)
    baseline = torch.full_like(x[1], 0.35)
    forward = probability_forward(model, 1)
    whole = attribute(forward, x[1], baseline, "ig", steps=16)
    batches = []
    real = forward

    def counting(batch: torch.Tensor) -> torch.Tensor:
        batches.append(len(batch))
        return real(batch)

    monkeypatch.setattr(attribution, "IG_BATCH_VALUES", 3 * SIZE * SIZE)  # 3 steps a batch
    few = attribute(counting, x[1], baseline, "ig", steps=16)
    assert max(batches) == 3
    np.testing.assert_allclose(few, whole, atol=1e-5)


def test_explain_item_writes_maps_and_neighbours_into_the_run(patch_classifier, tmp_path) -> None:
    encoder, _ = patch_classifier
    x, y, corners = planted_patches(40, seed=3)
    data = tmp_path / "patches.npz"
    np.savez(data, X=(x.numpy()[:, 0] * 255).astype(np.uint8), y=y.numpy())
    run = Run(tmp_path / "run", encoder, {"modality": "image"}, {})
    item = int(np.flatnonzero(y.numpy())[0])
    explanation = explain_item(run, f"{data}#{item}", neighbours=5)
    assert _share_in_patch(explanation.heat(), corners[item]) > 0.5
    assert explanation.target == "cosine similarity to its own embedding"
    assert len(explanation.neighbours) == 5
    assert item not in [n.index for n in explanation.neighbours]  # not its own neighbour
    # An item with a patch is closest to others with one.
    assert sum(n.label == "1" for n in explanation.neighbours) >= 4
    folder = run.path / "explain"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{item}-ig.json", f"{item}-ig.png", f"{item}-neighbours.png"]
    saved = json.loads((folder / f"{item}-ig.json").read_text())
    assert saved["item_id"] == str(item) and len(saved["neighbours"]) == 5

    by_mean = explain_item(run, f"{data}#{item}", reference="mean", method="occlusion")
    assert by_mean.target == "cosine similarity to the mean training embedding"
    with pytest.raises(ValueError, match=r"no item 'x9'.*row number below 40"):
        explain_item(run, f"{data}#x9")
    from PIL import Image

    alone = tmp_path / "alone.png"
    Image.fromarray((x[item, 0].numpy() * 255).astype(np.uint8)).save(alone)
    assert explain_item(run, str(alone), neighbours=0).item_id == alone.as_posix()  # the whole path
    with pytest.raises(ValueError, match="--reference mean needs the training data"):
        explain_item(run, str(alone), reference="mean")


class BagOfTokens(nn.Module):
    """A stand-in text encoder: the mean of token embeddings, as a text backbone exposes."""

    def __init__(self) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(10, 4)
        with torch.no_grad():
            self.token_embedding.weight.copy_(0.05 * torch.randn(10, 4))
            self.token_embedding.weight[0] = 0.0  # padding
            self.token_embedding.weight[7] = torch.tensor([3.0, 0.0, 0.0, 0.0])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids).mean(dim=1)


def test_token_attributions_single_out_the_decisive_token() -> None:
    torch.manual_seed(0)
    model = BagOfTokens()
    direction = torch.tensor([1.0, 0.0, 0.0, 0.0])
    ids = torch.tensor([3, 5, 7, 2, 4])
    values = token_attributions(lambda t: model(t) @ direction, model.token_embedding, ids, 0)
    assert values.argmax() == 2
    assert values[2] > 0.9 * np.clip(values, 0, None).sum()
    assert values.sum() == pytest.approx(float(model(ids[None]).detach() @ direction), abs=1e-4)


def test_explain_command_on_a_saved_run(patch_classifier, tmp_path) -> None:
    from typer.testing import CliRunner

    from selfsup.cli import app

    encoder, _ = patch_classifier
    x, y, _ = planted_patches(20, seed=4)
    data = tmp_path / "patches.npz"
    np.savez(data, X=(x.numpy()[:, 0] * 255).astype(np.uint8), y=y.numpy())
    run_dir = tmp_path / "run"
    encoder.save(run_dir)
    (run_dir / "config.yaml").write_text("modality: image\nmethod: simclr\n")
    args = ["explain", str(run_dir), f"{data}#1", "--method", "occlusion", "--neighbours", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "occlusion of the cosine similarity to its own embedding" in result.output
    assert result.output.count("neighbour ") == 3
    assert (run_dir / "explain" / "1-occlusion.png").exists()
    assert (run_dir / "explain" / "1-neighbours.png").exists()


def test_an_adapted_models_prediction_is_attributed_to_the_patch(
    patch_classifier, tmp_path, monkeypatch
) -> None:
    from tests.tools.adapted_stand_in import install

    encoder, model = patch_classifier
    adapted = install(monkeypatch)
    adapted.saved["model"] = adapted(encoder, model[1], ["plain", "patch"], tmp_path / "run")
    x, y, corners = planted_patches(20, seed=5)
    data = tmp_path / "patches.npz"
    np.savez(data, X=(x.numpy()[:, 0] * 255).astype(np.uint8), y=y.numpy())
    run = Run(tmp_path / "run", encoder, {"modality": "image"}, {})
    item = int(np.flatnonzero(y.numpy())[0])
    for method in ("ig", "occlusion"):
        explanation = explain_item(run, f"{data}#{item}", model="model", method=method)
        assert explanation.target == "probability of class patch"
        assert explanation.score > 0.9
        assert _share_in_patch(explanation.heat(), corners[item]) > 0.5
    plain = explain_item(run, f"{data}#{item}", model="model", target="plain")
    assert plain.target == "probability of class plain" and plain.score < 0.1
    with pytest.raises(ValueError, match="--target 'dog' is not a class"):
        explain_item(run, f"{data}#{item}", model="model", target="dog")


def test_a_file_of_the_training_folder_is_not_its_own_neighbour(patch_classifier, tmp_path) -> None:
    from PIL import Image

    encoder, _ = patch_classifier
    x, _, _ = planted_patches(12, seed=6)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(x[:, 0].numpy()):
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    run = Run(tmp_path / "run", encoder, {"modality": "image"}, {})
    explanation = explain_item(run, str(folder / "03.png"), data=str(folder), neighbours=11)
    assert sorted(n.item_id for n in explanation.neighbours) == [
        f"{i:02d}.png" for i in range(12) if i != 3
    ]


@pytest.mark.parametrize(
    ("shape", "extra"),
    [((1, 32, 48), {}), ((2, 40), {}), ((5,), {"feature_names": list("abcde")}),
     ((4,), {"tokens": ["a", "good", "film", "!"]})],
)  # fmt: skip
def test_attribution_pictures_for_every_kind_of_item(tmp_path, shape, extra) -> None:
    from PIL import Image

    from selfsup.tools.explain import Explanation, plot_attribution

    rng = np.random.default_rng(0)
    item = torch.from_numpy(rng.normal(-2, 1, shape).astype(np.float32))  # a log-mel, or not
    values = rng.normal(0, 1, shape)
    explanation = Explanation("x", item, values, "ig", "similarity", 1.0, **extra)
    path = plot_attribution(explanation, tmp_path / "a.png")
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    assert picture.width > 500 and len(np.unique(pixels, axis=0)) > 50


def test_pictures_show_dark_scans_stretched_stains_in_colours_and_photos_as_they_are():
    from selfsup.tools.explain.result import display_image

    photo = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    assert np.array_equal(display_image(photo), photo.transpose(1, 2, 0))
    dark = photo[:1] * 4095 / 65535  # 12-bit values in a 16-bit file
    shown = display_image(dark)
    assert shown.shape == (8, 8) and shown.max() == 1.0 and shown.min() == 0.0
    stains = np.zeros((5, 8, 8), np.float32)
    stains[0, :4] = 0.05  # a dim first stain in the top half
    stains[4, 4:] = 0.01  # a dimmer fifth in the bottom half
    composite = display_image(stains)
    assert np.allclose(composite[0, 0], [1, 0, 0]) and np.allclose(composite[7, 0], [1, 0, 1])
