"""Refiner fusion (Refnet): Sankaran et al., "Multimodal Fusion Refiner Networks", 2021.

A fusion module maps the unimodal embeddings to a fused embedding, and a refiner, one small
decoder per modality, reconstructs each unimodal embedding from the fused one. The refiner's
loss rewards a fused embedding that keeps the information of every modality. It is added to
the task loss in training, and the refiner is unused at inference.

Our reading: the fusion is a Linear + ReLU layer of the concatenated embeddings, and each
refiner is a two-layer MLP. The refiner loss is the mean over modalities of
``1 - cos(R_m(z_f), z_m)``. The targets ``z_m`` are detached, so the refiner loss reaches the
encoders only through the fused embedding, which must keep each modality's information. Without
the detach, the loss could also be lowered by turning the unimodal embeddings toward directions
that are easy to reconstruct. The cosine is scale-free, so shrinking an embedding does not
lower the loss either. The paper's multi-similarity contrastive term for the fused
embedding is left out; it needs large batches of positives and is not what defines the
refiner. MultiBench's ``RefNet_objective`` differs: its refiners reconstruct the flattened
raw inputs, with a cosine embedding loss summed over modalities.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def refiner_loss(reconstructions, targets) -> torch.Tensor:
    """Return the mean over modalities of ``mean(1 - cos(reconstruction, target))``."""
    terms = [(1 - F.cosine_similarity(r.float(), t.float(), dim=1)).mean() for r, t in zip(reconstructions, targets)]
    return torch.stack(terms).mean()


class RefinerFusion(nn.Module):
    """``(batch, d_p), (batch, d_a) -> (batch, fused_dim)``, with the refiner loss in training."""

    def __init__(self, primary_dim: int, aux_dim: int, fused_dim: int = 128, refine_weight: float = 1.0):
        super().__init__()
        self.out_dim = fused_dim
        self.refine_weight = refine_weight
        self.fuse = nn.Sequential(nn.Linear(primary_dim + aux_dim, fused_dim), nn.ReLU())
        self.primary_refiner = nn.Sequential(nn.Linear(fused_dim, fused_dim), nn.ReLU(), nn.Linear(fused_dim, primary_dim))
        self.aux_refiner = nn.Sequential(nn.Linear(fused_dim, fused_dim), nn.ReLU(), nn.Linear(fused_dim, aux_dim))
        self._cache = None

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([z_p, z_a], dim=1))
        if self.training:
            self._cache = ((self.primary_refiner(fused), self.aux_refiner(fused)), (z_p.detach(), z_a.detach()))
        else:
            self._cache = None
        return fused

    def training_loss(self, loss, labels, x_p, x_a):
        if self._cache is None:
            raise RuntimeError("Refnet: run a forward pass in training mode before asking for its loss")
        return loss + self.refine_weight * refiner_loss(*self._cache)
