"""Audio backbones on log-mel spectrograms (B, 1, n_mels, frames): BYOL-A's CNN and a
spectrogram patch transformer.

Both take any number of frames (the CNN pools over time; the transformer resizes its time
position embedding) and return one feature vector per clip.

Example:
    >>> import torch
    >>> net = AudioNTT2020(n_mels=64, feature_dim=128, width=16)
    >>> net(torch.zeros(2, 1, 64, 96)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones.vit import Block
from selfsup.data.logmel import LogMelSettings, LogMelSpectrogram


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2, stride=2),
    ]


class AudioNTT2020(nn.Module):
    """BYOL-A's encoder (Niizumi et al. 2021, https://arxiv.org/abs/2103.06695, section 3.3),
    from the NTT DCASE2020 task 6 system (Koizumi et al. 2020, https://arxiv.org/abs/2007.00225).

    Three blocks of a 3x3 convolution (``width`` channels), batch norm, ReLU and 2x2 max
    pooling; the channels and remaining mel bins of each time step are flattened and go
    through two fully connected layers (``feature_dim`` units, ReLU, dropout 0.3 between);
    the clip's feature is the sum of the mean and the maximum over time.

    Args:
        n_mels: mel bands of the input (a multiple of 8 uses every band).
        feature_dim: size of the fully connected layers and of the feature (BYOL-A: 2048).
        width: channels of the convolutions (BYOL-A: 64).
        dropout: dropout between the two fully connected layers.

    Attributes:
        feature_dim: size of the output vector.

    Example:
        >>> import torch
        >>> net = AudioNTT2020(n_mels=32, feature_dim=64, width=8)
        >>> net.forward_frames(torch.zeros(3, 1, 32, 40)).shape  # one vector per 8 frames
        torch.Size([3, 5, 64])
    """

    def __init__(
        self, n_mels: int = 64, feature_dim: int = 2048, width: int = 64, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if n_mels < 8:
            raise ValueError(f"AudioNTT2020 needs at least 8 mel bands, got {n_mels}")
        self.feature_dim: int = feature_dim
        self.features = nn.Sequential(
            *_conv_block(1, width), *_conv_block(width, width), *_conv_block(width, width)
        )
        self.fc = nn.Sequential(
            nn.Linear(width * (n_mels // 8), feature_dim),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(),
        )

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        convs = [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        ends = [*convs[1:], len(self.features)]
        return [*(self.features[a:b] for a, b in zip(convs, ends, strict=True)), self.fc]

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Features per pooled time step (B, frames // 8, feature_dim)."""
        h = self.features(x)  # (B, C, mel, time)
        h = h.permute(0, 3, 2, 1)  # (B, time, mel, C), flattened as BYOL-A does
        return self.fc(h.reshape(h.shape[0], h.shape[1], -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map log-mels (B, 1, n_mels, frames >= 8) to features (B, feature_dim)."""
        h = self.forward_frames(x)
        return h.mean(dim=1) + h.max(dim=1).values


class SpectrogramTransformer(nn.Module):
    """A patch transformer on log-mel spectrograms (as AST, Gong et al. 2021,
    https://arxiv.org/abs/2104.01778, without overlap; and MSM-MAE/M2D's 16x16 patches).

    The spectrogram is cut into non-overlapping ``patch_mels`` x ``patch_frames`` patches, each
    linearly embedded, a learned position embedding of the (mel, time) grid added, and the
    tokens go through pre-norm transformer blocks (``selfsup.backbones.vit.Block``); the
    feature is the mean of the final patch tokens. Clips of another length than ``frames``
    use the position embedding resized along time (linearly); frames beyond a whole number of
    patches are dropped.

    Args:
        n_mels: mel bands of the input; a multiple of ``patch_mels``.
        frames: frames the position embedding is learned for.
        patch_mels: patch height in mel bands.
        patch_frames: patch width in frames.
        dim: token size.
        depth: number of transformer blocks.
        heads: attention heads.
        mlp_ratio: hidden size of the MLPs relative to ``dim``.

    Attributes:
        feature_dim: size of the output vector, equal to ``dim``.

    Example:
        >>> import torch
        >>> net = SpectrogramTransformer(64, 96, dim=32, depth=1, heads=2)
        >>> net(torch.zeros(2, 1, 64, 96)).shape, net(torch.zeros(2, 1, 64, 50)).shape
        (torch.Size([2, 32]), torch.Size([2, 32]))
    """

    def __init__(
        self,
        n_mels: int = 64,
        frames: int = 96,
        patch_mels: int = 16,
        patch_frames: int = 16,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if n_mels % patch_mels:
            raise ValueError(f"n_mels ({n_mels}) must be a multiple of patch_mels ({patch_mels})")
        if frames < patch_frames:
            raise ValueError(f"frames ({frames}) must be at least patch_frames ({patch_frames})")
        self.feature_dim: int = dim
        self.patch_mels, self.patch_frames = patch_mels, patch_frames
        self.grid = (n_mels // patch_mels, frames // patch_frames)
        self.patch_embed = nn.Conv2d(1, dim, (patch_mels, patch_frames), (patch_mels, patch_frames))
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *self.grid))
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(dim, -1))
        nn.init.zeros_(self.patch_embed.bias)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        blocks: list[nn.Module] = [self.patch_embed, *self.blocks]
        blocks[-1] = nn.ModuleList([blocks[-1], self.norm])
        return blocks

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The final patch tokens (B, mel patches * time patches, dim), mel-major."""
        if x.shape[-1] < self.patch_frames:
            raise ValueError(f"clips need at least {self.patch_frames} frames, got {x.shape[-1]}")
        patches = self.patch_embed(x)  # (B, dim, mel patches, time patches)
        pos = self.pos_embed
        if patches.shape[-1] != self.grid[1]:
            pos = F.interpolate(
                pos, size=(self.grid[0], patches.shape[-1]), mode="bilinear", align_corners=False
            )
        tokens = (patches + pos).flatten(2).transpose(1, 2)
        return self.norm(self.blocks(tokens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map log-mels (B, 1, n_mels, frames) to features (B, dim), the mean patch token."""
        return self.forward_tokens(x).mean(dim=1)


class LogMelFront(nn.Module):
    """A log-mel backbone that reads waveforms: each clip's log-mel (``settings``), normalized
    by the data's log-mel ``mean`` and ``std``, then ``backbone``. A student distilled from a
    waveform model (wav2vec2, HuBERT) reads what its teacher reads, and ships as one model
    from waveform to embedding.

    Example:
        >>> settings = LogMelSettings(sample_rate=8000, n_fft=128, hop_length=64, n_mels=32)
        >>> net = LogMelFront(settings, -6.0, 4.0, AudioNTT2020(32, feature_dim=16, width=8))
        >>> net(torch.zeros(2, 1, 8000)).shape
        torch.Size([2, 16])
    """

    def __init__(
        self, settings: LogMelSettings, mean: float, std: float, backbone: nn.Module
    ) -> None:
        super().__init__()
        self.logmel = LogMelSpectrogram(settings)
        self.mean, self.std = float(mean), float(std)
        self.backbone = backbone
        self.feature_dim: int = backbone.feature_dim

    def block_list(self) -> list[nn.Module]:
        return self.backbone.block_list()

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Map waveforms (B, 1, samples) to features (B, feature_dim)."""
        mel = self.logmel(waveforms[:, 0]).unsqueeze(1)
        return self.backbone((mel - self.mean) / self.std)
