"""Fine-tuning the last blocks of a backbone with a head on a few labels."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.backbones import backbone_blocks
from selfsup.core.progress import ShowProgress, TrainingProgress
from selfsup.data.base import Source
from selfsup.encoder import Encoder
from selfsup.tools.adapt.heads import EmbeddingHead
from selfsup.tools.adapt.model import CalibratedClassifier


def finetune_encoder(
    encoder: Encoder,
    head: EmbeddingHead,
    source: Source,
    indices: np.ndarray,
    labels: np.ndarray,
    blocks: int,
    epochs: int = 30,
    lr: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    show_progress: ShowProgress = "auto",
) -> tuple[Encoder, EmbeddingHead]:
    """Fine-tune the last ``blocks`` blocks of an image encoder together with the head.

    Cross-entropy on the labelled items as they are (no augmentation), AdamW with ``lr`` for
    the encoder's blocks and ten times it for the head; batch-norm layers keep their
    pretrained statistics (the encoder stays in eval mode), since a few labelled items would
    give poor batch statistics.

    Returns:
        Copies of the encoder and head, fine-tuned; the inputs are left unchanged.
    """
    available = backbone_blocks(encoder.backbone)
    if not 1 <= blocks <= len(available):
        raise ValueError(f"--finetune-blocks must be in [1, {len(available)}], got {blocks}")
    # Standard layout, as a reloaded encoder has (a training run's may be channels-last, whose
    # kernels round differently): predictions must not change when the model is reloaded.
    encoder = copy.deepcopy(encoder).to(memory_format=torch.contiguous_format)
    head = copy.deepcopy(head)
    encoder.requires_grad_(False)
    trainable = [
        p for block in backbone_blocks(encoder.backbone)[-blocks:] for p in block.parameters()
    ]
    for parameter in trainable:
        parameter.requires_grad_(True)
    head.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": trainable, "lr": lr}, {"params": head.parameters(), "lr": 10 * lr}],
        weight_decay=1e-4,
    )
    generator = torch.Generator().manual_seed(seed)
    label_of = dict(zip(indices.tolist(), labels.tolist(), strict=True))
    classifier = CalibratedClassifier(encoder, head, 1.0)
    encoder.eval()
    steps_per_epoch = (len(indices) + batch_size - 1) // batch_size
    with TrainingProgress(epochs * steps_per_epoch, "fine-tuning", enabled=show_progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(indices), generator=generator).numpy()
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = source.read_batch(indices[rows].tolist())
                target = torch.as_tensor([label_of[i] for i in batch.indices])
                probs = classifier(batch.items.to(encoder.device))
                loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), target.to(encoder.device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.advance(1, len(rows), loss.item())
    return encoder.requires_grad_(False), head.requires_grad_(False).eval()
