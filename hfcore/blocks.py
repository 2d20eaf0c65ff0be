"""HyperFuse blocks: a hypernetwork reads the auxiliary feature and generates the
weights of a linear layer that transforms the primary feature.

Source: "HyperFuse: Multimodal Fusion via Hypernetworks", section 4.3. One block computes

    W       = H(a),  a = LN_a(f(z_a))                      W: (batch, h, h)
    z_hat   = ELU(W^T LN(g(z_p)))
    z_p_new = ELU(LN(g'(z_hat))) + z_p

where g: primary_dim -> h and g': h -> primary_dim are linear projections, f projects the
auxiliary feature to h, and H is a linear generator with h*h outputs.

The full generator costs about h^3 multiply-adds (2 h^3 FLOPs) per sample (h inputs, h^2
outputs), against h^2 for the h x h layer it parameterises. The factorized generator (``generator=
"factorized"``) instead emits r gains s = H(a) and builds W = U diag(s) V from learned
U (h x r) and V (r x h). Its generator emits r numbers instead of h^2, so for a fixed rank its
cost grows linearly in h, and the block never forms W: W^T x = V^T (s * U^T x). The price is
expressiveness. The full generator's W(a) ranges over an affine space spanned by h arbitrary
h x h matrices, while the factorized one spans r fixed rank-1 matrices u_k v_k^T.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .block_variants import BLOCKS, build_block

GENERATORS = ("full", "factorized")


class HyperFuseBlock(nn.Module):
    """Fuse an auxiliary feature into a primary feature through generated weights.

    Args:
        primary_dim: width ``d`` of the primary feature ``z_p``.
        aux_dim: width of the auxiliary feature ``z_a``.
        hidden_dim: bottleneck width ``h``; the generated matrix is ``h x h``.
        aux_norm: apply LayerNorm to the projected auxiliary feature before the generator.
        generator: ``"full"`` (the paper's: H outputs all ``h * h`` weights) or
            ``"factorized"`` (``W = U diag(H(a)) V``, see the module docstring).
        rank: number of rank-1 terms ``r`` of the factorized generator; None means ``h``. A rank
            above ``h`` is accepted but cannot raise the rank of ``W`` beyond ``h``.

    Shapes: ``forward(z_p, z_a)`` takes ``(batch, primary_dim)`` and ``(batch, aux_dim)`` and
    returns ``(batch, primary_dim)``. Leading dimensions may be more than one, as long as both
    inputs share them: ``(batch, seq, primary_dim)`` with ``(batch, seq, aux_dim)`` fuses every
    position (an utterance or a token) with its own generated matrix.

    Initialisation. The generator ``H`` follows the hyperfan-in rule of Chang et al.,
    "Principled weight initialization for hypernetworks" (ICLR 2020). Its weights are drawn
    with variance ``1 / (h * h)`` and its bias is zero. With unit-variance generator inputs,
    each generated entry then has variance ``1 / h``, the fan-in variance of an ``h x h``
    layer. ``W^T x`` then keeps the unit variance of the LayerNorm output ``x`` at any ``h``.
    PyTorch's default ``nn.Linear`` initialisation would instead give generated weights of
    variance about ``E[a^2] / 3``, which grows with the auxiliary input's scale; the LayerNorm
    on ``a`` (``aux_norm=True``, the default) makes the generator's input unit-variance
    whatever the auxiliary encoder outputs. The paper does not state an initialisation.
    """

    def __init__(
        self,
        primary_dim: int,
        aux_dim: int,
        hidden_dim: int,
        *,
        aux_norm: bool = True,
        generator: str = "full",
        rank: int | None = None,
    ):
        super().__init__()
        for name, value in (("primary_dim", primary_dim), ("aux_dim", aux_dim), ("hidden_dim", hidden_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"HyperFuseBlock: {name} must be a positive integer, got {value!r}")
        if generator not in GENERATORS:
            raise ValueError(f"HyperFuseBlock: unknown generator {generator!r}; use one of {GENERATORS}")
        if generator == "full" and rank is not None:
            raise ValueError("HyperFuseBlock: rank applies to generator='factorized' only; leave it None")
        rank = hidden_dim if rank is None else rank
        if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
            raise ValueError(f"HyperFuseBlock: rank must be a positive integer, got {rank!r}")
        self.primary_dim = primary_dim
        self.aux_dim = aux_dim
        self.hidden_dim = hidden_dim
        self.generator_kind = generator
        self.rank = rank if generator == "factorized" else None

        self.primary_in = nn.Linear(primary_dim, hidden_dim)  # g
        self.primary_in_norm = nn.LayerNorm(hidden_dim)
        self.aux_in = nn.Linear(aux_dim, hidden_dim)  # f
        self.aux_in_norm = nn.LayerNorm(hidden_dim) if aux_norm else nn.Identity()
        if generator == "full":
            self.generator = nn.Linear(hidden_dim, hidden_dim * hidden_dim)  # H
        else:
            self.generator = nn.Linear(hidden_dim, rank)  # H: one gain per rank-1 term
            self.basis_in = nn.Parameter(torch.empty(hidden_dim, rank))  # U
            self.basis_out = nn.Parameter(torch.empty(rank, hidden_dim))  # V
        self.primary_out = nn.Linear(hidden_dim, primary_dim)  # g'
        self.primary_out_norm = nn.LayerNorm(primary_dim)
        self.reset_generator()

    def reset_generator(self) -> None:
        """Initialise the generator so that generated weights have variance ``1 / h``.

        Full generator: hyperfan-in, weights of variance ``1 / (h * h)`` and a zero bias.
        Factorized generator: ``H`` has weights of variance ``1 / h`` (unit-variance gains),
        ``U`` entries of variance ``1 / h`` and ``V`` entries of variance ``1 / r``, so each
        entry of ``U diag(s) V``, a sum of ``r`` products, has variance ``r / (h r) = 1 / h``.
        """
        h = self.hidden_dim
        if self.generator_kind == "full":
            nn.init.normal_(self.generator.weight, mean=0.0, std=1.0 / h)
        else:
            nn.init.normal_(self.generator.weight, mean=0.0, std=h**-0.5)
            nn.init.normal_(self.basis_in, mean=0.0, std=h**-0.5)
            nn.init.normal_(self.basis_out, mean=0.0, std=self.rank**-0.5)
        nn.init.zeros_(self.generator.bias)

    def generate_weights(self, z_a: torch.Tensor) -> torch.Tensor:
        """Generate the per-sample matrix ``W`` of shape ``(batch, h, h)`` from ``z_a``.

        The factorized generator never forms ``W`` in ``forward``; this method builds it, for
        analysis and tests.
        """
        a = self.aux_in_norm(self.aux_in(z_a))
        if self.generator_kind == "full":
            return self.generator(a).view(-1, self.hidden_dim, self.hidden_dim)
        gains = self.generator(a)  # (batch, r)
        return torch.einsum("ir,br,rj->bij", self.basis_in, gains, self.basis_out)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        assert z_p.dim() >= 2 and z_p.shape[-1] == self.primary_dim, (
            f"z_p must be (..., {self.primary_dim}), got {tuple(z_p.shape)}"
        )
        assert z_a.dim() >= 2 and z_a.shape[-1] == self.aux_dim, (
            f"z_a must be (..., {self.aux_dim}), got {tuple(z_a.shape)}"
        )
        assert z_p.shape[:-1] == z_a.shape[:-1], (
            f"z_p and z_a must share their leading dimensions, got {tuple(z_p.shape)} and {tuple(z_a.shape)}"
        )
        if z_p.dim() > 2:
            fused = self.forward(z_p.reshape(-1, self.primary_dim), z_a.reshape(-1, self.aux_dim))
            return fused.view(z_p.shape)

        x = self.primary_in_norm(self.primary_in(z_p))  # (batch, h_in)
        if self.generator_kind == "full":
            weights = self.generate_weights(z_a)  # (batch, h_in, h_out)
            # W^T x for every sample at once: (batch, 1, h_in) @ (batch, h_in, h_out).
            z_hat = torch.bmm(x.unsqueeze(1), weights).squeeze(1)
        else:
            # W^T x = V^T (s * (U^T x)): three products of width r, and no h x h matrix.
            gains = self.generator(self.aux_in_norm(self.aux_in(z_a)))
            z_hat = ((x @ self.basis_in) * gains) @ self.basis_out
        z_hat = F.elu(z_hat)
        return F.elu(self.primary_out_norm(self.primary_out(z_hat))) + z_p


class HyperFuse(nn.Module):
    """Stack of ``num_blocks`` HyperFuse blocks with a final skip connection.

    The auxiliary feature passes to every block; with ``aux_mlp=True`` a Linear + ReLU layer
    of width ``aux_dim`` transforms it between consecutive blocks. ``generator`` and ``rank``
    are passed to every block. ``block`` picks the block design: ``"base"`` (the paper's
    Figure 3(b), ``HyperFuseBlock``) or one of the appendix variants ``"I"`` to ``"IV"``
    (``hfcore.block_variants``), which take no ``generator`` or ``rank``. The final skip connection
    adds the primary input to the output of the last block, ``z_out = z_p^N + z_p^0``. The
    HyperFuse paper places a skip connection between the fused and the original primary
    embedding before the head without giving its form. Addition keeps the primary width.

    Shapes: ``(batch, primary_dim), (batch, aux_dim) -> (batch, primary_dim)``.
    """

    def __init__(
        self,
        primary_dim: int,
        aux_dim: int,
        hidden_dim: int,
        *,
        num_blocks: int = 1,
        aux_mlp: bool = False,
        final_skip: bool = True,
        aux_norm: bool = True,
        generator: str = "full",
        rank: int | None = None,
        block: str = "base",
    ):
        super().__init__()
        if not isinstance(num_blocks, int) or num_blocks <= 0:
            raise ValueError(f"HyperFuse: num_blocks must be a positive integer, got {num_blocks!r}")
        if block not in BLOCKS:
            raise ValueError(f"HyperFuse: unknown block {block!r}; use one of {BLOCKS}")
        if block != "base" and (generator != "full" or rank is not None):
            raise ValueError(f"HyperFuse: block {block!r} has no generator options; leave generator and rank unset")
        self.primary_dim = primary_dim
        self.aux_dim = aux_dim
        self.out_dim = primary_dim
        self.final_skip = final_skip
        self.block = block
        self.blocks = nn.ModuleList(
            HyperFuseBlock(primary_dim, aux_dim, hidden_dim, aux_norm=aux_norm, generator=generator, rank=rank)
            if block == "base"
            else build_block(block, primary_dim, aux_dim, hidden_dim)
            for _ in range(num_blocks)
        )
        # One auxiliary transform between each pair of consecutive blocks.
        self.aux_layers = nn.ModuleList(
            nn.Sequential(nn.Linear(aux_dim, aux_dim), nn.ReLU()) if aux_mlp else nn.Identity()
            for _ in range(num_blocks - 1)
        )

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        z = z_p
        for index, block in enumerate(self.blocks):
            if index > 0:
                z_a = self.aux_layers[index - 1](z_a)
            z = block(z, z_a)
        return z + z_p if self.final_skip else z


def generated_weight_std(block: HyperFuseBlock, z_a: torch.Tensor) -> float:
    """Return the standard deviation of the weights ``block`` generates for ``z_a``."""
    with torch.no_grad():
        return float(block.generate_weights(z_a).std())


def expected_generated_weight_std(hidden_dim: int) -> float:
    """Return the hyperfan-in target ``1 / sqrt(h)`` for an ``h x h`` generated layer."""
    return 1.0 / math.sqrt(hidden_dim)
