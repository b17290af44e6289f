import json

import pytest
import torch

from selfsup.backbones import (
    ResNet,
    VisionTransformer,
    backbone_names,
    build_backbone,
    default_patch_size,
)
from selfsup.backbones.vit import dot_product_attention
from selfsup.modalities import load_encoder
from selfsup.modalities.image import build_image_encoder

EXPECTED_FEATURE_DIM = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "small-cnn": 512,
    "vit-tiny": 192,
    "vit-small": 384,
}


# Narrow variants keep forward and backward passes cheap; the wiring is the same at any width.
NARROW_KWARGS: dict[str, dict[str, int]] = {
    "resnet18": {"width": 8},
    "resnet34": {"width": 8},
    "resnet50": {"width": 8},
    "small-cnn": {"width": 8},
    "vit-tiny": {"dim": 24},
    "vit-small": {"dim": 24},
}


def tiny_vit(image_size: int, patch_size: int, in_channels: int = 1) -> VisionTransformer:
    return VisionTransformer(image_size, patch_size, in_channels, dim=16, depth=2, heads=2)


def test_backbone_names_are_the_documented_ones() -> None:
    assert sorted(backbone_names()) == sorted(EXPECTED_FEATURE_DIM)


@pytest.mark.parametrize("name", list(EXPECTED_FEATURE_DIM))
def test_default_feature_dim(name: str) -> None:
    net = build_backbone(name, in_channels=3, image_size=16)
    assert isinstance(net.feature_dim, int)
    assert net.feature_dim == EXPECTED_FEATURE_DIM[name]
    with torch.no_grad():
        assert net(torch.randn(2, 3, 16, 16)).shape == (2, net.feature_dim)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", list(EXPECTED_FEATURE_DIM))
def test_output_is_batch_by_feature_dim(name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    net = build_backbone(name, in_channels, image_size=32, **NARROW_KWARGS[name])
    out = net(torch.randn(2, in_channels, 32, 32))
    assert out.shape == (2, net.feature_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(EXPECTED_FEATURE_DIM))
def test_gradient_reaches_the_first_layer(name: str) -> None:
    torch.manual_seed(0)
    net = build_backbone(name, in_channels=3, image_size=16, **NARROW_KWARGS[name])
    # The first conv is the stem / patch embedding in every backbone.
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert first.shape[1] == 3
    net(torch.randn(2, 3, 16, 16)).square().mean().backward()
    assert first.grad is not None
    assert first.grad.abs().sum() > 0


# Reference counts of torchvision's resnet18 / resnet50 and timm's vit_tiny_patch16_224 minus
# their classifier (512 * 1000 + 1000, 2048 * 1000 + 1000, 192 * 1000 + 1000 parameters).
@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("resnet18", 11_689_512 - 513_000),
        ("resnet50", 25_557_032 - 2_049_000),
        ("vit-tiny", 5_717_416 - 193_000),
    ],
)
def test_parameter_count_matches_the_reference(name: str, count: int) -> None:
    net = build_backbone(name, in_channels=3, image_size=224)
    assert sum(p.numel() for p in net.parameters()) == count


def test_resnet_stem_follows_image_size_unless_given() -> None:
    assert build_backbone("resnet18", 3, image_size=32).stem[0].kernel_size == (3, 3)
    assert build_backbone("resnet18", 3, image_size=224).stem[0].kernel_size == (7, 7)
    net = build_backbone("resnet18", 3, image_size=32, small_stem=False)
    assert net.stem[0].kernel_size == (7, 7)
    assert isinstance(net.stem[-1], torch.nn.MaxPool2d)


@pytest.mark.parametrize(
    ("name", "feature_dim"), [("resnet18", 64), ("resnet50", 256), ("small-cnn", 64)]
)
def test_width_scales_the_feature_dim(name: str, feature_dim: int) -> None:
    assert build_backbone(name, in_channels=1, image_size=16, width=8).feature_dim == feature_dim


def test_resnet_rejects_an_unknown_depth() -> None:
    with pytest.raises(ValueError, match="101"):
        ResNet(depth=101)


@pytest.mark.parametrize(("image_size", "patch_size"), [(28, 7), (32, 4), (28, 14)])
def test_vit_patch_size_and_image_size(image_size: int, patch_size: int) -> None:
    net = build_backbone(
        "vit-tiny", in_channels=1, image_size=image_size, patch_size=patch_size, depth=1
    )
    assert net.patch_size == patch_size
    assert net.num_patches == (image_size // patch_size) ** 2
    assert net.pos_embed.shape == (1, 1 + net.num_patches, 192)
    assert net(torch.randn(2, 1, image_size, image_size)).shape == (2, 192)


def test_vit_default_patch_size_gives_at_least_a_7x7_grid() -> None:
    assert [default_patch_size(s) for s in (224, 64, 32, 28, 30)] == [16, 8, 4, 4, 3]
    assert build_backbone("vit-small", 3, image_size=224, depth=1).patch_size == 16


def test_vit_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        tiny_vit(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="28x28"):
        tiny_vit(image_size=28, patch_size=7)(torch.randn(1, 1, 32, 32))


def test_vit_forward_is_the_cls_token_of_forward_tokens() -> None:
    torch.manual_seed(0)
    net = tiny_vit(image_size=28, patch_size=7)
    x = torch.randn(2, 1, 28, 28)
    tokens = net.forward_tokens(x)
    assert tokens.shape == (2, 1 + 16, 16)
    torch.testing.assert_close(net(x), tokens[:, 0])


def test_vit_forward_tokens_keeps_the_given_patches() -> None:
    torch.manual_seed(0)
    net = tiny_vit(image_size=32, patch_size=8)
    x = torch.randn(2, 1, 32, 32)
    keep = torch.tensor([[0, 5, 9], [15, 3, 2]])
    tokens = net.forward_tokens(x, keep)
    assert tokens.shape == (2, 1 + 3, 16)
    # Patches left out must not influence the kept tokens: patch 1 (rows 0-7, columns 8-15)
    # is dropped for both images.
    x_changed = x.clone()
    x_changed[:, :, 0:8, 8:16] = 100.0
    torch.testing.assert_close(net.forward_tokens(x_changed, keep), tokens)
    # Keeping every patch in order is the same as keeping all of them.
    every = torch.arange(16).expand(2, -1)
    torch.testing.assert_close(net.forward_tokens(x, every), net.forward_tokens(x))


def test_vit_forward_tokens_follows_the_order_of_keep() -> None:
    # Positions are added before the subset is taken, so permuting keep permutes the tokens.
    torch.manual_seed(0)
    net = tiny_vit(image_size=32, patch_size=8)
    x = torch.randn(2, 1, 32, 32)
    keep = torch.tensor([[0, 5, 9, 12], [15, 3, 2, 7]])
    perm = torch.tensor([2, 0, 3, 1])
    tokens = net.forward_tokens(x, keep)
    permuted = net.forward_tokens(x, keep[:, perm])
    torch.testing.assert_close(permuted[:, 0], tokens[:, 0])
    torch.testing.assert_close(permuted[:, 1:], tokens[:, 1:][:, perm])


def test_vit_at_its_native_size_uses_the_learned_position_embedding_as_is() -> None:
    torch.manual_seed(0)
    net = tiny_vit(image_size=16, patch_size=4)
    x = torch.randn(2, 1, 16, 16)
    # The computation before other sizes were accepted, written out.
    patches = net.patch_embed(x).flatten(2).transpose(1, 2) + net.pos_embed[:, 1:]
    cls = (net.cls_token + net.pos_embed[:, :1]).expand(2, -1, -1)
    expected = net.norm(net.blocks(torch.cat([cls, patches], dim=1)))
    assert torch.equal(net.forward_tokens(x), expected)
    # Resizing the grid to its own size changes nothing.
    torch.testing.assert_close(net.patch_positions(4, 4), net.pos_embed[:, 1:])


def test_vit_encodes_other_sizes_with_an_interpolated_position_embedding() -> None:
    torch.manual_seed(0)
    net = tiny_vit(image_size=32, patch_size=8)
    assert net.forward_tokens(torch.randn(2, 1, 16, 16)).shape == (2, 1 + 4, 16)
    assert net.forward_tokens(torch.randn(2, 1, 48, 24)).shape == (2, 1 + 6 * 3, 16)
    out = net(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 16)
    (out * torch.randn_like(out)).sum().backward()  # a plain sum of LayerNorm outputs is flat
    assert net.pos_embed.grad is not None and net.pos_embed.grad[:, 1:].abs().sum() > 0
    # A grid of equal embeddings stays equal; a grid that varies along rows only keeps doing so.
    with torch.no_grad():
        net.pos_embed[:, 1:] = 0.5
    torch.testing.assert_close(net.patch_positions(3, 5), torch.full((1, 15, 16), 0.5))
    with torch.no_grad():
        net.pos_embed[:, 1:] = torch.arange(4.0).repeat_interleave(4).view(1, 16, 1)
    rows = net.patch_positions(2, 6).view(2, 6, 16)
    assert torch.allclose(rows, rows[:, :1].expand(-1, 6, -1))
    assert (rows[1] > rows[0]).all()


def test_vit_other_sizes_must_cut_into_patches_and_keep_needs_the_native_size() -> None:
    net = tiny_vit(image_size=32, patch_size=8)
    with pytest.raises(ValueError, match="multiples of the patch size 8"):
        net(torch.randn(1, 1, 20, 16))
    with pytest.raises(ValueError, match="keep works on native 32x32 images only"):
        net.forward_tokens(torch.randn(1, 1, 16, 16), torch.tensor([[0, 1]]))


def test_build_backbone_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="'resnet99'") as info:
        build_backbone("resnet99", in_channels=3, image_size=32)
    assert "small-cnn" in str(info.value)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("small-cnn", {"width": 8}),
        ("resnet18", {"width": 8, "small_stem": False}),
        ("vit-tiny", {"patch_size": 8, "depth": 1, "dim": 16, "heads": 2}),
    ],
)
def test_backbone_rebuilds_from_a_json_spec(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    spec = {"name": name, "in_channels": 3, "image_size": 32, **kwargs}
    net = build_backbone(**spec).eval()
    rebuilt = build_backbone(**json.loads(json.dumps(spec))).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(rebuilt(x), net(x))


def test_vit_mean_pool_averages_the_patch_tokens_and_survives_save_and_load(tmp_path) -> None:
    torch.manual_seed(0)
    encoder = build_image_encoder("vit-tiny", 1, 16, patch_size=4, depth=1, pool="mean")
    x = torch.rand(3, 1, 16, 16)
    backbone = encoder.backbone
    with torch.no_grad():
        expected = backbone.forward_tokens(x)[:, 1:].mean(dim=1)
        torch.testing.assert_close(backbone(x), expected)
        assert not torch.allclose(backbone(x), backbone.forward_tokens(x)[:, 0])
        encoder.save(tmp_path)
        torch.testing.assert_close(load_encoder(tmp_path)(x), encoder(x))
    with pytest.raises(ValueError, match="pool must be"):
        build_backbone("vit-tiny", in_channels=1, image_size=16, pool="max")


def test_vit_pool_blocks_concatenates_the_last_blocks_normed_and_pooled() -> None:
    torch.manual_seed(0)
    one = VisionTransformer(16, 4, 1, dim=8, depth=3, heads=2, pool="mean")
    three = VisionTransformer(16, 4, 1, dim=8, depth=3, heads=2, pool="mean", pool_blocks=3)
    three.load_state_dict(one.state_dict())  # pooling adds no weights
    x = torch.rand(2, 1, 16, 16)
    features = three(x)
    assert three.feature_dim == 24 and features.shape == (2, 24)
    # The last slice is the final block's feature, the first the first block's.
    assert torch.allclose(features[:, 16:], one(x), atol=1e-6)
    cls = (one.cls_token + one.pos_embed[:, :1]).expand(2, -1, -1)
    patches = one.patch_embed(x).flatten(2).transpose(1, 2) + one.pos_embed[:, 1:]
    first = one.blocks[0](torch.cat([cls, patches], dim=1))
    assert torch.allclose(features[:, :8], one.norm(first)[:, 1:].mean(dim=1), atol=1e-6)
    # Training objectives see one block's tokens; the methods size their heads by the token.
    assert three.forward_tokens(x).shape == (2, 17, 8)
    with pytest.raises(ValueError, match="pool_blocks"):
        VisionTransformer(16, 4, 1, dim=8, depth=3, heads=2, pool_blocks=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vit_attention_matches_the_reference_formula_forward_and_backward(dtype) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 8, dtype=dtype, requires_grad=True) for _ in range(3))
    out = dot_product_attention(q, k, v)
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
    weights = torch.softmax(qf @ kf.transpose(-2, -1) / 8**0.5, dim=-1)
    expected = weights @ vf
    expected_grads = torch.autograd.grad(expected.square().sum(), (qf, kf, vf))
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 0.05, "rtol": 0.05}
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, **tol)
    for grad, reference in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad.float(), reference, **tol)


def test_vit_sincos_position_embedding_is_fixed_saved_and_follows_mae() -> None:
    torch.manual_seed(0)
    net = VisionTransformer(16, 4, 1, dim=8, depth=1, heads=2, pos_embed="sincos")
    assert "pos_embed" not in dict(net.named_parameters())
    assert "pos_embed" in net.state_dict()  # saved with the run, as a buffer
    pos = net.pos_embed[0]
    # The cls slot is 0; patch (row 1, column 2) has sin/cos of its column in the first half of
    # the channels and of its row in the second, at frequencies 10000^(-k / 2), k = 0, 1.
    assert torch.equal(pos[0], torch.zeros(8))
    omega = torch.tensor([1.0, 0.01])
    expected = torch.cat([(2 * omega).sin(), (2 * omega).cos(), omega.sin(), omega.cos()])
    torch.testing.assert_close(pos[1 + 1 * 4 + 2], expected)
    # Training cannot move it: the optimizer never sees it, and a step leaves it as it was.
    before = net.pos_embed.clone()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    net(torch.rand(2, 1, 16, 16)).sum().backward()
    opt.step()
    assert torch.equal(net.pos_embed, before)
    with pytest.raises(ValueError, match="pos_embed must be"):
        VisionTransformer(16, 4, 1, dim=8, depth=1, heads=2, pos_embed="rope")


def test_vit_sincos_survives_save_and_load(tmp_path) -> None:
    torch.manual_seed(0)
    encoder = build_image_encoder("vit-tiny", 1, 16, patch_size=4, depth=1, pos_embed="sincos")
    x = torch.rand(2, 1, 16, 16)
    encoder.save(tmp_path)
    loaded = load_encoder(tmp_path)
    assert loaded.backbone.pos_embed_kind == "sincos"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), encoder(x))


def test_every_built_in_backbone_lists_all_its_parameters_as_blocks() -> None:
    from selfsup.modalities.audio import build_audio_encoder
    from selfsup.modalities.image import build_image_encoder
    from selfsup.modalities.series import build_series_encoder
    from selfsup.modalities.tabular import build_tabular_encoder
    from selfsup.modalities.text import build_text_encoder

    encoders = [
        build_image_encoder("small-cnn", 1, 8, width=4),
        build_image_encoder("resnet18", 3, 32, width=8),
        build_image_encoder("vit-tiny", 1, 16, patch_size=4, depth=2, dim=16, heads=2),
        build_series_encoder("ts2vec", 2, hidden=4, out_dim=8, depth=2),
        build_series_encoder("patch-transformer", 2, dim=16, depth=2, heads=2),
        build_tabular_encoder(3, [4], hidden=8, depth=2),
        build_text_encoder("text-transformer", 100, 8, dim=16, depth=2, heads=2),
        build_text_encoder("text-bag", 100, 8, dim=8),
        build_audio_encoder("byola-cnn", 16, 16, feature_dim=8, width=4),
        build_audio_encoder("spectrogram-vit", 16, 16, dim=16, depth=2, heads=2),
    ]
    for encoder in encoders:
        blocks = encoder.backbone.block_list()
        assert len(blocks) >= 2 or type(encoder.backbone).__name__ == "TextBag"
        listed = {id(p) for block in blocks for p in block.parameters()}
        owned = {id(p) for p in encoder.backbone.parameters()}
        # Every trainable tensor but position embeddings and class tokens sits in a block.
        loose = [n for n, p in encoder.backbone.named_parameters() if id(p) not in listed]
        assert all("pos" in n or "cls" in n or "position" in n for n in loose), loose
        assert listed <= owned


def test_strided_shortcuts_give_the_plain_gradients_in_channels_last_with_few_channels() -> None:
    """oneDNN issue 6035: its strided 1x1 kernel on channels-last input with fewer channels
    than its block crashed the process or gave wrong weight gradients (width 8 at 64 px)."""
    from selfsup.backbones.resnet import ResNet, StridedPointwise

    torch.manual_seed(0)
    net = ResNet(depth=18, in_channels=3, width=8, small_stem=True)
    convs = [m for m in net.modules() if isinstance(m, StridedPointwise)]
    assert len(convs) == 3 and convs[0].in_channels == 8  # the shortcuts of stages 2-4
    x = torch.rand(4, 3, 64, 64)
    grads = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        net.zero_grad()
        net.to(memory_format=layout)(x.contiguous(memory_format=layout)).square().sum().backward()
        grads[layout] = [c.weight.grad.clone() for c in convs]
    for plain, last in zip(grads[torch.contiguous_format], grads[torch.channels_last], strict=True):
        torch.testing.assert_close(last, plain, rtol=1e-4, atol=1e-4)
    # The same outputs and state dict as torch's own strided 1x1 convolution.
    conv = convs[0]
    reference = torch.nn.Conv2d(8, conv.out_channels, 1, 2, bias=False)
    reference.load_state_dict(conv.state_dict())
    y = torch.rand(2, 8, 9, 9)
    torch.testing.assert_close(conv(y), reference(y))
