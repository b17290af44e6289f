"""An explanation: its attribution map and neighbours, as PNG pictures and JSON."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.core.files import write_json
from selfsup.tools.explain.attribution import positive_mass_share
from selfsup.tools.figures import pyplot, save_png, short_id

EXPLAIN_DIR = "explain"


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


# --- pictures ---------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "item"


# The colours of a composite of more or fewer channels than three, as a fluorescence viewer
# (ImageJ's composite mode) gives them: red, green, blue, then cyan, magenta, yellow, gray.
COMPOSITE_COLOURS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [0.5, 0.5, 0.5]],
    dtype=np.float32,
)
#: Percentiles an image is stretched between when shown (where it needs it, see below).
STRETCH_PERCENTILES = (0.5, 99.5)


def display_image(values: np.ndarray) -> np.ndarray:
    """A (C, H, W) image in [0, 1] as a picture shows it: gray for one channel, RGB for three,
    and for any other count a composite of every channel in its own colour (red, green, blue,
    cyan, magenta, yellow, gray), each stretched between its own percentiles, as a
    fluorescence viewer shows five stains. A gray or colour image whose values span less than
    half of [0, 1] (12-bit data in a 16-bit file: black as it is) is stretched between its
    0.5th and 99.5th percentiles; a photo is shown as it is.

    Example:
        >>> dark = np.linspace(0, 4095 / 65535, 16, dtype=np.float32).reshape(1, 4, 4)
        >>> float(display_image(dark).max())  # stretched
        1.0
        >>> display_image(np.zeros((5, 4, 4), np.float32)).shape
        (4, 4, 3)
    """
    channels = values.shape[0]
    if channels not in (1, 3):
        low, high = np.percentile(values, STRETCH_PERCENTILES, axis=(1, 2))
        span = np.where(high > low, high - low, 1.0)[:, None, None]
        stretched = ((values - low[:, None, None]) / span).clip(0, 1)
        colours = COMPOSITE_COLOURS[np.arange(channels) % len(COMPOSITE_COLOURS)]
        return np.einsum("chw,ck->hwk", stretched, colours).clip(0, 1)
    image = values[0] if channels == 1 else values.transpose(1, 2, 0)
    low, high = np.percentile(image, STRETCH_PERCENTILES)
    if high - low < 0.5 and high > low:
        image = (image - low) / (high - low)
    return np.clip(image, 0, 1)


def show_item(ax: Any, item: torch.Tensor, feature_names: Sequence[str] | None = None) -> None:
    """Draw one item on a matplotlib axis: an image as :func:`display_image` shows it (a
    spectrogram, low frequencies at the bottom, when its values leave [0, 1]), lines for a
    series, bars for a table row."""
    values = item.detach().float().cpu().numpy()
    if values.ndim == 3 and (values.min() < 0 or values.max() > 1):  # a log-mel spectrogram
        ax.imshow(values[0], cmap="magma", origin="lower", aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
    elif values.ndim == 3:
        ax.imshow(display_image(values), cmap="gray", vmin=0, vmax=1)
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
            f"{short_id(n.item_id)}\n{n.label or ''} {n.similarity:.2f}"
            for n in explanation.neighbours
        ]
        files.append(
            plot_neighbours(
                explanation.item,
                short_id(explanation.item_id),
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
