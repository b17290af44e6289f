"""ResNet-18/34/50 image backbones in plain torch.

The residual networks of He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(https://arxiv.org/abs/1512.03385): BasicBlock (two 3x3 convs) for depths 18 and 34,
Bottleneck (1x1, 3x3, 1x1 convs, expansion 4) for depth 50. As in most self-supervised work the
classifier is dropped: the output is the global-average-pooled feature vector. Downsampling
happens in the 3x3 conv of a Bottleneck (the common "v1.5" variant) and shortcuts that change
shape are a strided 1x1 conv with BatchNorm (option B of the paper).

Example:
    >>> import torch
    >>> net = ResNet(depth=18, in_channels=1, small_stem=True)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 512])
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or projected) shortcut.

    Args:
        in_channels: channels of the input.
        channels: channels of both convs; the output has ``channels * expansion`` channels.
        stride: stride of the first conv (2 halves the spatial size).

    Example:
        >>> import torch
        >>> BasicBlock(64, 128, stride=2)(torch.zeros(1, 64, 8, 8)).shape
        torch.Size([1, 128, 4, 4])
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, channels * self.expansion, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm closing the residual branch."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) to (B, channels, H / stride, W / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """A 1x1 reduce, 3x3, 1x1 expand stack of conv-BN layers with a shortcut.

    Args:
        in_channels: channels of the input.
        channels: channels of the inner convs; the output has ``channels * 4`` channels.
        stride: stride of the 3x3 conv (2 halves the spatial size).

    Example:
        >>> import torch
        >>> Bottleneck(256, 128, stride=2)(torch.zeros(1, 256, 8, 8)).shape
        torch.Size([1, 512, 4, 4])
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm closing the residual branch."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) to (B, 4 * channels, H / stride, W / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with a stride, computed as every ``stride``-th pixel convolved
    with stride 1: the same outputs, parameters and state dict as ``nn.Conv2d(in, out, 1,
    stride)``.

    oneDNN's own strided 1x1 kernel on channels-last input (the engine's layout on the CPU)
    computes the weights' gradient wrongly, or writes past its buffer and crashes the process,
    when the input has fewer channels than its block (16 with AVX-512, 8 with AVX2): oneDNN
    issue 6035, seen here as ``free(): invalid next size`` in a ResNet-18 of width 8 at 64
    pixels under torch 2.13. Subsampling first never takes that path.

    Example:
        >>> import torch
        >>> conv = StridedPointwise(8, 16, stride=2, bias=False)
        >>> x = torch.rand(2, 8, 7, 7)
        >>> plain = torch.nn.functional.conv2d(x, conv.weight, stride=2)
        >>> torch.allclose(conv(x), plain), tuple(conv(x).shape)
        (True, (2, 16, 4, 4))
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, bias: bool) -> None:
        super().__init__(in_channels, out_channels, 1, stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = self.stride
        return nn.functional.conv2d(x[:, :, :: step[0], :: step[1]], self.weight, self.bias)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1x1 conv with BatchNorm."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        StridedPointwise(in_channels, out_channels, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


#: Block type and number of blocks per stage for each supported depth.
_CONFIGS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """A ResNet trunk ending in global average pooling, without the classifier.

    The last BatchNorm of every residual branch starts with gamma = 0, so each block begins as
    the identity (Goyal et al., 2017, https://arxiv.org/abs/1706.02677); this steadies early
    training at large batch sizes.

    Args:
        depth: 18, 34 or 50.
        in_channels: channels of the input images (1 for gray, 3 for RGB).
        small_stem: for small images (CIFAR, 28x28): a 3x3 stride-1 conv and no max-pool,
            instead of the 7x7 stride-2 conv followed by a stride-2 max-pool.
        width: channels of the first stage; stages have width, 2, 4 and 8 times it.

    Attributes:
        feature_dim: size of the output vector, ``8 * width * expansion`` (512 for depths 18
            and 34, 2048 for 50 at the default width).

    Example:
        >>> import torch
        >>> net = ResNet(depth=50, in_channels=3, small_stem=True, width=16)
        >>> net.feature_dim, net(torch.zeros(2, 3, 16, 16)).shape
        (512, torch.Size([2, 512]))
    """

    def __init__(
        self, depth: int, in_channels: int = 3, small_stem: bool = False, width: int = 64
    ) -> None:
        super().__init__()
        if depth not in _CONFIGS:
            raise ValueError(f"ResNet depth must be one of {sorted(_CONFIGS)}, got {depth}")
        block, blocks_per_stage = _CONFIGS[depth]
        if small_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, 1, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, 2, padding=3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, padding=1),
            )
        stages: list[nn.Module] = []
        channels_in = width
        for i, n_blocks in enumerate(blocks_per_stage):
            channels = width * 2**i
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for j in range(n_blocks):
                blocks.append(block(channels_in, channels, stride if j == 0 else 1))
                channels_in = channels * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim: int = channels_in
        self._init_weights()

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        return [self.stem, *(block for stage in self.stages for block in stage)]

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock | Bottleneck):
                nn.init.zeros_(m.last_bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (B, in_channels, H, W) to features (B, feature_dim)."""
        return self.pool(self.stages(self.stem(x))).flatten(1)
