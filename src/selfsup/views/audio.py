"""Audio views on batches of log-mel spectrograms (n, 1, n_mels, frames), batched in torch.

The items are natural logs of mel power (``selfsup.data.logmel``), so mixing sounds is
adding powers: ``log(exp(a) + exp(b))``, done with ``torch.logaddexp``. The transformations,
each drawn independently per item and per view:

- mixup as in BYOL-A (Niizumi et al. 2021, https://arxiv.org/abs/2103.06695, section 3.2):
  log-mixup-exp ``log((1 - l) exp(x) + l exp(z))`` with ``l ~ U(0, mixup)`` and ``z`` another
  clip. BYOL-A draws ``z`` from a FIFO memory of the last 2048 inputs; here it is another clip
  of the same batch, so a view depends only on the batch and the seed (a resumed run repeats
  its views exactly) and the partners of a 256-item batch are as varied;
- background noise mixed in the linear mel domain: noise whose power per cell is the clip's
  mean mel power times ``10^(-snr/10)`` times an Exp(1) draw (the power of a Gaussian noise's
  spectral bin), with the SNR uniform in ``noise_snr_db``;
- gain: ``U(-gain_db, gain_db)`` decibels, an offset of ``gain_db / 10 * ln 10`` in the log;
- BYOL-A's random resize crop: the spectrogram is placed at the centre of a virtual canvas
  ``virtual_crop_scale`` times its size (filled with the clip's mean log-mel, which is what
  BYOL-A's zeros are after its normalization), a crop of ``freq_scale`` x ``time_scale``
  times the spectrogram's size is taken at a random place in the canvas and resized back
  (bicubic);
- a random crop in time keeping ``time_crop`` of the frames (views become shorter, all of
  one batch alike; the backbones pool over time);
- SpecAugment (Park et al. 2019, https://arxiv.org/abs/1904.08779): ``freq_masks`` bands and
  ``time_masks`` spans of random width (up to ``freq_mask_width`` / ``time_mask_width`` of the
  axis) set to the clip's mean.

Waveforms (n, 1, samples), which pretrained wav2vec2, HuBERT and AST models read, get the same
recipe in the time domain (:func:`waveform_view`): mixup and noise add amplitudes, gain
multiplies them, the resize crop resamples a random span of a canvas of silence (speed and
pitch change together, as the crop's time stretch does on a spectrogram; the frequency scale
has no separate meaning here), the crop in time keeps a span of samples and SpecAugment's time
masks silence spans (its frequency masks are left out).

Example:
    >>> import torch
    >>> views = AudioViews(audio_recipe("audio"), num_views=2)
    >>> [tuple(v.shape) for v in views(torch.randn(4, 1, 64, 96))]
    [(4, 1, 64, 96), (4, 1, 64, 96)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from selfsup.views.recipe import IndependentViews, ViewRecipe

_DB_TO_LOG = math.log(10.0) / 10.0  # decibels of power to natural-log units


@dataclass(frozen=True)
class AudioViewRecipe(ViewRecipe):
    """The random transformations of one audio view.

    Attributes:
        mixup: BYOL-A's mixup ratio: the mixing weight is drawn in ``U(0, mixup)``; 0 is off.
        resize_crop: apply BYOL-A's random resize crop.
        virtual_crop_scale: size of the virtual canvas (frequency, time) relative to the
            spectrogram.
        freq_scale: range of the crop's height relative to the spectrogram's.
        time_scale: range of the crop's width relative to the spectrogram's.
        time_crop: fraction of the frames a random crop in time keeps (1 is off).
        gain_db: largest gain or attenuation in decibels (0 is off).
        noise_p: probability of adding background noise to a clip.
        noise_snr_db: range of the signal-to-noise ratio of that noise, in decibels.
        freq_masks: SpecAugment frequency masks per view.
        freq_mask_width: largest frequency mask, as a fraction of the mel bands.
        time_masks: SpecAugment time masks per view.
        time_mask_width: largest time mask, as a fraction of the frames.
        identity: return the batch unchanged (the ``none`` recipe).
    """

    kind = "audio"

    mixup: float = 0.4
    resize_crop: bool = True
    virtual_crop_scale: tuple[float, float] = (1.0, 1.5)
    freq_scale: tuple[float, float] = (0.6, 1.5)
    time_scale: tuple[float, float] = (0.6, 1.5)
    time_crop: float = 1.0
    gain_db: float = 0.0
    noise_p: float = 0.0
    noise_snr_db: tuple[float, float] = (5.0, 20.0)
    freq_masks: int = 0
    freq_mask_width: float = 0.15
    time_masks: int = 0
    time_mask_width: float = 0.1
    identity: bool = False

    def with_options(self, **options: Any) -> AudioViewRecipe:
        """A copy with some fields replaced; unknown fields and a ``time_crop`` outside
        (0, 1] are errors."""
        recipe = super().with_options(**options)
        if not 0 < recipe.time_crop <= 1:
            raise ValueError(f"time_crop must be a fraction in (0, 1], got {recipe.time_crop}")
        return recipe


_RECIPES = {
    # BYOL-A (Niizumi et al. 2021), section 3: mixup (ratio 0.4) then random resize crop.
    "byola": AudioViewRecipe(),
    # The generic objectives (SimCLR, VICReg, BYOL...): BYOL-A's views plus gain, background
    # noise and SpecAugment masking.
    "audio": AudioViewRecipe(gain_db=6.0, noise_p=0.5, freq_masks=2, time_masks=2),
    "none": AudioViewRecipe(identity=True),
}


def audio_recipe(name: str) -> AudioViewRecipe:
    """A named recipe: ``byola``, ``audio`` (BYOL-A's plus gain, noise and masking) or ``none``.

    Example:
        >>> audio_recipe("byola").mixup, audio_recipe("audio").time_masks
        (0.4, 2)
    """
    if name not in _RECIPES:
        raise ValueError(f"unknown audio view recipe {name!r}; known: {', '.join(_RECIPES)}")
    return _RECIPES[name]


def _uniform(n: int, low_high: tuple[float, float], like: torch.Tensor) -> torch.Tensor:
    low, high = low_high
    return torch.rand(n, device=like.device, dtype=like.dtype) * (high - low) + low


def _clip_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(1, 2, 3), keepdim=True)


def log_mixup_exp(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """BYOL-A's mixup: each clip mixed with another clip of the batch at weight ``U(0, ratio)``,
    ``log((1 - l) exp(x) + l exp(z))``.

    Example:
        >>> x = torch.full((3, 1, 2, 2), -1.0)
        >>> torch.allclose(log_mixup_exp(x, 0.4), x)  # mixing equal clips changes nothing
        True
    """
    n = x.shape[0]
    if ratio <= 0 or n < 2:
        return x
    # Another clip for each: a shift by 1..n-1 places never picks the clip itself.
    partner = (torch.arange(n, device=x.device) + torch.randint(1, n, (n,), device=x.device)) % n
    weight = (_uniform(n, (0.0, ratio), x)).view(n, 1, 1, 1)
    return torch.logaddexp(torch.log1p(-weight) + x, torch.log(weight) + x[partner])


def background_noise(x: torch.Tensor, p: float, snr_db: tuple[float, float]) -> torch.Tensor:
    """Noise added in the linear mel domain to a fraction ``p`` of the clips, at an SNR in
    ``snr_db`` relative to each clip's mean mel power.

    Example:
        >>> x = torch.zeros(2, 1, 4, 8)
        >>> noisy = background_noise(x, 1.0, (10.0, 10.0))  # noise adds power, never removes
        >>> bool((noisy >= x).all()), round(float((noisy.exp() - 1).mean()), 1)  # about 0.1
        (True, 0.1)
    """
    n = x.shape[0]
    if p <= 0:
        return x
    mean_power = torch.logsumexp(x.flatten(1), dim=1) - math.log(x[0].numel())
    level = mean_power - _uniform(n, snr_db, x) * _DB_TO_LOG
    # The power of a Gaussian noise's spectral bin is exponentially distributed.
    draws = torch.log(torch.empty_like(x).exponential_().clamp_min(1e-12))
    noisy = torch.logaddexp(x, level.view(n, 1, 1, 1) + draws)
    chosen = (torch.rand(n, device=x.device) < p).view(n, 1, 1, 1)
    return torch.where(chosen, noisy, x)


def random_gain(x: torch.Tensor, gain_db: float) -> torch.Tensor:
    """Each clip made louder or quieter by ``U(-gain_db, gain_db)`` decibels.

    Example:
        >>> x = torch.zeros(5, 1, 2, 3)
        >>> bool(((random_gain(x, 6.0) - x).abs() <= 6 * _DB_TO_LOG + 1e-6).all())
        True
    """
    if gain_db <= 0:
        return x
    gain = _uniform(x.shape[0], (-gain_db, gain_db), x) * _DB_TO_LOG
    return x + gain.view(-1, 1, 1, 1)


def random_resize_crop(
    x: torch.Tensor,
    virtual_crop_scale: tuple[float, float],
    freq_scale: tuple[float, float],
    time_scale: tuple[float, float],
) -> torch.Tensor:
    """BYOL-A's random resize crop, one crop per clip, resized back bicubically; the canvas
    around the spectrogram holds the clip's mean.

    Example:
        >>> x = torch.randn(2, 1, 8, 12)
        >>> torch.allclose(random_resize_crop(x, (1, 1), (1, 1), (1, 1)), x, atol=1e-5)
        True
    """
    n, _, height, width = x.shape
    canvas_h = height * virtual_crop_scale[0]
    canvas_w = width * virtual_crop_scale[1]
    crop_h = (_uniform(n, freq_scale, x) * height).clamp(1.0, canvas_h)
    crop_w = (_uniform(n, time_scale, x) * width).clamp(1.0, canvas_w)
    # The crop's top-left corner in spectrogram pixels (the canvas starts before pixel 0).
    top = torch.rand_like(crop_h) * (canvas_h - crop_h) - (canvas_h - height) / 2
    left = torch.rand_like(crop_w) * (canvas_w - crop_w) - (canvas_w - width) / 2
    rows = top[:, None] + torch.linspace(0, 1, height, device=x.device) * (crop_h[:, None] - 1)
    cols = left[:, None] + torch.linspace(0, 1, width, device=x.device) * (crop_w[:, None] - 1)
    # grid_sample's coordinates with align_corners=True: -1 is pixel 0, 1 the last pixel.
    y = 2 * rows / max(height - 1, 1) - 1
    x_coord = 2 * cols / max(width - 1, 1) - 1
    grid = torch.stack(
        [x_coord[:, None, :].expand(n, height, width), y[:, :, None].expand(n, height, width)],
        dim=-1,
    )
    mean = _clip_mean(x)
    out = F.grid_sample(
        x - mean, grid.to(x.dtype), mode="bicubic", padding_mode="zeros", align_corners=True
    )
    return out + mean


def random_time_crop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """A random span of ``fraction`` of the frames of each clip (its own start).

    Example:
        >>> random_time_crop(torch.randn(3, 1, 4, 10), 0.5).shape
        torch.Size([3, 1, 4, 5])
    """
    n, c, m, t = x.shape
    keep = max(1, round(fraction * t))
    if keep >= t:
        return x
    start = torch.randint(0, t - keep + 1, (n,), device=x.device)
    index = (start[:, None] + torch.arange(keep, device=x.device)).view(n, 1, 1, keep)
    return x.gather(3, index.expand(n, c, m, keep))


def spec_augment(
    x: torch.Tensor, freq_masks: int, freq_width: float, time_masks: int, time_width: float
) -> torch.Tensor:
    """SpecAugment's frequency and time masking: spans of random width set to the clip's mean.

    Example:
        >>> x = torch.randn(2, 1, 16, 20)
        >>> torch.equal(spec_augment(x, 0, 0.2, 0, 0.2), x)
        True
    """
    n, _, m, t = x.shape
    hidden = torch.zeros(n, 1, m, t, dtype=torch.bool, device=x.device)
    axes = ((2, freq_masks, freq_width, m), (3, time_masks, time_width, t))
    for axis, count, width, size in axes:
        steps = torch.arange(size, device=x.device)
        for _ in range(count):
            span = (torch.rand(n, device=x.device) * (width * size + 1)).floor().clamp(max=size)
            start = (torch.rand(n, device=x.device) * (size - span + 1)).floor()
            inside = (steps[None] >= start[:, None]) & (steps[None] < (start + span)[:, None])
            shape = (n, 1, size, 1) if axis == 2 else (n, 1, 1, size)
            hidden |= inside.view(shape)
    return torch.where(hidden, _clip_mean(x), x)


def _partners(n: int, like: torch.Tensor) -> torch.Tensor:
    """Another item of the batch for each (a shift by 1..n-1 never picks the item itself)."""
    shift = torch.randint(1, n, (n,), device=like.device)
    return (torch.arange(n, device=like.device) + shift) % n


def waveform_view(x: torch.Tensor, r: AudioViewRecipe) -> torch.Tensor:
    """One augmented view of waveforms ``x`` (n, 1, samples) by the recipe ``r`` (see the
    module).

    Example:
        >>> x = torch.randn(4, 1, 800)
        >>> waveform_view(x, audio_recipe("audio")).shape
        torch.Size([4, 1, 800])
        >>> torch.equal(waveform_view(x, audio_recipe("none")), x)
        True
    """
    if r.identity:
        return x
    n, _, length = x.shape
    if r.mixup > 0 and n >= 2:
        weight = _uniform(n, (0.0, r.mixup), x).view(n, 1, 1)
        x = (1 - weight) * x + weight * x[_partners(n, x)]
    if r.noise_p > 0:
        rms = x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
        level = rms * 10 ** (-_uniform(n, r.noise_snr_db, x).view(n, 1, 1) / 20)
        chosen = (torch.rand(n, device=x.device) < r.noise_p).view(n, 1, 1)
        x = torch.where(chosen, x + level * torch.randn_like(x), x)
    if r.gain_db > 0:
        x = x * 10 ** (_uniform(n, (-r.gain_db, r.gain_db), x).view(n, 1, 1) / 20)
    if r.resize_crop:
        x = waveform_resize_crop(x, r.virtual_crop_scale[1], r.time_scale)
    keep = max(1, round(r.time_crop * length))
    if keep < length:
        start = torch.randint(0, length - keep + 1, (n,), device=x.device)
        x = x.gather(2, (start[:, None] + torch.arange(keep, device=x.device)).view(n, 1, keep))
    for _ in range(r.time_masks):
        size = x.shape[-1]
        span = (torch.rand(n, device=x.device) * (r.time_mask_width * size + 1)).floor()
        begin = (torch.rand(n, device=x.device) * (size - span + 1)).floor()
        steps = torch.arange(size, device=x.device)[None]
        inside = (steps >= begin[:, None]) & (steps < (begin + span)[:, None])
        x = x.masked_fill(inside.view(n, 1, size), 0.0)
    return x


def waveform_resize_crop(
    x: torch.Tensor, canvas_scale: float, scale: tuple[float, float]
) -> torch.Tensor:
    """The resize crop in time of waveforms (n, 1, samples): a span of ``U(scale)`` times the
    clip, at a random place of a canvas ``canvas_scale`` times as long (silence around the
    clip), resampled (linearly) to the clip's length.

    Example:
        >>> x = torch.randn(2, 1, 50)
        >>> torch.allclose(waveform_resize_crop(x, 1.0, (1.0, 1.0)), x, atol=1e-5)
        True
    """
    n, _, length = x.shape
    canvas = length * canvas_scale
    crop = (_uniform(n, scale, x) * length).clamp(1.0, canvas)
    left = torch.rand_like(crop) * (canvas - crop) - (canvas - length) / 2
    where = left[:, None] + torch.linspace(0, 1, length, device=x.device) * (crop[:, None] - 1)
    below = where.floor()
    frac = (where - below).unsqueeze(1)
    padded = F.pad(x, (1, 1))  # silence at both ends; index 0 is sample -1
    low = (below.long() + 1).clamp(0, length + 1).unsqueeze(1)
    high = (below.long() + 2).clamp(0, length + 1).unsqueeze(1)
    outside = ((where < -1) | (where > length)).unsqueeze(1)
    out = padded.gather(2, low) * (1 - frac) + padded.gather(2, high) * frac
    return out.masked_fill(outside, 0.0)


class AudioViews(IndependentViews):
    """Makes ``num_views`` independently augmented views of a batch of log-mels.

    Args:
        recipe: the transformations.
        num_views: views per item.
    """

    recipe: AudioViewRecipe

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """One augmented view of ``x`` (n, 1, n_mels, frames), or of waveforms (n, 1,
        samples)."""
        r = self.recipe
        if r.identity:
            return x
        if x.ndim == 3:
            return waveform_view(x, r)
        x = log_mixup_exp(x, r.mixup)
        x = background_noise(x, r.noise_p, r.noise_snr_db)
        x = random_gain(x, r.gain_db)
        if r.resize_crop:
            x = random_resize_crop(x, r.virtual_crop_scale, r.freq_scale, r.time_scale)
        x = random_time_crop(x, r.time_crop)
        return spec_augment(x, r.freq_masks, r.freq_mask_width, r.time_masks, r.time_mask_width)
