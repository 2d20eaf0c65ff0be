"""Gradient Blending (GB): Wang et al., "What Makes Training Multi-Modal Classification
Networks Hard?", CVPR 2020.

A multimodal network can overfit faster than its unimodal parts. Gradient Blending trains
the fused head together with one head per modality and weights their losses by how well each
one generalises: between two checkpoints ``N`` and ``N + n``, with training loss ``L^T`` and
held-out loss ``L^V`` of one head,

    G = L^V_N - L^V_{N+n}                                     (generalisation gained)
    O = (L^V_{N+n} - L^T_{N+n}) - (L^V_N - L^T_N)             (overfitting gained)
    w  proportional to  G / O^2,   the weights summing to 1.

Our reading (the online variant, re-estimated every epoch):

- Heads: the late-fusion head on ``[z_p, z_a]`` and an MLP head on each embedding. The loss is
  ``w_fused * CE_fused + w_p * CE_p + w_a * CE_a``; only the fused head predicts at test time.
- After every epoch, ``L^T`` is measured on a fixed, evenly spaced probe of ``probe_size``
  training samples and ``L^V`` on the validation split, both in evaluation mode. The weights
  start equal and are re-estimated from the last two epochs.
- One epoch is a short interval, so ``G`` and ``O`` are differences of noisy losses. Two
  floors keep the estimate from swinging to one head. ``O^2`` is floored at
  ``min_overfit ** 2`` (0.01 squared: per-epoch changes of the loss gap are typically 0.01 to
  0.1), so a head whose gap happened not to move does not take all the weight. And every head
  keeps at least ``min_weight`` (0.05). A head whose held-out loss rose for one epoch has
  ``G <= 0`` and would get weight 0, and the floor keeps it training. This matters most for the
  fused head, the one used at test time. When no head gained, the weights stay as they were.
- Weights and the previous losses are buffers, so checkpoints and resumed runs keep them.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

HEADS = ("fused", "primary", "auxiliary")


def blend_weights(
    train_before: torch.Tensor,
    val_before: torch.Tensor,
    train_after: torch.Tensor,
    val_after: torch.Tensor,
    previous: torch.Tensor,
    min_overfit: float = 0.01,
    min_weight: float = 0.05,
) -> torch.Tensor:
    """Return the normalised weights ``G / O^2`` per head, with the floors of the module docstring.

    The weights ``G / O^2`` (with ``O^2`` floored) are normalised to sum to 1; every weight is
    then raised to at least ``min_weight`` by mixing with the uniform weights,
    ``w = (1 - k * min_weight) * w + min_weight`` for ``k`` heads.
    """
    count = len(previous)
    if not 0 <= min_weight * count < 1:
        raise ValueError(f"min_weight must be in [0, 1/{count}) for {count} heads, got {min_weight}")
    gain = val_before - val_after
    overfit = (val_after - train_after) - (val_before - train_before)
    raw = torch.clamp(gain, min=0) / torch.clamp(overfit**2, min=min_overfit**2)
    if float(raw.sum()) <= 0:
        return previous.clone()
    return (1 - count * min_weight) * raw / raw.sum() + min_weight


class GradientBlending(nn.Module):
    """Late fusion with per-modality heads whose losses are blended during training.

    Args:
        primary_head, auxiliary_head: modules mapping each embedding to logits.
        probe_size: training samples on which the training loss of each head is measured.
    """

    def __init__(
        self,
        primary_dim: int,
        aux_dim: int,
        primary_head: nn.Module,
        auxiliary_head: nn.Module,
        *,
        probe_size: int = 2000,
        min_overfit: float = 0.01,
        min_weight: float = 0.05,
    ):
        super().__init__()
        self.out_dim = primary_dim + aux_dim
        self.primary_head = primary_head
        self.auxiliary_head = auxiliary_head
        self.probe_size = probe_size
        self.min_overfit = min_overfit
        self.min_weight = min_weight
        self.register_buffer("weights", torch.full((len(HEADS),), 1.0 / len(HEADS)))
        # Training and held-out losses per head at the last estimate; NaN before the first.
        self.register_buffer("last_losses", torch.full((2, len(HEADS)), float("nan")))
        self._cache = None

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        self._cache = (z_p, z_a) if self.training else None
        return torch.cat([z_p, z_a], dim=1)

    def training_loss(self, loss, labels, x_p, x_a):
        if self._cache is None:
            raise RuntimeError("GB: run a forward pass in training mode before asking for its loss")
        z_p, z_a = self._cache
        primary = F.cross_entropy(self.primary_head(z_p).float(), labels)
        auxiliary = F.cross_entropy(self.auxiliary_head(z_a).float(), labels)
        w = self.weights
        return w[0] * loss + w[1] * primary + w[2] * auxiliary

    @torch.no_grad()
    def head_losses(self, model: nn.Module, data) -> torch.Tensor:
        """Return the mean cross-entropy of the fused, primary and auxiliary heads on ``data``."""
        model.eval()
        totals = torch.zeros(len(HEADS), dtype=torch.float64)
        for inputs, labels in data.batches(500):
            h_p, z_a = model.encode(*model.batch_inputs(inputs))
            logits = (model.fuse(h_p, z_a), self.primary_head(h_p), self.auxiliary_head(z_a))
            for index, head_logits in enumerate(logits):
                totals[index] += F.cross_entropy(head_logits.float(), labels, reduction="sum").double()
        return (totals / len(data)).float()

    def probe(self, data):
        """Return an evenly spaced subset of at most ``probe_size`` samples of ``data``."""
        if len(data) <= self.probe_size:
            return data
        index = torch.linspace(0, len(data) - 1, self.probe_size).long()
        return type(data)({name: t[index] for name, t in data.inputs.items()}, data.labels[index])

    def end_epoch(self, model: nn.Module, train_data, val_data) -> None:
        losses = torch.stack([self.head_losses(model, self.probe(train_data)), self.head_losses(model, val_data)])
        if not torch.isnan(self.last_losses).any():
            self.weights.copy_(
                blend_weights(self.last_losses[0], self.last_losses[1], losses[0], losses[1], self.weights,
                              self.min_overfit, self.min_weight)
            )
        self.last_losses.copy_(losses)
        logger.info("gradient blending weights (fused, primary, auxiliary): %s", [round(float(w), 3) for w in self.weights])
