"""The modality registry: each modality answers for itself; nothing else names modalities."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfsup.config import ConfigError, PretrainConfig
from selfsup.methods import METHODS
from selfsup.modalities import (
    MODALITIES,
    get_modality,
    infer_modality,
    load_encoder,
    open_source,
    resolve_config,
    train_test_sources,
)
from selfsup.run import pretrain

SRC = Path(__file__).resolve().parents[2] / "src" / "selfsup"
#: A comparison of a modality with a literal name, as `x.modality == "text"` or `in ("series",`
#: (two items' modalities compared with each other, `a.modality != b.modality`, name none).
NAMED = "|".join(MODALITIES)
COMPARISON = re.compile(
    rf"""modality\W*\s*(==|!=|\bin\b|\bnot in\b)(?!\s*\w+\.modality\b)"""
    rf"""|["']({NAMED})["']\s*(==|!=|\bin\b)"""
    rf"""|(==|!=)\s*["']({NAMED})["']"""
)


def test_no_module_outside_modalities_compares_with_a_modality_name() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        if "modalities" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if COMPARISON.search(line):
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert found == []


def test_every_modality_answers_the_whole_interface() -> None:
    for name, modality in MODALITIES.items():
        assert modality.name == name and get_modality(name) is modality
        assert modality.default_method in METHODS
        assert name in METHODS[modality.default_method].modalities
        assert modality.default_protocols
        assert modality.recipe(modality.default_recipe) is not None


def test_an_unknown_modality_is_one_named_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown modality '\.\./x'; known: series, text"):
        get_modality("../x")
    with pytest.raises(ConfigError, match="unknown modality"):
        resolve_config(PretrainConfig(data="digits", modality="video"))


@pytest.mark.parametrize(
    ("data", "modality"),
    [("ucr:GunPoint", "series"), ("walk.ts", "series"), ("a.jsonl", "text"),
     ("rotten-tomatoes", "text"), ("x.csv", "tabular"), ("breast-cancer", "tabular"),
     ("digits", "image"), ("./photos", "image")],
)  # fmt: skip
def test_inference_asks_the_modalities_in_order(data, modality) -> None:
    assert infer_modality(data) == modality


def test_arrays_and_frames_open_in_memory() -> None:
    rows = np.random.default_rng(0).normal(size=(20, 3))
    assert infer_modality(rows) == "tabular" and infer_modality(pd.DataFrame(rows)) == "tabular"
    assert open_source(rows).item_shape == (3,)
    images = np.zeros((5, 8, 8), dtype=np.uint8)
    assert infer_modality(images) == "image" and open_source(images).item_shape == (1, 8, 8)
    assert open_source(rows, "series").item_shape == (1, 3)


def test_each_modality_fills_its_own_defaults() -> None:
    series = resolve_config(PretrainConfig(data="ucr:GunPoint"))
    assert (series.method, series.batch_size, series.lr, series.precision) == (
        "ts2vec", 8, 1e-3, "fp32")  # fmt: skip
    text = resolve_config(PretrainConfig(data="x.csv", text_column="body"))
    assert (text.modality, text.method, text.batch_size, text.lr) == ("text", "simcse", 64, 5e-4)
    image = resolve_config(PretrainConfig(data="digits", lr=0.1))
    assert (image.method, image.batch_size, image.lr) == ("simclr", 256, 0.1)


def test_official_test_splits_come_from_the_modality() -> None:
    train, test = train_test_sources("digits")
    assert (train.name, test.name) == ("digits", "digits:test")


@pytest.mark.parametrize("method", ["mae", "ijepa"])
def test_masked_methods_pick_a_vit_when_no_backbone_is_given(method, tmp_path) -> None:
    run = pretrain("digits", method=method, epochs=1, out=str(tmp_path / method),
                   backbone_options={"dim": 16, "depth": 1, "heads": 2}, monitor_items=0,
                   show_progress=False)  # fmt: skip
    assert run.config["backbone"] == "vit-tiny"
    assert run.summary["steps"] > 0
    again = load_encoder(run.path)
    assert type(again.backbone).__name__ == "VisionTransformer"


def test_sent2vec_picks_the_text_bag() -> None:
    from selfsup.data.text import TextSource

    source = TextSource(["a b c"] * 10)
    cfg = resolve_config(PretrainConfig(data="-", modality="text", method="sent2vec"))
    assert get_modality("text").default_backbone("sent2vec", source, cfg) == "text-bag"


def test_series_train_ts2vec_200_iterations_unless_told_otherwise(tmp_path) -> None:
    series = np.random.default_rng(0).normal(size=(40, 1, 20)).astype(np.float32)
    options = {"backbone_options": {"hidden": 4, "out_dim": 8, "depth": 1}, "show_progress": False}
    run = pretrain(series, modality="series", out=str(tmp_path / "a"), **options)
    assert run.config["steps"] == 200 and run.summary["steps"] == 200
    run = pretrain(series, modality="series", epochs=2, out=str(tmp_path / "b"), **options)
    assert run.config["steps"] is None and run.summary["steps"] == 2 * (40 // 8)
