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


class _PairedNLL(torch.autograd.Function):
    """``_paired_nll`` with a hand-written backward that keeps one (G, 2n, 2n) matrix, the
    softmax, instead of autograd's several: with the diagonal left out, the gradient of
    ``logsumexp - positive`` with respect to the similarities is ``softmax - onehot``, and
    with respect to ``z`` (similarities ``z z^T``) it is ``(S + S^T) z``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        with torch.autocast(z.device.type, enabled=False):
            groups, m = z.shape[0], z.shape[1]
            sim = torch.bmm(z, z.transpose(1, 2))
            sim.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
            rest = torch.logsumexp(sim, dim=-1, keepdim=True)  # (G, 2n, 1)
            pair = _pairs(m, z.device).expand(groups, m, 1)
            loss = (rest - sim.gather(2, pair)).mean()
            probabilities = sim.sub_(rest).exp_()  # in place: the softmax, diagonal 0
        ctx.save_for_backward(z, probabilities)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        z, probabilities = ctx.saved_tensors
        with torch.autocast(z.device.type, enabled=False):
            groups, m = z.shape[0], z.shape[1]
            both = probabilities + probabilities.transpose(1, 2)
            # Row r's one-hot at its pair p(r) and, transposed, row p(r)'s at r: pairing is
            # its own inverse, so both fall on (r, p(r)).
            pair = _pairs(m, z.device).expand(groups, m, 1)
            both.scatter_add_(2, pair, torch.full(pair.shape, -2.0, dtype=z.dtype, device=z.device))
            both.mul_(grad / (groups * m))
            return torch.bmm(both, z)


def _pairs(m: int, device: torch.device) -> torch.Tensor:
    """(1, m, 1): the pair of each of m = 2n rows, n + i for row i and i for row n + i."""
    n = m // 2
    half = torch.arange(n, device=device)
    return torch.cat([half + n, half])[None, :, None]


def _paired_nll(z: torch.Tensor) -> torch.Tensor:
    """For G groups of 2n vectors (G, 2n, D) where vector i and vector n + i are a pair: the
    mean over every vector of the negative log-softmax of its pair's similarity among its
    similarities to the other 2n - 1 (the diagonal left out). TS2Vec's code builds shifted
    lower and upper triangles and a log-softmax of them, and autograd keeps several such
    (G, 2n, 2n) matrices; :class:`_PairedNLL` gives the same values and gradients from one
    (the temporal term of day windows of minutes, 2n = 2,880, is most of a step).

    Example:
        >>> z = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])
        >>> round(_paired_nll(z).item(), 4)  # -log(e / (e + 1 + 1)) for every vector
        0.5514
    """
    return _PairedNLL.apply(z)


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """At every time step, each series' two views against the other series' (B, T, D) inputs.

    Example:
        >>> z = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two series, one step
        >>> round(instance_contrastive_loss(z, z).item(), 4)  # -log(e / (e + 1 + 1))
        0.5514
    """
    if z1.shape[0] == 1:
        return z1.sum() * 0.0
    return _paired_nll(torch.cat([z1, z2], dim=0).transpose(0, 1))  # (T, 2B, D)


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Within each series, each time step's two views against the other steps (B, T, D)."""
    if z1.shape[1] == 1:
        return z1.sum() * 0.0
    return _paired_nll(torch.cat([z1, z2], dim=1))  # (B, 2T, D)


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
