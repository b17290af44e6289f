"""selfsup: self-supervised learning from raw, unlabeled data, proven with few labels.

Example:
    >>> import selfsup
    >>> run = selfsup.pretrain("digits", method="simclr", epochs=1, show_progress=False,
    ...                        backbone_options={"width": 8})  # doctest: +SKIP
    >>> run.embed("digits:test").shape  # doctest: +SKIP
    (360, 64)
"""

from selfsup.run import Run, load, pretrain

__version__ = "0.1.0"
__all__ = ["Run", "__version__", "load", "pretrain"]
