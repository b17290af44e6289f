"""Embedding files: every format, unreadable rows, and a write that is interrupted and goes on
where it stopped instead of starting over (a million texts take an hour on two cores)."""

import numpy as np
import pandas as pd
import pytest
import torch

from selfsup import embedding
from selfsup.data.arrays import ArraySource
from selfsup.data.base import Batch, SkippedItem
from selfsup.embedding import EmbeddingStream, partial_folder, saved_rows, write_embeddings
from selfsup.encoder import Encoder


@pytest.fixture(autouse=True)
def modality_batch(monkeypatch):
    """Batches of the size asked: the batch's memory plan reads and embeds a few items of
    its own (``embedding.embed_batch``), which are not the rows these tests count."""
    monkeypatch.setattr(embedding, "embed_batch", lambda encoder, source, size, *_: size)


class Flat(torch.nn.Module):
    """An encoder body that flattens a (1, 2, 2) item into its four values."""

    feature_dim = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def encoder(scale: float = 1.0) -> Encoder:
    module = Flat()
    module.register_buffer("scale", torch.tensor(scale))
    return Encoder(module, None, [0.0], [1.0], {}, modality="image", normalize=False)


class Counting(ArraySource):
    """Items 0..n-1 of value i (reversed: n-1..0); row 5 unreadable; Ctrl-C after ``stop``
    rows embedded. The first read is the 8 items a write samples to know the data again."""

    def __init__(self, n: int, stop: int | None = None, reverse: bool = False) -> None:
        values = np.arange(n, dtype=np.float32)[:, None, None].repeat(2, 1).repeat(2, 2)
        super().__init__(values[::-1].copy() if reverse else values, name="counting")
        self.calls: list[list[int]] = []
        self.stop = stop

    @property
    def read_rows(self) -> list[int]:
        """The rows read to be embedded (after the first read, the sample)."""
        return [i for call in self.calls[1:] for i in call]

    def read_batch(self, indices):
        if self.stop is not None and len(self.read_rows) >= self.stop:
            raise KeyboardInterrupt
        self.calls.append([int(i) for i in indices])
        batch = super().read_batch(indices)
        keep = [k for k, i in enumerate(batch.indices) if i != 5]
        bad = [SkippedItem(5, "5", "damaged")] if 5 in batch.indices else []
        return Batch(batch.items[keep], [batch.indices[k] for k in keep], bad)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".parquet"])
def test_an_interrupted_write_goes_on_where_it_stopped(tmp_path, monkeypatch, suffix) -> None:
    monkeypatch.setattr(embedding, "SAVE_EVERY", 0.0)  # save after every batch
    out = tmp_path / f"e{suffix}"
    source = Counting(100, stop=40)
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(encoder(), source, out, batch_size=10, show_progress=False)
    assert not out.exists() and saved_rows(out) == 40
    told = []
    again = Counting(100)
    result = write_embeddings(encoder(), again, out, batch_size=10, show_progress=False,
                              say=told.append)  # fmt: skip
    assert sorted(again.read_rows) == list(range(40, 100))  # the first 40 not read again
    assert result.resumed_from == 40 and "40 of 100 rows were embedded before" in told[0]
    assert not partial_folder(out).exists() and saved_rows(out) is None
    assert [(s.index, s.item_id) for s in result.skipped] == [(5, "5")]
    if suffix == ".npy":
        rows = np.load(out)
        assert (tmp_path / "e.ids.txt").read_text().splitlines()[99] == "99"
    elif suffix == ".npz":
        with np.load(out) as packed:
            rows, ids = packed["embeddings"], packed["ids"]
        assert ids[99] == "99"
    else:
        table = pd.read_parquet(out)
        rows = np.stack(table["embedding"])
        assert np.flatnonzero(~table["readable"]).tolist() == [5] and table["id"][99] == "99"
    whole = write_embeddings(encoder(), Counting(100), tmp_path / "whole.npy", batch_size=10,
                             show_progress=False)  # fmt: skip
    expected = np.load(whole.path)
    assert np.isnan(expected[5]).all() and np.unique(expected[:5, 0]).size == 5
    np.testing.assert_array_equal(rows, expected)


def test_saved_rows_of_other_weights_or_items_are_not_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(embedding, "SAVE_EVERY", 0.0)
    out = tmp_path / "e.npy"
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(encoder(), Counting(50, stop=20), out, batch_size=10, show_progress=False)
    told = []
    other = Counting(50)
    write_embeddings(encoder(scale=2.0), other, out, batch_size=10, show_progress=False,
                     say=told.append)  # fmt: skip
    assert sorted(other.read_rows) == list(range(50)) and not told  # started afresh
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(encoder(), Counting(50, stop=20), out, batch_size=10, show_progress=False)
    more = Counting(60)  # other items
    write_embeddings(encoder(), more, out, batch_size=10, show_progress=False)
    assert sorted(more.read_rows) == list(range(60))


def test_a_killed_write_keeps_what_it_saved_and_drops_a_half_written_block(tmp_path) -> None:
    """A process killed (no exception, no cleanup) between saves: the rows written after the
    last save are dropped, whole or half written, and those before it kept."""
    folder = tmp_path / "e.npy.partial"
    stream = EmbeddingStream(folder, {"encoder": "w"})
    assert stream.open(10, 2) == 0
    stream.append(np.ones((4, 2), np.float32), [SkippedItem(1, "1", "bad")])
    stream._save()
    stream.append(np.full((3, 2), 7, np.float32), [SkippedItem(5, "5", "bad")])  # not saved
    stream._file.write(b"\x01\x02")  # cut off mid-row by the kill
    stream._file.flush()
    stream._skipped_file.flush()
    again = EmbeddingStream(folder, {"encoder": "w"})
    assert again.open(10, 2) == 4 and [s.index for s in again.skipped] == [1]
    again.append(np.full((6, 2), 3, np.float32), [])
    again.__exit__(None, None, None)
    rows = np.load(folder / EmbeddingStream.ROWS)
    assert rows.shape == (10, 2) and rows[:4].min() == 1 and rows[4:].min() == 3


def test_saved_rows_of_an_edited_file_are_not_reused(tmp_path, monkeypatch) -> None:
    """Rows ids (0, 1, ...) and count alike: the values tell an edited file apart."""
    monkeypatch.setattr(embedding, "SAVE_EVERY", 0.0)
    out = tmp_path / "e.npy"
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(encoder(), Counting(50, stop=20), out, batch_size=10, show_progress=False)
    edited = Counting(50, reverse=True)
    write_embeddings(encoder(), edited, out, batch_size=10, show_progress=False)
    assert sorted(edited.read_rows) == list(range(50))


def test_a_runs_commands_embed_large_data_from_files_once(tmp_path, monkeypatch) -> None:
    """select after anomalies on the same file reads the embeddings back; an edited file, or
    data not read from a file, is embedded again."""
    import selfsup

    monkeypatch.setattr(embedding, "CACHE_ITEMS", 50)  # as for 10,000 items and more
    rng = np.random.default_rng(0)
    path = tmp_path / "rows.csv"
    rows = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    rows.to_csv(path, index=False)
    run = selfsup.pretrain(path, steps=2, batch_size=16, out=tmp_path / "run",
                           show_progress=False, monitor_items=0)  # fmt: skip
    calls = []
    forward = run.encoder.forward
    monkeypatch.setattr(run.encoder, "forward", lambda x: calls.append(len(x)) or forward(x))
    first = run.embeddings(run.open(path))
    assert sum(calls) == 80 and len(list((run.path / "embeddings").glob("*.npy"))) == 1
    lines = []
    monkeypatch.setattr("selfsup.run.console.print", lambda line, **_: lines.append(line))
    again = run.embeddings(run.open(path), show_progress=True)
    assert sum(calls) == 80 and "read from" in lines[-1]  # not embedded again
    np.testing.assert_array_equal(first, again)
    # Mapped, not read into memory (ten million rows are 10 GB), and never written to.
    assert isinstance(again, np.memmap) and not again.flags.writeable
    written = run.embed_to_file(path, tmp_path / "e.parquet")  # embed writes them as they are
    assert sum(calls) == 80 and written.rows == 80
    np.testing.assert_array_equal(np.stack(pd.read_parquet(written.path)["embedding"]), first)
    rows.assign(a=rows["a"] + 1).to_csv(path, index=False)  # the file edited
    edited = run.embeddings(run.open(path), show_progress=True)
    assert sum(calls) == 160 and not np.allclose(edited, first)
    # The file as it was is gone: its embeddings would never be read again.
    kept = lambda: sorted((run.path / "embeddings").glob("*.npy"))  # noqa: E731
    assert len(kept()) == 1 and "removed 1 kept embedding file(s) of" in lines[-1]
    assert not list((run.path / "embeddings").glob("*.ids.txt"))[1:]
    other = tmp_path / "other.csv"
    rows.to_csv(other, index=False)
    run.embeddings(run.open(other))  # another file: kept beside the first
    assert sum(calls) == 240 and len(kept()) == 2
    run.embeddings(run.open(rows))  # a DataFrame: not kept
    assert sum(calls) == 320 and len(kept()) == 2


def test_two_processes_do_not_write_one_embedding_file(tmp_path) -> None:
    """Another process holding the file's lock (two commands on the same large data): the
    second is refused with the file named, and the first's rows are left alone."""
    import fcntl

    out = tmp_path / "e.npy"
    with (tmp_path / ".e.npy.lock").open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError, match=r"another selfsup process is writing it"):
            write_embeddings(encoder(), Counting(20), out, show_progress=False)
        fcntl.flock(other, fcntl.LOCK_UN)
    assert not out.exists()
    write_embeddings(encoder(), Counting(20), out, show_progress=False)
    assert np.load(out).shape == (20, 4) and not (tmp_path / ".e.npy.lock").exists()


def test_evaluating_a_file_then_embedding_it_embeds_it_once(tmp_path, monkeypatch) -> None:
    """evaluate's splits (80% to fit, 20% to test) are served from the whole file's kept
    embeddings, which embed and the tools then read; a small split is embedded alone."""
    import selfsup
    from selfsup.data.splits import SubsetSource

    monkeypatch.setattr(embedding, "CACHE_ITEMS", 50)  # as for 10,000 items and more
    rng = np.random.default_rng(0)
    path = tmp_path / "rows.csv"
    rows = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    rows.assign(y=np.arange(100) % 2).to_csv(path, index=False)
    run = selfsup.pretrain(path, label_column="y", steps=2, batch_size=16,
                           out=tmp_path / "run", show_progress=False, monitor_items=0)  # fmt: skip
    calls = []
    forward = run.encoder.forward
    monkeypatch.setattr(run.encoder, "forward", lambda x: calls.append(len(x)) or forward(x))
    run.evaluate(path, protocols=("knn",), save=False)
    assert sum(calls) == 100  # the file once, not its splits each
    whole = run.embeddings(run.open(path))
    written = run.embed_to_file(path, tmp_path / "e.npy")
    assert sum(calls) == 100 and written.rows == 100
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), whole)
    source = run.open(path)
    split = SubsetSource(SubsetSource(source, np.arange(99, -1, -1), "reversed"), [5, 70], "two")
    np.testing.assert_array_equal(run.embeddings(split), whole[[94, 29]])
    assert sum(calls) == 100  # any split of the file: its rows of the kept embeddings
    other = tmp_path / "other.csv"
    rows.to_csv(other, index=False)
    few = SubsetSource(run.open(other), [5, 70], "two")
    np.testing.assert_allclose(run.embeddings(few), whole[[5, 70]], atol=1e-5)
    assert sum(calls) == 102  # two rows of a file not embedded yet: those two alone


def test_embedding_a_file_then_selecting_on_it_embeds_it_once(tmp_path, monkeypatch) -> None:
    """embed keeps large data's embeddings in the run as the other commands do, so select,
    anomalies or evaluate after it read them back (200,000 photos: 20 minutes on two cores);
    an embed interrupted says where its rows are and goes on from there."""
    import selfsup
    from selfsup.embedding import EmbeddingInterrupted

    monkeypatch.setattr(embedding, "CACHE_ITEMS", 50)  # as for 10,000 items and more
    monkeypatch.setattr(embedding, "SAVE_EVERY", 0.0)  # save after every batch
    rng = np.random.default_rng(0)
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)}).to_csv(path, index=False)
    run = selfsup.pretrain(path, steps=2, batch_size=16, out=tmp_path / "run",
                           show_progress=False, monitor_items=0)  # fmt: skip
    calls = []
    forward = run.encoder.forward

    def counted(x):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(len(x))
        return forward(x)

    monkeypatch.setattr(run.encoder, "forward", counted)
    with pytest.raises(EmbeddingInterrupted) as stop:
        run.embed_to_file(path, tmp_path / "e.parquet", batch_size=10)
    assert stop.value.rows == sum(calls) > 0 and stop.value.folder.parent == run.path / "embeddings"
    assert not (tmp_path / "e.parquet").exists()
    monkeypatch.setattr(run.encoder, "forward", lambda x: calls.append(len(x)) or forward(x))
    told = []
    written = run.embed_to_file(path, tmp_path / "e.parquet", say=told.append)
    assert sum(calls) == 100 and written.rows == 100  # each row embedded once
    assert any("before an interruption" in line for line in told)
    assert any("kept in" in line and "for the next command" in line for line in told)
    kept = run.embeddings(run.open(path))  # select, anomalies, evaluate: read back
    assert sum(calls) == 100
    np.testing.assert_array_equal(np.stack(pd.read_parquet(written.path)["embedding"]), kept)


def test_adapting_and_predicting_after_embed_read_the_kept_embeddings(
    tmp_path, monkeypatch
) -> None:
    """adapt (its propagation head reads the unlabelled items too) and predict on a file
    labelled on a few rows use the run's kept embeddings: 200,000 photos, 300 labelled,
    took 17 minutes each embedding again, 2 minutes and 16 s reading them back."""
    import selfsup
    from selfsup.tools.adapt import adapt

    monkeypatch.setattr(embedding, "CACHE_ITEMS", 50)  # as for 10,000 items and more
    rng = np.random.default_rng(0)
    path = tmp_path / "rows.csv"
    y = np.where(np.arange(200) % 5 == 0, (np.arange(200) // 5 % 2).astype(str), "")
    x = rng.normal(size=200) + 3 * (np.arange(200) // 5 % 2)
    pd.DataFrame({"a": x, "b": rng.normal(size=200), "y": y}).to_csv(path, index=False)
    run = selfsup.pretrain(path, label_column="y", steps=2, batch_size=16,
                           out=tmp_path / "run", show_progress=False, monitor_items=0)  # fmt: skip
    calls = []
    forward = run.encoder.forward
    monkeypatch.setattr(run.encoder, "forward", lambda x: calls.append(len(x)) or forward(x))
    run.embed_to_file(path, tmp_path / "e.parquet")
    assert sum(calls) == 200
    model = adapt(run, path, head="propagation")
    assert model.metrics["propagation"]["unlabelled"] == 160 and sum(calls) == 200
    probabilities = model.predict_proba(path)
    assert probabilities.shape == (200, 2) and sum(calls) == 200
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_few_long_items_read_from_files_have_their_embeddings_kept(tmp_path, monkeypatch):
    """A year of 20 pumps' days is 7,320 windows, fewer than CACHE_ITEMS, but each is 17,280
    values and they took 53 s to embed: kept by their values in all, as many small items are."""
    from selfsup.data.series import load_series_file
    from selfsup.modalities.series import build_series_encoder

    monkeypatch.setattr(embedding, "CACHE_VALUES", 40 * 2 * 500)  # as for 50 million values
    encoder = build_series_encoder("ts2vec", 2, depth=1, hidden=4, out_dim=8)
    long, short = tmp_path / "long.npy", tmp_path / "short.npy"
    np.save(long, np.ones((40, 2, 500), np.float32))
    np.save(short, np.ones((40, 2, 499), np.float32))
    assert embedding.cache_key(encoder, load_series_file(long)) is not None
    assert embedding.cache_key(encoder, load_series_file(short)) is None
    first = embedding.cached_embeddings(encoder, load_series_file(long), tmp_path / "kept")
    assert isinstance(first, np.memmap) and len(list((tmp_path / "kept").glob("*.npy"))) == 1


def test_few_files_embedded_by_many_parts_have_their_embeddings_kept(tmp_path, monkeypatch):
    """A call centre's 2,002 calls are fewer than CACHE_ITEMS, but each is embedded as 32
    clips (64,002 in all, four minutes): kept by their parts, so that ``anomalies`` after
    ``embed`` reads them instead of embedding again. Files of one clip each are not."""
    import soundfile

    from selfsup.data.audio import AudioFolderSource
    from selfsup.modalities.audio import build_audio_encoder

    monkeypatch.setattr(embedding, "CACHE_ITEMS", 50)  # as for 10,000 items and more
    settings = {"sample_rate": 1000, "n_fft": 64, "hop_length": 16, "n_mels": 8}
    for name, seconds in (("long", 10), ("short", 1)):
        (tmp_path / name).mkdir()
        for i in range(4):  # 4 files: 11 clips of 0.95 s each (the last ends the file), or 2
            samples = np.sin(np.arange(seconds * 1000) * (i + 1) / 10).astype(np.float32)
            soundfile.write(tmp_path / name / f"{i}.wav", samples, 1000)
    long = AudioFolderSource(tmp_path / "long", pooled=True, **settings)
    short = AudioFolderSource(tmp_path / "short", pooled=True, **settings)
    assert len(long.parts().source) == 44 and len(short.parts().source) == 8
    encoder = build_audio_encoder("byola-cnn", 8, long.item_shape[-1], 0.0, 1.0, feature_dim=8)
    assert embedding.cache_key(encoder, short) is None
    assert embedding.cache_key(encoder, long) is None  # 44 clips: under 50
    for i in range(4, 6):  # 6 files: 66 clips
        soundfile.write(tmp_path / "long" / f"{i}.wav", np.zeros(10_000, np.float32), 1000)
    long = AudioFolderSource(tmp_path / "long", pooled=True, **settings)
    assert embedding.cache_key(encoder, long) is not None
    first = embedding.cached_embeddings(encoder, long, tmp_path / "kept")
    assert isinstance(first, np.memmap) and first.shape == (6, 8)
    again = AudioFolderSource(tmp_path / "long", pooled=True, **settings)
    calls = []
    monkeypatch.setattr(embedding, "embed_source", lambda *a, **k: calls.append(a))
    np.testing.assert_array_equal(embedding.cached_embeddings(encoder, again, tmp_path / "kept"),
                                  first)  # fmt: skip
    assert not calls
