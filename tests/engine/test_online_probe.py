"""The online probe learns from the encoder's outputs without sending gradients into it."""

import torch
from torch import nn

from selfsup.engine.online_probe import OnlineProbe
from selfsup.modalities.image import build_image_encoder

#: Two well separated classes of 2-D points.
CENTERS = torch.tensor([[3.0, 0.0], [-3.0, 0.0]])


def linear_encoder_and_probe() -> tuple[nn.Linear, OnlineProbe]:
    """A seeded linear encoder of the points, and a probe on its outputs."""
    torch.manual_seed(0)
    encoder = nn.Linear(2, 4)
    return encoder, OnlineProbe(encoder, feature_dim=4, num_classes=2, lr=0.05)


def held_out_features(encoder: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """200 new points' features and labels."""
    labels = torch.randint(0, 2, (200,))
    with torch.no_grad():
        return encoder(CENTERS[labels] + torch.randn(200, 2)), labels


def test_online_probe_learns_separable_features_and_leaves_the_encoder_alone() -> None:
    encoder, probe = linear_encoder_and_probe()
    for _ in range(60):
        labels = torch.randint(0, 2, (32,))
        x = CENTERS[labels] + torch.randn(32, 2)
        two_views = encoder(torch.cat([x, x + 0.1 * torch.randn_like(x)]))  # 2 views: 64 rows
        two_views.sum().backward()  # stands in for the method's loss
        probe.step(labels)
    assert probe.train_accuracy() > 0.9
    features, labels = held_out_features(encoder)
    assert probe.accuracy(features, labels) > 0.95
    # The encoder's gradient is the stand-in loss's alone: the probe's loss did not reach it.
    assert torch.allclose(encoder.bias.grad, torch.full((4,), 64.0 * 60))


def test_items_without_a_label_are_left_out_of_training_and_scoring() -> None:
    """Labels -1 (data labelled on some rows): the probe learns from the others alone."""
    encoder, probe = linear_encoder_and_probe()
    for _ in range(60):
        labels = torch.randint(0, 2, (32,))
        with torch.no_grad():
            encoder(CENTERS[labels] + torch.randn(32, 2))
        hidden = labels.clone()
        hidden[4:] = -1  # four labelled items a batch; a -1 would be an index error if used
        probe.step(hidden)
    assert probe.steps == 60
    features, labels = held_out_features(encoder)
    scored = labels.clone()
    scored[100:] = -1
    assert probe.accuracy(features, scored) > 0.95
    assert torch.isnan(torch.tensor(probe.accuracy(features, torch.full((200,), -1))))


def test_features_of_other_batch_sizes_are_ignored() -> None:
    encoder = nn.Linear(2, 3)
    probe = OnlineProbe(encoder, feature_dim=3, num_classes=2)
    encoder(torch.randn(5, 2))  # not a multiple of the 4 labels below
    probe.step(torch.tensor([0, 1, 0, 1]))
    assert probe.train_accuracy() == 0.0


def test_monitor_scores_the_probe_on_the_encoder_it_learned_from_not_the_teacher(
    tmp_path, clusters_npz
) -> None:
    """DINO keeps its teacher; the probe learned on the student's features is scored on them."""
    import numpy as np

    from selfsup.data.arrays import ArraySource
    from selfsup.embedding import embed_source
    from selfsup.engine.monitor import EpochMonitor
    from selfsup.methods import build_method
    from selfsup.modalities.image import method_views

    torch.manual_seed(0)
    data = np.load(clusters_npz)
    source = ArraySource(data["X"], labels=data["y"])
    method = build_method(
        "dino", build_image_encoder("small-cnn", 1, 12, width=4), hidden_dim=16, out_dim=32
    )
    with torch.no_grad():  # a teacher far from the student
        for p in method.export_encoder().parameters():
            p.add_(torch.randn_like(p))
    probe = OnlineProbe(method.encoder, method.encoder.feature_dim, num_classes=4)
    x, labels = source.read_batch(list(range(len(source)))).items, torch.as_tensor(source.labels)
    method.encoder.train()
    with torch.no_grad():
        for _ in range(80):  # the hook captures the student's training-mode outputs
            method.encoder(x)
            probe.step(labels)
    views, _ = method_views(method, 12, 1, local_views=0)
    monitor = EpochMonitor(source, views, tmp_path, items=len(source), precision="fp32")
    _, values = monitor.measure(method, probe)
    student = torch.from_numpy(embed_source(method.encoder, source, precision="fp32"))
    teacher = torch.from_numpy(embed_source(method.export_encoder(), source, precision="fp32"))
    assert values["online_probe"] == probe.accuracy(student, labels) > 0.4  # chance: 0.25
    assert values["online_probe"] != probe.accuracy(teacher, labels)


def test_no_online_probe_is_reported_for_a_method_that_never_encodes_whole_items(
    tmp_path, clusters_npz
) -> None:
    """MAE encodes only the visible patches: the probe never trains, so no number is logged
    (it used to log an untrained head's accuracy)."""
    import pandas as pd

    from selfsup.run import pretrain

    pretrain(
        clusters_npz,
        method="mae",
        epochs=1,
        batch_size=32,
        backbone="vit-tiny",
        backbone_options={"patch_size": 4, "dim": 16, "depth": 2, "heads": 2},
        method_options={"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2},
        out=str(tmp_path / "mae"),
        show_progress=False,
    )
    epochs = pd.read_csv(tmp_path / "mae" / "epochs.csv")
    assert "rankme" in epochs.columns
    assert not {"online_probe", "online_probe_train"} & set(epochs.columns)


def test_the_probe_counts_its_steps_and_restores_them() -> None:
    encoder = nn.Linear(2, 3)
    probe = OnlineProbe(encoder, feature_dim=3, num_classes=2)
    probe.step(torch.tensor([0, 1]))  # nothing captured: no step
    assert probe.steps == 0
    encoder(torch.randn(4, 2))
    probe.step(torch.tensor([0, 1]))
    assert probe.steps == 1
    again = OnlineProbe(nn.Linear(2, 3), feature_dim=3, num_classes=2)
    again.load_state_dict(probe.state_dict())
    assert again.steps == 1
