"""Figures without a display: matplotlib's pyplot on the Agg backend, saved as PNG.

Example:
    >>> import tempfile
    >>> plt = pyplot()
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0, 1], [1, 0])
    >>> save_png(fig, Path(tempfile.mkdtemp()) / "line.png").suffix
    '.png'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from selfsup.core.files import atomic_path
from selfsup.data.folders import ITEM_PLACE


def pyplot() -> Any:
    """``matplotlib.pyplot`` drawing off-screen (Agg), so figures work on servers and in CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it as a PNG at ``path`` (folders made) and close it."""
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
    return path


#: The most characters of an item id a picture's caption shows.
CAPTION_CHARS = 18


#: The start of a log's window in its id: ``2025-03-04T06:00:00``.
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def short_id(item_id: str, width: int = CAPTION_CHARS) -> str:
    """An item id cut to ``width`` characters for a caption, keeping what tells items
    apart: a path's first folder (a patient, a day) and its file name, else its file name,
    else its end.

    A window of a log (``pump-07@2025-03-04T06:00:00``) keeps its machine and its start,
    without a midnight's or a whole minute's zeros; a tile (``scenes/T31UDQ.tif@x512_y1024``)
    keeps its place and as much of its file's name as fits, without folders or suffix.

    Example:
        >>> short_id("P000/CT_CHEST/IM0000.dcm"), short_id("2024-05-01/IMG_00012.JPG")
        ('P000/…/IM0000.dcm', '…/IMG_00012.JPG')
        >>> short_id("a/b.png"), short_id("0123456789" * 3)
        ('a/b.png', '…34567890123456789')
        >>> short_id("pump-07@2025-03-04T00:00:00"), short_id("pump-07@2025-03-04T06:30:00")
        ('pump-07@2025-03-04', '…mp-07@03-04 06:30')
        >>> short_id("scene3.tif@x512_y256"), short_id("s2/T31UDQ_B04.tif@x10240_y512")
        ('scene3@x512_y256', '…Q_B04@x10240_y512')
        >>> short_id("scans/patient007/ct.nii.gz@z40")
        'patient007/ct@z40'
    """
    if len(item_id) <= width:
        return item_id
    unit, at, start = item_id.rpartition("@")
    if at and ITEM_PLACE.search(item_id):
        folders, _, name = unit.rpartition("/")
        stem = name.removesuffix(".gz").rsplit(".", 1)[0]
        room = width - len(start) - 1
        parent = folders.rsplit("/", 1)[-1]
        if parent and len(parent) + 1 + len(stem) <= room:  # patient007/ct@z40
            return f"{parent}/{stem}@{start}"
        if len(stem) <= room:
            return f"{stem}@{start}"
        return f"…{stem[-(room - 1) :] if room > 1 else ''}@{start}"
    if at and _ISO_TIME.match(start):
        day, _, clock = start.partition("T")
        clock = clock.removesuffix(":00")
        whole = clock == "00:00"  # a day's window: its date says it
        shorter = f"{unit}@{day[5:]}" if whole else f"{unit}@{day[5:]} {clock}"
        for candidate in (f"{unit}@{day}" if whole else f"{unit}@{day} {clock}", shorter):
            if len(candidate) <= width:
                return candidate
        return "…" + shorter[-(width - 1) :]
    parts = item_id.split("/")
    if len(parts) > 1:
        for candidate in (f"{parts[0]}/…/{parts[-1]}", f"…/{parts[-1]}"):
            if len(candidate) <= width:
                return candidate
    return "…" + item_id[-(width - 1) :]
