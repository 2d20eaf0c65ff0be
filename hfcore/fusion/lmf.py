"""Low-rank Multimodal Fusion (LMF): Liu et al., "Efficient Low-rank Multimodal Fusion with
Modality-Specific Factors", ACL 2018.

A linear layer on the tensor-fusion feature ``[1, z_p] (x) [1, z_a]`` has a weight tensor of
shape ``(d_p + 1, d_a + 1, out)``. LMF constrains it to rank ``r``:
``W = sum_k w_k * P_k (x) A_k`` with modality factors ``P_k: (d_p + 1, out)`` and
``A_k: (d_a + 1, out)``, and computes the output without forming the tensor:
``y = sum_k w_k * ([1, z_p] P_k) * ([1, z_a] A_k) + b``.

Every factor is an ``nn.Parameter`` of this module. MultiBench's ``LowRankTensorFusion`` keeps
its factors in a Python list, so after ``.to(device)`` they are no longer registered
parameters and do not train on a GPU. The initialisation (Xavier normal for the factors and
the rank weights, zero bias) follows the LMF authors' code.
"""

from __future__ import annotations

import torch
from torch import nn

from .tensor_fusion import extend_by_one


class LowRankFusion(nn.Module):
    """``(batch, d_p), (batch, d_a) -> (batch, out_dim)`` through a rank-``rank`` weight tensor."""

    def __init__(self, primary_dim: int, aux_dim: int, out_dim: int = 128, rank: int = 8):
        super().__init__()
        if rank <= 0 or out_dim <= 0:
            raise ValueError(f"LowRankFusion: rank and out_dim must be positive, got {rank} and {out_dim}")
        self.out_dim = out_dim
        self.rank = rank
        self.primary_factor = nn.Parameter(torch.empty(rank, primary_dim + 1, out_dim))
        self.aux_factor = nn.Parameter(torch.empty(rank, aux_dim + 1, out_dim))
        self.rank_weights = nn.Parameter(torch.empty(1, rank))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        for parameter in (self.primary_factor, self.aux_factor, self.rank_weights):
            nn.init.xavier_normal_(parameter)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        primary = torch.einsum("bi,kio->kbo", extend_by_one(z_p), self.primary_factor)
        aux = torch.einsum("bj,kjo->kbo", extend_by_one(z_a), self.aux_factor)
        return torch.einsum("k,kbo->bo", self.rank_weights[0], primary * aux) + self.bias

    def full_weight(self) -> torch.Tensor:
        """Return the ``(d_p + 1, d_a + 1, out)`` weight tensor that the factors represent."""
        return torch.einsum("k,kio,kjo->ijo", self.rank_weights[0], self.primary_factor, self.aux_factor)
