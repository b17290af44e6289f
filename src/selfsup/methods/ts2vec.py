"""TS2Vec: hierarchical contrasting of overlapping crops of a series.

Yue, Wang, Duan, Yang, Huang, Tong and Xu, "TS2Vec: Towards Universal Representation of Time
Series", AAAI 2022.

Two crops of each series overlap on a random common segment (contextual consistency); each is
encoded per time step with random timestamp masking, and the features of the common segment
are contrasted at every scale of a max-pooling pyramid (window 2, until one step is left):

- instance-wise: at each time step, the two views of a series against the other series of the
  batch (2B - 1 candidates);
- temporal: within a series, the two views of a time step against the other steps of both
  views (2T - 1 candidates).

The loss is ``alpha`` times the instance term plus ``1 - alpha`` times the temporal term,
averaged over the scales; the temporal term starts at scale ``temporal_unit``.

Under DDP each process draws its own crop length and offsets and contrasts its own series
(the instance-wise negatives are the process's batch, not gathered): the crops are drawn per
batch, so two processes of B cannot train exactly as one of 2B anyway.

Example:
    >>> import torch
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.modalities.series import build_series_encoder
    >>> encoder = build_series_encoder("ts2vec", in_channels=1, hidden=8, out_dim=16, depth=2)
    >>> loss = TS2Vec(encoder)([torch.randn(4, 1, 24)])
    >>> loss.ndim, bool(loss > 0)
    (0, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.momentum import ema_update, momentum_copy


def _off_diagonal_log_softmax(sim: torch.Tensor) -> torch.Tensor:
    """For similarities (G, M, M): the negative log-softmax over each row without its
    diagonal entry, as (G, M, M - 1) (column j >= i is shifted left by one)."""
    logits = torch.tril(sim, diagonal=-1)[:, :, :-1] + torch.triu(sim, diagonal=1)[:, :, 1:]
    return -F.log_softmax(logits, dim=-1)


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """At every time step, each series' two views against the other series' (B, T, D) inputs.

    Example:
        >>> z = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two series, one step
        >>> round(instance_contrastive_loss(z, z).item(), 4)  # -log(e / (e + 1 + 1))
        0.5514
    """
    b = z1.shape[0]
    if b == 1:
        return z1.sum() * 0.0
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)  # (T, 2B, D)
    nll = _off_diagonal_log_softmax(z @ z.transpose(1, 2))
    i = torch.arange(b, device=z.device)
    return (nll[:, i, b + i - 1].mean() + nll[:, b + i, i].mean()) / 2


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Within each series, each time step's two views against the other steps (B, T, D)."""
    t = z1.shape[1]
    if t == 1:
        return z1.sum() * 0.0
    z = torch.cat([z1, z2], dim=1)  # (B, 2T, D)
    nll = _off_diagonal_log_softmax(z @ z.transpose(1, 2))
    s = torch.arange(t, device=z.device)
    return (nll[:, s, t + s - 1].mean() + nll[:, t + s, s].mean()) / 2


def hierarchical_contrastive_loss(
    z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5, temporal_unit: int = 0
) -> torch.Tensor:
    """TS2Vec's loss over the max-pooling pyramid of two aligned feature maps (B, T, D).

    Example:
        >>> z = torch.randn(3, 8, 4)
        >>> loss = hierarchical_contrastive_loss(z, z + 0.01 * torch.randn(3, 8, 4))
        >>> loss.ndim
        0
    """
    z1, z2 = z1.float(), z2.float()
    loss = z1.sum() * 0.0
    scales = 0
    while z1.shape[1] > 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        if scales >= temporal_unit and alpha != 1:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        scales += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if z1.shape[1] == 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        scales += 1
    return loss / scales


def take_per_row(x: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """``x[i, :, starts[i] : starts[i] + length]`` for every row of x (B, C, T).

    Example:
        >>> x = torch.arange(6.0).view(2, 1, 3)
        >>> take_per_row(x, torch.tensor([0, 1]), 2).tolist()
        [[[0.0, 1.0]], [[4.0, 5.0]]]
    """
    steps = starts[:, None] + torch.arange(length, device=x.device)[None]
    return x.gather(2, steps[:, None, :].expand(x.shape[0], x.shape[1], length))


class TS2Vec(Method):
    """TS2Vec on a series encoder with features per time step (``Encoder.timestamps``).

    Args:
        encoder: a series encoder (its backbone has ``forward_timestamps``).
        alpha: weight of the instance-wise term (the temporal one gets ``1 - alpha``).
        temporal_unit: the smallest pyramid scale the temporal term is applied at.
        mask_p: probability that a time step is kept by the training-time timestamp mask
            (the paper's binomial mask, 0.5).
        max_length: series longer than this are cropped at random first (the paper's
            ``max_train_length``, 3000), to bound memory.
        average: keep the uniform average of the encoder's weights over all training steps
            and export it (stochastic weight averaging, as TS2Vec's code encodes with
            ``torch.optim.swa_utils.AveragedModel``).
    """

    name: ClassVar[str] = "ts2vec"
    batch_coupling: ClassVar[str] = "its instance-wise negatives are the other series of the batch"
    paper: ClassVar[str] = (
        "Yue et al. 2022, TS2Vec: Towards Universal Representation of Time Series"
    )
    num_views: ClassVar[int] = 1
    view_recipes: ClassVar[dict[str, str]] = {"series": "none"}
    modalities: ClassVar[tuple[str, ...]] = ("series",)

    def __init__(
        self,
        encoder: Encoder,
        alpha: float = 0.5,
        temporal_unit: int = 0,
        mask_p: float = 0.5,
        max_length: int = 3000,
        average: bool = True,
    ) -> None:
        super().__init__(encoder)
        self.alpha = alpha
        self.temporal_unit = temporal_unit
        self.mask_p = mask_p
        self.max_length = max_length
        self.average = average
        self._full_crop = False
        if average:
            self.averaged = momentum_copy(encoder)
            self.register_buffer("averaged_steps", torch.zeros((), dtype=torch.long))

    def on_step_end(self, progress: float) -> None:
        """Fold the new weights into the running uniform average."""
        if self.average:
            self.averaged_steps += 1
            k = int(self.averaged_steps)
            ema_update(self.averaged, self.encoder, (k - 1) / k)

    def export_encoder(self) -> Encoder:
        """The averaged encoder (``average=True``, the default), else the trained one."""
        return self.averaged if self.average else self.encoder

    @staticmethod
    def _randint(low: int, high: int, size: int | None = None, device: torch.device | None = None):
        """Integers in [low, high) from torch's generator (seeded by the training loop, so a
        resumed run crops exactly as the original would have)."""
        if size is None:
            return int(torch.randint(low, high, (1,)).item())
        return torch.randint(low, high, (size,)).to(device)

    @contextlib.contextmanager
    def largest_step(self) -> Iterator[None]:
        """While open, the common segment is the whole series: the temporal contrast's
        (2T x 2T) similarities, quadratic in the crop, are then the largest a step makes."""
        self._full_crop = True
        try:
            yield
        finally:
            self._full_crop = False

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rand(x.shape[0], x.shape[2], device=x.device) < self.mask_p

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Crop two overlapping windows of each series, encode them and contrast the overlap."""
        x = views[0]
        if x.shape[2] > self.max_length:
            start = self._randint(0, x.shape[2] - self.max_length + 1)
            x = x[:, :, start : start + self.max_length]
        b, _, t = x.shape
        shortest = 2 ** (self.temporal_unit + 1)
        if t < shortest:
            raise ValueError(f"TS2Vec needs series of at least {shortest} steps, got {t}")
        # The paper's cropping: a common segment [left, right) inside two windows
        # [e_left, right) and [left, e_right), shifted together by a per-row offset.
        crop = t if self._full_crop else self._randint(shortest, t + 1)
        left = self._randint(0, t - crop + 1)
        right = left + crop
        e_left = self._randint(0, left + 1)
        e_right = self._randint(right, t + 1)
        offset = self._randint(-e_left, t - e_right + 1, b, x.device)
        x1 = take_per_row(x, offset + e_left, right - e_left)
        x2 = take_per_row(x, offset + left, e_right - left)
        out1 = self.encoder.timestamps(x1, self._mask(x1))[:, -crop:]
        out2 = self.encoder.timestamps(x2, self._mask(x2))[:, :crop]
        return hierarchical_contrastive_loss(out1, out2, self.alpha, self.temporal_unit)

    def options(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "temporal_unit": self.temporal_unit,
            "mask_p": self.mask_p,
            "max_length": self.max_length,
            "average": self.average,
        }
