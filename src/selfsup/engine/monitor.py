"""What the training loop measures at the end of every epoch (and every ``--measure-every``
minutes inside a long one), without labels or with a few.

- Label-free metrics (RankMe, alpha-ReQ, alignment, uniformity, normalized std, neighbour
  agreement) on a held-out subset of the training data, see
  :mod:`selfsup.evaluation.labelfree`.
- A collapse alarm: a warning, or a :class:`CollapseError` under ``--stop-on-collapse``.
- With a few labels among many items (300 labelled photos of 200,000), a kNN vote among the
  labelled training items, each predicted from the others (``labelled_knn``): the online
  probe, which learns from the labelled items of each batch, meets one every few steps.
- The objective's own loss on the held-out items, for objectives that have one
  (``Method.heldout_loss``: distillation's distance from the teacher), measured once before
  training too.
- Checkpoint selection by one of these numbers (``--select-by rankme``): the encoder weights of
  the best epoch are kept in ``checkpoints/best.safetensors`` and become the run's encoder.
  ``--select-by auto`` (the default) takes the method's choice (``Method.select_by``): the
  lowest held-out loss for distillation, the last epoch for the others.

Example:
    >>> SELECTION["rankme"].better(30.0, 20.0), SELECTION["alpha_req"].better(1.1, 0.5)
    (True, True)
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from selfsup.core.files import atomic_path
from selfsup.core.weights import load_weights_into
from selfsup.data.base import Source
from selfsup.data.splits import (
    SubsetSource,
    item_codes,
    root_rows,
    split_group_ids,
    stratified_split,
)
from selfsup.embedding import autocast, embed_source
from selfsup.encoder import Encoder
from selfsup.engine.online_probe import OnlineProbe
from selfsup.evaluation.knn import knn_leave_one_out
from selfsup.evaluation.labelfree import (
    COLLAPSE_STD,
    LabelFreeMetrics,
    embed_views,
    label_free_metrics,
    measured_items,
    normalized_std,
    rankme,
)
from selfsup.methods.base import Method

BEST_WEIGHTS = Path("checkpoints") / "best.safetensors"
#: Held-out items a run with a time budget measures before its first step, to plan what the
#: measurement of all of them will take (:meth:`EpochMonitor.estimate_seconds`).
ESTIMATE_ITEMS = 16
#: Labelled held-out items the online probe's accuracy needs to be shown: data labelled on
#: a few rows holds about one among 2,048 random held-out items (300 labels in 200,000).
ONLINE_PROBE_MIN_ITEMS = 10
#: Labelled training items the monitor's kNN vote embeds at most (a stratified sample).
LABELLED_KNN_MOST = 1000


class CollapseError(RuntimeError):
    """Training stopped because the embeddings collapsed (``--stop-on-collapse``)."""


class CollapseWarning(UserWarning):
    """The embeddings collapsed; training goes on (without ``--stop-on-collapse``)."""


@dataclass(frozen=True)
class Selection:
    """How to rank epochs by one monitored number.

    Attributes:
        metric: the name of the number in the epoch's metrics.
        score: maps the number to a score where higher is better.
    """

    metric: str
    score: Callable[[float], float]

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` (any finite value beats None)."""
        if value is None or not math.isfinite(self.score(value)):
            return False
        return best is None or self.score(value) > self.score(best)


#: The numbers ``--select-by`` accepts, each with its direction.
SELECTION: dict[str, Selection] = {
    "rankme": Selection("rankme", lambda v: v),
    # alpha-ReQ: the paper finds the best representations near alpha = 1.
    "alpha_req": Selection("alpha_req", lambda v: -abs(v - 1.0)),
    "neighbour_agreement": Selection("neighbour_agreement", lambda v: v),
    "uniformity": Selection("uniformity", lambda v: -v),
    "online_probe": Selection("online_probe", lambda v: v),
    "labelled_knn": Selection("labelled_knn", lambda v: v),
    "heldout_loss": Selection("heldout_loss", lambda v: -v),
}


def has_heldout_loss(method: Method | type[Method]) -> bool:
    """Whether a method (or method class) defines a loss on held-out items
    (``Method.heldout_loss``).

    Example:
        >>> from selfsup.methods import METHODS
        >>> has_heldout_loss(METHODS["distill"]), has_heldout_loss(METHODS["simclr"])
        (True, False)
    """
    kind = method if isinstance(method, type) else type(method)
    return kind.heldout_loss is not Method.heldout_loss


@torch.no_grad()
def measure_heldout_loss(
    method: Method,
    source: Source,
    views: Callable[[torch.Tensor], list[torch.Tensor]],
    items: int = 2048,
    seed: int = 0,
    batch_size: int = 256,
    precision: str = "auto",
) -> float | None:
    """The method's mean loss on up to ``items`` held-out items, each seen through the
    training ``views`` drawn from ``seed`` (without touching the global random state); None
    when the method has no held-out loss.

    The items are the ones :func:`~selfsup.evaluation.labelfree.embed_views` measures (same
    seed), so every epoch is measured on the same items and views.
    """
    if not has_heldout_loss(method):
        return None
    device = method.export_encoder().device
    chosen = measured_items(source, items, seed)
    total, count = 0.0, 0
    method.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for start in range(0, len(chosen), batch_size):
            batch = source.read_batch(chosen[start : start + batch_size].tolist())
            if not batch.indices:
                continue
            with autocast(precision, device):
                loss = method.heldout_loss(views(batch.items.to(device)))
            total += float(loss) * len(batch.indices)
            count += len(batch.indices)
    return total / count if count else None


def save_encoder_weights(encoder: Encoder, path: Path) -> None:
    """Write the encoder's weights to ``path`` atomically (temporary file, then rename)."""
    state = {k: v.detach().contiguous().clone() for k, v in encoder.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def load_encoder_weights(encoder: Encoder, path: Path) -> None:
    """Load weights written by :func:`save_encoder_weights` into ``encoder``."""
    load_weights_into(encoder, path)


class EpochMonitor:
    """Measures the encoder after each epoch (or inside a long one); raises the collapse
    alarm; tracks the best measurement (its epoch: 1.25 a quarter into the second).

    Args:
        source: the held-out items the label-free metrics are computed on.
        views: the training views (the first two are used).
        run_dir: the run folder (``checkpoints/best.safetensors`` goes there).
        select_by: a key of :data:`SELECTION`, or ``last`` to keep the last epoch.
        stop_on_collapse: raise :class:`CollapseError` instead of warning.
        items: how many held-out items to measure.
        seed: seed of the measured views.
        precision: precision of the forward passes.
        loss_views: the training views, through which the method's held-out loss is
            measured (``Method.heldout_loss``); None leaves it out.
        patience: measurements without a better ``select_by`` number after which
            :meth:`exhausted` says to stop (early stopping); None never does.
        labelled: labelled training items (see :func:`labelled_monitor_items`), each
            predicted by a kNN vote of the others at every measurement (``labelled_knn``),
            of other groups only where they come in groups (:attr:`labelled_groups`); None
            leaves it out.
    """

    def __init__(
        self,
        source: Source,
        views: Callable[[torch.Tensor], list[torch.Tensor]],
        run_dir: Path,
        select_by: str = "last",
        stop_on_collapse: bool = False,
        items: int = 2048,
        seed: int = 0,
        precision: str = "auto",
        loss_views: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
        patience: int | None = None,
        labelled: Source | None = None,
    ) -> None:
        if select_by != "last" and select_by not in SELECTION:
            raise ValueError(
                f"unknown --select-by {select_by!r}; choose last or one of {sorted(SELECTION)}"
            )
        self.source = source
        #: The held-out items' labels for the online probe (-1: none; None: unlabelled).
        self.codes = item_codes(source)
        self.views = views
        self.run_dir = Path(run_dir)
        self.select_by = select_by
        self.stop_on_collapse = stop_on_collapse
        self.items = items
        self.seed = seed
        self.precision = precision
        self.loss_views = loss_views
        self.patience = patience
        self.labelled = labelled
        #: Measured epochs since the best one.
        self.stale = 0
        self.best: float | None = None
        self.best_epoch: float | None = None
        #: The held-out loss of the starting weights (set before the first step).
        self.start_loss: float | None = None
        #: The labelled items' kNN vote with the starting weights (set before the first step).
        self.start_knn: float | None = None
        #: The mean embedding of the held-out items at the last :meth:`measure` (without the
        #: encoder's center) and how many they were: the run's center when no weights changed
        #: since (:func:`selfsup.embedding.mean_embedding` needs no pass of its own then).
        self.clean_mean: tuple[np.ndarray, int] | None = None

    def heldout_loss(self, method: Method) -> float | None:
        """The method's loss on the held-out items through the training views, or None (no
        such loss, or no training views given)."""
        if self.loss_views is None:
            return None
        return measure_heldout_loss(
            method, self.source, self.loss_views, self.items, self.seed, precision=self.precision
        )

    def estimate_seconds(self, method: Method, sample: int = ESTIMATE_ITEMS) -> float:
        """What one :meth:`measure` will take: timed on ``sample`` of the held-out items
        (their reading, views, forward passes and held-out loss), then again warm on
        ``sample`` and on four times as many, so that what a measurement pays once (the
        label-free metrics' decompositions, starting the readers) is told apart from what
        each item costs and not multiplied by the items (a call centre's clips: 16 items in
        0.35 s, of which 0.28 s paid once, 64 in 0.55 s; scaled whole, 2,048 items and the
        labelled vote were estimated at 136 s and took 13). Where items are read in groups
        (the slices of a compressed volume), the first read's extra is paid once for each
        group measured. The labelled items' kNN vote is estimated the same way.

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> from selfsup.methods import build_method
            >>> from selfsup.modalities.image import build_image_encoder
            >>> method = build_method("simclr", build_image_encoder("small-cnn", 1, 8, width=4))
            >>> held_out = ArraySource(torch.rand(80, 8, 8).numpy())
            >>> monitor = EpochMonitor(held_out, lambda x: [x, x], Path("."), items=64)
            >>> monitor.estimate_seconds(method) > 0
            True
        """
        measured = min(self.items, len(self.source))
        part = copy.copy(self)
        part.labelled = None

        def timed(items: int) -> float:
            part.items = min(items, measured)
            begun = time.perf_counter()
            part.measure(method)
            return time.perf_counter() - begun

        cold = timed(sample)
        seconds, warm = scaled_seconds(timed, sample, measured)
        groups = self.source.read_groups()
        if groups is not None:  # a volume's first slice pays for all: paid once per volume
            read = len(np.unique(groups))  # the measured items are drawn from them all
            seconds += max(0.0, cold - warm) * read
        if self.labelled is not None:  # its forward passes, one view each
            labelled, encoder = self.labelled, method.export_encoder()

            def voted(items: int) -> float:
                few = SubsetSource(labelled, range(min(items, len(labelled))), "")
                begun = time.perf_counter()
                embed_source(encoder, few, precision=self.precision)
                return time.perf_counter() - begun

            voted(sample)  # cold: the first forward passes
            seconds += scaled_seconds(voted, sample, len(labelled))[0]
        return seconds

    def measure(
        self, method: Method, probe: OnlineProbe | None = None
    ) -> tuple[LabelFreeMetrics, dict[str, float]]:
        """The label-free metrics of the method's encoder on the held-out items, and all
        numbers to log.

        The numbers also describe the projection head's output (``projection_rankme``,
        ``projection_normalized_std``), where a collapse shows first: a loss that no longer
        needs the encoder can be satisfied by a constant projection while the encoder's own
        features still vary. With an online ``probe`` that has trained and labelled held-out
        items (:data:`ONLINE_PROBE_MIN_ITEMS` at least), they include the probe's held-out
        accuracy as ``online_probe``; with ``labelled`` items, their kNN vote's accuracy as
        ``labelled_knn`` (and their count, ``labelled_knn_items``). ``collapsed`` is 1 when
        either the features or the projection collapsed.
        """
        emb = embed_views(
            method.export_encoder(),
            self.source,
            self.views,
            self.items,
            self.seed,
            precision=self.precision,
        )
        for name, part in (("", emb.clean), ("augmented ", emb.view1), ("augmented ", emb.view2)):
            bad = int((~torch.isfinite(part).all(dim=1)).sum())
            if bad:
                raise FloatingPointError(
                    f"the encoder gives NaN or infinite embeddings for {bad} of {len(part)} "
                    f"{name}held-out items (precision {self.precision}): its weights diverged; "
                    "try --precision fp32 or a lower --lr"
                )
        metrics = label_free_metrics(emb.clean, emb.view1, emb.view2)
        own = method.export_encoder().center  # a resumed run's: its outputs are less it
        mean = emb.clean.double().mean(dim=0)
        if own is not None:
            mean += own.detach().double().cpu().reshape(-1)
        self.clean_mean = (mean.float().numpy(), len(emb.clean))
        values = {k: float(v) for k, v in metrics.to_dict().items() if k not in ("items", "dim")}
        method.eval()
        with torch.no_grad():
            device = method.export_encoder().device
            projected = method.project(emb.clean.to(device))
        if projected is not None:
            projected = projected.float().cpu()
            values["projection_rankme"] = rankme(projected)
            values["projection_normalized_std"] = normalized_std(projected)
            if values["projection_normalized_std"] < COLLAPSE_STD:
                values["collapsed"] = 1.0
        loss = self.heldout_loss(method)
        if loss is not None:
            values["heldout_loss"] = loss
        codes = self.codes
        if (
            probe is not None
            and probe.steps
            and codes is not None
            and int((codes[emb.indices] >= 0).sum()) >= ONLINE_PROBE_MIN_ITEMS
        ):
            labels = torch.as_tensor(codes[emb.indices], dtype=torch.long)
            features = emb.clean
            if method.export_encoder() is not method.encoder:
                # The probe learned on the online encoder's features (DINO's student, not its
                # teacher): score it on that encoder's features of the same items.
                items = SubsetSource(self.source, emb.indices, self.source.name)
                online = embed_source(method.encoder, items, precision=self.precision)
                features = torch.from_numpy(online)
            values["online_probe"] = probe.accuracy(features, labels)
            if bool((labels < 0).any()):  # data labelled on some rows: scored on those
                values["online_probe_items"] = float((labels >= 0).sum())
            counts = torch.bincount(labels[labels >= 0])
            if counts.max() >= 0.5 * counts.sum():  # 99% of transactions are not fraud
                values["online_probe_majority"] = float(counts.max() / counts.sum())
        voted = self.labelled_knn(method)
        if voted is not None:
            values["labelled_knn"], values["labelled_knn_items"] = voted
        return metrics, values

    @property
    def labelled_groups(self) -> np.ndarray | None:
        """Each ``labelled`` item's group where the data comes in groups of near copies
        (``Source.split_groups``: the clips of one recording, the slices of a patient, the
        tiles of an image) of which it holds two at least: its kNN vote then counts items of
        other groups only, as ``evaluate``'s split by group scores them; else None.

        Example:
            >>> from selfsup.data.text import TextSource
            >>> clips = ["r.wav@0.00s", "r.wav@0.95s", "s.wav@0.00s"]
            >>> texts = TextSource(["a", "b", "c"], ["x", "y", None], ids=clips)
            >>> texts.split_groups = "recordings"
            >>> monitor = EpochMonitor(texts, list, Path("."), labelled=texts)
            >>> monitor.labelled_groups.tolist(), monitor.voted_by
            (['r.wav', 'r.wav', 's.wav'], 'each voted by those of other recordings')
        """
        kind = None if self.labelled is None else self.labelled.split_groups
        if kind is None or self.labelled is None:
            return None
        try:
            groups = split_group_ids(self.labelled.ids, self.labelled.name, kind)
        except ValueError:  # an item in no folder: voted by all others
            return None
        return groups if len(set(groups.tolist())) >= 2 else None

    @property
    def voted_by(self) -> str:
        """Who votes for each labelled item, in words, for the progress lines."""
        if self.labelled_groups is None:
            return "each voted by the others"
        return f"each voted by those of other {self.labelled.split_groups}"  # type: ignore[union-attr]

    def labelled_knn(self, method: Method) -> tuple[float, float] | None:
        """The kNN vote's accuracy on the ``labelled`` items (each voted by the others, or by
        those of other groups: :attr:`labelled_groups`) and how many were read; None without
        labelled items or with fewer than two readable (of two groups)."""
        if self.labelled is None:
            return None
        encoder = method.export_encoder()
        labelled = embed_source(encoder, self.labelled, precision=self.precision)
        known = ~np.isnan(labelled).any(axis=1)  # unreadable items are left out
        groups = self.labelled_groups
        if groups is not None:
            if len(set(groups[known].tolist())) < 2:
                return None
            groups = groups[known]
        if int(known.sum()) < 2:
            return None
        accuracy = knn_leave_one_out(labelled[known], self.labelled.labels[known], groups=groups)
        return accuracy, float(known.sum())

    def alarm(self, values: dict[str, float], epoch: float) -> str | None:
        """Warn (:class:`CollapseWarning`) when the embeddings collapsed and return the message;
        raise :class:`CollapseError` instead under ``stop_on_collapse``.

        Args:
            values: the numbers :meth:`measure` returned.
            epoch: the epochs done (1.25 inside the second), for the message.
        """
        if not values.get("collapsed"):
            return None
        where = [f"features: normalized std {values['normalized_std']:.3f}, RankMe "
                 f"{values['rankme']:.2f}"]  # fmt: skip
        if "projection_normalized_std" in values:
            where.append(
                f"projection: normalized std {values['projection_normalized_std']:.3f}, "
                f"RankMe {values['projection_rankme']:.2f}"
            )
        message = (
            f"the embeddings collapsed at epoch {epoch} ({'; '.join(where)}; healthy std is "
            "near 1). Try a lower --lr, a larger batch, or another method"
        )
        if self.stop_on_collapse:
            raise CollapseError(
                f"{message}. Stopped (--stop-on-collapse); the last checkpoint is in "
                f"{self.run_dir / 'checkpoints'}"
            )
        warnings.warn(message, CollapseWarning, stacklevel=2)
        return message

    def consider(self, encoder: Encoder, values: dict[str, float], epoch: float) -> bool:
        """Keep ``encoder``'s weights when this measurement is the best so far (at ``epoch``
        epochs done); True if it was."""
        if self.select_by == "last":
            return False
        selection = SELECTION[self.select_by]
        value = values.get(selection.metric)
        if value is None:
            return False
        if not selection.better(value, self.best):
            self.stale += 1
            return False
        self.best, self.best_epoch, self.stale = value, epoch, 0
        save_encoder_weights(encoder, self.run_dir / BEST_WEIGHTS)
        return True

    @property
    def what(self) -> str:
        """The selected number in words (``loss`` for ``heldout_loss``)."""
        return "loss" if self.select_by == "heldout_loss" else self.select_by

    def exhausted(self) -> bool:
        """Whether ``patience`` measurements passed without a better number (stop now)."""
        return self.patience is not None and self.stale >= self.patience

    def state_dict(self) -> dict:
        """The best value and epoch so far, the epochs since, and the held-out loss before
        training, saved in the training checkpoint."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stale": self.stale,
            "start_loss": self.start_loss,
            "start_knn": self.start_knn,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (on ``--resume``)."""
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.stale = int(state.get("stale", 0))
        self.start_loss = state.get("start_loss")
        self.start_knn = state.get("start_knn")


def scaled_seconds(timed: Callable[[int], float], sample: int, total: int) -> tuple[float, float]:
    """What work on ``total`` items takes, from ``timed(n)`` (the seconds the work takes on
    ``n`` of them, warm) on ``sample`` items and on four times as many: a line through
    both (what is paid once, and what each item adds), so that what is paid once is not
    multiplied by the items; never less than the larger part took. Returns the estimate
    and the time of the ``sample`` items.

    Example:
        >>> found = scaled_seconds(lambda n: 0.25 + 0.01 * n, 16, 2048)  # 0.25 s once
        >>> [round(x, 3) for x in found]  # 10 ms an item
        [20.73, 0.41]
        >>> scaled_seconds(lambda n: 0.5, 16, 10)  # all of them measured: their time
        (0.5, 0.5)
    """
    small = timed(sample)
    if total <= sample:
        return small, small
    larger = min(4 * sample, total)
    large = timed(larger)
    per_item = max(large - small, 0.0) / (larger - sample)
    fixed = max(small - per_item * sample, 0.0)
    return max(fixed + per_item * total, large), small


def labelled_monitor_items(source: Source, seed: int = 0) -> Source | None:
    """The labelled items of training data labelled on a few of its items (300 photos among
    200,000) that the monitor's kNN vote embeds: all, or a stratified sample of
    :data:`LABELLED_KNN_MOST`; None where every item has a label (the online probe learns
    from each batch) or none does, or fewer than two are labelled.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> texts = TextSource(["a", "b", "c", "d"], ["pos", None, "neg", None])
        >>> part = labelled_monitor_items(texts)
        >>> part.name, part.indices.tolist(), part.labels.tolist(), part.classes
        ('texts[labelled]', [0, 2], [1, 0], ['neg', 'pos'])
    """
    codes = item_codes(source)
    if codes is None or source.labels is not None:
        return None
    rows = np.flatnonzero(codes >= 0)
    if len(rows) < 2:
        return None
    if len(rows) > LABELLED_KNN_MOST:
        _, kept = stratified_split(codes[rows], LABELLED_KNN_MOST / len(rows), seed)
        rows = rows[kept]
    root, _ = root_rows(source)
    classes = list(root.partial_labels.classes)  # type: ignore[union-attr]
    return SubsetSource(source, rows, f"{source.name}[labelled]", labels=(codes[rows], classes))
