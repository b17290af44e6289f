"""Pretrained Hugging Face models (``--backbone hf:PATH``): small random models of each
supported class, saved with ``save_pretrained``, loaded, trained a few steps, reloaded from
the run folder alone (the original folder deleted) and used frozen as a run."""

import shutil

import numpy as np
import pytest
import torch
from tests.hf_models import TEXTS, save_tiny_bert

import selfsup
from selfsup.backbones.hf import load_pretrained
from selfsup.data.tokenizer import TextTokenizer
from selfsup.modalities import load_encoder
from selfsup.modalities.image import (
    build_pretrained_image_encoder,
    rebuild_pretrained_image_encoder,
)
from selfsup.modalities.text import build_pretrained_text_encoder


def _image_models():
    import transformers as tr

    tower = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "intermediate_size": 32}  # fmt: skip
    text = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32}  # fmt: skip
    convnext = tr.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
    resnet = tr.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic"
    )
    return {
        "vit": (tr.ViTModel, tr.ViTConfig(**tower), "cls", 16),
        "dinov2": (tr.Dinov2Model, tr.Dinov2Config(**{**tower, "mlp_ratio": 2}), "cls", 16),
        "convnext": (tr.ConvNextModel, convnext, "pooler", 16),
        "resnet": (tr.ResNetModel, resnet, "pooler", 12),
        "clip": (tr.CLIPModel, tr.CLIPConfig(text_config=text, vision_config=tower), "pooler", 16),
        "siglip": (
            tr.SiglipModel,
            tr.SiglipConfig(text_config=text, vision_config=tower),
            "pooler",
            16,
        ),
    }


@pytest.mark.parametrize("kind", list(_image_models()))
def test_each_image_model_class_loads_with_its_pooling_and_rebuilds_from_its_spec(
    tmp_path, kind
) -> None:
    cls, config, pooling, dim = _image_models()[kind]
    torch.manual_seed(0)
    cls(config).save_pretrained(tmp_path / kind)
    encoder = build_pretrained_image_encoder(f"hf:{tmp_path / kind}", in_channels=1)
    assert encoder.spec["options"]["pooling"] == pooling
    assert len(encoder.spec["pretrained"]["sha256"]) == 64
    x = torch.rand(3, 1, 32, 32)  # gray images are read as three equal channels
    encoder.eval()
    out = encoder(x)
    assert out.shape == (3, dim) and torch.isfinite(out).all()
    again = rebuild_pretrained_image_encoder(encoder.describe())
    again.load_state_dict(encoder.state_dict())
    again.eval()
    torch.testing.assert_close(again(x), out)


def test_the_models_own_normalization_is_read_from_its_preprocessor_config(tmp_path) -> None:
    cls, config, _, _ = _image_models()["vit"]
    cls(config).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 32,'
        ' "width": 32}}'
    )
    encoder = build_pretrained_image_encoder(f"hf:{tmp_path}", in_channels=3)
    assert encoder.describe()["mean"] == [0.5, 0.5, 0.5] and encoder.spec["image_size"] == 32


def test_the_renumbered_tokenizer_gives_the_models_own_embeddings(tmp_path) -> None:
    folder = save_tiny_bert(tmp_path / "bert")
    tokenizer = TextTokenizer.from_pretrained(folder, max_length=16)
    assert tokenizer.special_ids == (0, 4, 5)
    ids = tokenizer.encode(["the good film", "a zzz plot"])
    assert tokenizer.tokens(ids[1]) == ["[CLS]", "a", "[UNK]", "plot", "[SEP]"]
    assert tokenizer.decode(ids[0]) == "the good film"
    encoder = build_pretrained_text_encoder(f"hf:{folder}", tokenizer).eval()
    model = load_pretrained(f"hf:{folder}").module
    model_ids = torch.tensor([[2, 6, 11, 9, 3], [2, 7, 4, 15, 3]])  # the model's ids, by hand
    assert (torch.from_numpy(tokenizer.to_model)[torch.from_numpy(ids)] == model_ids).all()
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        hidden = model(input_ids=model_ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(encoder(torch.from_numpy(ids)), hidden.mean(dim=1))


def test_a_text_run_from_a_pretrained_model_trains_and_loads_without_its_folder(
    tmp_path,
) -> None:
    folder = save_tiny_bert(tmp_path / "bert")
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    run = selfsup.pretrain(
        texts, backbone=f"hf:{folder}", steps=3, batch_size=8, out=tmp_path / "run",
        show_progress=False, monitor_items=0,
    )  # fmt: skip
    assert run.config["lr"] == pytest.approx(3e-5)  # the pretrained default
    before = run.embed(texts)
    frozen = selfsup.load(f"hf:{folder}").embed(texts)
    assert not np.allclose(before, frozen)  # it trained
    shutil.rmtree(folder)
    again = selfsup.load(run.path)
    np.testing.assert_allclose(again.embed(texts), before, atol=1e-5)
    assert again.encoder.spec["pretrained"]["source"] == str(folder)


def test_a_frozen_model_is_a_run_that_trained_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path / "cache"))
    folder = save_tiny_bert(tmp_path / "bert")
    run = selfsup.load(f"hf:{folder}")
    assert run.summary["frozen"] and run.finished
    assert run.path.parent == tmp_path / "cache" / "frozen"
    texts = [f"{t} {'very ' * (i % 7)}long" for i, t in enumerate(TEXTS)]  # lengths vary
    embedded = run.embed(selfsup.data.text.TextSource(texts))
    assert embedded.shape == (len(TEXTS), 16)
    # Batches of like length, put back in input order: as one text at a time.
    one_by_one = run.embed(selfsup.data.text.TextSource(texts), batch_size=1)
    np.testing.assert_allclose(embedded, one_by_one, atol=1e-5)
    reread = load_encoder(run.path)  # the folder alone rebuilds it
    assert reread.spec["backbone"] == f"hf:{folder}"


def test_a_model_id_is_found_in_the_hugging_face_cache_as_the_hub_lays_it_out(
    tmp_path, monkeypatch
) -> None:
    import huggingface_hub.constants as hub

    folder = save_tiny_bert(tmp_path / "bert")
    repo = tmp_path / "hub" / "models--org--tiny-bert"  # as huggingface_hub writes a download
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for i, file in enumerate(sorted(folder.iterdir())):
        blob = repo / "blobs" / f"blob{i}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(f"../../blobs/blob{i}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # no network: the cache alone
    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path / "cache"))
    run = selfsup.load("hf:org/tiny-bert")
    by_folder = selfsup.load(f"hf:{folder}")
    texts = selfsup.data.text.TextSource(TEXTS)
    np.testing.assert_allclose(run.embed(texts), by_folder.embed(texts), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        load_pretrained("hf:org/not-downloaded")


def test_folders_that_cannot_be_read_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_pretrained(f"hf:{tmp_path / 'missing' / 'deeper' / 'x'}")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text('{"model_type": "bert", "vocab_size": 9}')
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04 pickle")
    with pytest.raises(FileNotFoundError, match="safetensors only"):
        load_pretrained(f"hf:{tmp_path / 'pickled'}")


def test_an_image_run_from_a_pretrained_vit_trains_and_loads_without_its_folder(
    tmp_path, clusters_npz
) -> None:
    cls, config, _, _ = _image_models()["vit"]
    torch.manual_seed(0)
    cls(config).save_pretrained(tmp_path / "vit")
    run = selfsup.pretrain(
        clusters_npz, backbone=f"hf:{tmp_path / 'vit'}", method="byol", steps=3,
        batch_size=32, out=tmp_path / "run", show_progress=False, monitor_items=0,
        layer_decay=0.75,
    )  # fmt: skip
    assert run.config["image_size"] == 32  # the model's own side, not the data's 12 pixels
    # LoRA with a momentum teacher (BYOL's copy of the encoder holds the adapters too).
    adapted = selfsup.pretrain(
        clusters_npz, backbone=f"hf:{tmp_path / 'vit'}", method="byol", steps=2, lora=2,
        batch_size=32, out=tmp_path / "lora", show_progress=False, monitor_items=0,
    )  # fmt: skip
    # fp32: bf16 (the default on CPUs with bf16 instructions) rounds merged and separate
    # adapters differently.
    before = run.embed(clusters_npz, precision="fp32")
    lora_before = adapted.embed(clusters_npz, precision="fp32")
    shutil.rmtree(tmp_path / "vit")
    reread = selfsup.load(run.path).embed(clusters_npz, precision="fp32")
    np.testing.assert_allclose(reread, before, atol=1e-5)
    again = selfsup.load(adapted.path).embed(clusters_npz, precision="fp32")
    np.testing.assert_allclose(again, lora_before, atol=1e-5)


def test_lora_trains_adapters_only_merges_them_into_the_encoder_file_and_resumes(
    tmp_path, monkeypatch
) -> None:
    from safetensors.torch import load_file

    import selfsup.engine.train as train_module

    folder = save_tiny_bert(tmp_path / "bert")
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    options = {"backbone": f"hf:{folder}", "batch_size": 8, "lr": 1e-2, "lora": 4,
               "show_progress": False, "monitor_items": 0}  # fmt: skip
    whole = selfsup.pretrain(texts, steps=4, out=tmp_path / "whole", **options)
    assert whole.encoder.spec["lora"]["rank"] == 4 and whole.encoder.spec["lora"]["merged"]
    saved = load_file(tmp_path / "whole" / "encoder.safetensors")
    assert not any("lora" in key or "base_layer" in key for key in saved)  # plain weights
    embedded = whole.embed(texts, precision="fp32")
    reloaded = selfsup.load(whole.path)  # without peft's wrappers
    np.testing.assert_allclose(reloaded.embed(texts, precision="fp32"), embedded, atol=1e-5)
    frozen = selfsup.load(f"hf:{folder}").embed(texts, precision="fp32")
    assert not np.allclose(embedded, frozen, atol=1e-4)
    # The frozen base: only the adapters (and the method's heads) changed.
    base = load_pretrained(f"hf:{folder}").module.state_dict()
    ckpt = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)
    adapted = {k: v for k, v in ckpt["method"].items() if "lora_" in k}
    assert adapted and any(v.abs().sum() > 0 for k, v in adapted.items() if "lora_B" in k)
    key = next(k for k in ckpt["method"] if k.endswith("embeddings.word_embeddings.weight"))
    torch.testing.assert_close(ckpt["method"][key], base["embeddings.word_embeddings.weight"])
    # Stopped at step 2 of 4 (checkpoints every step) and resumed: as the run that went
    # through, so the checkpoint's adapters were put back into a rebuilt, adapted encoder.
    real_step = train_module.training_step

    def dies_at_step_2(t, items, lr, fabric, state, labels=None):
        if state.step == 2:
            raise KeyboardInterrupt
        return real_step(t, items, lr, fabric, state, labels)

    monkeypatch.setattr(train_module, "training_step", dies_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        selfsup.pretrain(texts, steps=4, out=tmp_path / "part", checkpoint_every=1e-6, **options)
    monkeypatch.setattr(train_module, "training_step", real_step)
    resumed = selfsup.pretrain(resume=tmp_path / "part", show_progress=False)
    assert resumed.summary["steps"] == 4
    np.testing.assert_allclose(resumed.embed(texts, precision="fp32"), embedded, atol=1e-5)


def test_lora_is_refused_for_a_built_in_backbone(tmp_path) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    with pytest.raises(ValueError, match="--lora adapts a pretrained model"):
        selfsup.pretrain(texts, backbone="text-bag", lora=4, steps=1, show_progress=False,
                         out=tmp_path / "run", monitor_items=0)  # fmt: skip
