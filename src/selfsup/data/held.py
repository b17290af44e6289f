"""What a process keeps decoded between reads: files whose parts are read one at a time but
which can only be decoded whole.

A compressed volume (``.nii.gz``) cannot be read a slice at a time, and a JPEG frame cannot
be read a tile at a time: reading each part on its own decodes the whole file again for
every part (a 300-slice CT, 300 times). :class:`HeldCache` keeps what a file decodes to, up to
a number of bytes a process, the least recently read given up first; a file that cannot be
read is remembered with its error, so that its hundreds of parts fail once. Sources whose
items are such parts read them in blocks of files that fit (:func:`selfsup.data.base.block_order`),
so each file is decoded about once an epoch by each process that reads it.

Example:
    >>> cache = HeldCache(limit=10, size=len)
    >>> cache.get("a", lambda: "x" * 6), cache.get("b", lambda: "y" * 6)
    ('xxxxxx', 'yyyyyy')
    >>> cache.oldest_first()  # 12 bytes: the least recently read given up
    ['b']
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

#: The bytes of decoded files one process keeps in each cache (each loader worker keeps its
#: own): the decompressed volumes, the decoded images cut into tiles.
CACHE_BYTES = 768 * 2**20


def file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """What names a file's contents in a cache: its absolute path, its time of last change
    and its size (a file written again is decoded again).

    Example:
        >>> file_key("/nonexistent/ct.nii.gz")
        ('/nonexistent/ct.nii.gz', 0, 0)
    """
    try:
        found = os.stat(path)
    except OSError:  # missing: decoding it says so
        return os.path.abspath(path), 0, 0
    return os.path.abspath(path), found.st_mtime_ns, found.st_size


class HeldCache(Generic[T]):
    """What files decoded to, by key, the least recently read given up first once they hold
    more than ``limit`` bytes (``size`` of each); one alone is kept whatever its size. A file
    that failed is kept with its error, raised again at each read.

    Example:
        >>> cache = HeldCache(limit=100, size=len)
        >>> def broken() -> str:
        ...     raise OSError("cut short")
        >>> for _ in range(2):
        ...     try:
        ...         cache.get("ct.nii.gz", broken)
        ...     except OSError as err:
        ...         print(err)
        cut short
        cut short
    """

    def __init__(self, limit: int = CACHE_BYTES, size: Callable[[T], int] = lambda _: 0) -> None:
        self.limit = limit
        self.size = size
        self._held: OrderedDict[Hashable, T | Exception] = OrderedDict()
        self._lock = threading.Lock()  # read-ahead threads share a process's cache

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """What ``key`` decoded to, made by ``make`` the first time (or after it was given up).

        Raises:
            Exception: what ``make`` raised, now or at an earlier read of ``key``.
        """
        with self._lock:
            found = self._held.get(key)
            if found is not None:
                self._held.move_to_end(key)
        if found is None:
            try:
                found = make()
            except Exception as err:  # kept: every part of a broken file fails alike
                found = err
            with self._lock:
                self._held[key] = found
                self._trim()
        if isinstance(found, Exception):
            raise found
        return found

    def oldest_first(self) -> list[Hashable]:
        """The keys held, the least recently read first."""
        with self._lock:
            return list(self._held)

    def held(self) -> int:
        """The bytes held."""
        with self._lock:
            return sum(self.size(v) for v in self._held.values() if not isinstance(v, Exception))

    def _trim(self) -> None:
        held = sum(self.size(v) for v in self._held.values() if not isinstance(v, Exception))
        while held > self.limit and len(self._held) > 1:
            _, dropped = self._held.popitem(last=False)
            held -= 0 if isinstance(dropped, Exception) else self.size(dropped)
