"""Feature-wise linear modulation (FiLM): Perez et al., "FiLM: Visual Reasoning with a General
Conditioning Layer", AAAI 2018.

The auxiliary embedding predicts a per-feature scale and shift for the primary feature:
``FiLM(z_p, z_a) = gamma(z_a) * z_p + beta(z_a)``. It is the first-order cousin of HyperFuse:
the generated layer is diagonal rather than a full ``h x h`` matrix. We predict
``gamma = 1 + delta(z_a)`` with ``delta`` and ``beta`` initialised to zero, so the layer starts
as the identity (Perez et al. note that predicting ``delta gamma`` trains more stably).
Perez et al. place FiLM inside every residual block of the CNN, after a BatchNorm without
affine parameters and before the ReLU. Here one FiLM layer conditions the primary encoder's
final embedding, the place where the HyperFuse block sits, so that the two compare the fusion
operation alone.
"""

from __future__ import annotations

import torch
from torch import nn


class FiLM(nn.Module):
    """``(batch, d_p), (batch, d_a) -> (batch, d_p)``: the primary feature, modulated."""

    def __init__(self, primary_dim: int, aux_dim: int):
        super().__init__()
        self.out_dim = primary_dim
        self.scale = nn.Linear(aux_dim, primary_dim)
        self.shift = nn.Linear(aux_dim, primary_dim)
        for layer in (self.scale, self.shift):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        return (1 + self.scale(z_a)) * z_p + self.shift(z_a)
