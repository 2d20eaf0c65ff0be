"""Multimodal Adaptation Gate (MAG): Rahman et al., "Integrating Multimodal Information in
Large Pretrained Transformers", ACL 2020.

MAG shifts the primary embedding by a gated displacement computed from the auxiliary one:

    g = ReLU(W_g [z_p, z_a] + b_g)
    H = g * (W_a z_a) + b_H
    alpha = min(beta * ||z_p|| / ||H||, 1)
    z_p' = LayerNorm(z_p + alpha * H)

The scaling ``alpha`` keeps the displacement no longer than ``beta`` times the primary
embedding, so the auxiliary modality can shift but never swamp it. MAG-BERT has one gate per
non-verbal modality (visual and acoustic); with one auxiliary modality there is one gate.
MAG-BERT applies dropout after the LayerNorm; here there is none, as in every other model of
the comparison. ``beta`` = 1 is MAG-BERT's default.
"""

from __future__ import annotations

import torch
from torch import nn


class MAGGate(nn.Module):
    """``(batch, d_p), (batch, d_a) -> (batch, d_p)``: the shifted primary embedding."""

    def __init__(self, primary_dim: int, aux_dim: int, beta: float = 1.0, eps: float = 1e-6):
        super().__init__()
        self.out_dim = primary_dim
        self.beta = beta
        self.eps = eps
        self.gate = nn.Linear(primary_dim + aux_dim, primary_dim)
        self.shift = nn.Linear(aux_dim, primary_dim, bias=False)
        self.shift_bias = nn.Parameter(torch.zeros(primary_dim))
        self.norm = nn.LayerNorm(primary_dim)

    def displacement(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        """Return ``alpha * H``, the shift added to ``z_p`` before the LayerNorm."""
        gate = torch.relu(self.gate(torch.cat([z_p, z_a], dim=-1)))
        shift = gate * self.shift(z_a) + self.shift_bias
        ratio = self.beta * z_p.norm(dim=-1, keepdim=True) / (shift.norm(dim=-1, keepdim=True) + self.eps)
        return torch.clamp(ratio, max=1.0) * shift

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        return self.norm(z_p + self.displacement(z_p, z_a))
