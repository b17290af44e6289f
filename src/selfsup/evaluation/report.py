"""Running the label-based protocols on an encoder next to the same protocols on raw inputs.

Every figure comes with its raw-input baseline computed in the same call, on the same splits.

Example:
    >>> import numpy as np
    >>> from selfsup.data.arrays import ArraySource
    >>> from selfsup.encoder import Encoder
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(2), 20)
    >>> x = (rng.random((40, 8, 8)) * 60).astype(np.uint8)
    >>> x[y == 1, :, :4] += 150  # class 1 is bright on the left half
    >>> src = ArraySource(x, y)
    >>> from selfsup.modalities.image import build_image_encoder
    >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    >>> result = evaluate_encoder(enc, src, src, protocols=("knn",), k=5)
    >>> result.rows[0].raw
    1.0
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from selfsup.core import memory
from selfsup.core.files import write_json
from selfsup.core.progress import ShowProgress, activity
from selfsup.data.base import Source, require_classes
from selfsup.data.splits import SubsetSource, stratified_split
from selfsup.embedding import embed_source
from selfsup.encoder import Encoder
from selfsup.evaluation.fewshot import affordable_shots, few_shot
from selfsup.evaluation.knn import knn_accuracy
from selfsup.evaluation.linear import LinearProbeResult, linear_probe, sparse_linear_probe
from selfsup.evaluation.svm import svm_accuracy
from selfsup.modalities import modality_of

#: ``auroc`` is the linear probe's ROC AUC (for imbalanced labels).
PROTOCOLS = ("knn", "linear", "fewshot", "svm", "auroc")
#: Bytes the raw baseline's protocols hold at once per byte of its features (the features,
#: their labelled rows, standardized copies, the probe's fit split): 3.9 measured for 100,000
#: TF-IDF rows of 2,048 terms.
RAW_COPIES = 4
#: The share of the available memory the raw baseline may plan to take.
RAW_MEMORY_SHARE = 0.5
#: The most fit and test items the protocols read (stratified samples of them above it): kNN
#: among a million embeddings moves little with ten times more, and ten million
#: transactions' embeddings, fit and test, would hold 10 GB before a protocol copied them.
FIT_MOST = 1_000_000
TEST_MOST = 250_000
#: The most train items a linear probe is fitted on (a stratified sample of them above it):
#: more moves its accuracy little, and 2.4 million transactions took six minutes and 16 GB.
PROBE_MOST = 500_000


def probe_rows(labels: np.ndarray, seed: int, most: int | None = None) -> np.ndarray | None:
    """A stratified sample of ``most`` rows of ``labels`` (by default :data:`PROBE_MOST`,
    the train rows a linear probe is fitted on; also the samples :func:`evaluation_samples`
    and :func:`raw_items` draw), every class keeping one at least; None when all fit.

    Example:
        >>> rows = probe_rows(np.arange(1000) % 10 == 0, seed=0, most=100)
        >>> len(rows), int((np.arange(1000) % 10 == 0)[rows].sum())
        (100, 10)
        >>> probe_rows(np.zeros(50, int), seed=0, most=100) is None
        True
    """
    most = PROBE_MOST if most is None else most
    if len(labels) <= most:
        return None
    return stratified_split(np.asarray(labels), most / len(labels), seed, at_least_one=True)[1]


def evaluation_samples(
    train: Source,
    test: Source,
    seed: int = 0,
    fit_most: int | None = None,
    test_most: int | None = None,
) -> tuple[Source, Source, str | None]:
    """The fit and test items the protocols read: all of them up to ``fit_most`` and
    ``test_most`` (by default :data:`FIT_MOST` and :data:`TEST_MOST`), else a stratified
    sample of that many (every class keeps one at least, under the split's own name), and a
    note saying so; planned before anything is embedded, so the embeddings of the rest are
    never made or held.

    Example:
        >>> from selfsup.data.arrays import ArraySource
        >>> train = ArraySource(np.zeros((1000, 4, 4), np.uint8), np.arange(1000) % 50 == 0)
        >>> test = ArraySource(np.zeros((100, 4, 4), np.uint8), np.arange(100) % 2)
        >>> fit, scored, note = evaluation_samples(train, test, fit_most=200)
        >>> len(fit), int(fit.labels.sum()), scored is test
        (200, 4, True)
        >>> print(note)
        evaluated on a stratified sample of 200 of 1,000 fit items (more moves the figures little and costs minutes and memory)
    """  # noqa: E501
    fit_most = FIT_MOST if fit_most is None else fit_most
    test_most = TEST_MOST if test_most is None else test_most
    said, out = [], []
    for split, most, what in ((train, fit_most, "fit"), (test, test_most, "test")):
        kept = probe_rows(split.labels, seed, most)
        if kept is None:
            out.append(split)
            continue
        out.append(SubsetSource(split, kept, split.name))
        said.append(f"{len(kept):,} of {len(split):,} {what} items")
    note = (
        f"evaluated on a stratified sample of {' and '.join(said)} (more moves the figures "
        "little and costs minutes and memory)"
        if said
        else None
    )
    return out[0], out[1], note


def raw_items(
    train: Source, test: Source, width: int, available: int, seed: int = 0
) -> tuple[Source, Source, str | None]:
    """The train and test items the raw baseline reads: all of them where their features
    (``width`` float32 values an item, :data:`RAW_COPIES` times over) fit in
    :data:`RAW_MEMORY_SHARE` of ``available`` bytes; else stratified samples that do, and a
    note saying so. The test items stay whole while the train items that fit beside them
    are at least as many; otherwise both are sampled in their own proportion, so the raw
    baseline is never fitted on a handful of items for the test's sake.

    Example:
        >>> from selfsup.data.arrays import ArraySource
        >>> train = ArraySource(np.zeros((1000, 4, 4), np.uint8), np.arange(1000) % 2)
        >>> test = ArraySource(np.zeros((100, 4, 4), np.uint8), np.arange(100) % 2)
        >>> fit, scored, note = raw_items(train, test, 16, available=2**30)
        >>> fit is train and scored is test and note is None
        True
        >>> item = 16 * 4 * RAW_COPIES  # bytes the raw baseline holds an item
        >>> fit, scored, note = raw_items(train, test, 16, available=2 * 300 * item)
        >>> len(fit), scored is test, note.split(":")[0]
        (200, True, 'raw baseline fitted on 200 of 1,000 train items')
        >>> fit, scored, note = raw_items(train, test, 16, available=2 * 110 * item)
        >>> len(fit), len(scored), note.split(":")[0]
        (100, 10, 'raw baseline fitted on 100 of 1,000 train items and scored on 10 of 100 test items')
    """  # noqa: E501
    per_item = width * 4 * RAW_COPIES
    budget = int(available * RAW_MEMORY_SHARE // per_item)
    total = len(train) + len(test)
    if budget >= total:
        return train, test, None
    least = 2 * len(np.unique(train.labels))  # a stratified sample keeps every class
    test_kept = len(test) if budget - len(test) >= len(test) else round(budget * len(test) / total)
    test_kept = min(len(test), max(test_kept, least))
    train_kept = min(len(train), max(budget - test_kept, least))
    said, out = [], []
    plan = ((train, train_kept, "train", "fitted"), (test, test_kept, "test", "scored"))
    for split, kept, what, verb in plan:
        rows = probe_rows(split.labels, seed, kept)
        if rows is None:
            out.append(split)
            continue
        out.append(SubsetSource(split, rows, f"{split.name} (raw sample)"))
        said.append(f"{verb} on {len(rows):,} of {len(split):,} {what} items")
    note = (
        f"raw baseline {' and '.join(said)}: all of them would hold about "
        f"{total * per_item / 2**30:.1f} GB ({width:,} values an item), more than half of the "
        f"{available / 2**30:.1f} GB available"
    )
    return out[0], out[1], note


@dataclass
class ProtocolRow:
    """One protocol's accuracy for the encoder and for raw inputs."""

    protocol: str
    selfsup: float
    raw: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """The results of ``evaluate_encoder``: rows of protocols plus what was evaluated."""

    train_data: str
    test_data: str
    train_items: int
    test_items: int
    rows: list[ProtocolRow]
    seconds: float
    #: Why the raw baseline was fitted on fewer train items than the encoder's protocols.
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write the results as JSON."""
        write_json(path, self.to_dict())

    def table(self) -> str:
        """The results as a Markdown table."""
        lines = ["| protocol | selfsup | raw input |", "| --- | --- | --- |"]
        for row in self.rows:
            ci = row.detail.get("ci95_selfsup")
            own = f"{row.selfsup:.4f}" + (f" ± {ci:.4f}" if ci is not None else "")
            ci_raw = row.detail.get("ci95_raw")
            raw = f"{row.raw:.4f}" + (f" ± {ci_raw:.4f}" if ci_raw is not None else "")
            lines.append(f"| {row.protocol} | {own} | {raw} |")
        return "\n".join(lines)


def _labelled(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose features hold no NaN (all of them without a copy, as a rule)."""
    keep = ~np.isnan(features).any(axis=1)
    return (features, labels) if keep.all() else (features[keep], labels[keep])


def _wide_probe(
    wide: tuple[Any, Any],
    dense: tuple[np.ndarray, np.ndarray],
    labels: tuple[np.ndarray, np.ndarray],
    sample: np.ndarray | None,
    seed: int,
) -> LinearProbeResult:
    """The raw baseline's linear probe of its sparse features ``wide``, on the rows the
    dense ones keep (readable: no NaN) and, where the probe is fitted on a sample, on the
    sample's rows of them."""
    fit_rows = np.flatnonzero(~np.isnan(dense[0]).any(axis=1))
    test_rows = np.flatnonzero(~np.isnan(dense[1]).any(axis=1))
    if sample is not None:
        fit_rows = fit_rows[sample]
    return sparse_linear_probe(
        wide[0][fit_rows], labels[0][fit_rows], wide[1][test_rows], labels[1][test_rows], seed=seed
    )


def _lopsided(labels: np.ndarray | None) -> bool:
    """Whether accuracy alone says little of ``labels``: two classes, or one class holding
    half of them or more (a year of a pump's days, 98% of them normal).

    Example:
        >>> _lopsided(np.array([0, 1, 2])), _lopsided(np.array([0, 0, 0, 1, 2]))
        (False, True)
    """
    if labels is None or len(labels) == 0:
        return False
    counts = np.bincount(labels)
    return bool(int((counts > 0).sum()) == 2 or counts.max() >= 0.5 * len(labels))


def majority_note(test: Source) -> str | None:
    """What predicting the test split's most common class alone scores, when that class
    holds half of it or more (so a 0.99 is read against a 0.98); None otherwise.

    Example:
        >>> from selfsup.data.arrays import ArraySource
        >>> majority_note(ArraySource(np.zeros((4, 1, 2, 2)), labels=[0, 0, 0, 1]))
        "75% of the test items are of class '0': predicting it alone scores 0.750"
    """
    if test.labels is None or len(test.labels) == 0:
        return None
    counts = np.bincount(test.labels)
    share = counts.max() / len(test.labels)
    if share < 0.5:
        return None
    name = (test.classes or [str(i) for i in range(len(counts))])[int(counts.argmax())]
    return (
        f"{share:.0%} of the test items are of class {name!r}: predicting it alone scores "
        f"{share:.3f}"
    )


def evaluate_encoder(
    encoder: Encoder,
    train: Source,
    test: Source,
    protocols: Sequence[str] | None = None,
    *,
    k: int = 20,
    shots: int = 10,
    draws: int = 5,
    seed: int = 0,
    show_progress: ShowProgress = False,
    embed: Callable[[Source], np.ndarray] | None = None,
) -> Evaluation:
    """Evaluate ``encoder`` with labelled ``train`` (to fit) and ``test`` (to score) splits.

    Splits larger than :data:`FIT_MOST` and :data:`TEST_MOST` items are read as stratified
    samples of that many (:func:`evaluation_samples`), drawn before anything is embedded.

    Args:
        encoder: the frozen encoder.
        train: labelled items the probes are fitted on.
        test: labelled items the probes are scored on.
        protocols: any of ``knn``, ``linear``, ``fewshot``, ``svm``, ``auroc``; by default
            the ``default_protocols`` of the data's modality, and ``auroc`` for two classes.
        k: neighbours for kNN.
        shots: labels per class for few-shot.
        draws: random draws of the few-shot labels.
        seed: seed of the validation split and the few-shot draws.
        show_progress: show the embedding's progress; each step after it is named for a
            :class:`~selfsup.core.progress.Preparing` ticker either way.
        embed: what embeds a split (a run's ``Run.embeddings``, which keeps them); by
            default :func:`~selfsup.embedding.embed_source` with ``encoder``.
    """
    modality = modality_of(train)
    if protocols is None:
        protocols = modality.default_protocols
        if _lopsided(train.labels) and "auroc" not in protocols:  # 18 nodules among 194
            protocols = (*protocols, "auroc")  # scans: accuracy alone says little
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; available: {list(PROTOCOLS)}")
    for split in (train, test):
        if split.labels is None:
            raise ValueError(f"{split.name}: evaluation with these protocols needs labels")
    require_classes(train.labels, train.name, "evaluation")
    started = time.perf_counter()
    sizes = len(train), len(test)
    train, test, sampled_note = evaluation_samples(train, test, seed)
    if embed is None:
        embed = partial(embed_source, encoder, show_progress=show_progress)
    embedded = tuple(embed(s) for s in (train, test))
    available = memory.available_memory(torch.device("cpu"))
    width = modality.raw_width(train)
    raw_train, raw_test, note = raw_items(train, test, width, available, seed)
    with activity(f"reading the raw inputs of {len(raw_train) + len(raw_test):,} items"):
        features = {"selfsup": embedded, "raw": modality.raw_baseline(raw_train, raw_test)}
        wide = None  # what the raw baseline's linear probe reads, where not the dense rows
        if {"linear", "auroc"} & set(protocols):
            wide = modality.raw_linear_features(raw_train, raw_test)
    fitted_on = {"selfsup": train.labels, "raw": raw_train.labels}
    scored_on = {"selfsup": test.labels, "raw": raw_test.labels}
    notes = [sampled_note, note, majority_note(test)]
    if "fewshot" in protocols:
        labels = [train.labels, raw_train.labels]
        shots, fewer = affordable_shots(labels, test.labels, shots, train.classes or [])
        notes.append(fewer)
        protocols = [p for p in protocols if p != "fewshot" or shots > 0]
    rows = []
    probes: dict[str, LinearProbeResult] = {}  # linear and auroc read one fitted probe
    sampled: dict[str, int] = {}  # train items a probe was fitted on, where not all
    for protocol in protocols:
        scores: dict[str, float] = {}
        detail: dict[str, Any] = {}
        for kind, (f_train, f_test) in features.items():
            x_train, y_train = _labelled(f_train, fitted_on[kind])
            x_test, y_test = _labelled(f_test, scored_on[kind])
            what = "selfsup embeddings" if kind == "selfsup" else "raw input"
            with activity(f"{protocol} on {what}, {len(y_train):,} + {len(y_test):,} items"):
                if protocol == "knn":
                    scores[kind] = knn_accuracy(
                        x_train, y_train, x_test, y_test, k=min(k, len(y_train))
                    )
                    detail["k"] = k
                elif protocol == "svm":
                    scores[kind] = svm_accuracy(x_train, y_train, x_test, y_test, seed=seed)
                elif protocol in ("linear", "auroc"):
                    if kind not in probes:
                        sample = probe_rows(y_train, seed)
                        if sample is not None:
                            x_train, y_train = x_train[sample], y_train[sample]
                            sampled[kind] = len(sample)
                        if kind == "raw" and wide is not None:
                            probes[kind] = _wide_probe(
                                wide,
                                features[kind],
                                (fitted_on[kind], scored_on[kind]),
                                sample,
                                seed,
                            )
                        else:
                            probes[kind] = linear_probe(x_train, y_train, x_test, y_test, seed=seed)
                    if kind in sampled:
                        detail[f"probe_items_{kind}"] = sampled[kind]
                    result = probes[kind]
                    if protocol == "auroc":
                        scores[kind] = float("nan") if result.auroc is None else result.auroc
                    else:
                        scores[kind] = result.accuracy
                    detail[f"weight_decay_{kind}"] = result.weight_decay
                else:
                    shot = few_shot(
                        x_train, y_train, x_test, y_test, shots=shots, draws=draws, seed=seed
                    )
                    scores[kind] = shot.mean
                    detail[f"ci95_{kind}"] = shot.ci95
                    detail["shots"], detail["draws"] = shots, draws
        name = f"fewshot-{shots}" if protocol == "fewshot" else protocol
        rows.append(ProtocolRow(name, scores["selfsup"], scores["raw"], detail))
    if sampled:
        notes.append(
            f"linear probes fitted on a stratified sample of {max(sampled.values()):,} train "
            f"items (of {len(train):,}; more moves a probe little and costs minutes)"
        )
    return Evaluation(
        train.name,
        test.name,
        *sizes,
        rows,
        time.perf_counter() - started,
        "; ".join(n for n in notes if n) or None,
    )
