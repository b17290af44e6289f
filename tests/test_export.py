"""Exports: ONNX parity for every built-in backbone, and runs exported end to end in each
format, from the command line too, with a model card; a pretrained model to a folder
transformers loads."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from tests.hf_models import TEXTS, save_tiny_bert

import selfsup
from selfsup.backbones import audio_backbone_names, backbone_names, series_backbone_names
from selfsup.backbones.text import _TEXT_BUILDERS
from selfsup.export import PARITY, export_run, write_export
from selfsup.modalities.audio import build_audio_encoder
from selfsup.modalities.image import build_image_encoder
from selfsup.modalities.series import build_series_encoder
from selfsup.modalities.tabular import build_tabular_encoder
from selfsup.modalities.text import build_text_encoder

VIT = {"patch_size": 4, "dim": 16, "depth": 1, "heads": 2}
TEXT = {"dim": 16, "depth": 1, "heads": 2}


def _case(kind: str, name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """A small encoder of a built-in backbone and a batch of its inputs."""
    torch.manual_seed(0)
    if kind == "image":
        options = VIT if name.startswith("vit") else {"width": 8}
        return build_image_encoder(name, 3, 16, **options), torch.rand(3, 3, 16, 16)
    if kind == "series":
        options = {"hidden": 8, "out_dim": 8, "depth": 2} if name == "ts2vec" else {
            "patch_len": 4, "dim": 16, "depth": 1, "heads": 2}  # fmt: skip
        return build_series_encoder(name, 2, **options), torch.randn(3, 2, 24)
    if kind == "text":
        options = {"dim": 16} if name == "text-bag" else TEXT
        ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 0, 0, 0, 0], [11, 12, 13, 14, 15, 16]])
        return build_text_encoder(name, 40, 8, **options), ids
    if kind == "audio":
        options = {"feature_dim": 16, "width": 8} if name == "byola-cnn" else {
            "patch_mels": 8, "patch_frames": 8, "dim": 16, "depth": 1, "heads": 2}  # fmt: skip
        return build_audio_encoder(name, 16, 32, **options), torch.randn(3, 1, 16, 32)
    encoder = build_tabular_encoder(numeric=3, cardinalities=[4], hidden=16, depth=1)
    return encoder, torch.tensor([[0.1, -1.0, 2.0, 1.0], [0.0, 0.5, -0.5, 3.0], [1, 1, 1, 0.0]])


BUILT_IN = (
    [("image", name) for name in backbone_names()]
    + [("series", name) for name in series_backbone_names()]
    + [("text", name) for name in _TEXT_BUILDERS]
    + [("audio", name) for name in audio_backbone_names()]
    + [("tabular", "mlp")]
)


@pytest.mark.parametrize("kind, name", BUILT_IN)
def test_onnx_matches_pytorch_for_every_built_in_backbone(tmp_path, kind, name, capfd) -> None:
    encoder, x = _case(kind, name)
    encoder.eval()
    with torch.no_grad():
        expected = encoder(x).numpy()
    got, speed = write_export(encoder, "onnx", x, tmp_path)
    # The TorchScript exporter prints its whole graph when it fails (text transformers) and
    # the dynamo one takes over: nothing of that reaches the user.
    printed = capfd.readouterr()
    assert "graph" not in printed.out + printed.err, (printed.out + printed.err)[:300]
    assert np.abs(got - expected).max() <= PARITY, (kind, name)
    assert speed > 0 and (tmp_path / "encoder.onnx").stat().st_size > 0
    # Another batch size (and, for text, another length) than the one it was exported with.
    import onnxruntime

    other = torch.cat([x, x[:2]])
    if not x.is_floating_point():
        other = torch.nn.functional.pad(other, (0, 2))
        other[-1, -2:] = torch.tensor([17, 18])
    session = onnxruntime.InferenceSession(str(tmp_path / "encoder.onnx"))
    with torch.no_grad():
        again = encoder(other).numpy()
    np.testing.assert_allclose(session.run(None, {"input": other.numpy()})[0], again, atol=PARITY)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, clusters_npz_module):
    out = tmp_path_factory.mktemp("runs") / "image"
    return selfsup.pretrain(
        clusters_npz_module, epochs=1, batch_size=32, out=out, show_progress=False,
        backbone="small-cnn", backbone_options={"width": 8}, monitor_items=0,
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_a_run_exports_with_its_normalization_and_a_model_card(tmp_path, image_run, fmt) -> None:
    result = export_run(image_run, fmt, tmp_path / fmt)
    assert result.max_abs_diff <= PARITY and result.items == 64
    card = (tmp_path / fmt / "README.md").read_text()
    assert "simclr" in card and "parity" in card and "[0, 1]" in card
    with pytest.raises(ValueError, match="exists and is not empty"):
        export_run(image_run, fmt, tmp_path / fmt)


def test_the_onnx_model_embeds_the_rows_selfsup_embed_writes(tmp_path, image_run) -> None:
    import onnxruntime

    export_run(image_run, "onnx", tmp_path / "onnx")
    data = np.load(image_run.config["data"])
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"))
    images = torch.from_numpy(data["X"][:40]).float().div(255).unsqueeze(1).numpy()
    got = session.run(None, {"input": images})[0]
    rows = image_run.embed(image_run.config["data"], precision="fp32")[:40]
    np.testing.assert_allclose(got, rows, atol=1e-4)


def test_hf_export_needs_a_transformers_backbone(tmp_path, image_run) -> None:
    with pytest.raises(ValueError, match="needs a run whose backbone is a transformers model"):
        export_run(image_run, "hf", tmp_path / "hf")


def test_a_pretrained_text_run_exports_a_folder_transformers_loads(tmp_path) -> None:
    from transformers import AutoModel, AutoTokenizer

    folder = save_tiny_bert(tmp_path / "bert")
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    run = selfsup.pretrain(
        texts, backbone=f"hf:{folder}", steps=2, batch_size=8, out=tmp_path / "run",
        show_progress=False, monitor_items=0,
    )  # fmt: skip
    result = export_run(run, "hf", tmp_path / "hf")
    assert result.max_abs_diff <= PARITY
    model = AutoModel.from_pretrained(tmp_path / "hf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    batch = tokenizer(TEXTS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    by_hand = ((hidden * mask).sum(1) / mask.sum(1)).numpy()  # the declared mean pooling
    np.testing.assert_allclose(by_hand, run.embed(texts)[:4], atol=1e-4)
    assert (tmp_path / "hf" / "1_Pooling" / "config.json").exists()
    onnx = export_run(run, "onnx", tmp_path / "onnx")  # text: ids in, any length
    assert onnx.max_abs_diff <= PARITY
    assert (tmp_path / "onnx" / "tokenizer_ids.json").exists()


def test_export_from_the_command_line(tmp_path, image_run) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "selfsup", "export", str(image_run.path), "--format",
         "torchscript", "--out", str(tmp_path / "ts")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "exported torchscript" in out.stdout and "max abs difference" in out.stdout
    with pytest.raises(ValueError, match="unknown export format 'nope'"):
        export_run(image_run, "nope", tmp_path / "nope")


def test_a_run_on_long_series_is_checked_on_windows_of_what_it_trained_on(
    tmp_path, monkeypatch
) -> None:
    """Three months of minute readings at once took 24 GB and five minutes and were killed:
    the export is checked on windows of the length training read (3,000 steps; 300 here)."""
    from selfsup.export import check_items
    from selfsup.modalities import series

    monkeypatch.setattr(series, "TS2VEC_MAX_TRAIN_LENGTH", 300)
    data = tmp_path / "logs.npy"
    rng = np.random.default_rng(0)
    np.save(data, rng.normal(size=(2, 1, 700)).astype(np.float32))
    run = selfsup.pretrain(str(data), modality="series", steps=1, batch_size=4,
                           backbone_options={"hidden": 8, "out_dim": 16, "depth": 2},
                           monitor_items=0, out=tmp_path / "run", show_progress=False)  # fmt: skip
    x, _ = check_items(run, None)
    assert x.shape == (6, 1, 300)  # windows at 0, 300 and 400 of each series
    result = export_run(run, "onnx", tmp_path / "onnx")
    assert result.max_abs_diff <= PARITY


def test_the_model_card_says_how_to_make_a_photo_into_the_inputs_selfsup_embeds(
    tmp_path,
) -> None:
    """The card's Pillow code, run on photo files (large JPEGs read in draft mode, an EXIF
    rotation, a portrait, a gray PNG), gives the pixels selfsup reads, and the ONNX model on
    them the rows ``embed`` writes: a user resizing otherwise gets other embeddings."""
    import onnxruntime
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1, 120)
    for i, (w, h) in enumerate([(120, 90), (90, 120), (120, 90), (40, 30), (120, 90)] * 4):
        base = np.outer(grid[:h] * rng.uniform(50, 200), grid[:w])
        pixels = (base[..., None] + rng.uniform(0, 60, (1, 1, 3))).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        if i % 5 == 4:
            image.convert("L").save(folder / f"{i:02d}.png")
            continue
        exif = Image.Exif()
        if i % 5 == 2:
            exif[0x0112] = 6  # taken turned: rotated 90 degrees when read
        image.save(folder / f"{i:02d}.jpg", quality=90, exif=exif)
    run = selfsup.pretrain(folder, image_size=16, steps=2, batch_size=8, backbone="small-cnn",
                           backbone_options={"width": 4}, out=tmp_path / "run",
                           show_progress=False, monitor_items=0)  # fmt: skip
    export_run(run, "onnx", tmp_path / "onnx", data=str(folder))
    card = (tmp_path / "onnx" / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)  # the card's own example
    source = run.open(str(folder))
    files = [folder / item for item in source.ids]
    made = np.concatenate([namespace["selfsup_input"](path) for path in files])
    read = source.read_batch(range(len(source))).items.numpy()
    np.testing.assert_array_equal(made, read)
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"))
    got = session.run(None, {"input": made})[0]
    np.testing.assert_allclose(got, run.embed(str(folder), precision="fp32"), atol=1e-4)


def test_a_table_export_ships_its_column_encoding_and_says_how_rows_are_encoded(
    tmp_path,
) -> None:
    """A fraud team's service feeds the ONNX encoder rows it encodes itself: the export
    ships ``preprocess.json``, and the card's code with it gives the rows ``embed`` writes."""
    import onnxruntime
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "amount": np.where(rng.random(300) < 0.1, np.nan, rng.lognormal(3, 1, 300)),
        "shop": rng.choice(["grocer", "fuel", "online", "travel"], 300),
        "when": pd.date_range("2025-01-01", periods=300, freq="37min").astype(str),
    })  # fmt: skip
    path = tmp_path / "tx.csv"
    frame.to_csv(path, index=False)
    run = selfsup.pretrain(path, steps=2, batch_size=32, out=tmp_path / "run",
                           show_progress=False, monitor_items=0)  # fmt: skip
    export_run(run, "onnx", tmp_path / "onnx")
    assert (tmp_path / "onnx" / "preprocess.json").exists()
    card = (tmp_path / "onnx" / "README.md").read_text()
    assert "amount (missing)" in card and "`indicators`" in card
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("EXPORT_FOLDER", repr(str(tmp_path / "onnx")))
    code = code.replace('"new.csv"', repr(str(path)))
    namespace: dict = {}
    exec(code, namespace)  # the card's own example
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"))
    got = session.run(None, {"input": namespace["rows"]})[0]
    np.testing.assert_allclose(got, run.embed(path, precision="fp32"), atol=1e-4)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_series_export_takes_series_of_any_length_with_gaps(tmp_path, fmt) -> None:
    """Sensor windows of another length than the checked ones, NaN in a gap: the ONNX
    export fixed the length at the checked windows' (128 steps) and refused 300."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "logs.npy", rng.normal(size=(40, 2, 128)).astype(np.float32))
    run = selfsup.pretrain(tmp_path / "logs.npy", modality="series", steps=2, batch_size=8,
                           out=tmp_path / "run", show_progress=False, monitor_items=0)  # fmt: skip
    export_run(run, fmt, tmp_path / fmt)
    assert "(batch, 2, steps)" in (tmp_path / fmt / "README.md").read_text()
    longer = rng.normal(size=(3, 2, 300)).astype(np.float32)
    longer[0, :, 250:], longer[1, 0, 10:20] = np.nan, np.nan
    with torch.no_grad():
        expected = run.encoder.eval()(torch.from_numpy(longer)).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp_path / fmt / "encoder.onnx"))
        got = session.run(None, {"input": longer})[0]
    else:
        got = torch.jit.load(str(tmp_path / fmt / "encoder.pt"))(torch.from_numpy(longer))
        got = got.detach().numpy()
    np.testing.assert_allclose(got, expected, atol=PARITY)


@pytest.mark.parametrize("backbone", ["own", "pretrained"])
def test_a_text_export_card_turns_texts_into_the_ids_it_takes(tmp_path, backbone) -> None:
    """The card's ``tokenizers`` code (renumbering a pretrained vocabulary's special ids)
    gives the ids selfsup reads, and the ONNX model on them the rows ``embed`` writes."""
    import onnxruntime

    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    options = {} if backbone == "own" else {"backbone": f"hf:{save_tiny_bert(tmp_path / 'b')}"}
    run = selfsup.pretrain(texts, steps=2, batch_size=8, out=tmp_path / "run",
                           show_progress=False, monitor_items=0, **options)  # fmt: skip
    export_run(run, "onnx", tmp_path / "onnx")
    card = (tmp_path / "onnx" / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('"tokenizer.json"', repr(str(tmp_path / "onnx" / "tokenizer.json")))
    namespace: dict = {}
    exec(code, namespace)  # the card's own example
    ids = namespace["selfsup_input"](TEXTS[:5])
    source = run.open(str(texts))
    np.testing.assert_array_equal(ids, source.tokenizer.encode(TEXTS[:5]))
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"))
    got = session.run(None, {"input": ids})[0]
    np.testing.assert_allclose(got, run.embed(texts, precision="fp32")[:5], atol=1e-4)
