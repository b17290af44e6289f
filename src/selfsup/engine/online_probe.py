"""An online linear probe: a linear classifier trained beside the encoder on detached features.

When the training data happen to carry labels, a linear layer learns to classify the
encoder's features of the training views as they go by (the features are detached, so the
labels never reach the encoder), as in SimCLR's and solo-learn's online evaluation. Its
accuracy on the held-out items at the end of each epoch is a cheap running estimate of the
linear probe.

Example:
    >>> import torch
    >>> from torch import nn
    >>> encoder = nn.Linear(4, 3)
    >>> probe = OnlineProbe(encoder, feature_dim=3, num_classes=2)
    >>> _ = encoder(torch.randn(8, 4))  # the training step's forward pass
    >>> probe.step(torch.tensor([0, 1] * 4))
    >>> 0.0 <= probe.train_accuracy() <= 1.0
    True
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class OnlineProbe:
    """Collects the encoder's outputs through a forward hook and trains a linear head on them.

    Args:
        encoder: the module whose outputs are the features (the method's encoder).
        feature_dim: size of the features.
        num_classes: number of classes.
        lr: learning rate of the probe's own AdamW optimizer.
        device: where the head lives: the device the encoder trains on.
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        num_classes: int,
        lr: float = 1e-2,
        device: torch.device | str = "cpu",
    ) -> None:
        # Standardizing the features (batch norm without affine) makes one learning rate
        # work whatever the encoder's feature scale.
        self.head = nn.Sequential(
            nn.BatchNorm1d(feature_dim, affine=False), nn.Linear(feature_dim, num_classes)
        ).to(device)
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=lr, weight_decay=0.0)
        self._captured: list[torch.Tensor] = []
        self._correct = 0
        self._seen = 0
        #: Training steps the head has taken; 0 when the method never ran its encoder on
        #: whole items (MAE, I-JEPA and Sent2Vec encode parts or look tokens up), so there is
        #: nothing to report.
        self.steps = 0
        self._hook = encoder.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if module.training and isinstance(output, torch.Tensor) and output.ndim == 2:
            self._captured.append(output.detach().float())

    def step(self, labels: torch.Tensor) -> None:
        """Train on every captured feature batch whose rows are views of ``labels``' items;
        items labelled -1 (without a label, in data labelled on some rows) are left out."""
        features = [f for f in self._captured if len(f) % len(labels) == 0 and len(f) > 0]
        self._captured.clear()
        if not features:
            return
        x = torch.cat(features)
        known = (labels >= 0).repeat(len(x) // len(labels))  # on the host: no device sync
        if int(known.sum()) < 2:  # batch norm needs two rows
            return
        y = labels.repeat(len(x) // len(labels)).to(x.device)
        if not bool(known.all()):
            x, y = x[known.to(x.device)], y[known.to(x.device)]
        self.head.train()
        with torch.enable_grad():
            logits = self.head(x)
            loss = F.cross_entropy(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.steps += 1
        self._correct += int((logits.argmax(dim=1) == y).sum())
        self._seen += len(y)

    def train_accuracy(self) -> float:
        """Accuracy on the training views since the last call (then reset)."""
        accuracy = self._correct / max(1, self._seen)
        self._correct = self._seen = 0
        return accuracy

    @torch.no_grad()
    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        """Accuracy of the probe on given features (the held-out items), over the items with
        a label (not -1); NaN when none has one."""
        self.head.eval()
        device = next(self.head.parameters()).device
        labels = labels.to(device)
        known = labels >= 0
        if not bool(known.any()):
            return float("nan")
        predicted = self.head(features.to(device).float()[known]).argmax(dim=1)
        return float((predicted == labels[known]).float().mean())

    def discard(self) -> None:
        """Drop features captured outside a training step (e.g. by monitoring)."""
        self._captured.clear()

    def remove(self) -> None:
        """Remove the forward hook."""
        self._hook.remove()

    def state_dict(self) -> dict[str, Any]:
        """Head and optimizer state, saved in the training checkpoint."""
        return {
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = state.get("steps", 0)
