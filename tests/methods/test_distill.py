"""Distillation: the loss against a hand computation, a frozen teacher, image and text runs
from a run or a pretrained model, and the options it refuses."""

import numpy as np
import pandas as pd
import pytest
import torch
from tests.hf_models import TEXTS, save_tiny_bert

import selfsup
from selfsup.config import ConfigError
from selfsup.methods import build_method
from selfsup.methods.distill import distill_loss
from selfsup.modalities.image import build_image_encoder

SMALL = {"backbone": "small-cnn", "backbone_options": {"width": 8}}


def test_the_loss_is_two_minus_twice_the_cosine_by_hand() -> None:
    s = torch.tensor([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]])
    t = torch.tensor([[2.0, 0.0, 0.0], [0.0, 4.0, 3.0]])
    cosines = [1.0 / 3.0, (12 + 12) / 25]  # (1*2)/(3*2); (0 + 12 + 12)/(5*5)
    expected = np.mean([2 - 2 * c for c in cosines])
    assert distill_loss(s, t).item() == pytest.approx(expected, rel=1e-6)
    assert distill_loss(3 * s, 0.5 * t).item() == pytest.approx(expected, rel=1e-6)


def test_the_teacher_stays_frozen_and_in_eval_mode() -> None:
    torch.manual_seed(0)
    teacher = build_image_encoder("small-cnn", 1, 16, width=8)
    student = build_image_encoder("small-cnn", 1, 12, width=4)  # another size: conformed
    method = build_method("distill", student, teacher=teacher)
    method.train()
    assert not method.teacher.training and method.encoder.training
    method([torch.rand(6, 1, 12, 12)]).backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert next(method.encoder.parameters()).grad.abs().sum() > 0
    assert method.projection.weight.shape == (teacher.feature_dim, student.feature_dim)


def _losses(run) -> pd.Series:
    return pd.read_csv(run.path / "metrics.csv")["loss"].dropna()


def test_an_image_student_learns_to_reproduce_a_teacher_run(tmp_path, clusters_npz) -> None:
    teacher = selfsup.pretrain(
        clusters_npz, epochs=2, batch_size=32, out=tmp_path / "teacher", show_progress=False,
        log_every=1, **SMALL,
    )  # fmt: skip
    student = selfsup.pretrain(
        clusters_npz, method="distill", teacher=str(teacher.path), epochs=6, batch_size=32, lr=3e-3,
        backbone="small-cnn", backbone_options={"width": 4}, out=tmp_path / "student",
        show_progress=False, log_every=1,
    )  # fmt: skip
    losses = _losses(student)
    assert losses.iloc[-3:].mean() < 0.7 * losses.iloc[:3].mean(), losses.tolist()
    assert student.summary["method_options"]["teacher"] == "small-cnn"
    again = selfsup.load(student.path)  # the teacher is not needed to use the student
    np.testing.assert_allclose(again.embed(clusters_npz), student.embed(clusters_npz), atol=1e-5)


def test_a_photo_student_learns_from_a_pretrained_vision_teacher_at_its_own_side(
    tmp_path,
) -> None:
    """LightlyTrain's recipe on a folder of photos: a DINOv2 teacher (224 px) and a ResNet-18
    student at the CPU's 128 px. The student's bf16 views were resized for the teacher by an
    antialiased resize PyTorch has no bf16 kernel for: the run stopped at its first step."""
    from PIL import Image
    from transformers import Dinov2Config, Dinov2Model

    from selfsup.methods.distill import teach
    from selfsup.modalities.image import build_pretrained_image_encoder

    torch.manual_seed(0)
    tower = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "mlp_ratio": 2}  # fmt: skip
    Dinov2Model(Dinov2Config(**tower)).save_pretrained(tmp_path / "dinov2")
    teacher = build_pretrained_image_encoder(f"hf:{tmp_path / 'dinov2'}", in_channels=3)
    views = torch.rand(4, 3, 20, 20)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = teach(teacher, views.bfloat16())  # views made under autocast
        wide = teach(teacher, views)
    assert low.dtype == torch.float32 and low.shape == (4, 16)
    np.testing.assert_allclose(low, wide, atol=0.1)
    rng = np.random.default_rng(0)
    for i in range(24):
        pixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        (tmp_path / "photos").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / "photos" / f"IMG_{i:04d}.jpg")
    student = selfsup.pretrain(
        tmp_path / "photos", method="distill", teacher=f"hf:{tmp_path / 'dinov2'}", epochs=1,
        batch_size=8, image_size=20, out=tmp_path / "student", show_progress=False, **SMALL,
    )  # fmt: skip
    assert student.summary["steps"] > 0 and student.embed(tmp_path / "photos").shape == (24, 64)


def test_a_text_bag_student_reads_the_pretrained_teachers_tokenizer(tmp_path) -> None:
    folder = save_tiny_bert(tmp_path / "bert")
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(TEXTS * 4) + "\n")
    run = selfsup.pretrain(
        texts, method="distill", teacher=f"hf:{folder}", steps=30, batch_size=16,
        backbone_options={"dim": 16}, out=tmp_path / "student", show_progress=False,
        monitor_items=0, log_every=1,
    )  # fmt: skip
    assert run.config["backbone"] == "text-bag"
    assert (run.path / "tokenizer_ids.json").exists()  # the teacher's vocabulary, renumbered
    assert run.summary["method_options"]["init_tokens"]  # started from the teacher's vectors
    losses = _losses(run)
    assert losses.iloc[-5:].mean() < losses.iloc[:5].mean(), losses.tolist()
    assert run.embed(texts).shape == (len(TEXTS) * 4, 16)


def test_distillation_options_are_checked_before_reading_data(tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs --teacher"):
        selfsup.pretrain("digits", method="distill", out=tmp_path / "a", show_progress=False)
    with pytest.raises(ConfigError, match="--teacher is for --method distill"):
        selfsup.pretrain("digits", teacher="x", out=tmp_path / "b", show_progress=False)
    with pytest.raises(ConfigError, match="not a run folder"):
        selfsup.pretrain("digits", init=str(tmp_path), out=tmp_path / "c", show_progress=False)


def test_init_starts_from_a_run_and_frozen_blocks_do_not_move(tmp_path, clusters_npz) -> None:
    first = selfsup.pretrain(
        clusters_npz, epochs=1, batch_size=32, out=tmp_path / "first", show_progress=False,
        **SMALL,
    )  # fmt: skip
    second = selfsup.pretrain(
        clusters_npz, init=str(first.path), method="byol", epochs=2, batch_size=32,
        freeze_blocks=2, layer_decay=0.5, lr=3e-3, out=tmp_path / "second",
        show_progress=False,
    )  # fmt: skip
    assert second.config["backbone"] == "small-cnn" and second.config["init"] == str(first.path)
    before = first.encoder.backbone.block_list()
    after = second.encoder.backbone.block_list()
    for k, (a, b) in enumerate(zip(before, after, strict=True)):
        kept = [k for k in a.state_dict() if not k.endswith("num_batches_tracked")]
        # Weights and batch-norm statistics alike.
        same = all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in kept)
        assert same == (k < 2), f"block {k}"


def test_a_text_teachers_embeddings_are_computed_once_per_text(tmp_path) -> None:
    from selfsup.data.tokenizer import TextTokenizer
    from selfsup.modalities.text import build_pretrained_text_encoder, build_text_encoder

    folder = save_tiny_bert(tmp_path / "bert")
    tokenizer = TextTokenizer.from_pretrained(folder, max_length=16)
    teacher = build_pretrained_text_encoder(f"hf:{folder}", tokenizer)
    student = build_text_encoder("text-bag", tokenizer.vocab_size, 16, dim=16)
    method = build_method("distill", student, teacher=teacher)
    seen = []
    teacher.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    ids = torch.from_numpy(tokenizer.encode(TEXTS[:8]))
    first = method.targets(ids)
    shuffled = method.targets(torch.nn.functional.pad(torch.cat([ids[4:], ids[:4]]), (0, 2)))
    assert seen == [8]  # the second batch, reordered and padded wider, came from the cache
    torch.testing.assert_close(shuffled, torch.cat([first[4:], first[:4]]))
    uncached = build_method("distill", student, teacher=teacher, cache_targets=0)
    torch.testing.assert_close(uncached.targets(ids), first)


def test_the_held_out_loss_is_the_mean_loss_over_all_held_out_items(clusters_npz) -> None:
    from selfsup.data.arrays import load_array_file
    from selfsup.engine.monitor import measure_heldout_loss
    from selfsup.methods.distill import teach

    torch.manual_seed(0)
    source = load_array_file(clusters_npz)
    teacher = build_image_encoder("small-cnn", 1, 12, width=8)
    method = build_method("distill", build_image_encoder("small-cnn", 1, 12, width=4),
                          teacher=teacher)  # fmt: skip
    measured = measure_heldout_loss(
        method, source, lambda x: [x], items=len(source), batch_size=50, precision="fp32"
    )  # 6 batches, the last of 6 items: a mean over items, not over batches
    x = source.read_batch(list(range(len(source)))).items
    with torch.no_grad():
        expected = distill_loss(method.projection(method.encoder(x)), teach(teacher, x))
    assert measured == pytest.approx(expected.item(), rel=1e-5)
    assert measure_heldout_loss(build_method("simclr", teacher), source, lambda x: [x, x]) is None


def test_a_student_keeps_the_epoch_closest_to_its_teacher_on_held_out_items(
    tmp_path, clusters_npz
) -> None:
    teacher = selfsup.pretrain(
        clusters_npz, epochs=1, batch_size=32, out=tmp_path / "teacher", show_progress=False,
        **SMALL,
    )  # fmt: skip
    student = selfsup.pretrain(
        clusters_npz, method="distill", teacher=str(teacher.path), epochs=5, batch_size=32,
        lr=3e-3, backbone="small-cnn", backbone_options={"width": 4}, monitor_items=64,
        keep_checkpoints=True, out=tmp_path / "student", show_progress=False,
    )  # fmt: skip
    assert student.config["select_by"] == "heldout_loss"  # --select-by auto, for distill
    epochs = pd.read_csv(student.path / "epochs.csv")
    best = int(epochs.loc[epochs["heldout_loss"].idxmin(), "epoch"])
    assert student.summary["selected"]["by"] == "heldout_loss"
    assert student.summary["selected"]["epoch"] == best
    assert student.summary["selected"]["value"] == pytest.approx(epochs["heldout_loss"].min())
    assert student.summary["heldout_loss_start"] > epochs["heldout_loss"].min()  # it learned
    from safetensors.torch import load_file

    weights = load_file(str(student.path / "checkpoints" / f"epoch-{best:04d}.safetensors"))
    reloaded = selfsup.load(student.path).encoder.state_dict()
    assert all(torch.equal(weights[k], reloaded[k]) for k in weights)


def test_the_teachers_work_on_new_texts_is_counted_in_training_only(tmp_path) -> None:
    """``once_work``: the seconds and texts of the teacher's kept targets in training (the
    pace of a time budget leaves them out); texts met again, held-out measurements (eval
    mode) and texts beyond ``cache_targets`` add nothing."""
    from selfsup.data.tokenizer import TextTokenizer
    from selfsup.modalities.text import build_pretrained_text_encoder, build_text_encoder

    folder = save_tiny_bert(tmp_path / "bert")
    tokenizer = TextTokenizer.from_pretrained(folder, max_length=16)
    teacher = build_pretrained_text_encoder(f"hf:{folder}", tokenizer)
    student = build_text_encoder("text-bag", tokenizer.vocab_size, 16, dim=16)
    method = build_method("distill", student, teacher=teacher, cache_targets=6).train()
    ids = torch.from_numpy(tokenizer.encode(TEXTS[:8]))
    assert method.once_work() is None  # nothing read yet
    method.loss([ids[:4]])
    first = method.once_work()
    assert first.items == 4 and first.seconds > 0 and first.limit == 6
    method.loss([ids[:4]])  # met again: kept
    assert method.once_work() == first
    method.loss([ids[4:]])  # 2 of these 4 are kept, the limit reached
    third = method.once_work()
    assert third.items == 6 and third.seconds > first.seconds
    method.eval()
    method.heldout_loss([torch.from_numpy(tokenizer.encode(TEXTS[8:10]))])
    assert method.once_work() == third
    image_teacher = build_image_encoder("small-cnn", 1, 12, width=4)
    crops = build_method("distill", build_image_encoder("small-cnn", 1, 12, width=4),
                         teacher=image_teacher).train()  # fmt: skip
    crops.loss([torch.rand(4, 1, 12, 12)])
    assert crops.once_work() is None  # random crops never repeat: nothing kept
