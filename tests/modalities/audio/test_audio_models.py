"""Audio backbones, the audio encoder and BYOL-A's objective."""

import numpy as np
import pytest
import torch

from selfsup.backbones import AudioNTT2020, SpectrogramTransformer, build_audio_backbone
from selfsup.methods import BYOLA, build_method
from selfsup.modalities import load_encoder
from selfsup.modalities.audio import build_audio_encoder


@pytest.mark.parametrize("frames", [96, 40, 8])
def test_byola_cnn_takes_any_length(frames):
    net = AudioNTT2020(n_mels=32, feature_dim=24, width=8).eval()
    x = torch.randn(3, 1, 32, frames)
    out = net(x)
    assert out.shape == (3, 24)
    steps = net.forward_frames(x)
    assert steps.shape == (3, frames // 8, 24)
    torch.testing.assert_close(out, steps.mean(dim=1) + steps.max(dim=1).values)


def test_byola_cnn_flattens_channels_and_bands_per_time_step():
    net = AudioNTT2020(n_mels=64, feature_dim=2048)
    assert net.fc[0].in_features == 64 * 8  # BYOL-A: 64 channels x 64 / 2^3 bands
    with pytest.raises(ValueError, match="at least 8 mel bands"):
        AudioNTT2020(n_mels=4)


def test_spectrogram_transformer_patches_and_other_lengths():
    net = SpectrogramTransformer(64, 96, dim=16, depth=1, heads=2)
    assert net.grid == (4, 6)
    x = torch.randn(2, 1, 64, 96)
    assert net.forward_tokens(x).shape == (2, 24, 16)
    assert net(torch.randn(2, 1, 64, 100)).shape == (2, 16)  # 4 frames left over, dropped
    assert net.forward_tokens(torch.randn(2, 1, 64, 48)).shape == (2, 12, 16)
    with pytest.raises(ValueError, match="multiple of patch_mels"):
        SpectrogramTransformer(60, 96)
    with pytest.raises(ValueError, match="unknown audio backbone"):
        build_audio_backbone("resnet18", 64, 96)


@pytest.mark.parametrize("backbone", ["byola-cnn", "spectrogram-vit"])
def test_audio_encoder_saves_and_loads(tmp_path, backbone):
    options = (
        {"feature_dim": 16, "width": 4}
        if backbone == "byola-cnn"
        else {"dim": 16, "depth": 1, "heads": 2}
    )
    enc = build_audio_encoder(backbone, 32, 48, mean=-6.0, std=3.0, **options).eval()
    enc.save(tmp_path)
    again = load_encoder(tmp_path).eval()
    assert again.modality == "audio" and again.spec["n_mels"] == 32
    x = torch.randn(2, 1, 32, 48) * 3 - 6
    torch.testing.assert_close(enc(x), again(x))
    torch.testing.assert_close(enc.normalize(x), (x + 6.0) / 3.0)


def _tiny_byola() -> BYOLA:
    torch.manual_seed(0)
    encoder = build_audio_encoder("byola-cnn", 16, 16, feature_dim=12, width=4)
    return build_method("byola", encoder, projection_dim=6, hidden_dim=10)


def test_byola_loss_equals_the_hand_computation():
    method = _tiny_byola().train()
    v1, v2 = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    torch.manual_seed(1)  # dropout draws the same masks in both computations
    loss = method([v1, v2])
    torch.manual_seed(1)
    online = method.prediction(method.projection(method.encoder(torch.cat([v1, v2]))))
    with torch.no_grad():
        target = method.target(torch.cat([v1, v2]))
    p, z = online.detach().numpy(), target.numpy()

    def term(a, b):  # mean over the batch of 2 - 2 cos(a_i, b_i)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return np.mean(2 - 2 * cos)

    expected = term(p[:4], z[4:]) + term(p[4:], z[:4])  # view 1 predicts view 2, and back
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_byola_gradient_reaches_the_backbone_and_the_target_follows_by_ema():
    method = _tiny_byola()
    assert BYOLA.modalities == ("audio",) and method.options()["hidden_dim"] == 10
    views = [torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)]
    method(views).backward()
    first_conv = method.encoder.backbone.features[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert all(p.grad is None for p in method.target.parameters())
    target_conv = method.target[0].backbone.features[0].weight
    before = target_conv.clone()
    with torch.no_grad():
        first_conv.add_(1.0)
    method.on_step_end(0.0)  # momentum 0.99: the target moves 1% of the way
    torch.testing.assert_close(target_conv, before + 0.01 * (first_conv - before))
