"""The inverted-file index behind large neighbour searches: what it returns is scored exactly,
finds most true neighbours, honours ``exclude_self`` and ``allowed``, and is taken above
``EXACT_KEYS`` keys (or when forced)."""

import numpy as np
import pytest
import torch

from selfsup.core import neighbours
from selfsup.core.neighbours import cosine_topk, euclidean_topk, use_exact


def clustered(n: int = 6000, d: int = 16, centres: int = 30, seed: int = 0) -> torch.Tensor:
    """Points around random centres, as embeddings of a real encoder cluster."""
    g = torch.Generator().manual_seed(seed)
    middle = torch.randn(centres, d, generator=g) * 3
    return middle[torch.randint(centres, (n,), generator=g)] + torch.randn(n, d, generator=g)


def recall(found: torch.Tensor, truth: torch.Tensor) -> float:
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth, strict=True))
    return hits / truth.numel()


@pytest.mark.parametrize("search", [cosine_topk, euclidean_topk])
def test_the_index_finds_most_true_neighbours_and_scores_them_exactly(search) -> None:
    keys, queries = clustered(), clustered(500, seed=1)
    exact_scores, truth = search(queries, keys, 10, exact=True)
    scores, found = search(queries, keys, 10, exact=False)
    assert found.shape == truth.shape == (500, 10)
    assert recall(found, truth) >= 0.9
    # Each key found carries its exact score: recomputed here from the vectors.
    if search is cosine_topk:
        direct = torch.nn.functional.normalize(queries, dim=1)[:, None, :]
        expected = (direct * torch.nn.functional.normalize(keys, dim=1)[found]).sum(-1)
    else:
        expected = (queries[:, None, :] - keys[found]).norm(dim=-1)
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-4)
    # Best first, and never better than the exact search's answer.
    best_first = (
        scores[:, :-1] >= scores[:, 1:]
        if search is cosine_topk
        else scores[:, :-1] <= scores[:, 1:]
    )
    assert best_first.all()
    if search is cosine_topk:
        assert (scores[:, 0] <= exact_scores[:, 0] + 1e-5).all()
    else:
        assert (scores[:, 0] >= exact_scores[:, 0] - 1e-5).all()


def test_the_index_leaves_each_item_out_of_its_own_neighbours() -> None:
    keys = clustered(3000)
    keys[1] = keys[0]  # a duplicate: item 0's nearest other item is item 1 at distance 0
    distances, found = euclidean_topk(keys, keys, 5, exclude_self=True, exact=False)
    assert found.shape == (3000, 5)
    assert not (found == torch.arange(3000)[:, None]).any()
    assert found[0, 0] == 1 and distances[0, 0] < 1e-5
    truth = euclidean_topk(keys, keys, 5, exclude_self=True, exact=True)[1]
    assert recall(found, truth) >= 0.9


def test_the_index_returns_allowed_keys_only() -> None:
    keys = clustered(4000)
    allowed = torch.rand(4000, generator=torch.Generator().manual_seed(3)) < 0.3
    _, found = cosine_topk(keys[:200], keys, 8, allowed=allowed, exact=False)
    assert allowed[found].all()
    truth = cosine_topk(keys[:200], keys, 8, allowed=allowed, exact=True)[1]
    assert recall(found, truth) >= 0.9


def test_rows_the_index_cannot_fill_are_searched_exactly(monkeypatch) -> None:
    """As many allowed keys as neighbours asked, with exclude_self: the index has no room to
    ask for one more answer, so every answer must be right without it."""
    keys = clustered(500)
    allowed = torch.zeros(500, dtype=torch.bool)
    allowed[:3] = True
    got = euclidean_topk(keys, keys, 3, exclude_self=True, allowed=allowed, exact=False)
    want = euclidean_topk(keys, keys, 3, exclude_self=True, allowed=allowed, exact=True)
    # Items 3.. are not among the allowed keys: their three neighbours are keys 0, 1 and 2.
    assert torch.equal(got[1][3:], want[1][3:])
    torch.testing.assert_close(got[0][3:], want[0][3:])
    # A query whose probed groups hold fewer keys than asked (-1 answers) is searched exactly.
    real = neighbours._index_search

    def starved(queries, keys, k, cosine, key_scale=None):
        values, indices = real(queries, keys, k, cosine, key_scale)
        indices[::7, -1] = -1
        return values, indices

    monkeypatch.setattr(neighbours, "_index_search", starved)
    keys = clustered(2000)
    got = cosine_topk(keys, keys, 4, exclude_self=True, exact=False)[1]
    want = cosine_topk(keys, keys, 4, exclude_self=True, exact=True)[1]
    assert (got >= 0).all() and not (got == torch.arange(2000)[:, None]).any()
    assert torch.equal(got[::7], want[::7])


def test_searches_above_the_exact_limit_go_through_the_index(monkeypatch) -> None:
    calls = []
    real = neighbours._index_search

    def spy(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(neighbours, "_index_search", spy)
    monkeypatch.setattr(neighbours, "EXACT_KEYS", 1000)
    monkeypatch.setattr(neighbours, "EXACT_PAIRS", 0)  # however few the queries
    keys = clustered(2000)
    cosine_topk(keys[:10], keys[:1000], 3)
    assert calls == []
    cosine_topk(keys[:10], keys, 3)
    assert calls == [2000]
    allowed = torch.arange(2000) < 900  # the keys searched, not all the keys, decide
    cosine_topk(keys[:10], keys, 3, allowed=allowed)
    assert calls == [2000]


def test_the_environment_forces_one_way(monkeypatch) -> None:
    monkeypatch.setenv("SELFSUP_NEIGHBOURS", "exact")
    assert use_exact(10**9)
    monkeypatch.setenv("SELFSUP_NEIGHBOURS", "approximate")
    assert not use_exact(10)
    monkeypatch.setenv("SELFSUP_NEIGHBOURS", "fast")
    with pytest.raises(ValueError, match="SELFSUP_NEIGHBOURS must be exact or approximate"):
        use_exact(10)


def test_the_index_of_the_same_keys_is_built_once(monkeypatch) -> None:
    """A detector scores its calibration items, then new items, against the same keys: the
    k-means groups are built once; keys that differ in one value are indexed anew."""
    built = []
    real = neighbours._centres
    monkeypatch.setattr(neighbours, "_centres", lambda *args: built.append(1) or real(*args))
    monkeypatch.setattr(neighbours, "_BUILT", [])
    keys = clustered(3000)
    first = euclidean_topk(keys[:100], keys, 5, exact=False)
    euclidean_topk(keys[100:200], keys, 5, exact=False)
    assert len(built) == 1
    again = euclidean_topk(keys[:100], keys.clone(), 5, exact=False)
    assert len(built) == 1 and torch.equal(again[1], first[1])
    changed = keys.clone()
    changed[0, 0] += 1.0
    euclidean_topk(keys[:100], changed, 5, exact=False)
    assert len(built) == 2


@pytest.mark.parametrize("exact", [True, False])
def test_cosine_of_rows_of_any_norm_without_normalized_copies(exact) -> None:
    """Rows of any norm (a zero row too) give the similarities of their unit rows: the search
    scales products by norms instead of normalizing copies of a million embeddings."""
    keys = clustered(3000) * torch.rand(3000, 1) * 10
    keys[5] = 0.0
    queries = clustered(300, seed=1) * 7
    similarity, index = cosine_topk(queries, keys, 10, exact=exact)
    unit = neighbours.unit_rows
    want = unit(queries) @ unit(keys).T
    torch.testing.assert_close(similarity, want.gather(1, index), rtol=0, atol=1e-5)
    if exact:
        assert torch.equal(index, want.topk(10, dim=1).indices)
    own, index = cosine_topk(keys, keys, 3, exclude_self=True, exact=exact)
    assert not (index == torch.arange(3000)[:, None]).any()
    assert torch.equal(own[5], torch.zeros(3))  # a zero row is similar to nothing


def test_a_few_queries_among_many_keys_are_searched_exactly(monkeypatch) -> None:
    """One item explained among ten million: comparing it with every key costs less than
    building the index; more queries than EXACT_PAIRS allows go through the index."""
    calls = []
    real = neighbours._index_search
    monkeypatch.setattr(neighbours, "_index_search",
                        lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))  # fmt: skip
    monkeypatch.setattr(neighbours, "EXACT_KEYS", 1000)
    monkeypatch.setattr(neighbours, "EXACT_PAIRS", 20 * 2000)
    keys = clustered(2000)
    nan_keys = keys.clone()
    nan_keys[5] = float("nan")
    allowed = ~torch.isnan(nan_keys).any(dim=1)
    _, found = cosine_topk(keys[:20], nan_keys, 3, allowed=allowed)
    assert calls == [] and 5 not in found  # exact, the unreadable key never found
    exact = cosine_topk(keys[:20], keys, 3, exact=True)[1]
    assert torch.equal(cosine_topk(keys[:20], keys, 3)[1], exact)
    cosine_topk(keys[:21], keys, 3)
    assert calls == [21]


@pytest.mark.parametrize("cosine", [True, False])
def test_a_crowded_group_is_scored_a_part_at_a_time(monkeypatch, cosine) -> None:
    """Near duplicates put most keys in one group: its queries times its keys were scored
    as one matrix (2.5 GB for a group of 47,803 among a million reviews' embeddings)."""
    from selfsup.core.memory import PeakTracker

    g = torch.Generator().manual_seed(0)
    blob = torch.randn(1, 8, generator=g) * 4 + 1e-4 * torch.randn(2400, 8, generator=g)
    keys = torch.cat([blob, clustered(600, 8)])
    monkeypatch.setattr(neighbours, "_BUILT", [])
    whole = neighbours._index_search(keys, keys, 5, cosine)
    monkeypatch.setattr(neighbours, "SCORES_AT_ONCE", 4096)
    with PeakTracker([keys]) as tracker:
        parts = neighbours._index_search(keys, keys, 5, cosine)  # the index built is reused
    assert torch.equal(parts[1], whole[1]) and torch.allclose(parts[0], whole[0])
    # Each (query, group) pair's best 5 (3,000 x 6 x 5 values and indices) and one part of
    # scores at a time, not the crowded group's thousands of queries times its keys.
    assert tracker.peak < 3000 * 6 * 5 * 12 * 2 + 4096 * 4 * 8


def with_copies(n: int = 3000, seed: int = 0) -> torch.Tensor:
    """Embeddings where a third of the rows are copies of a few popular ones (reviews that
    are one popular sentence), shuffled among the others."""
    g = torch.Generator().manual_seed(seed)
    base = clustered(n, seed=seed)
    popular = torch.randint(n, (5,), generator=g)
    rows = torch.randperm(n, generator=g)[: n // 3]
    base[rows] = base[popular[torch.randint(5, (len(rows),), generator=g)]]
    return base


@pytest.mark.parametrize("search", [cosine_topk, euclidean_topk])
def test_copies_among_the_keys_are_searched_once_with_the_same_answers(monkeypatch, search):
    """A third of two million reviews were copies of a few: the index searches the distinct
    rows, and each copy found stands for all of them."""
    keys = with_copies()
    distinct = len(torch.unique(keys, dim=0))
    searched = []
    real = neighbours._index_search

    def spy(queries, keys, k, cosine, key_scale=None, key_rows=None, query_rows=None):
        assert len(keys) == len(with_copies())  # the distinct rows read where they lie
        rows = lambda x, r: len(x) if r is None else len(r)  # noqa: E731
        searched.append((rows(queries, query_rows), rows(keys, key_rows), k))
        return real(queries, keys, k, cosine, key_scale, key_rows, query_rows)

    monkeypatch.setattr(neighbours, "_index_search", spy)
    scores, found = search(keys, keys, 8, exclude_self=True, exact=False)
    assert searched == [(distinct, distinct, 9)]
    want_scores, want = search(keys, keys, 8, exclude_self=True, exact=True)
    assert not (found == torch.arange(len(keys))[:, None]).any() and (found >= 0).all()
    # A copy's neighbours are its other copies first, scored as equal (cosine 1, distance 0).
    copies = (keys[:, None, :] == keys[found]).all(-1)
    count = (keys[:, None, :] == keys[None, :, :]).all(-1).sum(1) - 1
    assert torch.equal(copies.sum(1), count.clamp_max(8))
    # Equal scores may come in another order than the exact search's: compare scores.
    torch.testing.assert_close(scores[count >= 8], want_scores[count >= 8], atol=1e-5, rtol=0)
    assert recall(found[count == 0], want[count == 0]) >= 0.9
    best_first = (
        scores[:, :-1] >= scores[:, 1:]
        if search is cosine_topk
        else (scores[:, :-1] <= scores[:, 1:])
    )
    assert best_first.all()


@pytest.mark.parametrize("cosine", [True, False])
def test_the_distinct_rows_are_searched_where_they_lie(monkeypatch, cosine) -> None:
    """A few copies among many keys made the search copy every distinct key first: 1.8 GB
    more for the kNN keys of ``benchmarks/neighbours.py`` (860,000 x 512, a few copies)."""
    from selfsup.core.memory import PeakTracker

    keys = clustered(20_000, 256)
    keys[1::1000] = keys[::1000]  # 20 rows copied once each
    queries = torch.cat([keys[:3000], keys[:10]])  # 10 queries copied too
    monkeypatch.setattr(neighbours, "INDEX_CHUNK", 2048)
    monkeypatch.setattr(neighbours, "HASH_ROWS", 2048)
    monkeypatch.setattr(neighbours, "CENTRES_AT_ONCE", 2048)
    for q in (keys, queries):
        monkeypatch.setattr(neighbours, "_BUILT", [])
        search = cosine_topk if cosine else euclidean_topk
        with PeakTracker([keys, queries]) as tracker:
            found = search(q, keys, 8, exact=False)[1]
        assert tracker.peak < keys.numel() * 4  # less than one copy of the keys
        truth = search(q, keys, 8, exact=True)[1]
        assert recall(found, truth) >= 0.9


def test_copies_among_queries_get_the_answers_of_their_first() -> None:
    keys, queries = clustered(), with_copies(900, seed=2)
    scores, found = cosine_topk(queries, keys, 5, exact=False)
    first = {}
    for row, value in enumerate(map(tuple, queries.tolist())):
        first.setdefault(value, row)
    firsts = torch.tensor([first[tuple(v)] for v in queries.tolist()])
    assert torch.equal(found, found[firsts]) and torch.equal(scores, scores[firsts])
    truth = cosine_topk(queries, keys, 5, exact=True)[1]
    assert recall(found, truth) >= 0.9


def test_copies_among_allowed_keys_only() -> None:
    keys = with_copies(4000)
    allowed = torch.rand(4000, generator=torch.Generator().manual_seed(3)) < 0.5
    distances, found = euclidean_topk(keys, keys, 6, exclude_self=True, allowed=allowed,
                                      exact=False)  # fmt: skip
    assert allowed[found].all() and not (found == torch.arange(4000)[:, None]).any()
    want = euclidean_topk(keys, keys, 6, exclude_self=True, allowed=allowed, exact=True)[0]
    assert (distances[:, 0] - want[:, 0]).abs().max() < 1e-4  # the nearest always found


def test_rows_that_share_a_hash_only_are_not_taken_for_copies(monkeypatch) -> None:
    """Hashes of different rows that collide (forced: every weight 1, so rows of the same
    words in another order share a hash) are checked against the rows: no copies made up."""
    x = torch.tensor([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0]])
    assert neighbours._copies(x)[1].tolist() == [0, 1, 0]
    ones = type("Rng", (), {"integers": lambda *a, **k: np.zeros(2, np.uint64)})()
    monkeypatch.setattr(neighbours.np.random, "default_rng", lambda seed: ones)
    assert neighbours._copies(x) is None
