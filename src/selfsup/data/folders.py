"""Folder trees of files: finding the files of some types, and labels from subfolders.

Shared by the folder sources of every modality (images, audio).

Example:
    >>> subfolder_labels(["cat/a.png", "dog/b.png", "dog/c.png"])
    (['cat', 'dog'], array([0, 1, 1]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def find_files(root: Path, suffixes: Sequence[str]) -> list[str]:
    """The files under ``root`` whose names end with one of ``suffixes`` (any case), as
    sorted "/"-separated relative paths; hidden files and folders (".") are left out.

    Example:
        >>> find_files(Path("/nonexistent"), (".wav",))
        []
    """
    endings = tuple(s.lower() for s in suffixes)
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        rel_folder = Path(folder).relative_to(root)
        for file in files:
            if not file.startswith(".") and file.lower().endswith(endings):
                found.append((rel_folder / file).as_posix())
    return sorted(found)


def subfolder_labels(rel_paths: Sequence[str]) -> tuple[list[str], np.ndarray] | None:
    """Class names (sorted) and int64 codes per file from each file's first-level folder,
    when every file lies in a subfolder and there are at least two of them; else None.

    Example:
        >>> subfolder_labels(["a.wav", "dog/b.wav"]) is None
        True
    """
    folders = [rel.split("/", 1)[0] if "/" in rel else None for rel in rel_paths]
    names = sorted(set(folders) - {None})
    if None in folders or len(names) < 2:
        return None
    code = {name: i for i, name in enumerate(names)}
    return names, np.array([code[f] for f in folders], dtype=np.int64)
