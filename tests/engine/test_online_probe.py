"""The online probe learns from the encoder's outputs without sending gradients into it."""

import torch
from torch import nn

from selfsup.engine.online_probe import OnlineProbe


def test_online_probe_learns_separable_features_and_leaves_the_encoder_alone() -> None:
    torch.manual_seed(0)
    encoder = nn.Linear(2, 4)
    probe = OnlineProbe(encoder, feature_dim=4, num_classes=2, lr=0.05)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0]])
    for _ in range(60):
        labels = torch.randint(0, 2, (32,))
        x = centers[labels] + torch.randn(32, 2)
        two_views = encoder(torch.cat([x, x + 0.1 * torch.randn_like(x)]))  # 2 views: 64 rows
        two_views.sum().backward()  # stands in for the method's loss
        probe.step(labels)
    assert probe.train_accuracy() > 0.9
    labels = torch.randint(0, 2, (200,))
    with torch.no_grad():
        features = encoder(centers[labels] + torch.randn(200, 2))
    assert probe.accuracy(features, labels) > 0.95
    # The encoder's gradient is the stand-in loss's alone: the probe's loss did not reach it.
    assert torch.allclose(encoder.bias.grad, torch.full((4,), 64.0 * 60))


def test_features_of_other_batch_sizes_are_ignored() -> None:
    encoder = nn.Linear(2, 3)
    probe = OnlineProbe(encoder, feature_dim=3, num_classes=2)
    encoder(torch.randn(5, 2))  # not a multiple of the 4 labels below
    probe.step(torch.tensor([0, 1, 0, 1]))
    assert probe.train_accuracy() == 0.0
