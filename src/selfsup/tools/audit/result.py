"""An audit's result: saved as ``audit.json`` and drawn as ``audit.png``."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.core.errors import one_line
from selfsup.core.files import read_json_object, write_json
from selfsup.tools.audit.metrics import _NAMES, Gap
from selfsup.tools.figures import pyplot, save_png

AUDIT_FILE = "audit.json"
AUDIT_PLOT = "audit.png"


@dataclass
class AuditResult:
    """What an audit found.

    Attributes:
        groups: the group names, in order.
        counts: items per group.
        by_group: metric -> group -> value (classifier metrics and embedding checks).
        intervals: metric -> group -> [low, high] bootstrap 95% interval (classifier metrics).
        overall: metric -> value over all items.
        gaps: one per check, ranked: large gaps first, then by severity.
        notes: how the audit was done (which classifier, what was skipped).
    """

    groups: list[str]
    counts: dict[str, int]
    by_group: dict[str, dict[str, float]]
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    overall: dict[str, float] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def large_gaps(self) -> list[Gap]:
        """The large gaps, largest first."""
        return [gap for gap in self.gaps if gap.large]

    def summary(self) -> list[str]:
        """Plain sentences: the large gaps, largest first, or that there is none."""
        if not self.large_gaps:
            biggest = self.gaps[0].sentence if self.gaps else ""
            return [f"No large gap between the groups. The largest: {biggest}".strip()]
        return [gap.sentence for gap in self.large_gaps]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (the ranked gaps and the summary included)."""
        return {**asdict(self), "summary": self.summary()}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``audit.json`` and its bar chart ``audit.png`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / AUDIT_FILE
        write_json(path, self.to_dict())
        plot_audit(self, folder / AUDIT_PLOT)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AuditResult:
        """Read an ``audit.json`` (or the run folder holding one)."""
        path = Path(path)
        file = path / AUDIT_FILE if path.is_dir() else path
        data = read_json_object(file, "an audit result")
        try:
            data.pop("summary", None)
            data["gaps"] = [Gap(**gap) for gap in data["gaps"]]
            return cls(**data)
        except (AttributeError, KeyError, TypeError) as err:
            raise ValueError(f"{file}: not an audit result ({one_line(err)})") from None


#: Above this many groups the bars lie horizontally, one row per group named on the left
#: (sixty countries' names under vertical bars overlapped into one black line).
UPRIGHT_GROUPS = 10


def plot_audit(result: AuditResult, path: str | os.PathLike) -> Path:
    """A bar chart per metric, one bar per group (95% intervals where known), as PNG; above
    :data:`UPRIGHT_GROUPS` groups, horizontal bars in panels as tall as the groups need."""
    plt = pyplot()

    metrics = list(result.by_group)
    columns = min(4, len(metrics))
    rows = (len(metrics) + columns - 1) // columns
    many = len(result.groups) > UPRIGHT_GROUPS
    height = max(2.8, 0.16 * len(result.groups) + 1.0) if many else 2.8
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, height * rows), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    large = {gap.check for gap in result.large_gaps}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        values = result.by_group[metric]
        names = list(values)
        heights = [values[g] for g in names]
        errors = None
        if metric in result.intervals:
            spans = result.intervals[metric]
            errors = np.array(
                [[max(0.0, values[g] - spans[g][0]) for g in names],
                 [max(0.0, spans[g][1] - values[g]) for g in names]]
            )  # fmt: skip
        if many:
            ax.barh(names, heights, xerr=errors, color=colours[0], capsize=1.5)
            ax.invert_yaxis()  # the first group on top, as in the table
            ax.xaxis.set_major_locator(plt.MaxNLocator(3))  # small rates' labels overlapped
            ax.tick_params(axis="y", labelsize=6)
        else:
            ax.bar(names, heights, yerr=errors, color=colours[: len(names)], capsize=3)
        title = {"separability": "group probe recall", "purity": "kNN group purity"}.get(
            metric, _NAMES.get(metric, metric)
        )
        ax.set_title(title + (" (large gap)" if metric in large else ""), fontsize=9)
        ax.tick_params(labelsize=8 if not many else 6)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    return save_png(fig, path)
