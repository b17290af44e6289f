"""The tabular backbone: categorical embeddings plus a ReLU MLP.

Rows arrive encoded by :class:`~selfsup.data.tabular.TablePreprocessor`: ``numeric`` float
columns (standardized values and missing flags) followed by one integer code per categorical
column (0 = missing or unseen). Each categorical column gets its own embedding table; the
embeddings and the numeric columns are concatenated and go through ``depth`` blocks of
Linear, BatchNorm and ReLU, as in SCARF's encoder (Bahri et al. 2022: a 4-layer ReLU MLP of
256 units).

Example:
    >>> import torch
    >>> net = TabularMLP(numeric=3, cardinalities=[4, 2], hidden=16, depth=2)
    >>> x = torch.tensor([[0.1, -1.0, 0.0, 3.0, 1.0], [0.0, 0.5, 1.0, 0.0, 0.0]])
    >>> net(x).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class TabularMLP(nn.Module):
    """Categorical embeddings and an MLP over encoded table rows.

    Args:
        numeric: numeric columns at the start of each row.
        cardinalities: codes per categorical column (including code 0), in row order.
        hidden: width of every layer (and of the features).
        depth: Linear + BatchNorm + ReLU blocks.
        embed_dim: embedding size per categorical column (at most its cardinality).
        dropout: dropout after each block but the last.
    """

    def __init__(
        self,
        numeric: int,
        cardinalities: Sequence[int] = (),
        hidden: int = 256,
        depth: int = 4,
        embed_dim: int = 8,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.numeric = numeric
        self.cardinalities = list(cardinalities)
        self.embeddings = nn.ModuleList(
            nn.Embedding(k, min(embed_dim, k)) for k in self.cardinalities
        )
        width = numeric + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(width if i == 0 else hidden, hidden), nn.BatchNorm1d(hidden)]
            layers.append(nn.ReLU())
            if dropout > 0 and i < depth - 1:
                layers.append(nn.Dropout(dropout))
        self.mlp = nn.Sequential(*layers)
        self.feature_dim = hidden

    def block_list(self) -> list[nn.Module]:
        """The parameterized blocks, input to output, for fine-tuning the last ones."""
        linears = [i for i, m in enumerate(self.mlp) if isinstance(m, nn.Linear)]
        ends = [*linears[1:], len(self.mlp)]
        return [self.embeddings, *(self.mlp[a:b] for a, b in zip(linears, ends, strict=True))]

    @property
    def in_features(self) -> int:
        """Columns of an encoded row."""
        return self.numeric + len(self.cardinalities)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, hidden) of encoded rows (B, numeric + categorical columns)."""
        parts = [x[:, : self.numeric]]
        codes = x[:, self.numeric :].round().long()
        for j, table in enumerate(self.embeddings):
            parts.append(table(codes[:, j].clamp(0, table.num_embeddings - 1)))
        return self.mlp(torch.cat(parts, dim=1))
