"""Dynamic MLP, type C: Yang et al., "Dynamic MLP for Fine-Grained Image Classification by
Leveraging Geographical and Temporal Information", CVPR 2022.

Like HyperFuse, Dynamic MLP generates the weights of a layer per sample. Type C differs in
what the generator reads: the image and the auxiliary embeddings are concatenated, and the
concatenation feeds both the branch that is transformed and the branch that generates the
weights. So the generated matrix depends on the primary input too, where HyperFuse's depends
on the auxiliary input alone.

Our reading, one block at the AV-MNIST embedding:

    c = [z_p, z_a]
    x = LN(P c)                     (h wide; the transformed branch)
    W = G(ReLU(LN(Q c)))            (h x h per sample)
    y = ReLU(LN(W^T x))
    z_p' = z_p + O y                (back to the primary width, with a residual)

Yang et al. stack such blocks with residuals inside a ResNet's last stage; one block with a
residual matches the HyperFuse block it is compared with. The weights are applied batched
(``torch.bmm``), never in a per-sample loop.
"""

from __future__ import annotations

import torch
from torch import nn


class DynamicMLPC(nn.Module):
    """``(batch, d_p), (batch, d_a) -> (batch, d_p)`` with weights generated from both inputs."""

    def __init__(self, primary_dim: int, aux_dim: int, hidden_dim: int = 64):
        super().__init__()
        self.out_dim = primary_dim
        self.hidden_dim = hidden_dim
        self.transformed_in = nn.Sequential(nn.Linear(primary_dim + aux_dim, hidden_dim), nn.LayerNorm(hidden_dim))
        self.condition_in = nn.Sequential(
            nn.Linear(primary_dim + aux_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU()
        )
        self.generator = nn.Linear(hidden_dim, hidden_dim * hidden_dim)
        nn.init.normal_(self.generator.weight, std=1.0 / hidden_dim)  # generated weights of variance ~1/h
        nn.init.zeros_(self.generator.bias)
        self.norm = nn.LayerNorm(hidden_dim)
        self.out = nn.Linear(hidden_dim, primary_dim)

    def generate_weights(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        """Return the per-sample ``(batch, h, h)`` matrices."""
        condition = self.condition_in(torch.cat([z_p, z_a], dim=1))
        return self.generator(condition).view(-1, self.hidden_dim, self.hidden_dim)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        x = self.transformed_in(torch.cat([z_p, z_a], dim=1))
        y = torch.bmm(x.unsqueeze(1), self.generate_weights(z_p, z_a)).squeeze(1)
        return z_p + self.out(torch.relu(self.norm(y)))
