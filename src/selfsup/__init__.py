"""selfsup: self-supervised learning from raw, unlabeled data, proven with few labels.

``pretrain``, ``load``, ``Run`` and ``AdaptedModel`` are imported on first use, so that lifting
one loss or backbone out of the package does not import the training engine.

Example:
    >>> import selfsup
    >>> run = selfsup.pretrain("digits", method="simclr", epochs=1, show_progress=False,
    ...                        backbone_options={"width": 8})  # doctest: +SKIP
    >>> run.embed("digits:test").shape  # doctest: +SKIP
    (360, 64)
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["AdaptedModel", "Run", "SelfSupervisedEncoder", "__version__", "load", "pretrain"]


def __getattr__(name: str) -> Any:
    if name in ("Run", "load", "pretrain"):
        from selfsup import run

        return getattr(run, name)
    if name == "AdaptedModel":
        from selfsup.tools.adapt import AdaptedModel

        return AdaptedModel
    if name == "SelfSupervisedEncoder":
        from selfsup.estimator import SelfSupervisedEncoder

        return SelfSupervisedEncoder
    raise AttributeError(f"module 'selfsup' has no attribute {name!r}")
