"""DINO: self-distillation with no labels, a momentum teacher and multi-crop.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021. https://arxiv.org/abs/2104.14294

The student (encoder + DINO head) sees every view, the teacher (a momentum copy of both) the
global views only. With P_t = softmax((g_t(x) - c) / tau_t), the teacher's output sharpened by
a low temperature and centered by c, and P_s = softmax(g_s(x') / tau_s), Eq. (3) is
    min  sum_{x in global views} sum_{x' in all views, x' != x}  H(P_t(x), P_s(x')),
with H(a, b) = -sum_k a_k log b_k, here averaged over the batch and over the pairs as in the
official code. The center follows the teacher's batch mean by EMA (Eq. 4):
c <- m c + (1 - m) mean(g_t(x)), m = 0.9; the teacher follows the student by EMA with a
momentum rising from 0.996 to 1 on a cosine schedule (Algorithm 1).

This cross-entropy is SwAV's swapped prediction with the teacher's probabilities in place of
the Sinkhorn codes, so ``dino_loss`` reuses ``swapped_prediction_loss``.

Under DDP the center's batch mean is all-reduced over the processes, as in the official code.
Not implemented: freezing the head's last layer during the first epoch and gradient clipping,
which the paper uses to stabilize ViT training on ImageNet.

Example:
    >>> import torch
    >>> teacher = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    >>> student = [torch.tensor([[9.0, 0.0]]), torch.tensor([[0.0, 9.0]])]
    >>> bool(dino_loss(student, teacher) > dino_loss(student[::-1], teacher))
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.momentum import cosine_momentum, ema_update, momentum_copy
from selfsup.methods.swav import swapped_prediction_loss


def dino_loss(
    student_logits: list[torch.Tensor],
    teacher_probs: list[torch.Tensor],
    student_temperature: float = 0.1,
) -> torch.Tensor:
    """DINO's Eq. (3): the mean over pairs of different views of H(P_t(x), P_s(x')).

    Args:
        student_logits: per view, the student head's output (B, K); global views first.
        teacher_probs: per global view, the teacher's centered, sharpened softmax (B, K);
            ``teacher_probs[i]`` belongs to the same view as ``student_logits[i]``.
        student_temperature: the student's softmax temperature tau_s.
    """
    return swapped_prediction_loss(student_logits, teacher_probs, student_temperature)


class DINOHead(nn.Module):
    """The DINO projection head: a 3-layer MLP with GELU, an l2-normalized bottleneck, and a
    weight-normalized linear layer (weights with unit-norm rows, no bias) onto ``out_dim``.

    Weight normalization with its gain fixed to 1, as DINO's default ``norm_last_layer``: the
    last layer's outputs are cosines between the bottleneck and ``out_dim`` directions.

    Args:
        in_dim: size of the backbone's features.
        hidden_dim: hidden size of the MLP (paper: 2048).
        bottleneck_dim: output size of the MLP (paper: 256).
        out_dim: number of outputs K (paper: 65536).

    Example:
        >>> import torch
        >>> DINOHead(32, 64, 16, 128)(torch.randn(4, 32)).shape
        torch.Size([4, 128])
    """

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.Linear(bottleneck_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map features (B, in_dim) to logits (B, out_dim)."""
        x = F.normalize(self.mlp(x), dim=-1)
        return F.linear(x, F.normalize(self.last_layer.weight, dim=1))


class DINO(Method):
    """DINO: student encoder + head, momentum teacher, centering and sharpening.

    Defaults follow the paper except ``out_dim`` (65536 for ImageNet), lowered to 4096 for
    small data sets; ``num_local_views`` is 6, as the paper's 2 x 224 + 6 x 96 multi-crop
    (``views: {local_views: 0}`` trains on the two global views only; the paper then advises
    wider global crops, e.g. ``crop_scale: [0.14, 1.0]``). The ``dino`` view recipe is BYOL's
    two asymmetric views on crops of 40-100% of the image, local crops of 5-40%. The teacher
    is the encoder kept after training, as in the paper.

    Args:
        encoder: the student network; its momentum copy is the teacher.
        hidden_dim: hidden size of the head's MLP.
        bottleneck_dim: output size of the head's MLP.
        out_dim: the head's output size K.
        student_temperature: tau_s (paper: 0.1).
        teacher_temperature: tau_t after its warmup (paper: 0.04, up to 0.07).
        teacher_temperature_start: tau_t at the start of training, rising linearly to
            ``teacher_temperature`` (paper: 0.04); None for no warmup.
        teacher_temperature_warmup: the fraction of training the warmup lasts (paper: 30
            epochs of 100 to 300).
        center_momentum: the center's EMA momentum m (paper: 0.9).
        base_momentum: the teacher's EMA momentum at the start of training (paper: 0.996).
    """

    name = "dino"
    batch_coupling: ClassVar[str] = "its teacher's centre is updated from each batch"
    paper = "Caron et al. 2021, https://arxiv.org/abs/2104.14294"
    view_recipes: ClassVar[dict[str, str]] = {"image": "dino"}
    num_local_views = 6

    def __init__(
        self,
        encoder: Encoder,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        out_dim: int = 4096,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        teacher_temperature_start: float | None = None,
        teacher_temperature_warmup: float = 0.3,
        center_momentum: float = 0.9,
        base_momentum: float = 0.996,
    ) -> None:
        super().__init__(encoder)
        self.head = DINOHead(encoder.feature_dim, hidden_dim, bottleneck_dim, out_dim)
        self.teacher = nn.Sequential(momentum_copy(encoder), momentum_copy(self.head))
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.teacher_temperature_start = teacher_temperature_start
        self.teacher_temperature_warmup = teacher_temperature_warmup
        self.center_momentum = center_momentum
        self.base_momentum = base_momentum
        # Buffers, so checkpoints keep them and a resumed run continues exactly.
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("progress", torch.zeros(()))
        self._options = {
            "hidden_dim": hidden_dim,
            "bottleneck_dim": bottleneck_dim,
            "out_dim": out_dim,
            "student_temperature": student_temperature,
            "teacher_temperature": teacher_temperature,
            "teacher_temperature_start": teacher_temperature_start,
            "teacher_temperature_warmup": teacher_temperature_warmup,
            "center_momentum": center_momentum,
            "base_momentum": base_momentum,
        }

    def current_teacher_temperature(self) -> float:
        """tau_t at this point of training: the linear warmup, then ``teacher_temperature``."""
        start, end = self.teacher_temperature_start, self.teacher_temperature
        warmup = self.teacher_temperature_warmup
        if start is None or warmup <= 0:
            return end
        return start + (end - start) * min(1.0, float(self.progress) / warmup)

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        global_views = torch.cat(views[: self.num_views])
        # One encoder pass per view size: the global views together, the local ones together.
        features = [self.encoder(global_views)]
        if len(views) > self.num_views:
            features.append(self.encoder(torch.cat(views[self.num_views :])))
        student = self.head(torch.cat(features)).float().split(n)
        with torch.no_grad():
            teacher = self.teacher(global_views).float()
            temperature = self.current_teacher_temperature()
            probs = F.softmax((teacher - self.center) / temperature, dim=1).split(n)
        loss = dino_loss(list(student), list(probs), self.student_temperature)
        self.update_center(teacher)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """c <- m c + (1 - m) * the batch mean of the teacher's outputs (over all processes)."""
        total = teacher_logits.sum(dim=0, keepdim=True)
        count = teacher_logits.shape[0]
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            count *= dist.get_world_size()
        self.center.lerp_(total / count, 1.0 - self.center_momentum)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The teacher head's output for the (teacher) encoder's features."""
        return self.teacher[1](features)

    def export_encoder(self) -> Encoder:
        return self.teacher[0]

    def on_step_end(self, progress: float) -> None:
        momentum = cosine_momentum(progress, self.base_momentum)
        ema_update(self.teacher[0], self.encoder, momentum)
        ema_update(self.teacher[1], self.head, momentum)
        self.progress.fill_(progress)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
