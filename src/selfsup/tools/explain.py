"""What the encoder looks at: attribution maps of one item, and its nearest neighbours.

The attribution explains one number computed from the item:

- with an adapted model (``--model``), the probability of a class (``--target``, by default
  the predicted one);
- without, the cosine similarity of the item's embedding to a reference embedding. By
  default the reference is the item's own embedding, so the map shows which parts of the
  input the embedding rests on: the *label-free feature importance* of Crabbé and van der
  Schaar ("Label-Free Explainability for Unsupervised Models", ICML 2022). With a small CNN
  trained to find a bright patch planted at a random place, 90% of the positive attribution
  falls in the patch with this reference, as with the nearest neighbour's embedding
  (``--reference neighbour``, nearly the item's own for a good encoder), but 67% with the
  training data's mean embedding (``--reference mean``), which spreads the map over what all
  items share. A class's mean embedding (``--reference CLASS``) and another item
  (``--reference ITEM``) can be chosen too.

Two attribution methods (captum): integrated gradients (Sundararajan et al., "Axiomatic
Attribution for Deep Networks", ICML 2017), from a baseline to the item along a straight
path, and occlusion (Zeiler and Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014), the drop of the number when a window of the input is replaced by the
baseline. The baseline is the average input: the per-channel means the encoder normalizes to
zero. Text is attributed per token with layer integrated gradients on the backbone's
``token_embedding``, from the padding token's embedding (id 0), token strings from the run's
``tokenizer.json``.

Table rows are best explained by occlusion: it replaces one column at a time by its
average (numeric) or by "missing" (categorical), while integrated gradients give categorical
columns nothing (their codes are looked up in an embedding table, not multiplied).

Items are given as an image (or other single) file, or as ``DATA#KEY``: item ``KEY`` of any
data the run reads, where ``KEY`` is an item id (as ``selfsup embed`` writes them: a relative
path for folders, the row number for arrays and tables) or a row number.

Example:
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.zero_().index_fill_(1, torch.tensor([5]), 1.0)
    >>> x = torch.ones(1, 4, 4)
    >>> heat = attribute(lambda b: net(b)[:, 0], x, torch.zeros_like(x), "ig").reshape(-1)
    >>> int(heat.argmax()), round(float(heat.sum()), 3)
    (5, 1.0)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.files import write_json
from selfsup.core.neighbours import cosine_topk
from selfsup.data.base import Source
from selfsup.data.image_folder import IMAGE_EXTENSIONS
from selfsup.modalities.image import conform_images
from selfsup.run import Run
from selfsup.tools.figures import pyplot, save_png

METHODS = ("ig", "occlusion")
EXPLAIN_DIR = "explain"
#: Steps of the integrated-gradients path (the error of its Riemann sum shrinks as 1/steps).
IG_STEPS = 32
#: The id text sources pad with: the baseline of token attributions.
PAD_ID = 0

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Neighbour:
    """One nearest neighbour of the explained item."""

    index: int
    item_id: str
    similarity: float
    label: str | None = None


@dataclass
class Explanation:
    """An attribution of one item and its neighbours.

    Attributes:
        item_id: the item's id (or file).
        item: the item as the encoder reads it (images resized to the encoder's size).
        attribution: one value per input value, the shape of ``item`` (per token for text).
        method: ``ig``, ``occlusion`` or ``layer-ig`` (text).
        target: what was attributed, in words.
        score: the attributed number at the item.
        neighbours: nearest neighbours in the training data, most similar first.
        neighbour_items: the neighbours as the encoder reads them.
        tokens: the token strings of a text item.
        texts: a text item's text followed by its neighbours' texts.
        feature_names: the column names of a table row.
        files: the PNG and JSON files written.
    """

    item_id: str
    item: torch.Tensor
    attribution: np.ndarray
    method: str
    target: str
    score: float
    neighbours: list[Neighbour] = field(default_factory=list)
    neighbour_items: list[torch.Tensor] = field(default_factory=list)
    tokens: list[str] | None = None
    texts: list[str] | None = None
    feature_names: list[str] | None = None
    files: list[Path] = field(default_factory=list)

    def heat(self) -> np.ndarray:
        """The attribution summed over channels: (H, W) for images, (length,) for series,
        the values themselves for table rows and tokens."""
        values = np.asarray(self.attribution)
        return values.sum(axis=0) if values.ndim >= 2 else values

    def to_dict(self) -> dict[str, Any]:
        """What was explained, for ``explanation.json`` (no arrays)."""
        return {
            "item_id": self.item_id,
            "method": self.method,
            "target": self.target,
            "score": self.score,
            "positive_mass_top10pct": positive_mass_share(self.heat(), 0.1),
            "neighbours": [n.__dict__ for n in self.neighbours],
            "texts": self.texts,
            "files": [str(f) for f in self.files],
        }


def positive_mass_share(heat: np.ndarray, fraction: float) -> float:
    """The share of the positive attribution held by the top ``fraction`` of positions.

    Example:
        >>> positive_mass_share(np.array([8.0, 1.0, 1.0, -5.0, 0, 0, 0, 0, 0, 0]), 0.1)
        0.8
    """
    positive = np.clip(np.asarray(heat, dtype=float).reshape(-1), 0, None)
    total = positive.sum()
    if total <= 0:
        return 0.0
    top = max(1, round(fraction * positive.size))
    return float(np.sort(positive)[::-1][:top].sum() / total)


def occlusion_window(shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Occlusion window and strides for an item shape: an eighth of each spatial side (at
    least 2), half a window apart, over all channels at once.

    Example:
        >>> occlusion_window((1, 32, 32)), occlusion_window((2, 100))
        (((1, 4, 4), (1, 2, 2)), ((2, 12), (2, 6)))
    """
    channels, *spatial = shape
    if not spatial:  # a table row: one feature at a time
        return (1,), (1,)
    window = [max(2, side // 8) for side in spatial]
    strides = [max(1, w // 2) for w in window]
    return (channels, *window), (channels, *strides)


def attribute(
    forward: Forward,
    item: torch.Tensor,
    baseline: torch.Tensor,
    method: str = "ig",
    steps: int = IG_STEPS,
) -> np.ndarray:
    """Attribute ``forward(item)`` (one number per item of a batch) to the item's values.

    Args:
        forward: maps a batch ``(n, *item.shape)`` to ``(n,)``.
        item: one item, without batch dimension.
        baseline: the input that stands for "nothing", same shape.
        method: ``ig`` (integrated gradients; the values sum to ``forward(item) -
            forward(baseline)``) or ``occlusion`` (drop of ``forward`` when a window is
            replaced by the baseline, averaged over the windows covering each value).
        steps: integrated-gradients steps.

    Returns:
        The attribution, the shape of ``item``.
    """
    from captum.attr import IntegratedGradients, Occlusion

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose {' or '.join(METHODS)}")
    x, base = item[None].float(), baseline[None].float()
    if method == "ig":
        explainer = IntegratedGradients(forward)
        values = explainer.attribute(x, baselines=base, n_steps=steps, internal_batch_size=steps)
    else:
        window, strides = occlusion_window(tuple(item.shape))
        with torch.no_grad():
            values = Occlusion(forward).attribute(
                x, sliding_window_shapes=window, strides=strides, baselines=base
            )
    return values[0].detach().float().numpy()


def token_attributions(
    forward: Callable[[torch.Tensor], torch.Tensor],
    token_embedding: nn.Module,
    ids: torch.Tensor,
    baseline_id: int = 0,
    steps: int = IG_STEPS,
) -> np.ndarray:
    """Per-token attribution of ``forward(ids)`` by layer integrated gradients on the
    embedding layer, from a sequence of ``baseline_id`` (the padding token).

    Args:
        forward: maps token ids ``(n, length)`` to ``(n,)``.
        token_embedding: the ``nn.Embedding`` the ids go through.
        ids: one sequence of token ids ``(length,)``.
        baseline_id: the id of the baseline token.
        steps: integrated-gradients steps.

    Returns:
        One value per token: its attribution summed over the embedding dimensions.
    """
    from captum.attr import LayerIntegratedGradients

    x = ids[None].long()
    explainer = LayerIntegratedGradients(forward, token_embedding)
    values = explainer.attribute(
        x, baselines=torch.full_like(x, baseline_id), n_steps=steps, internal_batch_size=steps
    )
    return values[0].sum(dim=-1).detach().float().numpy()


def similarity_forward(encoder: nn.Module, reference: torch.Tensor) -> Forward:
    """``x -> cos(encoder(x), reference)`` for a batch of items."""
    ref = F.normalize(reference.detach().float().reshape(1, -1), dim=1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return (F.normalize(encoder(x).float(), dim=1) * ref).sum(dim=1)

    return forward


def probability_forward(module: nn.Module, class_index: int) -> Forward:
    """``x -> module(x)[:, class_index]`` for a module mapping items to class probabilities."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return module(x)[:, class_index]

    return forward


def nearest_neighbours(
    query: np.ndarray, embeddings: np.ndarray, k: int = 8, exclude: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` rows of ``embeddings`` most similar to
    ``query`` (rows with NaN and the row ``exclude`` left out), most similar first.

    Example:
        >>> idx, sim = nearest_neighbours(np.array([1.0, 0]), np.eye(2)[[1, 0, 0]], k=2)
        >>> idx.tolist(), sim.round(2).tolist()
        ([1, 2], [1.0, 1.0])
    """
    allowed = torch.as_tensor(~np.isnan(embeddings).any(axis=1))
    if exclude is not None:
        allowed[exclude] = False
    z = torch.as_tensor(np.nan_to_num(embeddings, nan=0.0))
    q = torch.as_tensor(query).reshape(1, -1)
    similarity, index = cosine_topk(q, z, min(k, int(allowed.sum())), allowed=allowed)
    return index[0].numpy(), similarity[0].numpy()


# --- reading the item -------------------------------------------------------------------------


def _read_image_file(path: Path, channels: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array / 255.0)


def resolve_item(run: Run, spec: str) -> tuple[torch.Tensor, str, Source | None, int | None]:
    """The item an ``ITEM`` argument names: ``(item, id, source, row)``.

    ``DATA#KEY`` is item ``KEY`` (an id, else a row number) of ``DATA``; an existing image
    file is read alone; another file (audio) is looked up by name in its folder.

    Raises:
        ValueError: no item with that key (the message gives the ids' form).
        FileNotFoundError: a file that does not exist.
    """
    if "#" in spec:
        data, key = spec.rsplit("#", 1)
        source = run.open(data)
        ids = list(source.ids)
        if key in ids:
            row = ids.index(key)
        elif key.lstrip("-").isdigit() and -len(ids) <= int(key) < len(ids):
            row = int(key) % len(ids)
        else:
            raise ValueError(
                f"{data}: no item {key!r}; give an id like {ids[0]!r} or a row number "
                f"below {len(ids)}"
            )
        batch = source.read_batch([row])
        if not batch.indices:
            raise ValueError(f"{spec}: {batch.skipped[0].reason}")
        return batch.items[0], str(ids[row]), source, row
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such file; give a file or DATA#KEY")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        channels = (run.encoder.spec or {}).get("in_channels", 1)
        return _read_image_file(path, channels), path.name, None, None
    source = run.open(path.parent)
    ids = list(source.ids)
    if path.name not in ids:
        raise ValueError(f"{spec}: not found among the items of {path.parent}")
    row = ids.index(path.name)
    return source.read_batch([row]).items[0], path.name, source, row


def encoder_input(encoder: nn.Module, item: torch.Tensor) -> torch.Tensor:
    """The item as the encoder reads it (images resized and converted to its channels).

    Example:
        >>> from selfsup.encoder import Encoder
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
        >>> tuple(encoder_input(enc, torch.rand(3, 16, 16)).shape)
        (1, 8, 8)
    """
    spec = getattr(encoder, "spec", None) or {}
    if "image_size" in spec and item.ndim == 3:
        return conform_images(item[None].float(), spec["in_channels"], spec["image_size"])[0]
    return item


def average_input(encoder: nn.Module, item: torch.Tensor) -> torch.Tensor:
    """The average input: the per-channel means the encoder normalizes to zero (zeros for
    table rows, whose encoded columns are centred already, and for token ids).

    Example:
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4, mean=[0.3])
        >>> round(float(average_input(enc, torch.rand(1, 8, 8)).max()), 3)
        0.3
    """
    if item.dtype in (torch.int64, torch.int32):
        return torch.zeros_like(item)
    mean = encoder.mean.detach().cpu().reshape(-1)
    if item.ndim == 1:  # a table row: encoded columns are already centred
        return torch.zeros_like(item)
    shape = (-1,) + (1,) * (item.ndim - 1)
    return torch.ones_like(item) * mean.reshape(shape)


def _reference(
    run: Run,
    reference: str,
    own: torch.Tensor,
    train: np.ndarray | None,
    train_source: Source | None,
    row: int | None,
) -> tuple[torch.Tensor, str]:
    """The reference embedding ``--reference`` names, and its description."""
    if reference == "self":
        return own, "its own embedding"
    if reference in ("mean", "neighbour") or (
        train_source is not None and reference in (train_source.classes or [])
    ):
        if train is None or train_source is None:
            raise ValueError(f"--reference {reference} needs the training data: give --data")
        keep = ~np.isnan(train).any(axis=1)
        if reference == "mean":
            return torch.from_numpy(train[keep].mean(axis=0)), "the mean training embedding"
        if reference == "neighbour":
            idx, _ = nearest_neighbours(own.numpy(), train, 1, exclude=row)
            neighbour = train_source.ids[idx[0]]
            return torch.from_numpy(train[idx[0]]), f"its nearest neighbour {neighbour}"
        code = train_source.classes.index(reference)
        members = keep & (train_source.labels == code)
        return torch.from_numpy(train[members].mean(axis=0)), f"the mean of class {reference}"
    other, other_id, _, _ = resolve_item(run, reference)
    with torch.no_grad():
        emb = run.encoder(encoder_input(run.encoder, other)[None])[0]
    return emb, f"item {other_id}"


def explain_item(
    run: Run,
    item: str,
    *,
    data: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    target: str | None = None,
    method: str = "ig",
    reference: str = "self",
    neighbours: int = 8,
    out: str | os.PathLike | None = None,
    show_progress: bool = False,
) -> Explanation:
    """Explain one item of a run: attribution map, nearest neighbours, PNGs and JSON.

    Args:
        run: a :class:`selfsup.run.Run`.
        item: an image (or audio) file, or ``DATA#KEY``.
        data: training data to find the neighbours in (and for ``--reference mean``,
            ``neighbour`` or a class); the item's own data when it came as ``DATA#KEY``.
        model: an adapted model's folder: attribute its class probability.
        target: the class to attribute (with ``model``); default the predicted class.
        method: ``ig`` or ``occlusion`` (text items always use layer integrated gradients).
        reference: without ``model``: ``self``, ``mean``, ``neighbour``, a class name of
            ``data``, or another ``ITEM``.
        neighbours: how many nearest neighbours to show.
        out: the folder for the files (default ``RUN/explain``).
        show_progress: draw a progress bar while embedding the training data.
    """
    from selfsup.embedding import embed_source

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose {' or '.join(METHODS)}")
    raw, item_id, own_source, row = resolve_item(run, item)
    x = encoder_input(run.encoder, raw)
    encoder = run.encoder.eval()
    train_source = run.open(data) if data is not None else own_source
    # The item's own row in the training data, so it is not its own nearest neighbour.
    own_row = row if data is None and own_source is not None else _row_of_file(item, train_source)
    train = None
    if train_source is not None:
        train = embed_source(encoder, train_source, show_progress=show_progress)
    with torch.no_grad():
        own = encoder(x[None])[0].float()

    if model is not None:
        forward, described = _model_target(model, target, x)
    else:
        ref, what = _reference(run, reference, own, train, train_source, own_row)
        forward, described = similarity_forward(encoder, ref), f"cosine similarity to {what}"

    tokenizer = None
    if run.modality.items_are_text:
        from selfsup.data.tokenizer import TextTokenizer

        layer = getattr(encoder.backbone, "token_embedding", None)
        if layer is None:
            raise TypeError("the text backbone has no token_embedding layer to attribute")
        tokenizer = TextTokenizer.load(run.path)
        attribution = token_attributions(forward, layer, x, PAD_ID)
        method = "layer-ig"
    else:
        attribution = attribute(forward, x, average_input(encoder, x), method)
    with torch.no_grad():
        score = float(forward(x[None])[0])

    explanation = Explanation(
        item_id, x, attribution, method, described, score,
        tokens=None if tokenizer is None else tokenizer.tokens(x.tolist()),
        feature_names=getattr(train_source or own_source, "feature_names", None),
    )  # fmt: skip
    if train is not None:
        _add_neighbours(explanation, encoder, own, train, train_source, neighbours, own_row)
        if tokenizer is not None:
            rows = [x, *explanation.neighbour_items]
            explanation.texts = [tokenizer.decode(ids.tolist()) for ids in rows]
    folder = Path(out) if out is not None else Path(run.path) / EXPLAIN_DIR
    save_explanation(explanation, folder)
    return explanation


def _model_target(
    model: str | os.PathLike, target: str | None, x: torch.Tensor
) -> tuple[Forward, str]:
    """The adapted model's probability of ``target`` (default: the predicted class)."""
    from selfsup.tools.adapt import AdaptedModel

    adapted = AdaptedModel.load(model)
    module = adapted.module().eval()
    if target is None:
        with torch.no_grad():
            class_index = int(module(x[None])[0].argmax())
    elif target in adapted.classes:
        class_index = adapted.classes.index(target)
    else:
        raise ValueError(f"--target {target!r} is not a class of the model: {adapted.classes}")
    return probability_forward(module, class_index), (
        f"probability of class {adapted.classes[class_index]}"
    )


def _add_neighbours(
    explanation: Explanation,
    encoder: nn.Module,
    own: torch.Tensor,
    train: np.ndarray,
    train_source: Source,
    count: int,
    own_row: int | None,
) -> None:
    """Fill in the item's ``count`` nearest neighbours in the training data."""
    idx, sims = nearest_neighbours(own.numpy(), train, count, exclude=own_row)
    classes = train_source.classes
    for i, similarity in zip(idx.tolist(), sims.tolist(), strict=True):
        label = None
        if train_source.labels is not None:
            code = int(train_source.labels[i])
            label = classes[code] if classes else str(code)
        explanation.neighbours.append(Neighbour(i, str(train_source.ids[i]), similarity, label))
    batch = train_source.read_batch(idx.tolist())
    explanation.neighbour_items = [encoder_input(encoder, item) for item in batch.items]


def _row_of_file(item: str, source: Source | None) -> int | None:
    """The row of ``source`` (a folder) that the file ``item`` is, if it lies in it."""
    root = getattr(source, "root", None)
    if root is None or "#" in item:
        return None
    try:
        relative = Path(item).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None
    ids = list(source.ids)
    return ids.index(relative) if relative in ids else None


# --- pictures ---------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "item"


def show_item(ax: Any, item: torch.Tensor, feature_names: Sequence[str] | None = None) -> None:
    """Draw one item on a matplotlib axis: an image (a spectrogram, low frequencies at the
    bottom, when its values leave [0, 1]), lines for a series, bars for a table row."""
    values = item.detach().float().cpu().numpy()
    if values.ndim == 3 and (values.min() < 0 or values.max() > 1):  # a log-mel spectrogram
        ax.imshow(values[0], cmap="magma", origin="lower", aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
    elif values.ndim == 3:
        image = values[0] if values.shape[0] != 3 else values.transpose(1, 2, 0)
        ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    elif values.ndim == 2:
        for channel in values:
            ax.plot(channel, linewidth=1)
        ax.set_xticks([])
    else:
        ax.bar(range(len(values)), values, color="tab:blue")
        ax.set_xticks([])


def plot_attribution(explanation: Explanation, path: str | os.PathLike) -> Path:
    """The attribution as a PNG: item, signed heat map and overlay for images (and
    spectrograms); lines with a heat strip for series; bars for table rows and tokens."""
    plt = pyplot()

    heat = explanation.heat()
    item = explanation.item.detach().float().cpu().numpy()
    limit = float(np.abs(heat).max()) or 1.0
    title = f"{explanation.item_id}: {explanation.method}, {explanation.target}"
    if explanation.tokens is not None or item.ndim == 1:
        labels = explanation.tokens or explanation.feature_names or list(map(str, range(len(heat))))
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(heat)), 3.2))
        colours = plt.get_cmap("RdBu_r")((heat / limit + 1) / 2)
        ax.bar(range(len(heat)), heat, color=colours)
        ax.set_xticks(range(len(heat)), labels[: len(heat)], rotation=90, fontsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
    elif item.ndim == 3:
        # Spectrograms (values outside [0, 1]) keep low frequencies at the bottom.
        spectrogram = item.min() < 0 or item.max() > 1
        placement = {"origin": "lower", "aspect": "auto"} if spectrogram else {}
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
        show_item(axes[0], explanation.item)
        axes[0].set_title("item", fontsize=9)
        shown = axes[1].imshow(heat, cmap="RdBu_r", vmin=-limit, vmax=limit, **placement)
        fig.colorbar(shown, ax=axes[1], fraction=0.046)
        axes[1].set_title("attribution", fontsize=9)
        show_item(axes[2], explanation.item)
        positive = np.clip(heat, 0, None) / limit
        axes[2].imshow(positive, cmap="inferno", alpha=0.85 * positive, vmin=0, vmax=1, **placement)
        axes[2].set_title("overlay (positive)", fontsize=9)
        for ax in axes[1:]:
            ax.set_xticks([])
            ax.set_yticks([])
    else:
        fig, (top, strip) = plt.subplots(
            2, 1, figsize=(9, 3.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        show_item(top, explanation.item)
        strip.imshow(heat[None], aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
        strip.set_yticks([])
        strip.set_xlabel("time step")
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)


def plot_neighbours(
    query: torch.Tensor,
    query_title: str,
    items: Sequence[torch.Tensor],
    titles: Sequence[str],
    path: str | os.PathLike,
    rows: Sequence[tuple[torch.Tensor, str, Sequence[torch.Tensor], Sequence[str]]] = (),
) -> Path:
    """A grid PNG: each row is a query followed by its neighbours, with their titles.

    ``query``, ``items`` and ``titles`` give the first row; ``rows`` adds more.
    """
    plt = pyplot()

    all_rows = [(query, query_title, items, titles), *rows]
    columns = 1 + max(len(r[2]) for r in all_rows)
    fig, axes = plt.subplots(
        len(all_rows), columns, figsize=(1.6 * columns, 1.9 * len(all_rows)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, (q, q_title, neighbours, names) in enumerate(all_rows):
        axes[r, 0].axis("on")
        show_item(axes[r, 0], q)
        axes[r, 0].set_title(q_title, fontsize=7, color="tab:red")
        for c, (n, name) in enumerate(zip(neighbours, names, strict=True), start=1):
            axes[r, c].axis("on")
            show_item(axes[r, c], n)
            axes[r, c].set_title(name, fontsize=7)
    return save_png(fig, path)


def plot_text_lines(lines: Sequence[str], path: str | os.PathLike, width: int = 110) -> Path:
    """Lines of text as a PNG (a text item and its neighbours), the first in red."""
    plt = pyplot()
    shown = [line if len(line) <= width else line[: width - 1] + "…" for line in lines]
    fig = plt.figure(figsize=(10, 0.35 * len(shown) + 0.4))
    for row, line in enumerate(shown):
        colour = "tab:red" if row == 0 else "black"
        fig.text(0.01, 1 - (row + 1) / (len(shown) + 1), line, fontsize=9, color=colour)
    return save_png(fig, path)


def save_explanation(explanation: Explanation, folder: str | os.PathLike) -> list[Path]:
    """Write ``<item>-<method>.png``, ``<item>-neighbours.png`` (when there are neighbours)
    and ``<item>-<method>.json`` into ``folder``; returns the files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(explanation.item_id)}-{explanation.method}"
    files = [plot_attribution(explanation, folder / f"{stem}.png")]
    if explanation.texts:
        lines = [f"{explanation.item_id}: {explanation.texts[0]}"] + [
            f"{n.similarity:.2f} {n.item_id}{f' [{n.label}]' if n.label else ''}: {text}"
            for n, text in zip(explanation.neighbours, explanation.texts[1:], strict=True)
        ]
        path = folder / f"{_slug(explanation.item_id)}-neighbours.png"
        files.append(plot_text_lines(lines, path))
    elif explanation.neighbour_items:
        titles = [
            f"{n.item_id[-14:]}\n{n.label or ''} {n.similarity:.2f}" for n in explanation.neighbours
        ]
        files.append(
            plot_neighbours(
                explanation.item,
                explanation.item_id[-14:],
                explanation.neighbour_items,
                titles,
                folder / f"{_slug(explanation.item_id)}-neighbours.png",
            )
        )
    explanation.files = files
    json_path = folder / f"{stem}.json"
    write_json(json_path, explanation.to_dict())
    explanation.files.append(json_path)
    return explanation.files
