"""Text end to end: pretrain from a file and from Python, reload with the saved tokenizer."""

import json

import numpy as np
import pandas as pd
import pytest
from tests.modalities.text.conftest import make_texts
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.data.text import TextSource, tokenizer_sample
from selfsup.data.tokenizer import TextTokenizer

TINY = {"dim": 16, "depth": 1, "heads": 2}


def test_jsonl_from_the_cli_then_embed_and_evaluate(tmp_path):
    texts, labels = make_texts(120)
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"body": t, "topic": int(y)}) + "\n"
            for t, y in zip(texts, labels, strict=True)
        )
    )
    out = tmp_path / "run"
    args = ["pretrain", str(path), "--text-column", "body", "--label-column", "topic",
            "--epochs", "1", "--batch-size", "32", "--vocab-size", "300", "--max-length", "12",
            "--out", str(out)]  # fmt: skip
    (tmp_path / "tiny.yaml").write_text(f"backbone_options: {json.dumps(TINY)}\n")
    result = CliRunner().invoke(app, [*args, "--config", str(tmp_path / "tiny.yaml")])
    assert result.exit_code == 0, result.output
    run = selfsup.load(out)
    assert run.config["method"] == "simcse" and run.config["backbone"] == "text-transformer"
    tokenizer = TextTokenizer.load(out)
    assert tokenizer.max_length == 12 and tokenizer.vocab_size <= 300
    assert run.encoder.spec["vocab_size"] == tokenizer.vocab_size
    embeddings = tmp_path / "e.parquet"
    result = CliRunner().invoke(app, ["embed", str(out), str(path), "--out", str(embeddings)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(embeddings)
    assert len(table) == 120 and table["id"].iloc[0] == "0" and len(table["embedding"][0]) == 16
    # A source made in Python is read with the run's tokenizer, not its own.
    other = TextSource(texts, vocab_size=280, max_length=12)
    np.testing.assert_allclose(run.embed(other), np.stack(table["embedding"]), atol=1e-5)
    np.testing.assert_allclose(run.embed(str(path)), np.stack(table["embedding"]), atol=1e-5)
    unlabeled = tmp_path / "new.jsonl"  # later data without the label field
    unlabeled.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts[:5]))
    np.testing.assert_allclose(run.embed(unlabeled), run.embed(str(path))[:5], atol=1e-5)
    result = CliRunner().invoke(app, ["evaluate", str(out), str(path)])
    assert result.exit_code == 0, result.output
    saved = json.loads(next(out.glob("evaluation-*.json")).read_text())
    assert [r["protocol"] for r in saved["rows"]] == ["linear", "knn", "fewshot-10"]
    assert all(0 <= r["raw"] <= 1 for r in saved["rows"])  # the TF-IDF baseline


def test_a_large_corpus_trains_its_tokenizer_on_texts_spread_over_it(tmp_path, monkeypatch):
    texts, _ = make_texts(120)
    characters = sum(map(len, texts))
    monkeypatch.setattr("selfsup.data.text.TOKENIZER_CHARACTERS", -(-characters // 4))
    sample = tokenizer_sample(texts)
    assert sample == texts[::4] and sample[-1] == texts[116]  # to the end, not the first
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(texts) + "\n")
    (tmp_path / "tiny.yaml").write_text(f"backbone_options: {json.dumps(TINY)}\n")
    args = ["pretrain", str(path), "--steps", "1", "--batch-size", "8", "--vocab-size", "300",
            "--config", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "tokenizer trained on 30 of the 120 texts, spread over them in" in result.output
    monkeypatch.setattr("selfsup.data.text.TOKENIZER_CHARACTERS", characters)
    assert TextSource(texts).tokenizer.trained_on is None  # all of them


def test_generic_objective_and_resume_on_text(tmp_path):
    texts, _ = make_texts(160)
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(texts))
    options = dict(method="vicreg", batch_size=32, backbone_options=TINY, show_progress=False,
                   precision="fp32", out=tmp_path / "run", monitor_items=32)  # fmt: skip
    run = selfsup.pretrain(path, epochs=1, vocab_size=300, max_length=16, **options)
    assert run.summary["view_recipe"]["deletion"] == 0.1
    tokenizer_file = (run.path / "tokenizer.json").read_text()
    # Extended by one epoch, reading the texts with the saved tokenizer.
    resumed = selfsup.pretrain(resume=run.path, epochs=2, show_progress=False)
    assert resumed.summary["steps"] == 2 * run.summary["steps"]
    assert (run.path / "tokenizer.json").read_text() == tokenizer_file
    assert resumed.embed(path).shape == run.embed(path).shape
    metrics = resumed.evaluate_label_free(path, items=64)
    assert 1 <= metrics.rankme <= 16


def test_rows_without_text_are_skipped_in_training_and_nan_in_embeddings(tmp_path):
    """An export of support tickets has some empty text cells: training skips them and lists
    them all in skipped.txt, as the data's warning named them, though its one step met
    few of them; embed keeps their rows, NaN and not readable; evaluate leaves them out of
    both the encoder's and TF-IDF's rows."""
    texts, labels = make_texts(120)
    frame = pd.DataFrame({"text": texts, "y": labels})
    frame.loc[[3, 50], "text"] = None
    path = tmp_path / "tickets.csv"
    frame.to_csv(path, index=False)
    run = selfsup.pretrain(path, modality="text", text_column="text", steps=1, batch_size=16,
                           vocab_size=300, max_length=12, backbone_options=TINY,
                           show_progress=False, monitor_items=0, out=tmp_path / "run")  # fmt: skip
    assert (run.path / "skipped.txt").read_text().splitlines() == ["3\tno text", "50\tno text"]
    result = CliRunner().invoke(app, ["embed", str(run.path), str(path), "--out",
                                      str(tmp_path / "e.parquet")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 unreadable items (NaN rows):\n  3: no text\n  50: no text" in result.output
    table = pd.read_parquet(tmp_path / "e.parquet")
    assert len(table) == 120 and np.flatnonzero(~table["readable"]).tolist() == [3, 50]
    assert np.isnan(table["embedding"][3]).all() and not np.isnan(table["embedding"][4]).any()
    from selfsup.modalities.text import tfidf_features

    opened = run.open(path, label_column="y")
    train, _ = tfidf_features(opened, opened)
    assert np.isnan(train[[3, 50]]).all() and not np.isnan(np.delete(train, [3, 50], 0)).any()


def test_texts_embed_in_bf16_where_the_processor_runs_it_fast(tmp_path, monkeypatch):
    import selfsup.embedding as embedding

    texts, _ = make_texts(40)
    texts = TextSource(texts, vocab_size=280, max_length=12)
    run = selfsup.pretrain(texts, steps=1,
                           batch_size=16, backbone_options=TINY, precision="fp32",
                           monitor_items=0, show_progress=False, out=tmp_path / "run")  # fmt: skip
    fp32, bf16 = run.embed(texts, precision="fp32"), run.embed(texts, precision="bf16")
    assert not np.allclose(fp32, bf16, atol=1e-6)  # bf16 rounds the transformer's products
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99
    monkeypatch.setattr(embedding, "cpu_has_fast_bf16", lambda: True)
    np.testing.assert_array_equal(run.embed(texts), bf16)
    monkeypatch.setattr(embedding, "cpu_has_fast_bf16", lambda: False)
    np.testing.assert_array_equal(run.embed(texts), fp32)


def test_a_text_run_embeds_texts_in_a_list(tmp_path):
    texts, _ = make_texts(30)
    run = selfsup.pretrain(TextSource(texts, vocab_size=280, max_length=12), steps=1,
                           batch_size=16, backbone_options=TINY, precision="fp32",
                           monitor_items=0, show_progress=False, out=tmp_path / "run")  # fmt: skip
    listed = selfsup.load(run.path).embed(texts[:3], precision="fp32")
    np.testing.assert_array_equal(listed, run.embed(TextSource(texts[:3]), precision="fp32"))
    assert run.embed(("one query",)).shape == (1, 16)
    with pytest.raises(TypeError, match=r"item 1 \(7\) is not"):
        run.embed(["a text", 7])


def test_the_raw_baseline_probes_every_term_of_the_texts():
    """What tells the classes apart is 200 rarer words, each in a dozen texts, among 2,200
    common ones: the 2,048 most frequent terms (the dense TF-IDF the neighbour protocols read) hold
    none of them, so a linear probe of those is at chance; evaluate's TF-IDF baseline is the
    one a scikit-learn user fits, every term, and reads them."""
    from selfsup.evaluation.linear import linear_probe
    from selfsup.evaluation.report import evaluate_encoder
    from selfsup.modalities.text import TEXT, build_text_encoder, tfidf_features

    rng = np.random.default_rng(0)
    common = [f"w{i}" for i in range(2200)]
    rare = [[f"a{i}" for i in range(100)], [f"b{i}" for i in range(100)]]
    labels = np.arange(600) % 2
    texts = [" ".join([*rng.choice(common, 120), *rng.choice(rare[y], 4)]) for y in labels.tolist()]
    train = TextSource(texts[:480], labels[:480].tolist(), vocab_size=300, max_length=8)
    test = TextSource(texts[480:], labels[480:].tolist(), tokenizer=train.tokenizer)
    dense = tfidf_features(train, test)
    capped = linear_probe(dense[0], train.labels, dense[1], test.labels).accuracy
    assert capped < 0.65
    encoder = build_text_encoder("text-bag", 300, 8, dim=8)
    result = evaluate_encoder(encoder, train, test, protocols=("linear",))
    assert result.rows[0].raw > 0.8
    sparse = TEXT.raw_linear_features(train, test)
    assert sparse[0].shape[1] > 2048 and result.rows[0].detail["weight_decay_raw"] > 0
