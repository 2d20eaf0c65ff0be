"""Tensor Fusion (LFN): Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment
Analysis", EMNLP 2017.

Each embedding is extended by a constant 1 and the fused feature is their outer product,
flattened: ``vec([1, z_p] (x) [1, z_a])``. It contains the constant, both unimodal embeddings
and every pairwise product ``z_p[i] * z_a[j]``, so a linear layer on top of it can weight
unimodal and bimodal terms freely. Its width is ``(d_p + 1) * (d_a + 1)`` (9,457 for the
AV-MNIST LeNets), and the head's first layer carries most of the parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def extend_by_one(z: torch.Tensor) -> torch.Tensor:
    """Return ``[1, z]`` along the last dimension."""
    return torch.cat([z.new_ones(*z.shape[:-1], 1), z], dim=-1)


class TensorFusion(nn.Module):
    """``(batch, d_p), (batch, d_a) -> (batch, (d_p + 1) * (d_a + 1))``; no parameters."""

    def __init__(self, primary_dim: int, aux_dim: int):
        super().__init__()
        self.primary_dim = primary_dim
        self.aux_dim = aux_dim
        self.out_dim = (primary_dim + 1) * (aux_dim + 1)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        outer = torch.einsum("bi,bj->bij", extend_by_one(z_p), extend_by_one(z_a))
        return outer.flatten(1)
