"""MSF: the shifted targets and the loss against a hand computation, the frozen target, the
memory bank (texts once each, FIFO, in the state dict), the fill before the first step, and
the refusal of a start from random weights."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tests.hf_models import TEXTS, save_tiny_bert

import selfsup
from selfsup.config import ConfigError, PretrainConfig
from selfsup.methods import build_method
from selfsup.methods.distill import distill_loss
from selfsup.methods.msf import mean_shift_targets
from selfsup.modalities import resolve_config
from selfsup.modalities.image import build_image_encoder
from selfsup.modalities.text import build_text_encoder


def test_the_targets_are_the_weighted_mean_of_the_item_and_its_neighbours_by_hand() -> None:
    t = torch.tensor([[1.0, 0.0]])
    bank = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    # k = 2: rows 0 (cosine 1) and 1 (0.6); their mean (0.8, 0.4); with w = 0.5 and t:
    # 0.5 (1, 0) + 0.5 (0.8, 0.4) = (0.9, 0.2), of length sqrt(0.85).
    got = mean_shift_targets(t, bank, k=2, self_weight=0.5)
    expected = torch.tensor([[0.9, 0.2]]) / 0.85**0.5
    torch.testing.assert_close(got, expected)
    # w = 1 is the target itself (BYOL with a frozen target); k above the bank takes it all.
    torch.testing.assert_close(mean_shift_targets(t, bank, k=2, self_weight=1.0), t)
    everything = mean_shift_targets(t, bank, k=10, self_weight=0.0)
    torch.testing.assert_close(everything, F.normalize(bank.mean(0, keepdim=True), dim=1))


def test_the_loss_pulls_the_online_view_to_the_frozen_targets_neighbourhood() -> None:
    torch.manual_seed(0)
    encoder = build_image_encoder("small-cnn", 1, 12, width=4)
    method = build_method("msf", encoder, k=3, self_weight=0.25, bank_size=32)
    method.train()
    assert not method.target.training and method.encoder.training
    views = [torch.rand(6, 1, 12, 12), torch.rand(6, 1, 12, 12)]
    with torch.no_grad():
        v = F.normalize(method.target(views[1]), dim=1)
    online = method.encoder(views[0])
    # The bank was empty: it now holds exactly this batch's targets, in order.
    expected = distill_loss(online, mean_shift_targets(v, v, k=3, self_weight=0.25))
    loss = method(views)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(method.bank[:6], v)
    loss.backward()
    assert all(p.grad is None for p in method.target.parameters())
    assert next(method.encoder.parameters()).grad.abs().sum() > 0


def test_texts_enter_the_bank_once_and_it_is_a_fifo_kept_in_the_state_dict() -> None:
    torch.manual_seed(0)
    encoder = build_text_encoder("text-transformer", 50, 10, dim=16, depth=1, heads=2)
    method = build_method("msf", encoder, k=2, bank_size=5)
    ids = torch.randint(1, 50, (4, 10))
    ids[1] = ids[0]  # the same text twice in a batch
    method([ids, ids])
    assert int(method.bank_filled) == 3
    padded = F.pad(ids[:2], (0, 3))  # the same texts in a batch padded further: known
    method([padded, padded])
    assert int(method.bank_filled) == 3
    fresh = torch.randint(1, 50, (4, 10))
    method([fresh, fresh])  # 4 new texts over a bank of 5: the oldest 2 are overwritten
    assert int(method.bank_filled) == 5 and int(method.bank_pointer) == 2
    with torch.no_grad():
        newest = F.normalize(method.target(fresh), dim=1)
    torch.testing.assert_close(method.bank[[3, 4, 0, 1]], newest)
    state = method.state_dict()
    assert {"bank", "bank_keys", "bank_pointer", "bank_filled"} <= set(state)


def test_a_text_run_fills_its_bank_first_and_adapts_a_pretrained_model(tmp_path) -> None:
    """MSF is also the method a sentence encoder gets when none is asked (a language model
    gets SimCSE)."""
    folder = save_tiny_bert(tmp_path / "bert")
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(TEXTS * 4) + "\n")  # 72 distinct texts, 288 lines
    language_model = PretrainConfig(data=str(texts), backbone=f"hf:{folder}")
    assert resolve_config(language_model).method == "simcse"
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]'
    )
    run = selfsup.pretrain(
        texts, backbone=f"hf:{folder}", steps=12, batch_size=16, lr=1e-3,
        out=tmp_path / "run", show_progress=False, monitor_items=0, log_every=1,
    )  # fmt: skip
    log = (run.path / "train.log").read_text()
    assert run.config["method"] == "msf"
    assert f"note: hf:{folder} is a sentence encoder: msf adapts it" in log
    assert "memory bank filled with the target's embeddings of 288 items" in log
    losses = pd.read_csv(run.path / "metrics.csv")["loss"].dropna()
    assert len(losses) == 12 and np.isfinite(losses).all() and losses.iloc[0] > 0
    bank = torch.load(run.path / "checkpoints" / "last.ckpt", weights_only=True)["method"]
    assert int(bank["bank_filled"]) == 72  # each text once
    frozen = selfsup.load(f"hf:{folder}").embed(texts)
    adapted = run.embed(texts)
    assert adapted.shape == frozen.shape and not np.allclose(adapted, frozen, atol=1e-4)


def test_random_weights_are_refused_before_the_data_is_read(tmp_path) -> None:
    with pytest.raises(ConfigError, match="adapts a pretrained encoder"):
        selfsup.pretrain("digits", method="msf", out=tmp_path / "a", show_progress=False)


def test_a_time_budget_bounds_the_fill_before_the_first_step(tmp_path, monkeypatch) -> None:
    """The fill stops at its share of the budget (here none: one batch) and the bank goes on
    filling with each step's targets."""
    from selfsup.engine import train as engine

    monkeypatch.setattr(engine, "FILL_SHARE", 0.0)
    folder = save_tiny_bert(tmp_path / "bert")
    texts = tmp_path / "reviews.txt"
    texts.write_text("\n".join(TEXTS * 4) + "\n")
    run = selfsup.pretrain(
        texts, backbone=f"hf:{folder}", method="msf", time_budget=0.05, batch_size=16,
        out=tmp_path / "run", show_progress=False, monitor_items=0, log_every=1,
    )  # fmt: skip
    log = (run.path / "train.log").read_text()
    assert "memory bank filled with the target's embeddings of 16 items" in log
    assert "(a 0% share of the 0.05-minute --time-budget; each step's targets go on" in log
