"""Dynamic MLP, type C: Yang et al., "Dynamic MLP for Fine-Grained Image Classification by
Leveraging Geographical and Temporal Information", CVPR 2022.

Like HyperFuse, Dynamic MLP generates the weights of a layer per sample. Type C differs in
what the generator reads: the image and the auxiliary embeddings are concatenated, and the
concatenation feeds both the branch that is transformed and the branch that generates the
weights. So the generated matrix depends on the primary input too, where HyperFuse's depends
on the auxiliary input alone.

Our reading follows the authors' fusion module (``FusionModule`` with ``Dynamic_MLP_C`` in
their public code), with one dynamic block and ``h`` their ``planes``:

    x0 = P0 z_p                                  (primary projected to h)
    c  = [x0, z_a]
    x  = P2 ReLU(P1 c)                           (the transformed branch)
    W  = G ReLU(Q c)                             (h x h per sample)
    y  = ReLU(LN(W^T x))
    y  = ReLU(LN(R y))                           (R without bias)
    z_p' = z_p + LN(O y)                         (back to the primary width, with a residual)

The authors place the module after the backbone's global pooling, with the residual around
it, which is where it sits here (after the LeNet encoder). Their PyTorch default
initialisation is kept. The weights are applied batched (``torch.bmm``), never in a
per-sample loop.
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
        h = hidden_dim
        self.primary_in = nn.Linear(primary_dim, h)  # P0
        self.transformed = nn.Sequential(nn.Linear(h + aux_dim, h), nn.ReLU(), nn.Linear(h, h))  # P2 ReLU(P1 .)
        self.condition = nn.Sequential(nn.Linear(h + aux_dim, h), nn.ReLU())  # ReLU(Q .)
        self.generator = nn.Linear(h, h * h)  # G
        self.generated_norm = nn.LayerNorm(h)
        self.refine = nn.Sequential(nn.Linear(h, h, bias=False), nn.LayerNorm(h), nn.ReLU())  # ReLU(LN(R .))
        self.out = nn.Sequential(nn.Linear(h, primary_dim), nn.LayerNorm(primary_dim))  # LN(O .)

    def _concatenated(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.primary_in(z_p), z_a], dim=1)

    def generate_weights(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        """Return the per-sample ``(batch, h, h)`` matrices."""
        return self.generator(self.condition(self._concatenated(z_p, z_a))).view(-1, self.hidden_dim, self.hidden_dim)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        c = self._concatenated(z_p, z_a)
        weights = self.generator(self.condition(c)).view(-1, self.hidden_dim, self.hidden_dim)
        y = torch.bmm(self.transformed(c).unsqueeze(1), weights).squeeze(1)
        y = self.refine(torch.relu(self.generated_norm(y)))
        return z_p + self.out(y)
