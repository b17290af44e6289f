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
from pathlib import Path
from typing import Any

from selfsup.core.files import atomic_path


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


def short_id(item_id: str, width: int = CAPTION_CHARS) -> str:
    """An item id cut to ``width`` characters for a caption, keeping what tells items
    apart: a path's first folder (a patient, a day) and its file name, else its file name,
    else its end.

    Example:
        >>> short_id("P000/CT_CHEST/IM0000.dcm"), short_id("2024-05-01/IMG_00012.JPG")
        ('P000/…/IM0000.dcm', '…/IMG_00012.JPG')
        >>> short_id("a/b.png"), short_id("0123456789" * 3)
        ('a/b.png', '…34567890123456789')
    """
    if len(item_id) <= width:
        return item_id
    parts = item_id.split("/")
    if len(parts) > 1:
        for candidate in (f"{parts[0]}/…/{parts[-1]}", f"…/{parts[-1]}"):
            if len(candidate) <= width:
                return candidate
    return "…" + item_id[-(width - 1) :]
