"""Random image augmentations that run on a whole batch in a few tensor operations each.

Every operation draws its random parameters for all images at once, on the batch's own device,
and applies them to every image: an image the probability gate leaves out gets the neutral
parameter (a brightness factor of 1, a one-tap blur kernel) instead of being picked out of the
batch. Nothing reads a value back to the host and nothing loops over images, so on a GPU the
processor queues a whole view in a handful of kernels and runs ahead of it; kornia's
augmentations (what these replace) pick the gated images out by boolean indexing, crop one image
at a time and check factors on the host, each a synchronization that left the GPU idle while
the views were launched (``benchmarks/gpu.py`` times both).

The parameters follow torchvision's ``RandomResizedCrop``, ``ColorJitter``,
``RandomGrayscale``, ``GaussianBlur`` and ``RandomSolarize``, as the self-supervised papers
use them, with two documented departures: crops are placed with sub-pixel precision (one
bilinear resampling of the whole batch through ``grid_sample``, a horizontal flip folded into
it), and the hue is rotated about the gray axis in YIQ space (a 3x3 matrix per image, as NVIDIA
DALI's hue does) rather than shifted in HSV.

Example:
    >>> import torch
    >>> views = torch.nn.Sequential(ResizedCrop(16, (0.08, 1.0)), ColorJitter((0.4,) * 4, 0.8))
    >>> views(torch.rand(4, 3, 24, 24)).shape
    torch.Size([4, 3, 16, 16])
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

#: ITU-R 601 luma weights, as torchvision's ``rgb_to_grayscale``.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _chosen(n: int, p: float, device: torch.device) -> torch.Tensor:
    """Which of ``n`` images a gate of probability ``p`` applies to (a bool tensor)."""
    return torch.rand(n, device=device) < p


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    """A per-image vector shaped to broadcast over (n, C, H, W)."""
    return values.view(-1, 1, 1, 1)


def crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    device: torch.device | str = "cpu",
    tries: int = 10,
) -> torch.Tensor:
    """Random crop boxes (x0, y0, w, h) in pixels, as torchvision's ``RandomResizedCrop``.

    Each box covers a random share ``scale`` of the image area with an aspect ratio drawn
    log-uniformly from ``ratio``; the first of ``tries`` draws that fits in the image is kept,
    and an image where none fits gets the whole image (its ratio clamped into ``ratio``),
    centred. The ten tries are drawn at once for all images.

    Example:
        >>> boxes = crop_boxes(5, 20, 30, (0.5, 1.0))
        >>> bool(((boxes[:, 2] * boxes[:, 3]) >= 0.5 * 600 - 1e-3).all())
        True
        >>> box = crop_boxes(2, 20, 30, (1.0, 1.0))[0]  # nothing fits: the whole image, 4:3
        >>> [round(v, 1) for v in box.tolist()]
        [1.7, 0.0, 26.7, 20.0]
    """
    area = height * width * _uniform(n * tries, *scale, device).view(n, tries)
    log_ratio = _uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), device)
    aspect = torch.exp(log_ratio).view(n, tries)
    w, h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (w <= width) & (h <= height)
    first = fits.to(torch.int32).argmax(1, keepdim=True)  # the first try that fits
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    fitted = fits.any(1)
    whole = min(max(width / height, ratio[0]), ratio[1])
    whole_w, whole_h = min(width, height * whole), min(height, width / whole)
    w = torch.where(fitted, w, torch.full_like(w, whole_w))
    h = torch.where(fitted, h, torch.full_like(h, whole_h))
    x0 = torch.where(fitted, torch.rand(n, device=device) * (width - w), (width - w) / 2)
    y0 = torch.where(fitted, torch.rand(n, device=device) * (height - h), (height - h) / 2)
    return torch.stack([x0, y0, w, h], dim=1)


def crop_resize(
    images: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Cut each image's box (x0, y0, w, h in pixels) and resize it to ``size`` x ``size``.

    One bilinear ``grid_sample`` for the whole batch; ``flip`` (bool per image) mirrors the
    crop left to right in the same resampling.

    Example:
        >>> images = torch.arange(16.0).view(1, 1, 4, 4)
        >>> crop_resize(images, torch.tensor([[0.0, 0.0, 2.0, 2.0]]), 2)[0, 0].tolist()
        [[0.0, 1.0], [4.0, 5.0]]
    """
    n, _, height, width = images.shape
    x0, y0, w, h = boxes.to(images.dtype).unbind(1)
    sign = 1.0 - 2.0 * flip.to(images.dtype) if flip is not None else torch.ones_like(w)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    # With align_corners=False, [-1, 1] spans the pixels' outer edges: the box's centre and
    # half-extent in those units place it.
    theta[:, 0, 0] = sign * w / width
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class ResizedCrop(nn.Module):
    """A random resized crop of each image, mirrored with probability ``flip_p``.

    Args:
        size: side of the square output.
        scale: area range of the crop, as a fraction of the image.
        flip_p: probability of a horizontal flip.

    Example:
        >>> ResizedCrop(8, (0.2, 1.0))(torch.rand(3, 1, 16, 16)).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(self, size: int, scale: tuple[float, float], flip_p: float = 0.0) -> None:
        super().__init__()
        self.size, self.scale, self.flip_p = size, scale, flip_p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        boxes = crop_boxes(n, height, width, self.scale, device=images.device)
        flip = _chosen(n, self.flip_p, images.device) if self.flip_p > 0 else None
        return crop_resize(images, boxes, self.size, flip)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """Luma of (n, 3, H, W) images (or of (n, 3) channel values), with a channel axis of 1.

    The weights are Python numbers: a weight tensor would be copied to the device on every
    call, and a blocking copy makes the host wait for the GPU.
    """
    red, green, blue = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return GRAY_WEIGHTS[0] * red + GRAY_WEIGHTS[1] * green + GRAY_WEIGHTS[2] * blue


@functools.cache
def _hue_basis(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(3, 3, 3) matrices A, B, C with hue rotation by angle t = A + B cos t + C sin t,
    copied to each device once."""
    to_yiq, to_rgb = _RGB_TO_YIQ, _YIQ_TO_RGB
    keep, cos, sin = torch.zeros(3, 3, 3, dtype=torch.float64).unbind(0)
    keep[0, 0] = 1.0  # luma stays
    cos[1, 1] = cos[2, 2] = 1.0  # I and Q turn
    sin[1, 2], sin[2, 1] = -1.0, 1.0
    basis = torch.stack([to_rgb @ part @ to_yiq for part in (keep, cos, sin)])
    return basis.to(device, dtype)


def _hue_matrices(turns: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) RGB matrices rotating the hue by ``turns`` of the colour circle (YIQ)."""
    keep, cos, sin = _hue_basis(turns.device, turns.dtype)
    angle = (2 * math.pi * turns).view(-1, 1, 1)
    return keep + torch.cos(angle) * cos + torch.sin(angle) * sin


class ColorJitter(nn.Module):
    """Random brightness, contrast, saturation and hue, in a random order, with probability p.

    As torchvision's ``ColorJitter``: brightness scales the image by a factor in
    [max(0, 1 - b), 1 + b], contrast blends it with its mean luma, saturation with its own
    luma, and hue turns it by up to ``h`` of the colour circle; each step clamps to [0, 1].
    The order is drawn once per batch (as kornia does). Images without colour (gray, or
    a microscope's five channels) get brightness and contrast only, each channel blended
    with its own mean.

    Args:
        strengths: (brightness, contrast, saturation, hue).
        p: probability that an image is jittered at all.

    Example:
        >>> ColorJitter((0.4, 0.4, 0.2, 0.1), p=1.0)(torch.rand(2, 3, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(self, strengths: tuple[float, float, float, float], p: float) -> None:
        super().__init__()
        self.strengths, self.p = strengths, p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, device = images.shape[0], images.device
        chosen = _chosen(n, self.p, device)
        color = images.shape[1] == 3
        factors = []
        for index, strength in enumerate(self.strengths):
            if index == 3:  # hue: turns of the colour circle, neutral 0
                drawn, neutral = _uniform(n, -strength, strength, device), 0.0
            else:
                drawn, neutral = _uniform(n, max(0.0, 1.0 - strength), 1.0 + strength, device), 1.0
            factors.append(torch.where(chosen, drawn, neutral))
        # One permutation per batch, drawn by the host's generator: nothing waits for the device.
        for index in torch.randperm(4).tolist():
            if self.strengths[index] == 0 or (index >= 2 and not color):
                continue
            images = self.adjust(images, index, factors[index])
        return images

    @staticmethod
    def adjust(images: torch.Tensor, index: int, factor: torch.Tensor) -> torch.Tensor:
        """Step ``index`` (0 brightness, 1 contrast, 2 saturation, 3 hue) with one factor
        per image (hue: turns), then a clamp to [0, 1].

        Example:
            >>> ColorJitter.adjust(torch.full((1, 1, 2, 2), 0.4), 0, torch.tensor([2.0])).max()
            tensor(0.8000)
        """
        if index == 3:
            matrices = _hue_matrices(factor).to(images.dtype)
            images = torch.einsum("nij,njhw->nihw", matrices, images)
        elif index == 0:
            images = images * _per_image(factor)
        else:
            if index == 1:  # the blend target: the image's mean luma (each channel's own
                # mean where there is no colour: gray, or a microscope's five channels)
                channel_means = images.mean((2, 3), keepdim=True)
                color = images.shape[1] == 3
                target = _gray(channel_means) if color else channel_means
            else:  # saturation blends each pixel with its own luma
                target = _gray(images)
            factor = _per_image(factor)
            images = images * factor + target * (1 - factor)
        return images.clamp_(0.0, 1.0)


class Grayscale(nn.Module):
    """Replace colour images by their luma, repeated over the three channels, with probability p.

    Example:
        >>> out = Grayscale(1.0)(torch.rand(2, 3, 4, 4))
        >>> bool((out[:, 0] == out[:, 2]).all())
        True
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        chosen = _per_image(_chosen(images.shape[0], self.p, images.device))
        return torch.where(chosen, _gray(images).expand_as(images), images)


def gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Normalized 1-D Gaussian kernels of odd ``size``, one per sigma: shape (n, size).

    A sigma of 0 gives the one-tap kernel (1 in the middle), which leaves an image unchanged.

    Example:
        >>> kernels = gaussian_kernels(torch.tensor([0.0, 1.0]), 3)
        >>> [[round(v, 3) for v in kernel] for kernel in kernels.tolist()]
        [[0.0, 1.0, 0.0], [0.274, 0.452, 0.274]]
    """
    offsets = torch.arange(size, dtype=sigma.dtype, device=sigma.device) - size // 2
    spread = 2 * sigma.clamp(min=1e-6)[:, None] ** 2
    kernels = torch.exp(-(offsets**2) / spread)
    return kernels / kernels.sum(1, keepdim=True)


def blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own separable kernel (n, k), reflecting at the borders.

    Two depthwise convolutions over the whole batch, one per direction.

    Example:
        >>> flat = torch.full((2, 3, 8, 8), 0.5)
        >>> torch.allclose(blur(flat, gaussian_kernels(torch.tensor([0.5, 2.0]), 5)), flat)
        True
    """
    n, channels, height, width = images.shape
    size = kernels.shape[1]
    weights = kernels.to(images.dtype)[:, None].expand(n, channels, size).reshape(-1, size)
    flat = images.reshape(1, n * channels, height, width)
    flat = F.pad(flat, (size // 2,) * 4, mode="reflect")
    flat = F.conv2d(flat, weights.view(-1, 1, size, 1), groups=n * channels)
    flat = F.conv2d(flat, weights.view(-1, 1, 1, size), groups=n * channels)
    return flat.view(n, channels, height, width)


class GaussianBlur(nn.Module):
    """A Gaussian blur of random sigma in ``sigma`` with probability p (SimCLR, BYOL).

    Args:
        size: the kernel's side (odd, at most twice the image side less one, for the
            reflection padding).
        sigma: range of the blur's standard deviation in pixels.
        p: probability that an image is blurred.

    Example:
        >>> GaussianBlur(3, (0.1, 2.0), 0.5)(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, size: int, sigma: tuple[float, float], p: float) -> None:
        super().__init__()
        self.size, self.sigma, self.p = size, sigma, p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, device = images.shape[0], images.device
        sigma = _uniform(n, *self.sigma, device)
        sigma = torch.where(_chosen(n, self.p, device), sigma, 0.0)
        return blur(images, gaussian_kernels(sigma, self.size))


class Solarize(nn.Module):
    """Invert the pixels at or above 0.5 with probability p (BYOL's second view).

    Example:
        >>> Solarize(1.0)(torch.tensor([0.2, 0.7]).view(1, 1, 1, 2)).flatten().tolist()
        [0.20000000298023224, 0.30000001192092896]
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        chosen = _per_image(_chosen(images.shape[0], self.p, images.device))
        return torch.where(chosen & (images >= 0.5), 1.0 - images, images)
