"""NNCLR: contrastive learning with nearest neighbours from a support set as positives.

Dwibedi, Aytar, Tompson, Sermanet, Zisserman. "With a Little Help from My Friends:
Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021.
https://arxiv.org/abs/2104.14548

SimCLR's positive, the other view's embedding, is replaced by the nearest neighbour of the
first view's projection z_i in a support set Q of past projections:
    L_i = -log( exp(NN(z_i, Q) . p_i+ / T) / sum_k exp(NN(z_i, Q) . p_k+ / T) )
with NN(z, Q) = argmin_{q in Q} ||z - q||_2 on l2-normalized vectors (the highest cosine),
p+ the predictor's outputs for the other view, and every vector l2-normalized. The loss is
symmetrized over the two views (each view's neighbours against the other view's predictions),
and the support set is a FIFO queue of the first view's projections, updated after the loss.

The queue and its write position are registered buffers, so they are saved in checkpoints and
a resumed run looks up the same neighbours as an uninterrupted one. Before the queue is full
only its filled part is searched; on the very first step, with an empty queue, each
projection stands in for its own neighbour (which makes that step SimCLR with a predictor).

Under DDP the loss is the global batch's: each process looks up its own items' neighbours in
the support set, then the neighbours and the predictions of every process are gathered
(:func:`~selfsup.methods.distributed.gather`, with gradients) before the loss, and every
process enqueues the first-view projections of every process, in rank order. All processes
thus keep the same support set, and two processes of B items train as one of 2B.

Example:
    >>> import torch
    >>> p = torch.eye(3)
    >>> bool(nnclr_loss(p, p, temperature=0.1) < nnclr_loss(p.roll(1, 0), p, temperature=0.1))
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distributed import gather
from selfsup.methods.heads import PredictionHead, ProjectionHead


def nnclr_loss(
    neighbours: torch.Tensor, predictions: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """NNCLR's InfoNCE: row i of ``neighbours`` against all ``predictions``, positive i.

    Args:
        neighbours: NN(z_i, Q), the support-set neighbours of one view's projections, (N, D).
        predictions: the predictor's outputs p+ for the other view, (N, D).
        temperature: the temperature T.
    """
    nn_ = F.normalize(neighbours.float(), dim=1)
    p = F.normalize(predictions.float(), dim=1)
    logits = nn_ @ p.T / temperature
    positives = torch.arange(p.shape[0], device=p.device)
    return F.cross_entropy(logits, positives)


class NNCLR(Method):
    """NNCLR: backbone, projector, predictor, and a FIFO support set of projections.

    Args:
        encoder: the network to train.
        projection_dim: output size of projector and predictor (paper: 256).
        hidden_dim: hidden size of projector and predictor (paper: 2048 and 4096).
        temperature: the temperature T of the contrastive loss (paper: 0.1).
        queue_size: number of projections in the support set. The paper's 98304 is about 8% of
            ImageNet; the default 16384 suits datasets of tens of thousands of items. Keep it
            well below the number of training items: a queue that spans whole epochs holds
            each item's own earlier projection, which then tends to be its nearest neighbour
            and the positive is no longer another item.
    """

    name = "nnclr"
    batch_coupling: ClassVar[str] = "its negatives are the other items of the batch"
    paper = "Dwibedi et al. 2021, https://arxiv.org/abs/2104.14548"
    # The paper uses BYOL's asymmetric augmentations.
    view_recipes: ClassVar[dict[str, str]] = {"image": "byol"}

    queue: torch.Tensor
    queue_pointer: torch.Tensor
    queue_filled: torch.Tensor

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 256,
        hidden_dim: int = 1024,
        temperature: float = 0.1,
        queue_size: int = 16384,
    ) -> None:
        super().__init__(encoder)
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        self.projection = ProjectionHead(
            encoder.feature_dim, hidden_dim, projection_dim, num_layers=3, last_batch_norm=True
        )
        self.prediction = PredictionHead(projection_dim, hidden_dim)
        self.temperature = temperature
        self.register_buffer("queue", torch.zeros(queue_size, projection_dim))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "temperature": temperature,
            "queue_size": queue_size,
        }

    @torch.no_grad()
    def nearest_neighbours(self, z: torch.Tensor) -> torch.Tensor:
        """NN(z, Q): the support-set entry of highest cosine similarity to each row of ``z``."""
        z = F.normalize(z.detach().float(), dim=1)
        filled = int(self.queue_filled)
        if filled == 0:
            return z
        support = self.queue[:filled]
        return support[(z @ support.T).argmax(dim=1)]

    @torch.no_grad()
    def enqueue(self, z: torch.Tensor) -> None:
        """Write the normalized rows of ``z`` over the oldest entries of the support set."""
        size = self.queue.shape[0]
        z = F.normalize(z.detach().float(), dim=1)[-size:]
        slots = (self.queue_pointer + torch.arange(len(z), device=z.device)) % size
        self.queue[slots] = z
        self.queue_pointer.copy_((self.queue_pointer + len(z)) % size)
        self.queue_filled.copy_((self.queue_filled + len(z)).clamp(max=size))

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        z = self.projection(self.encoder(torch.cat(views[:2])))
        p = self.prediction(z)
        neighbours = self.nearest_neighbours(z)
        # The global batch under DDP: every process's items, in rank order (one process: as is).
        loss = (
            nnclr_loss(gather(neighbours[:n]), gather(p[n:]), self.temperature)
            + nnclr_loss(gather(neighbours[n:]), gather(p[:n]), self.temperature)
        ) / 2
        self.enqueue(gather(z[:n].detach()))
        return loss

    def options(self) -> dict[str, Any]:
        return dict(self._options)
