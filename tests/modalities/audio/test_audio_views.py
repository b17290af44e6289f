"""Audio views on log-mel batches: each transformation's defining property."""

import math

import pytest
import torch

from selfsup.methods import BYOLA, SimCLR
from selfsup.modalities.audio import AUDIO
from selfsup.views.audio import (
    AudioViews,
    audio_recipe,
    background_noise,
    log_mixup_exp,
    random_gain,
    random_resize_crop,
    random_time_crop,
    spec_augment,
)


@pytest.fixture
def logmels() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(6, 1, 16, 24) * 3 - 5


def test_log_mixup_exp_mixes_power_with_another_clip(logmels):
    torch.manual_seed(1)
    mixed = log_mixup_exp(logmels, 0.4)
    # exp(mixed) = (1 - l) exp(x) + l exp(z): each cell lies between the two clips' values,
    # and at most log(1 - 0.4) below the clip's own.
    lowest = logmels.min(dim=0).values
    highest = logmels.max(dim=0).values
    assert (mixed >= lowest - 1e-5).all() and (mixed <= highest + 1e-5).all()
    assert (mixed >= logmels + math.log(0.6) - 1e-5).all()
    assert not torch.allclose(mixed, logmels)
    assert torch.equal(log_mixup_exp(logmels, 0.0), logmels)


def test_gain_is_one_offset_per_clip_within_bounds(logmels):
    shifted = random_gain(logmels, 6.0)
    offset = (shifted - logmels).flatten(1)
    assert torch.allclose(offset, offset[:, :1].expand_as(offset), atol=1e-5)
    assert (offset.abs() <= 6 * math.log(10) / 10 + 1e-6).all()
    assert offset[:, 0].std() > 0


def test_background_noise_only_adds_power(logmels):
    noisy = background_noise(logmels, 1.0, (0.0, 0.0))
    assert (noisy >= logmels - 1e-6).all() and (noisy > logmels + 1e-3).any()
    assert torch.equal(background_noise(logmels, 0.0, (0.0, 0.0)), logmels)
    # At 0 dB SNR the noise carries about as much power as the clip itself.
    added = (noisy.exp() - logmels.exp()).flatten(1).mean(dim=1)
    power = logmels.exp().flatten(1).mean(dim=1)
    assert torch.allclose((added / power).mean(), torch.tensor(1.0), atol=0.3)


def test_resize_crop_keeps_shape_and_zooms(logmels):
    same = random_resize_crop(logmels, (1.0, 1.0), (1.0, 1.0), (1.0, 1.0))
    torch.testing.assert_close(same, logmels, atol=1e-4, rtol=0)
    # A crop of exactly half the bands (and all frames) stretched back: the first band of the
    # view is some band of the clip, and the frames are unchanged in count.
    zoomed = random_resize_crop(logmels, (1.0, 1.0), (0.5, 0.5), (1.0, 1.0))
    assert zoomed.shape == logmels.shape and not torch.allclose(zoomed, logmels)
    # A canvas larger than the clip shows the clip's mean where the crop leaves the clip.
    flat = torch.zeros(2, 1, 8, 8)
    flat[:, :, :, :4] = 1.0
    wide = random_resize_crop(flat, (1.0, 3.0), (1.0, 1.0), (3.0, 3.0))
    torch.testing.assert_close(wide[:, :, :, 0], torch.full((2, 1, 8), 0.5), atol=1e-4, rtol=0)


def test_time_crop_is_a_contiguous_span(logmels):
    cropped = random_time_crop(logmels, 0.5)
    assert cropped.shape == (6, 1, 16, 12)
    for clip, view in zip(logmels, cropped, strict=True):
        starts = [s for s in range(13) if torch.equal(clip[..., s : s + 12], view)]
        assert len(starts) == 1


def test_spec_augment_masks_bands_and_frames_with_the_clip_mean(logmels):
    torch.manual_seed(3)
    masked = spec_augment(logmels, 1, 0.25, 1, 0.25)
    changed = masked != logmels
    mean = logmels.mean(dim=(1, 2, 3))
    for i in range(len(logmels)):
        assert torch.allclose(masked[i][changed[i]], mean[i].expand(int(changed[i].sum())))
        rows = changed[i, 0].all(dim=1).sum()
        columns = changed[i, 0].all(dim=0).sum()
        assert rows <= 4 and columns <= 6  # a quarter of 16 bands, of 24 frames
    assert changed.any()


def test_views_follow_the_methods_recipe(logmels):
    views, recipe = AUDIO.method_views(BYOLA, {})
    assert recipe == audio_recipe("byola") and recipe.noise_p == 0 and recipe.mixup == 0.4
    first, second = views(logmels)
    assert first.shape == second.shape == logmels.shape and not torch.equal(first, second)
    _, generic = AUDIO.method_views(SimCLR, {"time_crop": 0.5, "local_views": 0})
    assert generic.time_masks == 2 and generic.time_crop == 0.5
    assert AudioViews(generic)(logmels)[0].shape == (6, 1, 16, 12)
    assert AudioViews(audio_recipe("none"))(logmels)[0] is logmels
    with pytest.raises(ValueError, match="unknown audio view options"):
        AUDIO.method_views(SimCLR, {"crop_scale": (0.2, 1.0)})
    with pytest.raises(ValueError, match="time_crop"):
        audio_recipe("audio").with_options(time_crop=0.0)


def test_waveform_views_keep_the_length_and_change_the_clip_as_the_recipe_says() -> None:
    from selfsup.views.audio import waveform_resize_crop, waveform_view

    torch.manual_seed(0)
    t = torch.arange(1600) / 16000
    x = torch.sin(2 * torch.pi * 440 * t).repeat(4, 1, 1)  # (4, 1, 1600)
    views = AudioViews(audio_recipe("audio"), num_views=2)(x)
    assert [tuple(v.shape) for v in views] == [(4, 1, 1600)] * 2
    assert not torch.allclose(views[0], views[1])
    # Gain alone: a clip scaled by at most +-6 dB, its shape unchanged.
    gain = audio_recipe("none").with_options(identity=False, mixup=0.0, resize_crop=False,
                                             gain_db=6.0)  # fmt: skip
    ratio = waveform_view(x, gain)[:, 0, 100] / x[:, 0, 100]
    assert ((ratio >= 10 ** (-6 / 20) - 1e-5) & (ratio <= 10 ** (6 / 20) + 1e-5)).all()
    # A crop half the clip's length, resampled to the full length: half the pitch.
    slow = waveform_resize_crop(x, 1.0, (0.5, 0.5))
    crossings = ((slow[0, 0, 1:] > 0) != (slow[0, 0, :-1] > 0)).sum()
    assert 40 <= int(crossings) <= 48  # 440 Hz over 0.1 s has 88 crossings; at half, 44
    masks = audio_recipe("none").with_options(
        identity=False, mixup=0.0, resize_crop=False, time_masks=2, time_mask_width=0.2
    )
    masked = waveform_view(x, masks)
    assert (masked == 0).sum() > (x == 0).sum()
