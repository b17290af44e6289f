"""The foundations: atomic writes leave the old file or the new one, never a part or a
temporary file; the neighbour search equals brute force whatever the chunk size."""

import numpy as np
import pytest
import torch

from selfsup.core.files import atomic_path, write_json
from selfsup.core.neighbours import cosine_topk, euclidean_topk


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    path = tmp_path / "result.json"
    write_json(path, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text('{"v": 2, "tru')  # a crash half-way through writing
        raise RuntimeError("disk full")
    assert path.read_text() == '{\n  "v": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_the_search_equals_brute_force_in_any_chunks(chunk) -> None:
    rng = np.random.default_rng(0)
    keys = torch.as_tensor(rng.normal(size=(50, 6)), dtype=torch.float32)
    queries = torch.as_tensor(rng.normal(size=(9, 6)), dtype=torch.float32)
    _, idx = cosine_topk(queries, keys, 5, chunk=chunk)
    unit = lambda x: x / x.norm(dim=1, keepdim=True)  # noqa: E731
    full = unit(queries) @ unit(keys).T
    assert torch.equal(idx, full.topk(5, dim=1).indices)
    dist, idx = euclidean_topk(keys, keys, 3, exclude_self=True, chunk=chunk)
    pairwise = torch.cdist(keys, keys).fill_diagonal_(float("inf"))
    assert torch.equal(idx, pairwise.topk(3, dim=1, largest=False).indices)
    assert torch.allclose(dist, pairwise.topk(3, dim=1, largest=False).values)
    allowed = torch.arange(50) % 2 == 0
    _, idx = cosine_topk(queries, keys, 4, allowed=allowed, chunk=chunk)
    assert bool((idx % 2 == 0).all())


def test_asking_for_more_neighbours_than_keys_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"k must be in \[1, 2\]"):
        cosine_topk(
            torch.ones(1, 2),
            torch.ones(3, 2),
            3,
            exclude_self=False,
            allowed=torch.tensor([True, True, False]),
        )
