"""One self-contained HTML page per run: everything the run folder knows, in figures.

``build_report`` reads the run folder and, where data is given or the run's own data can be
opened, the embeddings, and writes ``RUN/report.html``: a static page with every figure
embedded (base64 PNG) that opens from disk, no server needed. Each figure is also written as
a PNG under ``RUN/report/`` (or is one already in the run folder, like ``audit.png``).

Sections, each skipped with a note when its inputs are missing:

1. the run: method, backbone, data, steps, time and throughput (``train.json``, config);
2. training curves: loss, learning rate and throughput per logged step (``metrics.csv``);
3. label-free metrics per epoch (``epochs.csv``: RankMe, alpha-ReQ, alignment, ...), and
   those measured by ``selfsup evaluate --label-free`` (``label-free-*.json``);
4. evaluation tables with their raw-input baselines (``evaluation-*.json``);
5. a 2-D map of the embeddings (PCA; UMAP with ``umap=True`` when ``umap-learn`` is
   installed), coloured by group (``groups_file``) or label;
6. nearest-neighbour grids: a few items and their nearest neighbours in the sample;
7. attribution examples: those ``selfsup explain`` saved in ``RUN/explain``, else a few
   computed here (integrated gradients of each item's self-similarity);
8. the audit summary (``audit.json`` and ``audit.png`` from ``selfsup audit``).

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "config.yaml").write_text("method: simclr\\n") > 0
    True
    >>> page = build_report(folder)
    >>> page.name, "no metrics.csv" in page.read_text()
    ('report.html', True)
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfsup.core.errors import one_line
from selfsup.core.files import check_writable, read_json, write_text
from selfsup.core.progress import activity
from selfsup.data.table_files import read_table
from selfsup.run import CONFIG_FILE, TRAIN_FILE, Run, read_run_config
from selfsup.tools.figures import pyplot, save_png, short_id

REPORT_FILE = "report.html"
REPORT_DIR = "report"
#: The map's name for the items of partially labelled data that have no label.
NO_LABEL = "(no label)"

#: Columns of ``epochs.csv`` that are not metrics to plot.
#: Columns of epochs.csv that are not measurements of the encoder: counts of the items a
#: number was measured on, the share of the most common class (told beside the probe).
_NOT_PLOTTED = {
    "step",
    "epoch",
    "collapsed",
    "online_probe_items",
    "online_probe_majority",
    "labelled_knn_items",
}


@dataclass
class Section:
    """One part of the page: a title, HTML, figures (PNG paths) and notes on what is missing."""

    title: str
    html: str = ""
    figures: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- sections from the run folder -------------------------------------------------------------


def overview_section(run_dir: Path) -> Section:
    """The run's method, backbone, data and training summary."""
    section = Section("Run")
    config = read_run_config(run_dir / CONFIG_FILE) if (run_dir / CONFIG_FILE).exists() else {}
    summary_file = run_dir / TRAIN_FILE
    summary = read_json(summary_file) if summary_file.exists() else {}
    keys = ("method", "modality", "backbone", "data", "epochs", "batch_size", "lr", "seed")
    rows = [(k, _number(config[k])) for k in keys if config.get(k) is not None]
    for key in ("items", "steps", "epochs", "train_seconds", "items_per_second", "precision",
                "world_size", "machine"):  # fmt: skip
        if key in summary:
            rows.append((f"trained: {key.replace('_', ' ')}", _number(summary[key])))
    if "selected" in summary:
        chosen = summary["selected"]
        rows.append(("encoder kept", f"epoch {chosen['epoch']} (best {chosen['by']})"))
    section.html = _table(rows, ("", "value"))
    if not summary:
        section.notes.append("no train.json: the run has not finished training")
    return section


def training_section(run_dir: Path, figures: Path) -> Section:
    """Loss, learning rate and throughput per logged step, from ``metrics.csv``."""
    section = Section("Training curves")
    path = run_dir / "metrics.csv"
    if not path.exists() or path.stat().st_size == 0:
        section.notes.append("no metrics.csv: nothing was logged (fewer steps than --log-every?)")
        return section
    frame = read_table(path)
    columns = [c for c in ("loss", "lr", "items_per_s") if c in frame.columns]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3), squeeze=False)
    titles = {"loss": "loss", "lr": "learning rate", "items_per_s": "items per second"}
    for ax, column in zip(axes[0], columns, strict=True):
        ax.plot(frame["step"], frame[column], color="tab:blue", linewidth=1.5)
        ax.set_title(titles[column], fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    section.figures.append((save_png(fig, figures / "training-curves.png"), "training curves"))
    last = frame.iloc[-1]
    section.html = (
        f"<p>{len(frame)} logged steps; last step {int(last['step'])}, loss "
        f"{last.get('loss', float('nan')):.4f}.</p>"
    )
    return section


def label_free_section(run_dir: Path, figures: Path) -> Section:
    """Label-free metrics per epoch (``epochs.csv``) and from ``label-free-*.json``."""
    section = Section("Label-free metrics")
    path = run_dir / "epochs.csv"
    if path.exists() and path.stat().st_size > 0:
        frame = read_table(path)
        columns = [
            c
            for c in frame.columns
            if c not in _NOT_PLOTTED and pd.api.types.is_numeric_dtype(frame[c])
        ]
        from matplotlib.ticker import MaxNLocator

        plt = pyplot()
        per_row = 4
        rows = (len(columns) + per_row - 1) // per_row
        fig, axes = plt.subplots(rows, per_row, figsize=(3.3 * per_row, 2.6 * rows), squeeze=False)
        for ax, column in zip(axes.flat, columns, strict=False):
            # By step: an epoch of 200,000 photos is measured again when a longer run goes
            # on with it, and a run of one measurement is a point on a whole step.
            ax.plot(frame["step"], frame[column], marker="o", color="tab:orange", linewidth=1.5)
            ax.set_title(column.replace("_", " "), fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(columns) :]:
            ax.axis("off")
        section.figures.append(
            (save_png(fig, figures / "label-free-curves.png"), "at each measurement, by step")
        )
        if frame.get("collapsed", pd.Series(dtype=float)).fillna(0).any():
            section.notes.append("the collapse alarm went off during training")
    else:
        section.notes.append("no epochs.csv: training ran without monitoring (--monitor-items 0)")
    for file in sorted(run_dir.glob("label-free-*.json")):
        values = read_json(file)
        rows = [(k, _number(v)) for k, v in values.items()]
        section.html += f"<h3>{html.escape(file.stem)}</h3>" + _table(rows, ("metric", "value"))
    return section


def evaluation_section(run_dir: Path, figures: Path) -> Section:
    """Each ``evaluation-*.json`` as a table and a bar chart next to its raw-input baseline."""
    from selfsup.evaluation.report import Evaluation, ProtocolRow

    section = Section("Evaluation with labels")
    files = sorted(run_dir.glob("evaluation-*.json"))
    if not files:
        section.notes.append("no evaluation yet: run `selfsup evaluate RUN DATA`")
        return section
    plt = pyplot()
    for file in files:
        data = read_json(file)
        result = Evaluation(**{**data, "rows": [ProtocolRow(**r) for r in data["rows"]]})
        rows = []
        for row in result.rows:
            ci, ci_raw = row.detail.get("ci95_selfsup"), row.detail.get("ci95_raw")
            rows.append((
                row.protocol,
                f"{row.selfsup:.4f}" + (f" ± {ci:.4f}" if ci is not None else ""),
                f"{row.raw:.4f}" + (f" ± {ci_raw:.4f}" if ci_raw is not None else ""),
                f"{row.selfsup - row.raw:+.4f}",
            ))  # fmt: skip
        section.html += (
            f"<h3>{html.escape(result.train_data)} &rarr; {html.escape(result.test_data)}</h3>"
            f"<p>fitted on {result.train_items} items, scored on {result.test_items}</p>"
            + _table(rows, ("protocol", "selfsup", "raw input", "gain"))
        )
        fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(result.rows), 3))
        x = np.arange(len(result.rows))
        ax.bar(x - 0.2, [r.selfsup for r in result.rows], 0.4, label="selfsup", color="tab:blue")
        ax.bar(x + 0.2, [r.raw for r in result.rows], 0.4, label="raw input", color="tab:gray")
        ax.set_xticks(x, [r.protocol for r in result.rows])
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title(f"{result.train_data} → {result.test_data}", fontsize=9)
        png = save_png(fig, figures / f"{file.stem}.png")
        section.figures.append((png, f"{result.train_data}: selfsup against raw input"))
    return section


def audit_section(run_dir: Path) -> Section:
    """The audit's ranked sentences, notes and bar chart (``audit.json``, ``audit.png``)."""
    from selfsup.tools.audit import AUDIT_FILE, AUDIT_PLOT, AuditResult

    section = Section("Bias audit")
    if not (run_dir / AUDIT_FILE).exists():
        section.notes.append("no audit yet: run `selfsup audit RUN DATA --group COLUMN`")
        return section
    result = AuditResult.load(run_dir)
    counts = ", ".join(f"{g} ({n})" for g, n in result.counts.items())
    items = "".join(f"<li>{html.escape(s)}</li>" for s in result.summary())
    notes = "".join(f"<li class='note'>{html.escape(n)}</li>" for n in result.notes)
    section.html = f"<p>groups: {html.escape(counts)}</p><ul>{items}{notes}</ul>"
    if (run_dir / AUDIT_PLOT).exists():
        section.figures.append((run_dir / AUDIT_PLOT, "metrics by group"))
    return section


# --- sections from the embeddings -------------------------------------------------------------


@dataclass
class EmbeddingSample:
    """An evenly spaced sample of data with its embeddings, labels and groups."""

    source: Any
    rows: np.ndarray
    embeddings: np.ndarray
    colour_by: str | None
    colours: list[str] | None


def map_rows(codes: np.ndarray | None, n: int, items: int) -> np.ndarray:
    """The rows of ``n`` items the map shows, at most ``items``, evenly spaced; of data
    labelled on a few items (``codes`` -1 where an item has none), its labelled items first
    (up to half the map; the rest evenly spaced over all the others), so that 300 labels
    among 200,000 photos colour more than the three an even spacing meets.

    Example:
        >>> codes = np.full(1000, -1)
        >>> codes[[3, 500, 998]] = 0
        >>> rows = map_rows(codes, 1000, 10)
        >>> rows.tolist()
        [0, 3, 167, 333, 499, 500, 666, 832, 998, 999]
        >>> map_rows(None, 1000, 4).tolist()
        [0, 333, 666, 999]
    """

    def spread(pool: np.ndarray, count: int) -> np.ndarray:
        return pool[np.unique(np.linspace(0, len(pool) - 1, min(count, len(pool))).astype(int))]

    everything = np.arange(n)
    if codes is None or not (codes >= 0).any():
        return spread(everything, items)
    labelled = spread(np.flatnonzero(codes >= 0), max(items // 2, 1))
    others = spread(np.setdiff1d(everything, labelled), items - len(labelled))
    return np.sort(np.concatenate([labelled, others]))


def sample_embeddings(
    run: Run, data: str | os.PathLike, items: int, groups_file: str | os.PathLike | None
) -> EmbeddingSample:
    """Embed up to ``items`` evenly spaced items of ``data``, in the items training read
    (windows of long series, clips of long recordings: their attributions are pictures one
    can read, and fit in memory) unless groups are given by item id; colour by group or
    label."""
    from selfsup.data.splits import SubsetSource, item_codes, item_labels
    from selfsup.tools.audit import read_groups_file

    source = run.open(data) if groups_file is not None else run.open_as_trained(data)
    rows = map_rows(item_codes(source) if source.labels is None else None, len(source), items)
    subset = SubsetSource(source, rows, source.name)
    embeddings = run.embed(subset)
    colour_by, colours = None, None
    if groups_file is not None:
        colour_by, colours = "group", read_groups_file(groups_file, list(subset.ids)).tolist()
    elif (names := item_labels(source)) is not None:  # "(no label)" for unlabelled rows
        colour_by, colours = "label", [names[i] or NO_LABEL for i in rows]
    return EmbeddingSample(subset, rows, embeddings, colour_by, colours)


def project_2d(
    embeddings: np.ndarray, use_umap: bool = False, seed: int = 0
) -> tuple[np.ndarray, str]:
    """A 2-D map of the embeddings: PCA, or UMAP (McInnes et al., 2018) when asked and
    installed. Returns the points and the method's name.

    Example:
        >>> points, how = project_2d(np.random.default_rng(0).normal(size=(50, 8)))
        >>> points.shape, how
        ((50, 2), 'PCA')
    """
    if use_umap:
        import umap  # optional: pip install umap-learn

        points = umap.UMAP(n_components=2, random_state=seed).fit_transform(embeddings)
        return np.asarray(points), "UMAP"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(embeddings), "PCA"


def map_section(sample: EmbeddingSample, figures: Path, use_umap: bool, seed: int) -> Section:
    """The 2-D map of the sample's embeddings, coloured by group or label."""
    import importlib.util

    section = Section("Embedding map")
    keep = ~np.isnan(sample.embeddings).any(axis=1)
    if use_umap and importlib.util.find_spec("umap") is None:
        section.notes.append("UMAP is not installed (pip install umap-learn): PCA instead")
        use_umap = False
    points, how = project_2d(sample.embeddings[keep], use_umap, seed)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    if sample.colours is None:
        ax.scatter(points[:, 0], points[:, 1], s=8, color="tab:blue", alpha=0.7)
    else:
        colours = np.asarray(sample.colours)[keep]
        if (colours == NO_LABEL).any():  # the many unlabelled items: grey, beneath the labels
            unlabelled = points[colours == NO_LABEL]
            ax.scatter(*unlabelled.T, s=5, alpha=0.35, color="0.6", label=NO_LABEL)
        names = sorted(set(colours) - {NO_LABEL})
        palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for i, name in enumerate(names[:20]):
            members = colours == name
            ax.scatter(*points[members].T, s=8, alpha=0.7, color=palette(i % 20), label=name)
        ax.legend(fontsize=7, markerscale=2, loc="best", title=sample.colour_by)
        if len(names) > 20:
            section.notes.append(f"{len(names)} {sample.colour_by}s: the first 20 are coloured")
    ax.set_title(f"{how} of {keep.sum()} embeddings of {sample.source.name}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    section.figures.append((save_png(fig, figures / "embedding-map.png"), f"{how} map"))
    return section


def neighbours_section(
    run: Run, sample: EmbeddingSample, figures: Path, queries: int = 4, k: int = 6
) -> Section:
    """A grid of a few items (one per class when labelled) and their nearest neighbours (a
    table of the texts for text runs)."""
    from selfsup.tools.explain import encoder_input, nearest_neighbours, plot_neighbours

    section = Section("Nearest neighbours")
    keep = np.flatnonzero(~np.isnan(sample.embeddings).any(axis=1))
    if len(keep) <= k:
        section.notes.append(f"too few items ({len(keep)}) for neighbour grids")
        return section
    if sample.colours is not None:
        colours = np.asarray(sample.colours)
        chosen = [keep[colours[keep] == c][0] for c in sorted(set(colours[keep]))][:queries]
    else:
        chosen = keep[np.linspace(0, len(keep) - 1, queries).astype(int)].tolist()
    ids = list(sample.source.ids)

    def caption(i: int, similarity: float | None = None) -> str:
        text = short_id(ids[i]) + (f"\n{sample.colours[i]}" if sample.colours else "")
        return text + (f" {similarity:.2f}" if similarity is not None else "")

    if run.modality.items_are_text:  # texts read best as text: a table
        from selfsup.data.tokenizer import TextTokenizer

        tokenizer = TextTokenizer.load(run.path)
        lines = []
        for query in chosen:
            idx, sims = nearest_neighbours(sample.embeddings[query], sample.embeddings, 3, query)
            batch = sample.source.read_batch([query, *idx.tolist()]).items
            texts = [tokenizer.decode(row)[:160] for row in batch]
            found = [f"{t} ({s:.2f})" for t, s in zip(texts[1:], sims.tolist(), strict=True)]
            lines.append((caption(query), texts[0], *found))
        section.html = _table(lines, ("item", "text", "nearest", "second", "third"))
        return section
    rows = []
    for query in chosen:
        idx, sims = nearest_neighbours(sample.embeddings[query], sample.embeddings, k, query)
        items = sample.source.read_batch([query, *idx.tolist()]).items
        items = [encoder_input(run.encoder, item) for item in items]
        titles = [caption(i, s) for i, s in zip(idx.tolist(), sims.tolist(), strict=True)]
        rows.append((items[0], caption(query), items[1:], titles))
    first, *others = rows
    png = plot_neighbours(*first, figures / "neighbours.png", rows=others)
    section.figures.append((png, "queries (left, red) and their nearest neighbours"))
    return section


def _explain_order(path: Path) -> tuple[str, bool, str]:
    """Sort key of ``explain/`` files: by item, its attribution maps before its neighbours
    (files are ``<item>-<method>.png`` and ``<item>-neighbours.png``).

    Example:
        >>> names = ["12-neighbours.png", "12-occlusion.png", "3-ig.png"]
        >>> [p.name for p in sorted(map(Path, names), key=_explain_order)]
        ['12-occlusion.png', '12-neighbours.png', '3-ig.png']
    """
    item = path.stem.rsplit("-", 1)[0]
    return item, path.stem.endswith("-neighbours"), path.stem


def attribution_section(
    run: Run, run_dir: Path, sample: EmbeddingSample | None, figures: Path, examples: int = 3
) -> Section:
    """The attribution maps ``selfsup explain`` saved, else a few computed on the sample."""
    from selfsup.tools.explain import (
        EXPLAIN_DIR,
        Explanation,
        attribute,
        average_input,
        encoder_input,
        plot_attribution,
        similarity_forward,
    )

    section = Section("What the encoder looks at")
    folder = run_dir / EXPLAIN_DIR
    saved = sorted(folder.glob("*.png"), key=_explain_order) if folder.exists() else []
    if saved:
        section.figures += [(path, path.stem) for path in saved]
        return section
    if sample is None or run is None:
        section.notes.append("no attribution maps: run `selfsup explain RUN ITEM` or give --data")
        return section
    if run.modality.items_are_text:
        section.notes.append("text: run `selfsup explain RUN DATA#KEY` for token attributions")
        return section
    keep = np.flatnonzero(~np.isnan(sample.embeddings).any(axis=1))
    ids = list(sample.source.ids)
    preprocessor = getattr(sample.source, "preprocessor", None)  # tables: column names
    for position in keep[np.linspace(0, len(keep) - 1, examples).astype(int)]:
        item = sample.source.read_batch([int(position)]).items[0]
        x = encoder_input(run.encoder, item).float()
        own = run.encoder.eval()(x[None]).detach()[0]
        forward = similarity_forward(run.encoder, own)
        method = "occlusion" if x.ndim == 1 else "ig"  # table rows: categorical columns too
        values = attribute(forward, x, average_input(run.encoder, x), method)
        explanation = Explanation(
            ids[position], x, values, method, "cosine similarity to its own embedding", 1.0,
            feature_names=None if preprocessor is None else preprocessor.feature_names,
        )  # fmt: skip
        name = "".join(c if c.isalnum() else "-" for c in ids[position])
        png = plot_attribution(explanation, figures / f"attribution-{name}.png")
        section.figures.append((png, f"item {ids[position]}"))
    section.notes.append(
        "integrated gradients (occlusion for table rows) of each item's similarity to its own "
        "embedding; "
        "`selfsup explain` makes more (occlusion, a model's prediction, neighbours)"
    )
    return section


# --- the page ---------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #1f3b57; color: white; padding: 16px 32px; }
nav { padding: 8px 32px; background: #e8eef4; position: sticky; top: 0; }
nav a { margin-right: 16px; color: #1f3b57; text-decoration: none; font-size: 14px; }
section { background: white; margin: 16px 32px; padding: 8px 24px 16px; border-radius: 6px;
          box-shadow: 0 1px 3px rgba(0,0,0,0.1); }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
td, th { border: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f0f3f6; }
figure { margin: 12px 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
.note { color: #8a6d3b; font-size: 14px; }
"""


def _figure_html(path: Path, caption: str, run_dir: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    try:
        where = path.resolve().relative_to(run_dir.resolve())
    except ValueError:
        where = path
    return (
        f"<figure><img src='data:image/png;base64,{encoded}' alt='{html.escape(caption)}' "
        f"data-file='{html.escape(str(where))}'><figcaption>{html.escape(caption)} "
        f"({html.escape(str(where))})</figcaption></figure>"
    )


def render_html(title: str, sections: Sequence[Section], run_dir: Path) -> str:
    """The page: a header, a navigation bar and one block per section."""
    nav = "".join(f"<a href='#s{i}'>{html.escape(s.title)}</a>" for i, s in enumerate(sections))
    blocks = []
    for i, section in enumerate(sections):
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in section.notes)
        figures = "".join(_figure_html(p, c, run_dir) for p, c in section.figures)
        blocks.append(
            f"<section id='s{i}'><h2>{html.escape(section.title)}</h2>{notes}{section.html}"
            f"{figures}</section>"
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1></header><nav>{nav}</nav>"
        + "".join(blocks)
        + "</body></html>"
    )


def _default_data(config: dict[str, Any]) -> str | None:
    """The run's own training data, when it can be opened again (not an in-memory frame)."""
    from selfsup.data.named import is_named_spec
    from selfsup.data.tabular import is_tabular_spec

    data = config.get("data")
    if not data:
        return None
    text = str(data)
    if text.startswith("ucr:") or is_named_spec(text) or is_tabular_spec(text):
        return text
    return text if Path(text).exists() else None


def _guarded(title: str, build: Callable[..., Section], *args: Any) -> Section:
    """The section ``build`` makes from the run folder's files, or, when one of them is
    damaged (edited, cut short), the section with a note that names it: one broken file
    costs its section, not the report."""
    try:
        return build(*args)
    except (ValueError, KeyError, TypeError, OSError) as err:
        return Section(title, notes=[f"could not be read: {one_line(err)}"])


def build_report(
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    groups_file: str | os.PathLike | None = None,
    use_umap: bool = False,
    items: int = 2000,
    seed: int = 0,
    data_options: dict[str, Any] | None = None,
) -> Path:
    """Write the run's HTML report and its PNG figures; returns the page's path.

    Args:
        run_dir: the run folder.
        data: data to map and find neighbours in (default: the run's training data when it
            can be opened again).
        out: the page's path (default ``RUN/report.html``); figures go to ``RUN/report/``.
        groups_file: a CSV with columns ``id,group`` to colour the map by group.
        use_umap: map with UMAP instead of PCA (needs ``umap-learn``; slow to start).
        items: the most items embedded for the map and the neighbours.
        seed: seed of the projection.
        data_options: how to read ``data`` (``text_column``...), over the run's own.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    figures = run_dir / REPORT_DIR
    page = Path(out) if out is not None else run_dir / REPORT_FILE
    check_writable(figures)  # a read-only run folder is found before any work
    check_writable(page)
    sections = [
        _guarded("Overview", overview_section, run_dir),
        _guarded("Training curves", training_section, run_dir, figures),
        _guarded("Label-free metrics", label_free_section, run_dir, figures),
        _guarded("Evaluations", evaluation_section, run_dir, figures),
    ]
    run, sample = None, None
    map_note = None
    try:
        from selfsup.run import load

        run = load(run_dir).with_data_options(**(data_options or {}))
    except (FileNotFoundError, ValueError) as err:
        map_note = f"the encoder cannot be loaded here ({err})"
    if run is not None:
        data = data if data is not None else _default_data(run.config)
        if data is None:
            map_note = "no data to map: give --data (the run was trained on in-memory data)"
        else:
            with activity(f"embedding up to {items:,} items of {data}"):
                sample = sample_embeddings(run, data, items, groups_file)
    if sample is not None:
        with activity("drawing the map and the nearest neighbours"):
            sections.append(map_section(sample, figures, use_umap, seed))
            sections.append(neighbours_section(run, sample, figures))
    else:
        sections += [Section("Embedding map", notes=[map_note or "no data"]),
                     Section("Nearest neighbours", notes=[map_note or "no data"])]  # fmt: skip
    sections.append(attribution_section(run, run_dir, sample, figures))  # names itself
    sections.append(_guarded("Bias audit", audit_section, run_dir))
    write_text(page, render_html(f"selfsup report: {run_dir.name}", sections, run_dir))
    return page
