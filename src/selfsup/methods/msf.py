"""Mean Shift (MSF): pull each item's embedding towards the mean of its target's neighbours.

Koohpayegani, Tejankar and Pirsiavash, "Mean Shift for Self-Supervised Learning", ICCV 2021.
https://arxiv.org/abs/2105.07269

MSF generalizes BYOL: instead of only the target network's embedding of the other view, the
online embedding u of a view is pulled towards the k nearest neighbours of the target's
embedding v in a memory bank M of past target embeddings (v itself is added to M before the
search, so it is its own first neighbour). With every vector of unit length, Eq. (1) is

    L = 1/k sum_{j in NN_k(v, M)} || u - m_j ||^2  =  2 - 2 u . m̄,   m̄ = mean_j m_j,

so the loss moves u towards the mean of the neighbourhood: a mean-shift step on the target's
embedding space. Here the target is

    t = normalize(w v + (1 - w) m̄),     L = mean_i (2 - 2 cos(u_i, t_i)),

with w = ``self_weight`` (the paper's recipe is w = 0, where v counts as one of the k), the
loss :func:`~selfsup.methods.distill.distill_loss` takes.

This implementation adapts a pretrained encoder to the user's data, and departs from the
paper in two ways the adaptation needs:

- **The target network is the encoder's starting weights, frozen** (BYOL's momentum at 1).
  The neighbourhoods are then the pretrained model's, measured on the user's items, and the
  encoder cannot drift away from what it knew (the forgetting that SimCSE shows when it
  adapts a sentence encoder, BENCHMARKS.md). From random weights it has nothing to learn, so
  a run needs a pretrained start (``--backbone hf:...`` or ``--init RUN``).
- **No projection or prediction head:** online and target begin as the same network, so the
  loss acts on the backbone's features directly and its first steps already carry the
  neighbourhood's signal instead of training a random head.

The bank is a FIFO queue of unit-length target embeddings (registered buffers, kept in
checkpoints, so a resumed run finds the same neighbours). Texts, which their views leave as
they are, enter it once each (a hash of the token ids is kept per slot), so a bank larger
than the data holds every text once instead of duplicates; the frozen target embeds each
text once (:class:`~selfsup.methods.distill.KeptTargets`). Before the first step the bank is
filled with the target's embeddings of the first ``bank_size`` items
(:meth:`MeanShift.fill`, called by the engine), so the first steps' neighbourhoods are as
good as the last ones'. Under DDP each process enqueues the targets of every process in rank
order (gathered), so every process keeps the same bank and two processes of B items train as
one of 2B.

Example:
    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> shifted = mean_shift_targets(t, bank, k=2, self_weight=0.0)  # mean of rows 0 and 1
    >>> [round(x, 4) for x in shifted[0].tolist()]  # (0.9, 0.3) made unit length
    [0.9487, 0.3162]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distill import KeptTargets, distill_loss, row_key
from selfsup.methods.distributed import gather
from selfsup.methods.momentum import momentum_copy


def mean_shift_targets(
    targets: torch.Tensor, bank: torch.Tensor, k: int, self_weight: float
) -> torch.Tensor:
    """``normalize(w t + (1 - w) mean of t's k nearest rows of bank)`` per row of ``targets``.

    Args:
        targets: the target network's embeddings (N, D), unit length.
        bank: the memory bank (M, D), unit length, holding ``targets`` already.
        k: neighbours averaged (fewer when the bank holds fewer rows).
        self_weight: w, the weight of the item's own target embedding.
    """
    k = min(k, len(bank))
    nearest = (targets @ bank.T).topk(k, dim=1).indices
    shifted = self_weight * targets + (1 - self_weight) * bank[nearest].mean(dim=1)
    return F.normalize(shifted, dim=1)


class MeanShift(Method):
    """MSF adaptation: the online encoder regresses the mean of its frozen start's
    neighbourhood of each item.

    Args:
        encoder: the encoder to adapt, with its pretrained weights loaded.
        k: neighbours of the target averaged (paper: 5 of a bank of 1M images). The
            defaults are those of the foundation benchmark (BENCHMARKS.md) on texts.
        self_weight: the weight of the item's own target embedding next to its neighbours'
            mean (paper: 0).
        bank_size: entries of the memory bank (paper: 1,024,000 images).
        cache_targets: texts whose target embeddings are kept (see ``KeptTargets``).
    """

    name: ClassVar[str] = "msf"
    paper: ClassVar[str] = "Koohpayegani et al. 2021, https://arxiv.org/abs/2105.07269"
    # The paper's weak (target) and strong (online) views are BYOL's two asymmetric ones.
    view_recipes: ClassVar[dict[str, str]] = {"image": "byol", "text": "none"}
    batch_coupling: ClassVar[str] = (
        "each item's neighbours include the batch's other items, enqueued first"
    )
    needs_pretrained: ClassVar[bool] = True

    bank: torch.Tensor
    bank_keys: torch.Tensor
    bank_pointer: torch.Tensor
    bank_filled: torch.Tensor

    def __init__(
        self,
        encoder: Encoder,
        k: int = 30,
        self_weight: float = 0.5,
        bank_size: int = 16384,
        cache_targets: int = 200_000,
    ) -> None:
        super().__init__(encoder)
        if k < 1 or bank_size < 1:
            raise ValueError(f"msf needs k >= 1 and bank_size >= 1, got {k} and {bank_size}")
        if not 0.0 <= self_weight <= 1.0:
            raise ValueError(f"msf's self_weight must lie in [0, 1], got {self_weight}")
        self.target = momentum_copy(encoder).eval()
        self.k, self.self_weight = int(k), float(self_weight)
        self.kept = KeptTargets(lambda x: self.target(x).float(), cache_targets)
        self.register_buffer("bank", torch.zeros(bank_size, encoder.feature_dim))
        self.register_buffer("bank_keys", torch.zeros(bank_size, dtype=torch.long))
        self.register_buffer("bank_pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank_filled", torch.zeros((), dtype=torch.long))
        self._options = {
            "k": self.k,
            "self_weight": self.self_weight,
            "bank_size": bank_size,
            "cache_targets": int(cache_targets),
        }

    def train(self, mode: bool = True) -> MeanShift:
        """Train the online encoder; the frozen target stays in eval mode."""
        super().train(mode)
        self.target.eval()
        return self

    @torch.no_grad()
    def enqueue(self, targets: torch.Tensor, keys: torch.Tensor) -> None:
        """Write unit-length ``targets`` over the oldest entries of the bank; rows whose key
        (a text's hash, see ``input_keys``; -1 for images) the bank holds already are left
        out, so a text seen again does not enter twice."""
        known = set(self.bank_keys[: int(self.bank_filled)].tolist())
        keep: list[int] = []
        for i, key in enumerate(keys.tolist()):
            if key < 0 or key not in known:
                known.add(key)  # a text twice in one batch enters once
                keep.append(i)
        index = torch.tensor(keep, dtype=torch.long, device=targets.device)
        targets, keys = targets[index], keys.to(targets.device)[index]
        size = self.bank.shape[0]
        targets, keys = targets[-size:], keys[-size:]
        slots = (self.bank_pointer + torch.arange(len(targets), device=targets.device)) % size
        self.bank[slots] = F.normalize(targets.float(), dim=1)
        self.bank_keys[slots] = keys
        self.bank_pointer.copy_((self.bank_pointer + len(targets)) % size)
        self.bank_filled.copy_((self.bank_filled + len(targets)).clamp(max=size))

    @torch.no_grad()
    def shifted_targets(self, target_view: torch.Tensor) -> torch.Tensor:
        """Enqueue the target's embeddings of a batch (every process's, with their keys:
        texts padded to other widths on other processes gather as keys), then shift each
        towards its neighbours' mean in the bank."""
        v = F.normalize(self.kept(target_view), dim=1)
        self.enqueue(gather(v), gather(input_keys(target_view).to(v.device)))
        bank = self.bank[: int(self.bank_filled)]
        return mean_shift_targets(v, bank, self.k, self.self_weight)

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Distance between the online embedding of the first view and the shifted target of
        the second."""
        return distill_loss(self.encoder(views[0]), self.shifted_targets(views[-1]))

    def fill_items(self) -> int:
        """Items whose target embeddings fill the bank before the first step."""
        return int(self.bank.shape[0] - self.bank_filled)

    @torch.no_grad()
    def fill(self, batches: Iterable[torch.Tensor]) -> int:
        """Enqueue the target's embeddings of target views until the bank is full; the items
        read."""
        read = 0
        for view in batches:
            v = F.normalize(self.kept(view), dim=1)
            self.enqueue(gather(v), gather(input_keys(view).to(v.device)))
            read += len(view)
            if self.fill_items() == 0:
                break
        return read

    def options(self) -> dict[str, Any]:
        return dict(self._options)


def input_keys(inputs: torch.Tensor) -> torch.Tensor:
    """A 63-bit hash of each row of token ids (padding after it left out); -1 for float rows,
    which never repeat.

    Example:
        >>> ids = torch.tensor([[5, 6, 0, 0], [5, 6, 0, 0]])
        >>> keys = input_keys(ids)
        >>> bool(keys[0] == keys[1] == input_keys(ids[:, :2])[0]), input_keys(torch.rand(1, 3))
        (True, tensor([-1]))
    """
    if inputs.is_floating_point():
        return torch.full((len(inputs),), -1, dtype=torch.long)
    keys = [
        int.from_bytes(hashlib.blake2b(row_key(row), digest_size=8).digest(), "little") >> 1
        for row in inputs.cpu().numpy()
    ]
    return torch.tensor(keys, dtype=torch.long)
