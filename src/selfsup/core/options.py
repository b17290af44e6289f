"""Checking keyword options against what a class or function takes, before calling it, so a
typo gets one line that lists the valid names instead of a TypeError from deep inside.

Example:
    >>> def head(dim: int = 8, depth: int = 2) -> None: ...
    >>> check_options("head", head, {"dim": 4})
    >>> check_options("head", head, {"dimm": 4})
    Traceback (most recent call last):
    ...
    ValueError: unknown head options ['dimm']; valid: depth, dim
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any


def accepted_options(target: Callable[..., Any], skip: Iterable[str] = ()) -> list[str] | None:
    """The keyword names ``target`` takes (less ``skip``), or None when it takes any."""
    parameters = inspect.signature(target).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return sorted(p.name for p in parameters if p.kind in kinds and p.name not in set(skip))


def check_options(
    what: str, target: Callable[..., Any], options: dict[str, Any], skip: Iterable[str] = ()
) -> None:
    """Raise a one-line ValueError naming the unknown ``options`` and the valid ones.

    Args:
        what: how the message calls the options' owner (``simclr method``...).
        target: the class or function the options go to.
        options: the options given.
        skip: parameters the caller fills itself (not options a user sets).
    """
    valid = accepted_options(target, skip)
    if valid is None:
        return
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown {what} options {unknown}; valid: {', '.join(valid)}")
