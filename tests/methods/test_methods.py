"""Methods: gradients reach the backbone; BYOL's target follows by EMA; short training learns."""

import pytest
import torch

from selfsup.encoder import Encoder
from selfsup.methods import METHODS, build_method
from selfsup.methods.momentum import cosine_momentum, ema_update, momentum_copy


def _encoder() -> Encoder:
    return Encoder.build("small-cnn", in_channels=1, image_size=12, width=4)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_gradients_reach_the_first_backbone_layer(name: str) -> None:
    torch.manual_seed(0)
    method = build_method(name, _encoder(), hidden_dim=32, projection_dim=16)
    views = [torch.rand(8, 1, 12, 12), torch.rand(8, 1, 12, 12)]
    method(views).backward()
    first = next(method.encoder.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_byol_target_gets_no_gradient_and_moves_by_ema() -> None:
    torch.manual_seed(0)
    method = build_method("byol", _encoder(), hidden_dim=32, projection_dim=16)
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
        build_method("nope", _encoder())
