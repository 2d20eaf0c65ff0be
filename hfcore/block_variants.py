"""The alternative HyperFuse blocks of the paper's appendix E.1 (Figure 7, Table 10).

The appendix describes these blocks in a few sentences; this is our precise reading.
With ``g``, ``f`` the projections of the primary and auxiliary features to the bottleneck
``h``, ``H`` a linear generator of an ``h x h`` matrix, and ``g'`` the projection back:

- **Block I**, the simplest hyperblock: the auxiliary feature is mapped straight to a
  ``d_p x d_p`` matrix that is applied to the primary feature, ``z_p' = W(z_a)^T z_p``,
  with no projection, normalisation, activation or residual.
- **Block II** (after Dynamic MLP type C): both embeddings are projected and concatenated,
  ``c = [g(z_p), f(z_a)]``, and two MLPs of ``c`` feed the primary and the auxiliary
  channels: ``x = LN(P c)``, ``a = LN(Q c)``. Then ``W = H(a)`` and
  ``z_p' = ELU(LN(g'(ELU(W^T x))))``: the base block without its residual.
- **Block III**: Block II with the residual connection, ``z_p' = ELU(LN(g'(ELU(W^T x)))) + z_p``.
- **Block IV**: Block III with a purely primary primary channel, ``x = LN(g(z_p))``; only the
  generator's input ``a = LN(Q c)`` still mixes both modalities.

The base block (``hfcore.blocks.HyperFuseBlock``) is ``x = LN(g(z_p))``, ``a = LN(f(z_a))``
with the residual. Generators use the hyperfan-in initialisation of the base block. The
models that ``build_model("hyperfuse", block=...)`` builds leave out the stack's final skip
connection for the variants, so that each variant's residuals are exactly those above.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BLOCKS = ("base", "I", "II", "III", "IV")


class BlockI(nn.Module):
    """Block I: ``z_p' = W(z_a)^T z_p`` with ``W(z_a)`` a ``d_p x d_p`` matrix from one Linear."""

    def __init__(self, primary_dim: int, aux_dim: int):
        super().__init__()
        self.primary_dim = primary_dim
        self.generator = nn.Linear(aux_dim, primary_dim * primary_dim)
        # Hyperfan-in for unnormalised inputs: entries of variance about 1 / d_p for unit-variance z_a.
        nn.init.normal_(self.generator.weight, std=(aux_dim * primary_dim) ** -0.5)
        nn.init.zeros_(self.generator.bias)

    def generate_weights(self, z_a: torch.Tensor) -> torch.Tensor:
        return self.generator(z_a).view(-1, self.primary_dim, self.primary_dim)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        return torch.bmm(z_p.unsqueeze(1), self.generate_weights(z_a)).squeeze(1)


class MixedBlock(nn.Module):
    """Blocks II, III and IV: the generator reads both modalities (see the module docstring)."""

    def __init__(self, primary_dim: int, aux_dim: int, hidden_dim: int, variant: str):
        super().__init__()
        if variant not in ("II", "III", "IV"):
            raise ValueError(f"MixedBlock: variant must be 'II', 'III' or 'IV', got {variant!r}")
        self.variant = variant
        self.hidden_dim = hidden_dim
        self.primary_in = nn.Linear(primary_dim, hidden_dim)  # g
        self.aux_in = nn.Linear(aux_dim, hidden_dim)  # f
        self.primary_in_norm = nn.LayerNorm(hidden_dim)  # used by Block IV
        self.primary_channel = nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim))  # P
        self.aux_channel = nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim))  # Q
        self.generator = nn.Linear(hidden_dim, hidden_dim * hidden_dim)  # H
        nn.init.normal_(self.generator.weight, std=1.0 / hidden_dim)
        nn.init.zeros_(self.generator.bias)
        self.primary_out = nn.Linear(hidden_dim, primary_dim)  # g'
        self.primary_out_norm = nn.LayerNorm(primary_dim)
        if variant != "IV":
            del self.primary_in_norm
        else:
            del self.primary_channel

    def channels(self, z_p: torch.Tensor, z_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the primary channel ``x`` and the generator input ``a``."""
        projected_p = self.primary_in(z_p)
        mixed = torch.cat([projected_p, self.aux_in(z_a)], dim=1)
        if self.variant == "IV":
            x = self.primary_in_norm(projected_p)
        else:
            x = self.primary_channel(mixed)
        return x, self.aux_channel(mixed)

    def generate_weights(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        return self.generator(self.channels(z_p, z_a)[1]).view(-1, self.hidden_dim, self.hidden_dim)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        x, a = self.channels(z_p, z_a)
        weights = self.generator(a).view(-1, self.hidden_dim, self.hidden_dim)
        z_hat = F.elu(torch.bmm(x.unsqueeze(1), weights).squeeze(1))
        out = F.elu(self.primary_out_norm(self.primary_out(z_hat)))
        return out if self.variant == "II" else out + z_p


def build_block(variant: str, primary_dim: int, aux_dim: int, hidden_dim: int) -> nn.Module:
    """Return one alternative block by name ("I" .. "IV"); "base" is built by ``hfcore.blocks``."""
    if variant == "I":
        return BlockI(primary_dim, aux_dim)
    if variant in ("II", "III", "IV"):
        return MixedBlock(primary_dim, aux_dim, hidden_dim, variant)
    raise ValueError(f"unknown block variant {variant!r}; use one of {BLOCKS}")
