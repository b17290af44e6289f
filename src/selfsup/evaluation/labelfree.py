"""Label-free quality metrics: how good an embedding looks before any label exists.

Each metric reads only embeddings, so it works on any modality and on any unlabeled data:

- :func:`rankme`: the effective rank of the embedding matrix (Garrido et al., "RankMe:
  Assessing the Downstream Performance of Pretrained Self-Supervised Representations by Their
  Rank", ICML 2023). Higher is better; 1 means collapse to a single direction.
- :func:`alpha_req`: the power-law decay coefficient of the covariance eigenspectrum (Agrawal
  et al., "alpha-ReQ: Assessing Representation Quality in Self-Supervised Learning by
  Measuring Eigenspectrum Decay", NeurIPS 2022). Values near 1 predict good accuracy; much
  smaller means noise-like, much larger means a few directions dominate.
- :func:`alignment` and :func:`uniformity` (Wang and Isola, "Understanding Contrastive
  Representation Learning through Alignment and Uniformity on the Hypersphere", ICML 2020).
  Both lower is better.
- :func:`normalized_std`: the per-dimension standard deviation of L2-normalized embeddings,
  times sqrt(d) (the collapse indicator of lightly and of SimSiam's Fig. 2): about 1 for
  embeddings spread over the sphere, 0 for a collapse to a point.
- :func:`neighbour_agreement`: how many of an item's k nearest neighbours computed from one
  view are also its neighbours computed from another view. A representation that ignores the
  augmentations but still separates items keeps neighbourhoods stable.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(2000, 16, generator=g)
    >>> round(rankme(z)) in (15, 16), round(normalized_std(z), 1)
    (True, 1.0)
    >>> round(rankme(torch.ones(100, 16)), 3)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.core.neighbours import cosine_topk
from selfsup.data.base import Source, by_length
from selfsup.embedding import autocast, embed_batch
from selfsup.encoder import Encoder
from selfsup.evaluation.inputs import ArrayLike, as_embeddings
from selfsup.modalities import get_modality

#: ``normalized_std`` below this means the embeddings collapsed (healthy runs sit near 1).
COLLAPSE_STD = 0.05
#: ``rankme`` below this means all embeddings lie along (about) one direction.
COLLAPSE_RANK = 1.5


def _matrix(embeddings: ArrayLike) -> torch.Tensor:
    return as_embeddings(embeddings, "embeddings").double()


def rankme(embeddings: ArrayLike, eps: float = 1e-7) -> float:
    """Effective rank: ``exp(-sum p_k log p_k)`` with ``p_k = s_k / sum(s) + eps``.

    ``s_k`` are the singular values of the (uncentered) ``(n, d)`` embedding matrix, as in
    RankMe's Eq. (1). The value lies in ``[1, min(n, d)]``: about ``d`` for isotropic
    embeddings, about ``k`` when they span ``k`` equally used directions, 1 for a collapse.

    Args:
        embeddings: ``(n, d)`` array or tensor.
        eps: the paper's small constant, keeping ``log`` finite for zero singular values.

    Example:
        >>> import torch
        >>> z = torch.zeros(6, 4)
        >>> z[:3, 0], z[3:, 1] = 1.0, 1.0
        >>> round(rankme(z), 3)
        2.0
    """
    s = torch.linalg.svdvals(_matrix(embeddings))
    if s.sum() <= 0:
        return 1.0
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()).clamp(min=1.0))


def eigenspectrum(embeddings: ArrayLike) -> torch.Tensor:
    """Eigenvalues of the embeddings' covariance matrix, largest first.

    Example:
        >>> import torch
        >>> eigenspectrum(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])).tolist()
        [2.0, 0.0]
    """
    z = _matrix(embeddings)
    z = z - z.mean(dim=0, keepdim=True)
    cov = z.T @ z / max(1, len(z) - 1)
    return torch.linalg.eigvalsh(cov).flip(0).clamp(min=0.0)


def alpha_req(embeddings: ArrayLike, fit_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Power-law decay ``alpha`` of the covariance eigenspectrum, ``lambda_i ~ i^-alpha``.

    Fitted by least squares of ``log lambda_i`` on ``log i`` over the eigenvalues whose rank
    falls in ``fit_range`` (fractions of ``d``) and that are positive, as in alpha-ReQ's
    Section 3. A spectrum with fewer than two positive eigenvalues (a collapse) gives ``inf``.

    Args:
        embeddings: ``(n, d)`` array or tensor; ``n`` should exceed ``d`` for a stable
            spectrum.
        fit_range: the fraction of leading eigenvalues to skip and to keep, e.g. ``(0, 0.5)``
            fits the first half.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> scale = torch.arange(1, 33, dtype=torch.float64) ** -0.5  # variance ~ i^-1
        >>> z = torch.randn(20000, 32, generator=g, dtype=torch.float64) * scale
        >>> round(alpha_req(z), 1)
        1.0
    """
    eig = eigenspectrum(embeddings)
    d = len(eig)
    lo, hi = int(fit_range[0] * d), max(int(fit_range[0] * d) + 2, math.ceil(fit_range[1] * d))
    ranks = torch.arange(1, d + 1, dtype=torch.float64)[lo:hi]
    values = eig[lo:hi]
    positive = values > values.max() * 1e-12 if len(values) else values > 0
    if positive.sum() < 2:
        return math.inf
    x, y = ranks[positive].log(), values[positive].log()
    x = x - x.mean()
    slope = (x * (y - y.mean())).sum() / (x * x).sum()
    return float(-slope)


def alignment(view1: ArrayLike, view2: ArrayLike, alpha: float = 2.0) -> float:
    """``E ||f(x) - f(y)||^alpha`` over positive pairs, embeddings L2-normalized (Eq. 3).

    Example:
        >>> import torch
        >>> round(alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])), 6)
        2.0
    """
    a = F.normalize(as_embeddings(view1, "view1").double(), dim=1)
    b = F.normalize(as_embeddings(view2, "view2").double(), dim=1)
    if a.shape != b.shape:
        raise ValueError(f"the two views' embeddings differ in shape: {a.shape} vs {b.shape}")
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(embeddings: ArrayLike, t: float = 2.0) -> float:
    """``log E exp(-t ||f(x) - f(y)||^2)`` over distinct pairs, L2-normalized (Eq. 4).

    Example:
        >>> import torch
        >>> uniformity(torch.ones(5, 3))  # all at one point: the worst value, 0
        0.0
    """
    z = F.normalize(_matrix(embeddings), dim=1)
    sq = torch.pdist(z).pow(2)
    return float(torch.logsumexp(-t * sq, dim=0) - math.log(len(sq)))


def normalized_std(embeddings: ArrayLike) -> float:
    """Mean per-dimension std of L2-normalized embeddings, times ``sqrt(d)``.

    Isotropic embeddings give about 1; a collapse to one point gives 0.

    Example:
        >>> import torch
        >>> normalized_std(torch.ones(10, 4))
        0.0
    """
    z = F.normalize(_matrix(embeddings), dim=1)
    return float(z.std(dim=0).mean() * math.sqrt(z.shape[1]))


def neighbour_agreement(view1: ArrayLike, view2: ArrayLike, k: int = 10) -> float:
    """Mean fraction of an item's k nearest neighbours (cosine) shared between two views.

    Neighbours of item ``i`` are found among the other items' embeddings of the same view;
    the score is ``|N1(i) & N2(i)| / k`` averaged over items: 1 when both views give the same
    neighbourhoods, about ``k / n`` for unrelated ones.

    Example:
        >>> import torch
        >>> z = torch.randn(50, 8)
        >>> neighbour_agreement(z, 2 * z, k=5)
        1.0
    """
    a = F.normalize(as_embeddings(view1, "view1").float(), dim=1)
    b = F.normalize(as_embeddings(view2, "view2").float(), dim=1)
    if a.shape != b.shape:
        raise ValueError(f"the two views' embeddings differ in shape: {a.shape} vs {b.shape}")
    n = len(a)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} items, got {k}")
    nn1 = cosine_topk(a, a, k, exclude_self=True)[1]
    nn2 = cosine_topk(b, b, k, exclude_self=True)[1]
    shared = int((nn1.unsqueeze(2) == nn2.unsqueeze(1)).any(dim=2).sum())
    return shared / (n * k)


@dataclass
class LabelFreeMetrics:
    """All label-free metrics of one encoder on one set of items.

    Attributes:
        rankme: effective rank of the embeddings (higher is better; max ``dim``).
        alpha_req: eigenspectrum decay (near 1 is best).
        alignment: distance between views of one item (lower is better).
        uniformity: spread over the sphere (lower is better).
        normalized_std: collapse indicator (about 1 healthy, 0 collapsed).
        neighbour_agreement: kNN overlap between two views (higher is better).
        items: how many items were embedded.
        dim: the embedding size.
    """

    rankme: float
    alpha_req: float
    alignment: float
    uniformity: float
    normalized_std: float
    neighbour_agreement: float
    items: int
    dim: int

    @property
    def collapsed(self) -> bool:
        """Whether the embeddings collapsed to (about) a point or a single direction."""
        return self.normalized_std < COLLAPSE_STD or self.rankme < COLLAPSE_RANK

    def to_dict(self) -> dict[str, float]:
        """The metrics as plain numbers (``collapsed`` included)."""
        return {**asdict(self), "collapsed": self.collapsed}


def label_free_metrics(
    embeddings: ArrayLike, view1: ArrayLike, view2: ArrayLike, k: int = 10
) -> LabelFreeMetrics:
    """Compute every metric from clean embeddings and the embeddings of two views.

    Args:
        embeddings: ``(n, d)`` embeddings of the items themselves.
        view1: ``(n, d)`` embeddings of one augmented view of the same items.
        view2: ``(n, d)`` embeddings of another view.
        k: neighbours for :func:`neighbour_agreement` (capped at ``n - 1``).

    Example:
        >>> import torch
        >>> z = torch.randn(300, 8)
        >>> m = label_free_metrics(z, z + 0.01 * torch.randn(300, 8), z)
        >>> m.collapsed, m.neighbour_agreement > 0.5
        (False, True)
    """
    z = as_embeddings(embeddings, "embeddings")
    return LabelFreeMetrics(
        rankme=rankme(z),
        alpha_req=alpha_req(z),
        alignment=alignment(view1, view2),
        uniformity=uniformity(z[:4096]),
        normalized_std=normalized_std(z),
        neighbour_agreement=neighbour_agreement(view1, view2, min(k, len(z) - 1)),
        items=len(z),
        dim=z.shape[1],
    )


@dataclass
class ViewEmbeddings:
    """Embeddings of a sample of items and of two augmented views of each.

    Attributes:
        indices: the source positions of the embedded items (unreadable ones left out).
        clean: ``(n, d)`` embeddings of the items themselves.
        view1: ``(n, d)`` embeddings of a first augmented view.
        view2: ``(n, d)`` embeddings of a second augmented view.
    """

    indices: np.ndarray
    clean: torch.Tensor
    view1: torch.Tensor
    view2: torch.Tensor


def measured_items(source: Source, items: int, seed: int) -> np.ndarray:
    """The rows of up to ``items`` items of ``source`` drawn from ``seed``, the same at every
    call, in order of length (texts of like length share a batch and pad less).

    Example:
        >>> from selfsup.data.text import TextSource
        >>> measured_items(TextSource(["a long text", "tiny", "a middling"]), 2, seed=0)
        array([1, 2])
    """
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(source), size=min(items, len(source)), replace=False))
    return by_length(source, chosen)


def embed_views(
    encoder: Encoder,
    source: Source,
    views: Callable[[torch.Tensor], list[torch.Tensor]],
    items: int = 2048,
    seed: int = 0,
    batch_size: int = 512,
    precision: str = "auto",
) -> ViewEmbeddings:
    """Embed up to ``items`` items of ``source`` and two augmented views of each.

    The items and the augmentations are drawn from ``seed`` without touching the global
    random state, so the numbers of successive epochs compare like with like and a resumed
    training run is unaffected.

    Args:
        encoder: the encoder (put in eval mode).
        source: the items; labels, if any, are not used.
        views: makes a list of augmented views of a batch (the training views); the first two
            are used, and a single-view pipeline is called twice.
        items: how many items to use (all when the source is smaller).
        seed: seed of the item sample and of the augmentations.
        batch_size: items per forward pass (at most; lowered as ``embed`` lowers it where
            items are large, such as a day of minute readings: :func:`embed_batch`).
        precision: ``auto``, ``bf16`` or ``fp32`` for the forward passes.
    """
    spec = encoder.spec or {}
    chosen = measured_items(source, items, seed)
    batch_size = embed_batch(encoder, source, batch_size, precision)
    encoder.eval()
    parts: list[list[torch.Tensor]] = [[], [], []]
    indices: list[int] = []
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for start in range(0, len(chosen), batch_size):
            batch = source.read_batch(chosen[start : start + batch_size].tolist())
            if not batch.indices:
                continue
            x = get_modality(encoder.modality).prepare_input(batch.items.to(encoder.device), spec)
            made = views(x)
            if len(made) < 2:  # single-view methods (MAE, I-JEPA): draw the views twice
                made = made + views(x)
            v1, v2 = made[:2]
            with autocast(precision, encoder.device):
                for part, inputs in zip(parts, (x, v1, v2), strict=True):
                    part.append(encoder(inputs).float().cpu())
            indices += batch.indices
    if len(indices) < 3:
        raise ValueError(f"{source.name}: label-free metrics need at least 3 readable items")
    clean, first, second = (torch.cat(p) for p in parts)
    return ViewEmbeddings(np.asarray(indices), clean, first, second)


def measure_label_free(
    encoder: Encoder,
    source: Source,
    views: Callable[[torch.Tensor], list[torch.Tensor]],
    items: int = 2048,
    seed: int = 0,
    batch_size: int = 512,
    precision: str = "auto",
    k: int = 10,
) -> LabelFreeMetrics:
    """Every label-free metric of ``encoder`` on a sample of ``source`` (no labels needed).

    See :func:`embed_views` for the arguments; ``k`` is the neighbour count of the
    neighbour agreement.

    Example:
        >>> import numpy as np
        >>> from selfsup.data.arrays import ArraySource
        >>> from selfsup.methods import SimCLR
        >>> from selfsup.modalities.image import method_views
        >>> source = ArraySource(np.random.randint(0, 255, (40, 12, 12), dtype=np.uint8))
        >>> from selfsup.modalities.image import build_image_encoder
        >>> encoder = build_image_encoder("small-cnn", in_channels=1, image_size=12, width=4)
        >>> views, _ = method_views(SimCLR, 12, 1)
        >>> measure_label_free(encoder, source, views, items=32).items
        32
    """
    emb = embed_views(encoder, source, views, items, seed, batch_size, precision)
    return label_free_metrics(emb.clean, emb.view1, emb.view2, k=k)
