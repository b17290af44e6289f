"""Every method: gradients reach the backbone, a short run trains without collapsing; EMA
bookkeeping.

``TINY`` holds, per method, the backbone and options that make it run in a fraction of a
second on 12x12 images; a method missing from it fails the tests below, so each new objective
must be added here.
"""

import numpy as np
import pytest
import torch

from selfsup.encoder import Encoder
from selfsup.evaluation.knn import knn_accuracy
from selfsup.methods import METHODS, build_method
from selfsup.methods.ijepa import sample_block_masks
from selfsup.methods.momentum import cosine_momentum, ema_update, momentum_copy
from selfsup.modalities.image import build_image_encoder, method_views
from selfsup.run import pretrain

SMALL_CNN = {"backbone": "small-cnn", "backbone_options": {"width": 4}}
TINY_VIT = {
    "backbone": "vit-tiny",
    "backbone_options": {"patch_size": 4, "dim": 16, "depth": 2, "heads": 2},
}
HEADS = {"hidden_dim": 32, "projection_dim": 16}

#: method -> (backbone, method options) for the tiny tests.
TINY: dict[str, tuple[dict, dict]] = {
    "simclr": (SMALL_CNN, HEADS),
    "byol": (SMALL_CNN, HEADS),
    "vicreg": (SMALL_CNN, HEADS),
    "barlowtwins": (SMALL_CNN, HEADS),
    "mocov3": (SMALL_CNN, HEADS),
    "simsiam": (SMALL_CNN, HEADS),
    "nnclr": (SMALL_CNN, HEADS),
    "mae": (TINY_VIT, {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}),
    "ijepa": (TINY_VIT, {"predictor_dim": 16, "predictor_depth": 1, "predictor_heads": 2}),
    "swav": (SMALL_CNN, {**HEADS, "num_prototypes": 32}),
    "dino": (SMALL_CNN, {"hidden_dim": 32, "bottleneck_dim": 16, "out_dim": 64}),
}


def _case(name: str, size: int = 12) -> tuple[Encoder, dict]:
    backbone, options = TINY[name]
    encoder = build_image_encoder(
        backbone["backbone"], in_channels=1, image_size=size, **backbone["backbone_options"]
    )
    return encoder, options


def _views(method, n: int = 8, size: int = 12) -> list[torch.Tensor]:
    return method_views(method, image_size=size, channels=1)[0](torch.rand(n, 1, size, size))


# Image objectives; TS2Vec, SCARF, VIME and BYOL-A have their own tests under
# tests/modalities/{series,tabular,audio} (hand-computed losses, gradients, short runs).
# Distillation needs a teacher (tests/methods/test_distill.py) and MSF a pretrained start
# (tests/methods/test_msf.py).
IMAGE_METHODS = sorted(
    name
    for name, cls in METHODS.items()
    if "image" in cls.modalities and name != "distill" and not cls.needs_pretrained
)


def test_every_method_has_a_tiny_case() -> None:
    assert sorted(TINY) == IMAGE_METHODS
    assert set(METHODS) - set(IMAGE_METHODS) == {
        "ts2vec",
        "scarf",
        "vime",
        "simcse",
        "mlm",
        "sent2vec",
        "byola",
        "distill",
        "msf",
    }


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_gradients_reach_the_first_backbone_layer(name: str) -> None:
    torch.manual_seed(0)
    encoder, options = _case(name)
    method = build_method(name, encoder, **options)
    method(_views(method)).backward()
    first = next(method.encoder.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_short_training_runs_and_keeps_classes_apart(name: str, tmp_path, clusters_npz) -> None:
    # These bars are told apart by an untrained encoder too (kNN 0.98-1.0 measured), so this
    # shows a run that trains without collapsing, not that the method learns: the benchmarks
    # (benchmarks/methods.py) compare each method with raw pixels on Fashion-MNIST.
    backbone, options = TINY[name]
    run = pretrain(
        clusters_npz,
        method=name,
        epochs=4,
        batch_size=32,
        backbone=backbone["backbone"],
        backbone_options={**backbone["backbone_options"], "width": 8}
        if backbone is SMALL_CNN
        else backbone["backbone_options"],
        method_options=options,
        out=str(tmp_path / name),
        show_progress=False,
    )
    data = np.load(clusters_npz)
    features = run.embed(str(clusters_npz))
    labels = data["y"]
    # Four classes: chance is 0.25. A collapsed encoder votes one class everywhere.
    accuracy = knn_accuracy(features[:192], labels[:192], features[192:], labels[192:], k=10)
    assert accuracy >= 0.8, f"{name}: kNN {accuracy:.3f} after 4 epochs"
    assert np.std(features / np.linalg.norm(features, axis=1, keepdims=True), axis=0).mean() > 1e-3


def test_byol_target_gets_no_gradient_and_moves_by_ema() -> None:
    torch.manual_seed(0)
    method = build_method("byol", _case("byol")[0], **HEADS)
    method([torch.rand(8, 1, 12, 12), torch.rand(8, 1, 12, 12)]).backward()
    assert all(p.grad is None for p in method.target.parameters())
    before = [p.clone() for p in method.target.parameters()]
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(1.0)
    method.on_step_end(progress=0.0)  # momentum 0.99: target moves 1% of the way
    moved = [
        (p - b).abs().max().item() for p, b in zip(method.target.parameters(), before, strict=False)
    ]
    assert max(moved) == pytest.approx(0.01, rel=1e-3)


def test_mocov3_momentum_encoder_gets_no_gradient_and_moves_by_ema() -> None:
    torch.manual_seed(0)
    method = build_method("mocov3", _case("mocov3")[0], **HEADS)
    method([torch.rand(8, 1, 12, 12), torch.rand(8, 1, 12, 12)]).backward()
    assert all(p.grad is None for p in method.momentum_encoder.parameters())
    assert next(method.projection.parameters()).grad is not None
    before = [p.clone() for p in method.momentum_encoder.parameters()]
    with torch.no_grad():
        for p in [*method.encoder.parameters(), *method.projection.parameters()]:
            p.add_(1.0)
    method.on_step_end(progress=0.0)  # momentum 0.99: the momentum encoder moves 1% of the way
    moved = [
        (p - b).abs().max().item()
        for p, b in zip(method.momentum_encoder.parameters(), before, strict=True)
    ]
    assert min(moved) == pytest.approx(0.01, rel=1e-3)
    assert max(moved) == pytest.approx(0.01, rel=1e-3)


def test_nnclr_support_set_is_a_fifo_queue_kept_in_the_state_dict() -> None:
    torch.manual_seed(0)
    method = build_method("nnclr", _case("nnclr")[0], **HEADS, queue_size=12)
    assert {"queue", "queue_pointer", "queue_filled"} <= set(method.state_dict())
    first, second = torch.randn(8, 16), torch.randn(8, 16)
    method.enqueue(first)
    assert int(method.queue_filled) == 8
    method.enqueue(second)  # 16 projections into 12 slots: the oldest 4 are overwritten
    expected = torch.cat([second[4:], first[4:], second[:4]])
    assert torch.allclose(method.queue, torch.nn.functional.normalize(expected, dim=1))
    assert (int(method.queue_pointer), int(method.queue_filled)) == (4, 12)
    # Each stored projection is its own nearest neighbour in the support set.
    assert torch.equal(
        method.nearest_neighbours(3 * second), method.queue[[8, 9, 10, 11, 0, 1, 2, 3]]
    )


def test_nnclr_loss_enqueues_the_first_view_and_resumes_from_the_state_dict() -> None:
    torch.manual_seed(0)
    method = build_method("nnclr", _case("nnclr")[0], **HEADS, queue_size=12)
    for _ in range(2):
        method(_views(method))
    assert (int(method.queue_pointer), int(method.queue_filled)) == (4, 12)
    resumed = build_method("nnclr", _case("nnclr")[0], **HEADS, queue_size=12)
    resumed.load_state_dict(method.state_dict())
    views = _views(method)
    assert resumed(views).item() == pytest.approx(method(views).item(), rel=1e-6)
    assert torch.equal(resumed.queue, method.queue)


def test_ijepa_target_encoder_gets_no_gradient_and_moves_by_ema() -> None:
    torch.manual_seed(0)
    encoder, options = _case("ijepa")
    method = build_method("ijepa", encoder, **options)
    method(_views(method)).backward()
    assert all(p.grad is None for p in method.target.parameters())
    assert next(method.predictor.parameters()).grad is not None
    before = [p.clone() for p in method.target.parameters()]
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(1.0)
    method.on_step_end(progress=0.0)  # momentum 0.996: the target moves 0.4% of the way
    moved = [
        (p - b).abs().max().item() for p, b in zip(method.target.parameters(), before, strict=True)
    ]
    assert min(moved) == pytest.approx(0.004, rel=1e-3)
    assert max(moved) == pytest.approx(0.004, rel=1e-3)


def test_ijepa_loss_gives_each_image_its_own_masks() -> None:
    # The batched loss equals a loop over images, each encoded and predicted alone with its own
    # context and target blocks (replaying the masks from the same seed).
    torch.manual_seed(0)
    method = build_method("ijepa", _case("ijepa")[0], **TINY["ijepa"][1])
    method.eval()
    images = torch.rand(4, 1, 12, 12)
    torch.manual_seed(1)
    batched = method.loss([images]).item()
    torch.manual_seed(1)
    context, targets = sample_block_masks(method.grid, 4, **method.mask_options)
    assert len({tuple(row) for row in targets[:, 0].tolist()}) > 1  # masks differ per image
    normalized = (images - method.encoder.mean) / method.encoder.std
    total = 0.0
    for b in range(4):
        image = normalized[b : b + 1]
        with torch.no_grad():
            tokens = method.target.backbone.forward_tokens(image)[0, 1:]
            s_y = torch.nn.functional.layer_norm(tokens, tokens.shape[-1:])
            s_x = method.encoder.backbone.forward_tokens(image, context[b : b + 1])
            pred = method.predictor(s_x, context[b : b + 1], targets[b : b + 1])[0]
        for i, block in enumerate(targets[b].tolist()):
            for j, patch in enumerate(block):
                total += (pred[i, j] - s_y[patch]).square().mean().item()
    assert batched == pytest.approx(total / targets.numel(), rel=1e-4)


def test_ijepa_largest_step_draws_its_largest_blocks_for_the_memory_plan(monkeypatch) -> None:
    """The memory plan measures a step with the largest context block and the smallest
    targets (which take fewer patches from it): the most tokens the context encoder and the
    predictor see (block sizes are drawn per batch)."""
    from selfsup.methods import ijepa

    method = build_method("ijepa", _case("ijepa", size=24)[0], **TINY["ijepa"][1])
    drawn = []
    real = ijepa.sample_block_masks

    def recording(*args, **kwargs):
        context, targets = real(*args, **kwargs)
        drawn.append((context.shape[1], targets.shape[2]))
        return context, targets

    monkeypatch.setattr(ijepa, "sample_block_masks", recording)
    images = torch.rand(4, 1, 24, 24)
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(30):
            method.loss([images])
        normal, drawn[:] = list(drawn), []
        with method.largest_step():
            for _ in range(5):
                method.loss([images])
    assert method.mask_options["target_scale"] == (0.15, 0.2)  # the ranges are back
    assert len({t for _, t in drawn}) == 1  # one target size: the smallest
    assert drawn[0][1] == min(t for _, t in normal) < max(t for _, t in normal)
    contexts = [c for c, _ in normal]
    assert min(c for c, _ in drawn) >= np.quantile(contexts, 0.75) > min(contexts)


def test_ijepa_exports_the_target_encoder_unless_asked_for_the_context_one() -> None:
    encoder, options = _case("ijepa")
    assert build_method("ijepa", encoder, **options).export_encoder() is not encoder
    method = build_method("ijepa", encoder, **options, export="context")
    assert method.export_encoder() is encoder
    with pytest.raises(ValueError, match="export"):
        build_method("ijepa", encoder, **options, export="online")


def test_mae_and_ijepa_place_tokens_by_their_indices_not_their_order() -> None:
    # Reversing the kept patches changes nothing: each token is put back at its own position.
    torch.manual_seed(0)
    mae = build_method("mae", _case("mae")[0], **TINY["mae"][1])
    ijepa = build_method("ijepa", _case("ijepa")[0], **TINY["ijepa"][1])
    images = torch.randn(2, 1, 12, 12)

    def mae_pred(keep: torch.Tensor) -> torch.Tensor:
        return mae.decode(mae.encoder.backbone.forward_tokens(images, keep), keep)

    def ijepa_pred(context: torch.Tensor) -> torch.Tensor:
        tokens = ijepa.encoder.backbone.forward_tokens(images, context)
        return ijepa.predictor(tokens, context, torch.tensor([[[1, 2], [5, 8]], [[1, 2], [3, 6]]]))

    keep = torch.tensor([[0, 4, 7], [8, 3, 5]])
    assert mae_pred(keep).shape == (2, 9, 16)  # every patch's 4x4 pixels
    assert torch.allclose(mae_pred(keep), mae_pred(keep.flip(1)), atol=1e-5)
    context = torch.tensor([[0, 4, 7], [0, 4, 8]])
    assert ijepa_pred(context).shape == (2, 2, 2, 16)  # 2 blocks of 2 patches, dim 16
    assert torch.allclose(ijepa_pred(context), ijepa_pred(context.flip(1)), atol=1e-5)


def test_dino_teacher_gets_no_gradient_and_moves_by_ema() -> None:
    torch.manual_seed(0)
    method = build_method("dino", _case("dino")[0], **TINY["dino"][1])
    method(_views(method)).backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert next(method.head.parameters()).grad is not None
    assert method.export_encoder() is method.teacher[0]
    before = [p.clone() for p in method.teacher.parameters()]
    with torch.no_grad():
        for p in [*method.encoder.parameters(), *method.head.parameters()]:
            p.add_(1.0)
    method.on_step_end(progress=0.0)  # momentum 0.996: the teacher moves 0.4% of the way
    moved = [
        (p - b).abs().max().item() for p, b in zip(method.teacher.parameters(), before, strict=True)
    ]
    assert min(moved) == pytest.approx(0.004, rel=1e-3)
    assert max(moved) == pytest.approx(0.004, rel=1e-3)


def test_dino_center_is_an_ema_of_the_teacher_on_global_views_kept_in_the_state_dict() -> None:
    torch.manual_seed(0)
    method = build_method("dino", _case("dino")[0], **TINY["dino"][1])
    assert {"center", "progress"} <= set(method.state_dict())
    views = _views(method)
    assert len(views) == 2 + 6 and views[2].shape[-1] == 5  # 12 * 96 / 224 pixels, rounded
    with torch.no_grad():
        teacher = method.teacher(torch.cat(views[:2]))
    method(views)  # the teacher sees the global views only
    torch.testing.assert_close(method.center, 0.1 * teacher.mean(dim=0, keepdim=True))
    method(views)
    torch.testing.assert_close(method.center, 0.19 * teacher.mean(dim=0, keepdim=True))
    resumed = build_method("dino", _case("dino")[0], **TINY["dino"][1])
    resumed.load_state_dict(method.state_dict())
    assert torch.equal(resumed.center, method.center)


def test_dino_teacher_temperature_warms_up_linearly() -> None:
    method = build_method(
        "dino",
        _case("dino")[0],
        **TINY["dino"][1],
        teacher_temperature=0.07,
        teacher_temperature_start=0.04,
        teacher_temperature_warmup=0.5,
    )
    temperatures = []
    for progress in (0.0, 0.25, 0.5, 0.9):
        method.on_step_end(progress)
        temperatures.append(method.current_teacher_temperature())
    assert temperatures == pytest.approx([0.04, 0.055, 0.07, 0.07])
    assert build_method("dino", _case("dino")[0]).current_teacher_temperature() == 0.04


def test_swav_prototypes_are_frozen_first_then_learn_and_stay_normalized() -> None:
    torch.manual_seed(0)
    method = build_method("swav", _case("swav")[0], **TINY["swav"][1], freeze_prototypes=2)
    assert {"steps_done", "progress"} <= set(method.state_dict())
    grads = []
    for _ in range(3):
        method.zero_grad(set_to_none=True)
        method(_views(method)).backward()
        grads.append(method.prototypes.weight.grad)
        with torch.no_grad():
            method.prototypes.weight.mul_(3.0)  # as if an optimizer step changed the norms
        method.on_step_end(progress=0.0)
        norms = method.prototypes.weight.norm(dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms))
    # Frozen: a zero gradient (the prototypes stay in the graph, as DDP needs), then learning.
    assert not grads[0].any() and not grads[1].any() and grads[2].abs().sum() > 0
    assert next(method.encoder.parameters()).grad is not None
    # A fraction of training: frozen while the progress reported so far is below it.
    method = build_method("swav", _case("swav")[0], **TINY["swav"][1], freeze_prototypes=0.1)
    assert method.prototypes_frozen()
    method.on_step_end(0.05)
    resumed = build_method("swav", _case("swav")[0], **TINY["swav"][1], freeze_prototypes=0.1)
    resumed.load_state_dict(method.state_dict())
    assert resumed.prototypes_frozen()
    resumed.on_step_end(0.1)
    assert not resumed.prototypes_frozen()


@pytest.mark.parametrize("name", ["swav", "dino"])
def test_multi_crop_methods_train_a_vit_on_local_views(name: str) -> None:
    torch.manual_seed(0)
    encoder = build_image_encoder("vit-tiny", 1, 12, **TINY_VIT["backbone_options"])
    options = {"swav": {**HEADS, "num_prototypes": 8}, "dino": {"hidden_dim": 16, "out_dim": 8}}
    method = build_method(name, encoder, **options[name])
    views = _views(method)
    assert [v.shape[-1] for v in views] == [12, 12] + [4] * 6  # one 4x4 patch per local view
    method(views).backward()
    assert encoder.backbone.pos_embed.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["mae", "ijepa"])
def test_masked_methods_need_a_vit_backbone(name: str) -> None:
    with pytest.raises(ValueError, match="needs a ViT backbone"):
        build_method(name, _case("simclr")[0])


def test_ema_update_and_cosine_momentum() -> None:
    online = torch.nn.Linear(2, 1)
    target = momentum_copy(online)
    with torch.no_grad():
        online.weight.fill_(1.0)
        target.weight.fill_(0.0)
    ema_update(target, online, momentum=0.75)
    assert torch.allclose(target.weight, torch.full_like(target.weight, 0.25))
    assert cosine_momentum(0.0, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(0.5, 0.99) == pytest.approx(0.995)
    assert cosine_momentum(1.0, 0.99) == 1.0


def test_unknown_method_is_named() -> None:
    with pytest.raises(ValueError, match="nope"):
        build_method("nope", _case("simclr")[0])


def test_a_typo_in_method_or_backbone_options_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown simclr method options \['temprature'\]; "
                       r"valid: hidden_dim, projection_dim, temperature"):  # fmt: skip
        build_method("simclr", _case("simclr")[0], temprature=0.1)
    with pytest.raises(ValueError, match=r"unknown small-cnn backbone options \['widht'\]"):
        build_image_encoder("small-cnn", 1, 12, widht=4)
