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
