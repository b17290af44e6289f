"""The inverted-file index behind large neighbour searches: what it returns is scored exactly,
finds most true neighbours, honours ``exclude_self`` and ``allowed``, and is taken above
``EXACT_KEYS`` keys (or when forced)."""

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
