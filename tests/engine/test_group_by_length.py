"""Training batches grouped by length: each step's texts are of like length (they pad less),
every item is still seen once an epoch in a seeded order, and runs saved before the option
resume with the plain shuffled batches they started with."""

import numpy as np
import pytest
import yaml

import selfsup
import selfsup.engine.train as train_module
from selfsup.config import ConfigError
from selfsup.data.base import LENGTH_GROUP_STEPS
from selfsup.data.text import TextSource
from selfsup.engine.train import epoch_batches


def _mixed_lengths(n: int, seed: int = 0) -> TextSource:
    rng = np.random.default_rng(seed)
    return TextSource(["w " * int(k) for k in rng.integers(1, 60, n)])


def _padded(source: TextSource, batches: list[np.ndarray]) -> int:
    """Characters a batch padded to its longest text holds, over all batches."""
    lengths = source.length_keys(np.arange(len(source)))
    return sum(int(lengths[b].max()) * len(b) for b in batches)


def test_grouped_steps_pad_far_less_and_cover_the_same_items() -> None:
    source = _mixed_lengths(2000)
    plain = epoch_batches(source, 16, 1, 0, seed=0, epoch=0)
    grouped = epoch_batches(source, 16, 1, 0, seed=0, epoch=0, group_by_length=True)
    assert len(grouped) == len(plain) == 125
    assert sorted(np.concatenate(grouped)) == sorted(np.concatenate(plain))
    assert _padded(source, grouped) < 0.7 * _padded(source, plain)
    # Each step's items come from one group of LENGTH_GROUP_STEPS consecutive plain steps.
    span = 16 * LENGTH_GROUP_STEPS
    first_group = set(np.concatenate(plain)[:span])
    assert all(set(step) <= first_group for step in grouped[:LENGTH_GROUP_STEPS])
    assert set(np.concatenate(grouped[:LENGTH_GROUP_STEPS])) == first_group


def test_grouped_steps_are_shuffled_seeded_and_differ_by_epoch() -> None:
    source = _mixed_lengths(2000)
    once = epoch_batches(source, 16, 1, 0, seed=0, epoch=0, group_by_length=True)
    again = epoch_batches(source, 16, 1, 0, seed=0, epoch=0, group_by_length=True)
    later = epoch_batches(source, 16, 1, 0, seed=0, epoch=1, group_by_length=True)
    assert all(np.array_equal(a, b) for a, b in zip(once, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(once, later, strict=True))
    # Not shortest first: the steps of a group come in a random order of length.
    lengths = source.length_keys(np.arange(len(source)))
    longest = [int(lengths[b].max()) for b in once[:LENGTH_GROUP_STEPS]]
    assert longest != sorted(longest)


def test_each_process_gets_its_share_of_every_step() -> None:
    source = _mixed_lengths(640)
    one = epoch_batches(source, 32, 1, 0, seed=1, epoch=0, group_by_length=True)
    ranks = [epoch_batches(source, 16, 2, r, seed=1, epoch=0, group_by_length=True) for r in (0, 1)]
    for step, a, b in zip(one, *ranks, strict=True):
        assert sorted(step) == sorted(np.concatenate([a, b]))


def test_items_of_one_size_keep_the_plain_order() -> None:
    plain = epoch_batches(100, 10, 1, 0, seed=0, epoch=0)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(plain, epoch_batches(100, 10, 1, 0, 0, 0, True), strict=True)
    )


def _text_run(tmp_path, **options):
    texts = [("alpha beta gamma " * (1 + i % 9)).strip() for i in range(192)]
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(texts))
    return path, dict(method="simcse", batch_size=32, precision="fp32", monitor_items=0,
                      backbone_options={"dim": 16, "depth": 1, "heads": 2}, vocab_size=300,
                      max_length=32, show_progress=False, **options)  # fmt: skip


def test_a_text_run_trains_on_grouped_batches_by_default(tmp_path, monkeypatch) -> None:
    seen: list[bool] = []
    original = train_module.epoch_batches

    def spy(*args, **kwargs):
        seen.append(args[-1] if len(args) == 7 else kwargs.get("group_by_length", False))
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "epoch_batches", spy)
    path, options = _text_run(tmp_path)
    run = selfsup.pretrain(path, epochs=1, out=tmp_path / "run", **options)
    assert seen == [True]
    assert yaml.safe_load((run.path / "config.yaml").read_text())["group_by_length"] is True
    seen.clear()
    selfsup.pretrain(path, epochs=1, out=tmp_path / "plain", group_by_length=False, **options)
    assert seen == [False]
    # A bag of tokens pays nothing for padding: its batches stay plain unless asked.
    seen.clear()
    bag = {**options, "method": "sent2vec", "backbone": "text-bag", "backbone_options": {}}
    run = selfsup.pretrain(path, epochs=1, out=tmp_path / "bag", **bag)
    assert seen == [False]
    assert yaml.safe_load((run.path / "config.yaml").read_text())["group_by_length"] is False


def test_items_of_one_size_are_not_grouped(tmp_path, clusters_npz) -> None:
    run = selfsup.pretrain(clusters_npz, epochs=1, batch_size=32, precision="fp32",
                           backbone_options={"width": 4}, monitor_items=0,
                           out=tmp_path / "images", show_progress=False)  # fmt: skip
    assert yaml.safe_load((run.path / "config.yaml").read_text())["group_by_length"] is False


def test_a_run_saved_before_the_option_resumes_with_plain_batches(tmp_path) -> None:
    path, options = _text_run(tmp_path)
    run = selfsup.pretrain(path, epochs=1, out=tmp_path / "run", **options)
    config = run.path / "config.yaml"
    saved = yaml.safe_load(config.read_text())
    del saved["group_by_length"]  # as runs saved before the option were
    config.write_text(yaml.safe_dump(saved))
    resumed = selfsup.pretrain(resume=run.path, epochs=2, show_progress=False)
    assert yaml.safe_load(config.read_text())["group_by_length"] is False
    assert resumed.summary["steps"] == 2 * run.summary["steps"]
    with pytest.raises(ConfigError, match=r"cannot change group_by_length \(False -> True\)"):
        selfsup.pretrain(resume=run.path, epochs=3, group_by_length=True, show_progress=False)


def _pairs(batches: list[np.ndarray]) -> set[tuple[int, int]]:
    return {(a, b) for step in batches for a in step for b in step if a < b}


def test_items_of_nearly_one_length_meet_other_items_each_epoch() -> None:
    """On data of one group, sorting by length alone would put the same items together every
    epoch (a contrastive method's negatives fixed); the jitter of the lengths mixes them."""
    source = _mixed_lengths(320)  # 10 steps: a single group
    epochs = [epoch_batches(source, 32, 1, 0, seed=0, epoch=e, group_by_length=True)
              for e in (0, 1)]  # fmt: skip
    first, second = (_pairs(b) for b in epochs)
    assert len(first & second) < 0.5 * len(first)
