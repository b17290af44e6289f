"""Documents longer than one read (contracts, reports): trained on as windows, embedded as the
mean of windows spread over them, labelled from a table like other folders."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tests.hf_models import save_tiny_bert
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.config import PretrainConfig
from selfsup.data.text import POOLED_WINDOWS, TextSource
from selfsup.data.tokenizer import TextTokenizer
from selfsup.modalities import open_source
from selfsup.modalities.text import TEXT

TINY = {"dim": 16, "depth": 1, "heads": 2}
WORDS = ["alpha", "beta", "gamma", "delta", "omega"]


def _tokenizer(max_length: int = 8) -> TextTokenizer:
    return TextTokenizer.train([" ".join(WORDS)] * 20, vocab_size=300, max_length=max_length)


def test_windows_cover_each_document_once_and_keep_its_label_and_id():
    rng = np.random.default_rng(0)
    long = " ".join(rng.choice(WORDS, 100))
    src = TextSource([long, "alpha beta", None], ["x", "y", "x"], tokenizer=_tokenizer())
    cut, owner = src.windows()
    first = owner == 0
    assert "".join(np.array(cut.texts, dtype=object)[first]) == long  # nothing lost or repeated
    assert first.sum() == -(-100 // 8)  # one read of 8 tokens a window
    assert all(len(ids) <= 8 for ids in src.tokenizer.encode(list(np.array(cut.texts)[first])))
    assert list(cut.ids)[:2] == ["0@0", "0@8"] and list(cut.ids)[-2:] == ["1", "2"]
    assert cut.labels.tolist() == [0] * first.sum() + [1, 0] and cut.classes == ["x", "y"]
    assert cut.texts[-1] is None and cut.read_batch([len(cut) - 1]).skipped  # still unreadable
    spread, spread_owner = src.windows(spread=4)
    assert (spread_owner == 0).sum() == 4
    assert spread.texts[0] == cut.texts[0] and spread.texts[3] == cut.texts[first.sum() - 1]
    assert cut.parts() is None  # windows are not cut again


def test_a_pretrained_tokenizer_keeps_room_for_its_special_tokens(tmp_path):
    save_tiny_bert(tmp_path)
    tok = TextTokenizer.from_pretrained(tmp_path, 6)
    assert tok.window_tokens == 4  # [CLS] and [SEP] around every read
    text = "the cat sat on the mat and the dog sat on the log"
    src = TextSource([text], tokenizer=tok)
    cut, _ = src.windows()
    ids = tok.encode(cut.texts)
    assert ids.shape[1] <= 6 and "".join(cut.texts) == text
    assert src.parts().single == "its first 4 tokens"


@pytest.mark.parametrize("pretrained", [False, True])
def test_windows_are_read_as_cut_every_token_once_without_tokenizing_again(
    tmp_path, monkeypatch, pretrained
):
    """A document is tokenized once when it is cut: its windows' ids are read from the cut
    (the tokenizer was 70% of a text-bag's embedding time, half of it spent tokenizing each
    window again). Re-encoding a window's text gave the space before its first word a token
    of its own and cut the window's last token; now the windows hold the document's tokens,
    each once, in order, with a pretrained model's [CLS] and [SEP] around each."""
    rng = np.random.default_rng(0)
    if pretrained:
        save_tiny_bert(tmp_path)
        tok = TextTokenizer.from_pretrained(tmp_path, 6)
        long = " ".join(rng.choice(["the", "cat", "sat", "on", "mat", "dog", "log"], 60))
    else:
        tok = _tokenizer()
        long = " ".join(rng.choice(WORDS, 100))
    src = TextSource([long, "on", None], tokenizer=tok)
    cut, owner = src.windows()
    calls = []
    real = tok.tokenizer.encode_batch
    monkeypatch.setattr(tok, "tokenizer", type("Spy", (), {
        "encode_batch": lambda self, texts: calls.append(len(texts)) or real(texts),
        "__getattr__": lambda self, name: getattr(real.__self__, name),
    })())  # fmt: skip
    batch = cut.read_batch(list(range(len(cut))))
    assert calls == [1]  # only "on": fewer bytes than a window has tokens, not cut
    rows = batch.items[owner[batch.indices] == 0].tolist()
    # The document's ids, renumbered as read (pad() maps them as encode does; padding is 0).
    whole = tok.pad([tok._untruncated().encode(long, add_special_tokens=pretrained).ids])[0]
    whole = whole.tolist()
    if pretrained:  # [CLS] first and [SEP] last in every window
        cls, sep = whole[0], whole[-1]
        assert all(r[0] == cls and [i for i in r if i][-1] == sep for r in rows)
        assert all(r.count(cls) == 1 and r.count(sep) == 1 for r in rows)
        rows = [[i for i in r if i not in (cls, sep)] for r in rows]
        whole = whole[1:-1]
    assert [i for r in rows for i in r if i] == whole  # each token once, in order
    assert all(len(r) <= tok.max_length for r in batch.items.tolist())


def test_training_reads_long_documents_as_windows_and_short_ones_whole():
    tok = _tokenizer()
    short = TextSource(["alpha beta"] * 9 + [" ".join(WORDS * 4)], tokenizer=tok)
    same, note = TEXT.training_source(short, PretrainConfig(data="-"))
    assert same is short and note.startswith("1 of 10 documents sampled are longer than a read")
    assert (
        TEXT.training_source(TextSource(["alpha"] * 3, tokenizer=tok), PretrainConfig(data="-"))[1]
        is None
    )
    long = TextSource([" ".join(WORDS * 4)] * 3, tokenizer=tok)
    cut, note = TEXT.training_source(long, PretrainConfig(data="-"))
    assert len(cut) == 9 and note.startswith("documents of 20 tokens (the median of 3): trained")


def _documents(folder, n=24):
    """Documents whose topic word comes only after a long run of filler, so the first read
    of a document never sees it; the topic is the label."""
    rng = np.random.default_rng(1)
    folder.mkdir()
    rows = []
    for i in range(n):
        topic = ["apple pear plum", "engine wheel gear"][i % 2]
        filler = " ".join(rng.choice(WORDS, 60))
        (folder / f"doc{i:02d}.txt").write_text(f"{filler} {topic} {topic}\n")
        rows.append((f"doc{i:02d}.txt", ["fruit", "car"][i % 2]))
    return rows


def test_a_folder_of_long_documents_end_to_end(tmp_path):
    rows = _documents(tmp_path / "docs")
    pd.DataFrame(rows[:20], columns=["file_name", "topic"]).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(f"backbone_options: {json.dumps(TINY)}\n")
    out = tmp_path / "run"
    args = ["pretrain", str(tmp_path / "docs"), "--steps", "2", "--batch-size", "16",
            "--vocab-size", "300", "--max-length", "16", "--monitor-items", "0",
            "--config", str(tmp_path / "tiny.yaml"), "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trained on 120 windows of 16 tokens" in " ".join(result.output.split())
    run = selfsup.load(out)
    source = run.open(tmp_path / "docs")
    parts = source.parts()
    assert parts is not None and len(parts.source) == 120 and parts.words[1] == "documents"
    embedded = run.embed(tmp_path / "docs")
    assert embedded.shape == (24, 16)
    with torch.no_grad():  # a document's row is the mean of its windows' embeddings
        windows = run.encoder(parts.source.read_batch(list(range(5))).items.to(torch.long))
    np.testing.assert_allclose(embedded[0], windows.float().mean(0).numpy(), atol=2e-2)
    args = ["evaluate", str(out), str(tmp_path / "docs"), "--labels", str(tmp_path / "t.csv"),
            "--protocol", "knn"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(next(out.glob("evaluation-*.json")).read_text())
    assert saved["rows"][0]["protocol"] == "knn"
    # TF-IDF reads whole documents: the topic words decide it.
    assert saved["rows"][0]["raw"] == 1.0


def test_a_labels_table_labels_a_text_folder_and_is_refused_for_a_file(tmp_path):
    rows = _documents(tmp_path / "docs", n=6)
    pd.DataFrame(rows[:4], columns=["file_name", "topic"]).to_csv(tmp_path / "t.csv", index=False)
    src = open_source(tmp_path / "docs", "text", labels=tmp_path / "t.csv")
    assert src.labels is None and src.partial_labels.rows.tolist() == [0, 1, 2, 3]
    assert src.labels_note.startswith(f"labels of 4 files from {tmp_path / 't.csv'}")
    lines = tmp_path / "d.jsonl"
    lines.write_text(json.dumps({"text": "alpha"}) + "\n")
    with pytest.raises(ValueError, match=r"--labels labels the files of a folder of \.txt files"):
        open_source(lines, labels=tmp_path / "t.csv")
    result = CliRunner().invoke(app, ["datasets", "show", str(tmp_path / "docs")])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["tokens"]["documents_sampled"] == 6 and shown["tokens"]["longer_than_a_read"] == 6


def test_a_binary_file_in_a_text_folder_keeps_its_row_and_is_named(tmp_path):
    _documents(tmp_path / "docs", n=4)
    (tmp_path / "docs" / "doc02.txt").write_bytes(b"\x00\x01binary")
    src = open_source(tmp_path / "docs", "text", max_length=16)
    assert len(src) == 4 and src.texts[2] is None
    assert src.warning.startswith("1 of 4 files cannot be read as text (doc02.txt): skipped")
    assert src.read_batch([2]).skipped[0].reason.startswith("holds binary data")
    parts = src.parts()  # a row without text stays one unreadable part
    assert parts.owner.tolist().count(2) == 1


def test_pooling_reads_at_most_the_set_number_of_windows():
    src = TextSource([" ".join(WORDS * 200)], tokenizer=_tokenizer())
    assert len(src.parts().source) == POOLED_WINDOWS


def test_a_few_documents_of_many_are_cut_alone_and_embed_as_among_all():
    from selfsup.data.splits import SubsetSource
    from selfsup.embedding import embed_source
    from selfsup.modalities.text import build_text_encoder

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, int(n))) for n in rng.integers(1, 40, 300)]
    texts[7] = None  # an empty row keeps its place and its reason
    labels = rng.choice(["x", "y"], 300)
    src = TextSource(texts, labels, tokenizer=_tokenizer(), reasons={7: "no text"})
    rows = np.array([250, 7, 3, 120, 3])  # any order, a row twice: a held-out draw
    fit = SubsetSource(src, np.arange(1, 300), "fit")  # all but one: as training's split
    few = SubsetSource(fit, rows - 1, "held out")  # drawn from that split
    parts = few.parts()
    assert "parts_cache" not in src.__dict__  # the 300 documents were not cut for these 5
    assert parts.owner.tolist() == sorted(parts.owner.tolist()) and set(parts.owner) == {
        0, 1, 2, 3, 4
    }  # fmt: skip
    assert parts.source.labels.tolist() == [src.labels[rows[k]] for k in parts.owner]
    torch.manual_seed(0)
    encoder = build_text_encoder("text-bag", 300, 8, dim=8)
    alone = embed_source(encoder, few)
    among_all = embed_source(encoder, src)[rows]
    np.testing.assert_allclose(alone, among_all, atol=1e-5)
    assert np.isnan(alone[1]).all() and not np.isnan(alone[[0, 2, 3, 4]]).any()


def test_many_documents_are_cut_and_embedded_a_block_at_a_time(monkeypatch):
    from selfsup import embedding
    from selfsup.data import text as text_module
    from selfsup.data.splits import SubsetSource
    from selfsup.embedding import embed_source, iter_embeddings
    from selfsup.modalities.text import build_text_encoder

    rng = np.random.default_rng(2)
    texts = [" ".join(rng.choice(WORDS, int(n))) for n in rng.integers(1, 60, 200)]
    texts[45] = None
    src = TextSource(texts, tokenizer=_tokenizer(), reasons={45: "line 46 is not JSON"})
    torch.manual_seed(0)
    encoder = build_text_encoder("text-bag", 300, 8, dim=8)
    at_once = embed_source(encoder, src)
    assert "parts_cache" in src.__dict__  # 200 documents, under a block: cut together

    monkeypatch.setattr(text_module, "WINDOWS_BLOCK", 32)
    blocks = TextSource(texts, tokenizer=_tokenizer(), reasons={45: "line 46 is not JSON"})
    cuts = []
    cut_parts = TextSource.cut_parts

    windows = []

    def counted(self, rows, name):
        cuts.append(len(rows))
        parts = cut_parts(self, rows, name)
        windows.append(len(parts.source))
        return parts

    monkeypatch.setattr(TextSource, "cut_parts", counted)
    bars = []

    class Kept(embedding.TrainingProgress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(embedding, "TrainingProgress", Kept)
    batches = list(iter_embeddings(encoder, blocks, batch_size=16))
    assert cuts == [32] * 6 + [8] and "parts_cache" not in blocks.__dict__
    assert len(bars) == 1 and bars[0].done == bars[0].total == sum(-(-w // 16) for w in windows)
    rows = [i for kept, _, _ in batches for i in kept]
    assert rows == [i for i in range(200) if i != 45]  # in order, each once
    skipped = [s for _, _, bad in batches for s in bad]
    assert [(s.index, s.item_id, s.reason) for s in skipped] == [(45, "45", "line 46 is not JSON")]
    assert blocks.unreadable == {"45": "line 46 is not JSON"}
    np.testing.assert_allclose(embed_source(encoder, blocks), at_once, atol=1e-5)
    # The rows after an interruption, as a resumed embed reads them: blocks of the subset.
    rest = SubsetSource(blocks, np.arange(70, 200), "rest")
    np.testing.assert_allclose(embed_source(encoder, rest), at_once[70:], atol=1e-5)
