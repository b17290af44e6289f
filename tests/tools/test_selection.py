"""Choosing what to label: k-center covers, TypiClust picks centres, uncertainty the boundary."""

import numpy as np
import pandas as pd
import pytest

from selfsup.tools.selection import (
    kcenter_greedy,
    select,
    select_for_run,
    typicality,
    typiclust,
    uncertainty,
)


def _blobs(sizes=(80, 60, 40, 30, 20), spread=0.3, seed=0):
    """Gaussian blobs around orthogonal unit directions (well apart after L2 normalization)."""
    rng = np.random.default_rng(seed)
    dim = len(sizes) + 2
    centres = np.eye(dim)[: len(sizes)] * 5
    parts = [c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=True)]
    z = np.concatenate(parts)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    return z, cluster, centres


def test_kcenter_covers_every_cluster_with_as_many_picks() -> None:
    z, cluster, _ = _blobs()
    picks, distances = kcenter_greedy(z, 5)
    assert sorted(cluster[picks]) == [0, 1, 2, 3, 4]
    # Each later pick is no farther than the one before (greedy farthest-first).
    assert np.all(np.diff(distances[1:]) <= 1e-6)


def test_kcenter_starts_from_the_labelled_items() -> None:
    z, cluster, _ = _blobs()
    labelled = z[cluster < 3][::10]  # clusters 0, 1 and 2 are labelled already
    picks, _ = kcenter_greedy(z, 2, labelled)
    assert sorted(cluster[picks]) == [3, 4]


def test_typicality_is_the_inverse_mean_distance_to_the_nearest_neighbours() -> None:
    import torch

    x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    # Item 0: neighbours at 3 and 4 -> 1 / 3.5; item 1: 3 and 5 -> 1 / 4; item 2: 4, 5 -> 1 / 4.5.
    assert torch.allclose(typicality(x, neighbours=2), torch.tensor([1 / 3.5, 1 / 4, 1 / 4.5]))


def test_typiclust_picks_the_centre_of_each_cluster_largest_first() -> None:
    z, cluster, _ = _blobs()
    picks, _ = typiclust(z, 5, seed=0)
    assert list(cluster[picks]) == [0, 1, 2, 3, 4]  # largest uncovered cluster first
    for pick in picks:
        members = z[cluster == cluster[pick]]
        unit = members / np.linalg.norm(members, axis=1, keepdims=True)
        distance_to_mean = np.linalg.norm(unit - unit.mean(0), axis=1)
        mine = distance_to_mean[np.flatnonzero(cluster == cluster[pick]).tolist().index(pick)]
        assert mine <= np.quantile(distance_to_mean, 0.25)  # among the most central items


def test_typiclust_skips_clusters_already_labelled() -> None:
    z, cluster, _ = _blobs()
    picks, _ = typiclust(z, 2, labelled=z[cluster <= 2][:3], seed=0)
    assert 0 not in cluster[picks]


def test_uncertainty_picks_the_points_on_the_decision_boundary() -> None:
    rng = np.random.default_rng(0)
    labelled = np.concatenate([rng.normal(-3, 0.5, (20, 2)), rng.normal(3, 0.5, (20, 2))])
    labels = np.repeat([0, 1], 20)
    boundary = np.array([[0.0, 0.1], [0.1, -0.2], [-0.1, 0.0]])
    z = np.concatenate([rng.normal(-3, 0.5, (30, 2)), boundary, rng.normal(3, 0.5, (30, 2))])
    for measure in ("margin", "entropy"):
        picks, scores = uncertainty(z, 3, labelled, labels, measure)
        assert sorted(picks.tolist()) == [30, 31, 32], measure
        assert np.all(np.diff(scores) <= 0)


def test_select_checks_its_inputs_and_never_picks_unreadable_rows() -> None:
    z, _, _ = _blobs()
    z[3] = np.nan
    assert 3 not in select(z, len(z), "random").indices
    assert len(select(z, 10**6, "kcenter").indices) == len(z) - 1
    with pytest.raises(ValueError, match="needs labelled items"):
        select(z, 3, "uncertainty")
    with pytest.raises(ValueError, match="unknown strategy 'coreset'"):
        select(z, 3, "coreset")


def test_select_for_run_ranks_ids_and_skips_those_labelled(clusters_run, clusters_data,
                                                          tmp_path) -> None:  # fmt: skip
    train = str(clusters_data[0])
    ids_file = tmp_path / "done.csv"
    labels = np.load(clusters_data[0])["y"]
    pd.DataFrame({"id": ["0", "1", "2", "3", "4", "5"], "label": labels[:6]}).to_csv(
        ids_file, index=False
    )
    for strategy in ("kcenter", "typiclust", "uncertainty", "random"):
        table = select_for_run(clusters_run, train, 8, strategy, labeled=ids_file)
        assert list(table.columns) == ["rank", "id", "score"]
        assert list(table["rank"]) == list(range(1, 9))
        assert not set(table["id"]) & {"0", "1", "2", "3", "4", "5"}, strategy
        assert table["id"].is_unique
    bad = tmp_path / "bad.txt"
    bad.write_text("0\nnot-an-id\n")
    with pytest.raises(ValueError, match=r"bad\.txt: id 'not-an-id' is not an item"):
        select_for_run(clusters_run, train, 3, "kcenter", labeled=bad)


def test_select_reads_a_read_only_pool_and_never_picks_excluded_or_unreadable_rows(
    tmp_path, monkeypatch
) -> None:
    """A kept embeddings file mapped read-only: no strategy writes to it or copies it whole
    (they read it a block at a time: blocks of 7 rows here give the same picks as one block)."""
    import selfsup.tools.selection as selection

    z, cluster, _ = _blobs()
    z[[5, 100]] = np.nan
    np.save(tmp_path / "z.npy", z.astype(np.float32))
    pool = np.load(tmp_path / "z.npy", mmap_mode="r")
    rng = np.random.default_rng(1)
    labelled = np.concatenate(
        [rng.normal(-3, 0.5, (10, z.shape[1])), rng.normal(3, 0.5, (10, z.shape[1]))]
    )
    labels = np.repeat([0, 1], 10)
    excluded = np.flatnonzero(cluster == 1)[:20]
    whole = {}
    for block in (selection.BLOCK, 7):
        monkeypatch.setattr(selection, "BLOCK", block)
        for strategy in ("kcenter", "typiclust", "uncertainty", "random"):
            chosen = select(pool, 50, strategy, labelled, labels, excluded=excluded)
            picked = set(chosen.indices.tolist())
            assert len(picked) == 50 and not picked & {5, 100, *excluded.tolist()}, strategy
            if block == 7:
                assert chosen.indices.tolist() == whole[strategy].indices.tolist(), strategy
                np.testing.assert_allclose(chosen.scores, whole[strategy].scores, rtol=1e-5)
            whole[strategy] = chosen


def test_typiclust_above_the_kmeans_sample_fits_on_a_sample_and_still_covers(monkeypatch) -> None:
    import selfsup.tools.selection as selection

    z, cluster, _ = _blobs(sizes=(400, 300, 200, 150, 100))
    monkeypatch.setattr(selection, "KMEANS_FIT_MOST", 100)
    monkeypatch.setattr(selection, "KMEANS_PER_CLUSTER", 4)
    fitted = []
    fit = selection.KMeans.fit
    monkeypatch.setattr(
        selection.KMeans,
        "fit",
        lambda self, x, *a, **k: fitted.append(len(x)) or fit(self, x, *a, **k),
    )
    picks, _ = typiclust(z, 5, labelled=z[cluster == 4][:2], seed=0)
    assert fitted == [100]  # a sample of the 1,152 items, labelled ones among them
    assert sorted(cluster[picks]) == [0, 0, 1, 2, 3]  # cluster 4 is covered by the labels


def test_typiclust_clusters_are_capped_however_many_labels(monkeypatch) -> None:
    """As the authors' code: labels and budget together ask for one cluster each, up to the
    cap (20,002 clusters for 19,902 labelled reviews and a budget of 100 never finished)."""
    import selfsup.tools.selection as selection

    z, cluster, _ = _blobs()
    monkeypatch.setattr(selection, "TYPICLUST_MAX_CLUSTERS", 5)
    asked = []
    fit_predict = selection.KMeans.fit_predict

    def counted(self, x, *args, **kwargs):
        asked.append(self.n_clusters)
        return fit_predict(self, x, *args, **kwargs)

    monkeypatch.setattr(selection.KMeans, "fit_predict", counted)
    labelled = np.concatenate([z[cluster == c][:8] for c in range(5)])  # 8 in every blob
    picks, _ = typiclust(z, 5, labelled=labelled, seed=0)
    assert asked == [5]  # not the 45 that labels and budget ask for
    assert sorted(cluster[picks]) == [0, 1, 2, 3, 4]  # equally covered: one more in each


def test_kcenter_measures_a_large_pool_against_many_labels_through_the_index(monkeypatch) -> None:
    """Two million reviews against 99,491 labelled ones took k-center over twenty minutes
    of exact distances: past EXACT_WORK pairs the one neighbour index answers."""
    from selfsup.core import neighbours

    z, cluster, _ = _blobs(sizes=(400, 300, 200, 150, 100))
    labelled = z[cluster <= 2][::10]
    exact_picks, _ = kcenter_greedy(z, 4, labelled=labelled)
    searched = []
    index_search = neighbours._index_search

    def spy(queries, keys, k, cosine, key_scale=None):
        searched.append(len(keys))
        return index_search(queries, keys, k, cosine, key_scale)

    monkeypatch.setattr(neighbours, "_index_search", spy)
    monkeypatch.setattr(neighbours, "EXACT_PAIRS", 0)
    monkeypatch.setattr(neighbours, "EXACT_WORK", len(z) * len(labelled) - 1)
    picks, _ = kcenter_greedy(z, 4, labelled=labelled)
    assert searched == [len(labelled)]  # the pool's one block, through the index
    assert sorted(cluster[picks[:2]]) == [3, 4] == sorted(cluster[exact_picks[:2]])
