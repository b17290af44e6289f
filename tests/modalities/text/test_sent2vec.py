"""Sent2Vec and the text-bag backbone: loss by hand, sampling, gradients, training."""

import math

import numpy as np
import pytest
import torch
from tests.modalities.text.conftest import make_texts

import selfsup
from selfsup.data.text import TextSource
from selfsup.data.tokenizer import PAD_ID
from selfsup.embedding import embed_source
from selfsup.evaluation.knn import knn_accuracy
from selfsup.methods import Sent2Vec, build_method
from selfsup.methods.sent2vec import keep_probability, leave_one_out_means, sent2vec_loss
from selfsup.modalities.image import build_image_encoder
from selfsup.modalities.text import build_text_encoder


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_sent2vec_loss_matches_a_hand_computation():
    context = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    positive = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    negatives = torch.tensor([[[1.0, 0.0], [0.0, -1.0]], [[2.0, 2.0], [-1.0, 0.0]]])
    # Token 1: u.v = 1.5, negatives 1 and -2; token 2: u.v = 0.5, negatives -1 and -0.5.
    expected = (
        softplus(-1.5) + softplus(1.0) + softplus(-2.0) + softplus(-0.5) + softplus(-1.0)
    ) + softplus(-0.5)
    assert sent2vec_loss(context, positive, negatives).item() == pytest.approx(expected / 2)


def test_leave_one_out_means_skip_the_token_and_the_padding():
    vectors = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]], [[7.0, 1.0], [9.0, 9.0], [0, 0]]])
    present = torch.tensor([[True, True, True], [True, False, False]])
    means = leave_one_out_means(vectors, present)
    torch.testing.assert_close(means[0], torch.tensor([[4.0, 3.0], [3.0, 2.0], [2.0, 1.0]]))
    # A text of one token has no other token: its context is 0 (and it is never a target).
    torch.testing.assert_close(means[1, 0], torch.zeros(2))


def test_text_bag_is_the_mean_of_the_token_vectors_without_padding():
    encoder = build_text_encoder("text-bag", 30, 8, dim=4)
    ids = torch.tensor([[5, 6, 7, PAD_ID], [9, PAD_ID, PAD_ID, PAD_ID]])
    table = encoder.backbone.token_embedding.weight
    with torch.no_grad():
        out = encoder(ids)
    torch.testing.assert_close(out[0], table[[5, 6, 7]].mean(dim=0))
    torch.testing.assert_close(out[1], table[9])
    assert encoder.feature_dim == 4 and encoder.backbone.tokens(ids).shape == (2, 4, 4)


def test_sent2vec_loss_in_the_method_is_the_formula_on_its_own_draws():
    torch.manual_seed(0)
    encoder = build_text_encoder("text-bag", 20, 8, dim=3)
    method = Sent2Vec(encoder, negatives=2, subsample=1.0)  # t = 1: every token is a target
    with torch.no_grad():
        method.output.weight.normal_()
    ids = torch.tensor([[4, 5, 6, PAD_ID], [7, 8, PAD_ID, PAD_ID]])
    torch.manual_seed(1)
    loss = method([ids])
    # Replay the method's random draws: the subsampling uniforms, then the negatives.
    torch.manual_seed(1)
    torch.rand(ids.shape)
    counts = torch.zeros(20, dtype=torch.float64)
    counts[[4, 5, 6, 7, 8]] = 1.0
    drawn = torch.multinomial(counts.sqrt().float(), 5 * 2, True).view(5, 2)
    table, out = encoder.backbone.token_embedding.weight, method.output.weight
    targets = [(0, [5, 6], 4), (1, [4, 6], 5), (2, [4, 5], 6), (3, [8], 7), (4, [7], 8)]
    expected = 0.0
    for row, others, target in targets:
        v = table[others].mean(dim=0)
        expected += softplus(-(out[target] @ v).item())
        expected += sum(softplus((out[k] @ v).item()) for k in drawn[row])
    assert loss.item() == pytest.approx(expected / 5, rel=1e-5)
    assert method.counts[[4, 5, 6, 7, 8]].tolist() == [1.0] * 5


def test_frequent_tokens_are_subsampled_and_special_tokens_never_negatives():
    torch.manual_seed(0)
    method = Sent2Vec(build_text_encoder("text-bag", 50, 64, dim=4), subsample=1e-2)
    ids = torch.full((64, 40), 5)  # token 5 makes up almost everything
    ids[:, 0] = 6
    method([ids])
    # 2,496 of token 5 and 64 of token 6 among 2,560: keep sqrt(t / f) + t / f, at most 1.
    keep = keep_probability(method.counts, 1e-2)
    f5 = 2496 / 2560
    assert keep[5].item() == pytest.approx(math.sqrt(1e-2 / f5) + 1e-2 / f5)
    assert keep[6].item() == 1.0 and keep[5].item() < 0.12
    # Negatives are drawn only where counts are positive and never among special tokens.
    method.counts[:3] = 1e6
    drawn = []
    original = torch.multinomial
    torch.multinomial = lambda w, n, r: drawn.append(w.clone()) or original(w, n, r)
    try:
        method([ids])
    finally:
        torch.multinomial = original
    assert drawn[0][:3].eq(0).all() and drawn[0][5] > 0


def test_gradients_reach_the_token_vectors_once_the_outputs_move():
    torch.manual_seed(0)
    encoder = build_text_encoder("text-bag", 40, 8, dim=6)
    method = build_method("sent2vec", encoder)
    ids = torch.randint(5, 40, (6, 8))
    method([ids]).backward()
    # word2vec's start: output vectors are 0, so only they get a gradient at first...
    assert encoder.backbone.token_embedding.weight.grad.abs().sum() == 0
    assert method.output.weight.grad.abs().sum() > 0
    with torch.no_grad():
        method.output.weight -= method.output.weight.grad
    method.zero_grad()
    method([ids]).backward()
    # ...then the token vectors, the encoder, learn too.
    assert encoder.backbone.token_embedding.weight.grad.abs().sum() > 0


def test_sent2vec_rejects_other_backbones_and_bad_options():
    with pytest.raises(ValueError, match="text-bag"):
        Sent2Vec(build_image_encoder("small-cnn", 1, 12, width=4))
    with pytest.raises(ValueError, match="text-bag"):
        Sent2Vec(build_text_encoder("text-transformer", 40, 8, dim=8, depth=1, heads=2))
    with pytest.raises(ValueError, match="negatives"):
        Sent2Vec(build_text_encoder("text-bag", 40, 8, dim=6), negatives=0)


def test_short_training_lifts_knn_well_above_chance(tmp_path):
    texts, labels = make_texts(300, topic_words=2, filler=10)
    source = TextSource(texts, vocab_size=300, max_length=16)
    torch.manual_seed(0)
    untrained = build_text_encoder("text-bag", source.tokenizer.vocab_size, 16, dim=32)
    before = embed_source(untrained, source)
    run = selfsup.pretrain(
        source,
        method="sent2vec",
        backbone="text-bag",
        backbone_options={"dim": 32},
        epochs=30,
        batch_size=32,
        lr=3e-2,
        precision="fp32",
        out=tmp_path / "sent2vec",
        show_progress=False,
        monitor_items=0,
    )
    after = run.embed(source)
    knn = lambda e: knn_accuracy(e[:200], labels[:200], e[200:], labels[200:], k=10)  # noqa: E731
    # Chance is 1/3; random token vectors already give 0.60 (a random projection of the bag
    # of words), training 0.80.
    assert knn(after) > 0.72 and knn(after) > knn(before) + 0.1
    assert np.isfinite(after).all()


def test_the_encoder_output_is_centred_on_the_running_mean_sentence_vector():
    torch.manual_seed(0)
    encoder = build_text_encoder("text-bag", 40, 8, dim=6)
    method = Sent2Vec(encoder, center_momentum=0.5)
    ids = torch.tensor([[5, 6, 7], [8, 9, PAD_ID], [PAD_ID, PAD_ID, PAD_ID]])
    bag = encoder.backbone
    plain = bag.sentence_vectors(ids[:2]).detach()
    method([ids])  # the empty third text does not count
    torch.testing.assert_close(bag.center, 0.5 * plain.mean(dim=0))
    with torch.no_grad():
        torch.testing.assert_close(encoder(ids[:2]), plain - bag.center)
    # The centre is saved with the encoder: a reloaded run embeds the same way.
    assert "backbone.center" in encoder.state_dict()


def test_the_predicted_tokens_are_padded_to_a_few_sizes_that_do_not_count(monkeypatch):
    import selfsup.methods.sent2vec as s2v

    rng = torch.Generator().manual_seed(0)
    context, positive = torch.randn(5, 4, generator=rng), torch.randn(5, 4, generator=rng)
    negatives = torch.randn(5, 3, 4, generator=rng)
    padded = [torch.cat([t, t[:1].expand(2, *t.shape[1:])]) for t in (context, positive, negatives)]
    assert torch.allclose(
        s2v.sent2vec_loss(*padded, count=5), s2v.sent2vec_loss(context, positive, negatives)
    )
    sizes = []
    loss = s2v.sent2vec_loss
    monkeypatch.setattr(
        s2v, "sent2vec_loss", lambda c, p, n, k: sizes.append((len(n), k)) or loss(c, p, n, k)
    )
    method = s2v.Sent2Vec(build_text_encoder("text-bag", 60, 16, dim=8))
    for length in (3, 9, 16):  # a different number of tokens to predict each step
        ids = torch.randint(5, 60, (12, 16), generator=rng)
        ids[:, length:] = 0
        method([ids]).backward()
    assert all(m == s2v.padded_count(k) and 0 < k <= m <= k * 9 / 8 for m, k in sizes), sizes
    counts = [s2v.padded_count(n) for n in range(1, 20_000)]
    assert len(set(counts)) < 120  # a few sizes, whatever the texts
