"""Nearest neighbours: the one place every k-NN search of selfsup goes through.

kNN evaluation, the label-free neighbour agreement, the audit's group purity, explanations'
neighbours, anomaly scores, label propagation and typicality all ask for the ``k`` nearest
keys of each query, by cosine similarity or by Euclidean distance.

How a search is made depends on the number of keys:

* up to :data:`EXACT_KEYS` keys (or :data:`EXACT_PAIRS` query-key pairs: a few queries
  among millions), exactly: every query compared with every key, by chunks of queries, so
  memory is ``chunk x keys`` floats whatever the number of queries;
* above it, with an inverted-file index (faiss ``IndexIVFFlat``): the keys are grouped
  around ``sqrt(n)`` k-means centres (trained on a sample of :data:`TRAIN_PER_CENTRE` keys
  per centre) and each query compares itself with the keys of its :data:`PROBES` nearest
  groups only. The vectors are kept whole (no compression), so a key found is scored
  exactly; what can be missed is a true neighbour in a group not probed. A group's keys are
  scored against the queries probing it :data:`SCORES_AT_ONCE` scores at a time, however
  crowded it is (near duplicates). ``benchmarks/neighbours.py`` measures recall@20 against
  exact search on a million embeddings (BENCHMARKS.md). Exact copies among the keys, and
  among the queries, are searched once (:func:`_distinct_search`): a review written
  thousands of times is one key of the index standing for all its copies.

``SELFSUP_NEIGHBOURS=exact`` (or ``approximate``) in the environment forces one way at any
size; ``exact=`` does so per call.

Example:
    >>> import torch
    >>> keys = torch.tensor([[1.0, 0.0], [0.8, 0.2], [0.0, 1.0]])
    >>> similarity, index = cosine_topk(keys, keys, k=1, exclude_self=True)
    >>> index.flatten().tolist()
    [1, 0, 1]
    >>> distance, index = euclidean_topk(torch.tensor([[0.9, 0.0]]), keys, k=2)
    >>> index.tolist(), [round(d, 2) for d in distance[0].tolist()]
    ([[0, 1]], [0.1, 0.22])
    >>> # Forced through the index (searches above EXACT_KEYS keys take this path):
    >>> cosine_topk(keys, keys, k=1, exclude_self=True, exact=False)[1].flatten().tolist()
    [1, 0, 1]
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import torch

from selfsup.core.memory import steps_reuse_memory

#: Queries compared with all keys at once (memory: this many times the number of keys).
CHUNK = 1024
#: Scores an exact search holds at once (float32: 512 MB), whatever the chunk asked.
SCORES_AT_ONCE = 2**27
#: Searches among more keys than this go through the inverted-file index...
EXACT_KEYS = 100_000
#: ... unless the queries are so few that comparing each with every key costs less than
#: building the index: at most this many (query, key) pairs are searched exactly (ten million
#: keys: 429 queries, about ten seconds on two cores, against a minute and a half to group
#: them; one item explained among ten million was an index built for one query).
EXACT_PAIRS = 2**32
#: ... and up to :data:`EXACT_KEYS` keys, searches of more (query, key) pairs than this in
#: all go through the index too (about two minutes of exact products on two cores at 256
#: dimensions): two million reviews' distances to their 99,491 labelled ones, which k-center
#: starts from, would have taken over twenty minutes exactly.
EXACT_WORK = 2**34
#: Groups of keys each query of the index compares itself with.
PROBES = 6
#: Keys sampled per k-means centre to train the index.
TRAIN_PER_CENTRE = 39
#: Queries searched in the index at once (bounds the memory of their partial answers).
INDEX_CHUNK = 131_072
#: Rows compared with the index's centres at once (a million keys' 1,000 centres: 64 MB).
CENTRES_AT_ONCE = 16_384


def use_exact(keys: int, exact: bool | None = None, queries: int | None = None) -> bool:
    """Whether a search of ``queries`` queries among ``keys`` keys is exact: ``exact`` when
    given, else ``SELFSUP_NEIGHBOURS`` (``exact`` or ``approximate``) when set, else up to
    :data:`EXACT_KEYS` keys (and :data:`EXACT_WORK` pairs) or up to :data:`EXACT_PAIRS`
    (query, key) pairs.

    Example:
        >>> use_exact(1000), use_exact(10_000_000), use_exact(10_000_000, exact=True)
        (True, False, True)
        >>> use_exact(10_000_000, queries=1), use_exact(10_000_000, queries=100_000)
        (True, False)
        >>> use_exact(99_491, queries=100_000), use_exact(99_491, queries=2_000_000)
        (True, False)
    """
    if exact is not None:
        return exact
    forced = os.environ.get("SELFSUP_NEIGHBOURS", "").strip().lower()
    if forced in ("exact", "approximate"):
        return forced == "exact"
    if forced:
        raise ValueError(f"SELFSUP_NEIGHBOURS must be exact or approximate, got {forced!r}")
    pairs = None if queries is None else queries * keys
    if pairs is not None and pairs <= EXACT_PAIRS:
        return True
    return keys <= EXACT_KEYS and (pairs is None or pairs <= EXACT_WORK)


def _rows_of(x: torch.Tensor, rows: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of ``x``, or of ``x[rows]`` without copying the rest of it.

    Example:
        >>> x = torch.arange(6.0).reshape(3, 2)
        >>> _rows_of(x, None, 1, 3).tolist(), _rows_of(x, torch.tensor([2, 0]), 0, 1).tolist()
        ([[2.0, 3.0], [4.0, 5.0]], [[4.0, 5.0]])
    """
    return x[start:stop] if rows is None else x.index_select(0, rows[start:stop])


def _nearest_groups(
    x: torch.Tensor,
    centres: torch.Tensor,
    probes: int,
    cosine: bool,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``probes`` centres nearest to each row of ``x`` (of ``x[rows]``), nearest first
    ``(n, probes)``."""
    out = []
    for start in range(0, len(x) if rows is None else len(rows), CENTRES_AT_ONCE):
        block = _rows_of(x, rows, start, start + CENTRES_AT_ONCE)
        scores = block @ centres.T if cosine else torch.cdist(block, centres)
        out.append(scores.topk(probes, dim=1, largest=cosine).indices)
    return torch.cat(out)


#: The index of the last keys searched: their digest, centres, members and group starts
#: (a few MB for a million keys; a detector scores its calibration and its new items with it).
_BUILT: list = []


def _digest(keys: torch.Tensor, cosine: bool, rows: torch.Tensor | None = None) -> bytes:
    """A digest of the keys' values and of which ``rows`` are searched (BLAKE2b, about a
    second per GB)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tuple(keys.shape)} {cosine} {PROBES} {rows is None}".encode())
    h.update(memoryview(keys.contiguous().numpy()).cast("B"))
    if rows is not None:
        h.update(memoryview(rows.contiguous().numpy()).cast("B"))
    return h.digest()


def _centres(
    keys: torch.Tensor, count: int, cosine: bool, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """``count`` k-means centres of a sample of the keys (of ``keys[rows]``; faiss),
    seeded."""
    import faiss  # here: only large searches need it

    faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
    n, d = (keys.shape[0] if rows is None else len(rows)), keys.shape[1]
    sample = np.random.default_rng(0).choice(n, min(n, TRAIN_PER_CENTRE * count), replace=False)
    kmeans = faiss.Kmeans(d, count, niter=20, seed=0, spherical=cosine,
                          max_points_per_centroid=TRAIN_PER_CENTRE)  # fmt: skip
    picked = torch.from_numpy(np.sort(sample))
    points = keys[picked if rows is None else rows[picked]]
    if cosine:  # a sample's copy: the keys themselves are never normalized
        points = points / torch.linalg.vector_norm(points, dim=1, keepdim=True).clamp_min(1e-12)
    kmeans.train(np.ascontiguousarray(points.numpy()))
    return torch.from_numpy(kmeans.centroids.copy())


def _buckets(labels: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions sorted by their label in ``[0, count)``, and where each label's run starts:
    the positions labelled ``g`` are ``order[starts[g] : starts[g + 1]]``."""
    starts = torch.zeros(count + 1, dtype=torch.long)
    starts[1:] = torch.bincount(labels, minlength=count).cumsum(0)
    return torch.argsort(labels, stable=True), starts


def _index_search(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    cosine: bool,
    key_scale: torch.Tensor | None = None,
    key_rows: torch.Tensor | None = None,
    query_rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best keys of each query from an inverted-file index of ``keys``;
    similarities (cosine) or distances, and indices, ``-1`` where fewer were found.

    With ``key_rows`` (``query_rows``) the keys (queries) are ``keys[key_rows]``
    (``queries[query_rows]``). Indices and ``key_scale`` then count among those rows. Keys
    and queries are read a group's at a time, where they lie, never copied out whole: the
    distinct rows of 860,000 keys were a 1.8 GB copy, and each block of 131,072 queries a
    268 MB one (at 512 dimensions).

    The keys are grouped around k-means centres (faiss's k-means); each query probes the
    groups of its :data:`PROBES` nearest centres. The search runs group by group: all the
    queries that probe a group are compared with its keys as one matrix product (scored
    exactly, at the speed of a matrix product rather than of a scan query by query), and
    each query keeps the best ``k`` of all it was compared with. With ``key_scale`` (cosine:
    one over each key's norm) the products are scaled per key; a query's own norm changes
    neither its groups nor the order of its keys, so it is left to the caller. Blocks of
    queries reuse the memory of the blocks before them (``steps_reuse_memory``: anomaly
    scores of a million reviews' embeddings in 51.0 s where glibc's mappings took 56.0 s,
    page faults 1.1 million against 3.9, the same peak).
    """
    n = len(keys) if key_rows is None else len(key_rows)
    queried = len(queries) if query_rows is None else len(query_rows)
    count = max(1, min(round(math.sqrt(n)), n // TRAIN_PER_CENTRE))
    probes = min(PROBES, count)
    same = queries is keys and query_rows is key_rows
    digest = _digest(keys, cosine, key_rows)
    probed_all = None
    if _BUILT and _BUILT[0] == digest:  # the same keys as the last search (anomaly scores)
        centres, members, starts = _BUILT[1:]
    else:
        centres = _centres(keys, count, cosine, key_rows)
        probed_all = _nearest_groups(queries, centres, probes, cosine, query_rows) if same else None
        group = (
            probed_all[:, 0] if same else _nearest_groups(keys, centres, 1, cosine, key_rows)[:, 0]
        )
        members, starts = _buckets(group, count)  # the keys of group g: members[starts[g]:]
        _BUILT[:] = [digest, centres, members, starts]
    worst = -torch.inf if cosine else torch.inf
    values, indices = [], []
    with steps_reuse_memory() as memory:  # a block's scores reuse the last block's memory
        for begin in range(0, queried, INDEX_CHUNK):
            end = min(queried, begin + INDEX_CHUNK)
            # The block's queries, read a group's at a time (no copy of the block).
            block_rows = torch.arange(begin, end) if query_rows is None else query_rows[begin:end]
            probed = (
                probed_all[begin:end]
                if probed_all is not None
                else _nearest_groups(queries, centres, probes, cosine, block_rows)
            )
            # The best k of each (query, probed group) pair, then of each query.
            found = torch.full((end - begin, probes, k), worst)
            where = torch.full((end - begin, probes, k), -1, dtype=torch.long)
            pairs, seen = _buckets(probed.flatten(), count)
            for group in torch.nonzero(seen[1:] > seen[:-1]).flatten().tolist():
                ids = members[starts[group] : starts[group + 1]]
                if not len(ids):
                    continue
                group_keys = keys.index_select(0, ids if key_rows is None else key_rows[ids])
                scale = None if key_scale is None else key_scale.index_select(0, ids)[None, :]
                probing = pairs[seen[group] : seen[group + 1]]
                # A crowded group (a dense region of the keys) is compared with its queries a
                # part at a time: 13,000 queries of a group of 47,803 keys were 2.5 GB of scores.
                at_once = max(1, SCORES_AT_ONCE // len(ids))
                for first in range(0, len(probing), at_once):
                    pair = probing[first : first + at_once]
                    rows, slot = pair // probes, pair % probes
                    part = queries.index_select(0, block_rows[rows])
                    scores = part @ group_keys.T if cosine else torch.cdist(part, group_keys)
                    if scale is not None:
                        scores *= scale
                    top = scores.topk(min(k, len(ids)), dim=1, largest=cosine)
                    found[rows, slot, : top.values.shape[1]] = top.values
                    where[rows, slot, : top.values.shape[1]] = ids[top.indices]
            best = found.flatten(1).topk(k, dim=1, largest=cosine)
            values.append(best.values)
            indices.append(where.flatten(1).gather(1, best.indices))
            memory.after_step()
    return torch.cat(values), torch.cat(indices)


#: Rows hashed at once to find exact copies (bounds the int64 copy a hash is made from).
HASH_ROWS = 16_384
#: Candidate answers expanded at once from copies (bounds that step's memory to about 400 MB).
EXPANDED_AT_ONCE = 2**24


def _copies(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Where rows of ``x`` are exact copies of each other: the first row of each distinct
    value and, for every row, which distinct value it is (``x[first][inverse]`` equals
    ``x``); None when every row is distinct.

    Rows are hashed by their bits (a multiply-add of each 32-bit word with a fixed odd
    64-bit number, wrapping), the hashes sorted, and every row checked against the first of
    its hash: rows that only share a hash (one chance in 2^64 a pair) are kept apart by
    giving up (None). ``0.0`` and ``-0.0`` count as different values (fewer copies found,
    never a wrong one).

    Example:
        >>> first, inverse = _copies(torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]))
        >>> first.tolist(), inverse.tolist()
        ([0, 1], [0, 1, 0])
        >>> _copies(torch.eye(3)) is None
        True
    """
    n, d = x.shape
    if n < 2:
        return None
    words = x.contiguous().view(torch.int32).numpy()
    weights = np.random.default_rng(0).integers(1, 2**63, size=d, dtype=np.uint64) | np.uint64(1)
    hashes = np.empty(n, np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, n, HASH_ROWS):
            block = words[start : start + HASH_ROWS].astype(np.int64).view(np.uint64)
            hashes[start : start + HASH_ROWS] = (block * weights).sum(axis=1, dtype=np.uint64)
    unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    if len(unique) == n:
        return None
    order = np.argsort(first)  # distinct values in the order they first appear
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    first_t = torch.from_numpy(first[order])
    inverse_t = torch.from_numpy(rank[inverse.reshape(-1)])
    for start in range(0, n, HASH_ROWS):
        block = x[start : start + HASH_ROWS]
        if not torch.equal(block, x.index_select(0, first_t[inverse_t[start : start + HASH_ROWS]])):
            return None
    return first_t, inverse_t


def _expand_copies(
    values: torch.Tensor,
    found: torch.Tensor,
    members: torch.Tensor,
    starts: torch.Tensor,
    k: int,
    worst: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Answers among distinct keys turned into the best ``k`` among all keys: each distinct
    key found stands for all its copies (``members[starts[u]:starts[u + 1]]``, the same
    score), in the order found; ``-1`` and ``worst`` where fewer than ``k`` are known.

    Example:
        >>> members, starts = torch.tensor([0, 2, 1]), torch.tensor([0, 2, 3])  # 0 = 2
        >>> _expand_copies(torch.tensor([[0.9, 0.5]]), torch.tensor([[0, 1]]), members,
        ...                starts, 3, float("-inf"))[1].tolist()
        [[0, 2, 1]]
    """
    counts = (starts[1:] - starts[:-1]).clamp_max(k)
    width = int(counts.max())
    # Each distinct key's first copies (at most k), padded with -1: (distinct, width).
    slot = torch.arange(width)
    table = torch.where(
        slot[None, :] < counts[:, None],
        members[(starts[:-1, None] + slot[None, :]).clamp_max(len(members) - 1)],
        -1,
    )
    out_values, out_indices = [], []
    rows = max(1, EXPANDED_AT_ONCE // (found.shape[1] * width))
    for begin in range(0, len(found), rows):
        ids = found[begin : begin + rows]
        candidates = torch.where(ids[:, :, None] >= 0, table[ids.clamp_min(0)], -1).flatten(1)
        scores = values[begin : begin + rows, :, None].expand(-1, -1, width).flatten(1)
        # The first k real candidates of each row, in order (a stable sort of "missing").
        order = torch.argsort((candidates < 0).to(torch.int8), dim=1, stable=True)[:, :k]
        picked = candidates.gather(1, order)
        out_indices.append(picked)
        out_values.append(torch.where(picked >= 0, scores.gather(1, order), worst))
    return torch.cat(out_values), torch.cat(out_indices)


def _distinct_search(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    cosine: bool,
    key_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_index_search` with exact copies among the keys and among the queries searched
    once, at the cost of the distinct rows: a key found stands for all its copies (its
    score theirs), a query's answers are those of its first copy. A third of two million
    reviews were copies of a few popular ones, and every query near them compared itself
    with each copy (``benchmarks/reviews.py``: their anomaly scores took 199.6 s, now 112.2).

    The index is built on the distinct keys, so its groups, and which true neighbours it
    misses, are not those of an index of all keys; its answers are as good (there: 77.0% of
    2,000 scores within 1e-4 of exact search's, 75.6% with an index of all keys). The
    distinct rows are read where they lie, a group or a block at a time: copied out whole,
    the distinct 860,000 of ``benchmarks/neighbours.py``'s kNN keys (a few copies among
    them) held 1.8 GB more than an index of all keys."""
    key_copies = _copies(keys)
    same = queries is keys
    query_copies = key_copies if same else _copies(queries)
    if key_copies is None and query_copies is None:
        return _index_search(queries, keys, k, cosine, key_scale)
    key_rows = None if key_copies is None else key_copies[0]
    query_rows = key_rows if same else (None if query_copies is None else query_copies[0])
    if key_rows is not None and key_scale is not None:
        key_scale = key_scale.index_select(0, key_rows)
    distinct = len(keys) if key_rows is None else len(key_rows)
    values, found = _index_search(
        queries, keys, min(k, distinct), cosine, key_scale, key_rows, query_rows
    )
    if key_copies is not None:
        members, starts = _buckets(key_copies[1], distinct)
        values, found = _expand_copies(
            values, found, members, starts, k, -torch.inf if cosine else torch.inf
        )
    if query_copies is not None:
        values, found = values[query_copies[1]], found[query_copies[1]]
    return values, found


def _approximate(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    score: str,
    exclude_self: bool,
    allowed: torch.Tensor | None,
    chunk: int,
    key_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    cosine = score == "cosine"
    wanted = k + int(exclude_self)
    if allowed is None:  # the keys themselves (no copy; queries that are the keys stay so)
        values, indices = _distinct_search(queries, keys, min(wanted, len(keys)), cosine, key_scale)
    else:
        ids = torch.nonzero(allowed).flatten()
        scale = None if key_scale is None else key_scale[ids]
        values, found = _distinct_search(queries, keys[ids], min(wanted, len(ids)), cosine, scale)
        indices = torch.where(found >= 0, ids[found.clamp_min(0)], -1)
    if exclude_self:  # drop each query's own key, or its last answer when it is not found
        own = indices == torch.arange(len(queries))[:, None]
        if indices.shape[1] > k:
            own[~own.any(dim=1), -1] = True
            values = values[~own].reshape(len(queries), k)
            indices = indices[~own].reshape(len(queries), k)
        else:  # no room for one more answer: a row that found itself is searched exactly
            indices[own] = -1
    short = (indices < 0).any(dim=1)
    if short.any():  # a query whose probed groups hold fewer than k keys: searched exactly
        rows = torch.nonzero(short).flatten()
        if exclude_self:
            # Its own key must still be left out: mask it among the allowed keys per row.
            for row in rows.tolist():
                mask = torch.ones(len(keys), dtype=torch.bool) if allowed is None else allowed
                mask = mask.clone()
                mask[row] = False
                v, i = _exact(queries[row : row + 1], keys, k, score, False, mask, chunk, key_scale)
                values[row], indices[row] = v[0], i[0]
        else:
            v, i = _exact(queries[rows], keys, k, score, False, allowed, chunk, key_scale)
            values[rows], indices[rows] = v, i
    return values, indices


def _search(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    score: str,
    exclude_self: bool,
    allowed: torch.Tensor | None,
    chunk: int,
    exact: bool | None,
    key_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if exclude_self and len(queries) != len(keys):
        raise ValueError("exclude_self needs the queries to be the keys")
    searched = len(keys) if allowed is None else int(allowed.sum())
    available = min(len(keys) - int(exclude_self), searched)
    if not 1 <= k <= available:
        raise ValueError(f"k must be in [1, {available}] (the keys available), got {k}")
    if not use_exact(searched, exact, len(queries)):
        return _approximate(queries, keys, k, score, exclude_self, allowed, chunk, key_scale)
    return _exact(queries, keys, k, score, exclude_self, allowed, chunk, key_scale)


def _exact(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    score: str,
    exclude_self: bool,
    allowed: torch.Tensor | None,
    chunk: int,
    key_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    largest = score == "cosine"
    worst = -float("inf") if largest else float("inf")
    chunk = max(1, min(chunk, SCORES_AT_ONCE // max(1, len(keys))))  # at most 512 MB of scores
    values, indices = [], []
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk]
        scores = block @ keys.T if largest else torch.cdist(block, keys)
        if key_scale is not None:
            scores *= key_scale[None, :]
        if exclude_self:
            rows = torch.arange(len(block))
            scores[rows, rows + start] = worst  # an item is not its own neighbour
        if allowed is not None:
            scores[:, ~allowed] = worst
        top = scores.topk(k, dim=1, largest=largest)
        values.append(top.values)
        indices.append(top.indices)
    return torch.cat(values), torch.cat(indices)


def _inverse(norms: torch.Tensor) -> torch.Tensor:
    """One over each norm (a zero row's: 0, so its similarities are 0, as for a zero row of
    :func:`unit_rows`)."""
    return torch.where(norms > 0, 1 / norms.clamp_min(1e-12), torch.zeros_like(norms))


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 with rows of norm 1: ``x`` itself when they are already (no copy of
    a million embeddings normalized by the caller), else a normalized copy.

    Example:
        >>> x = torch.tensor([[3.0, 4.0]])
        >>> unit_rows(x).tolist(), unit_rows(unit_rows(x)) is not x
        ([[0.6000000238418579, 0.800000011920929]], True)
    """
    x = x.float()
    norms = torch.linalg.vector_norm(x, dim=1)
    if len(x) and bool(((norms - 1).abs() <= 1e-6).all()):
        return x
    return x / norms.clamp_min(1e-12)[:, None]


def cosine_topk(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    allowed: torch.Tensor | None = None,
    chunk: int = CHUNK,
    exact: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` keys most cosine-similar to each query: similarities and indices ``(n, k)``,
    most similar first.

    Args:
        queries: ``(n, d)`` embeddings.
        keys: ``(m, d)`` embeddings.
        k: neighbours per query, at most the keys available.
        exclude_self: the queries are the keys; row ``i`` never returns key ``i``.
        allowed: optional boolean ``(m,)``; keys where it is False are never returned.
        chunk: queries compared at once (exact search).
        exact: exact search (True) or the index (False) whatever the size; by default as
            :func:`use_exact` decides.

    Raises:
        ValueError: ``k`` out of range, or ``exclude_self`` with other queries than keys.
    """
    # No normalized copies (two of a million embeddings are 4 GB): the products are scaled
    # by one over each key's norm, and the similarities found by one over each query's.
    q = queries.float()
    z = q if queries is keys else keys.float()
    query_norms = torch.linalg.vector_norm(q, dim=1)
    key_norms = query_norms if z is q else torch.linalg.vector_norm(z, dim=1)
    unit = bool(((key_norms - 1).abs() <= 1e-6).all())
    values, indices = _search(
        q, z, k, "cosine", exclude_self, allowed, chunk, exact,
        None if unit else _inverse(key_norms),
    )  # fmt: skip
    return values * _inverse(query_norms)[:, None], indices


def euclidean_topk(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    allowed: torch.Tensor | None = None,
    chunk: int = CHUNK,
    exact: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` keys nearest to each query in Euclidean distance: distances and indices
    ``(n, k)``, nearest first. Arguments as :func:`cosine_topk`."""
    return _search(
        queries.float(), keys.float(), k, "euclidean", exclude_self, allowed, chunk, exact
    )
