"""The training recipe of paper appendix B.3, as pieces that can be tested one by one.

- ``mixup`` (Zhang et al., 2018): a batch is mixed with a shuffled copy of itself,
  ``x' = lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha, alpha)``. The auxiliary input
  (location and date) is mixed with the same ``lam`` and permutation as the images, so that
  each mixed sample stays one consistent pair of inputs. ``alpha = 0`` turns mixup off.
- ``mixup_cross_entropy``: ``lam * CE(y_a) + (1 - lam) * CE(y_b)``, each with label smoothing.
- ``warmup_cosine``: the learning-rate factor of Yang et al. (2022), linear warm-up over the
  first steps and then cosine decay to zero, evaluated per optimisation step.
- ``topk_correct``: how many samples have their label among the k highest scores.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def mixup(images: torch.Tensor, aux: torch.Tensor, labels: torch.Tensor, alpha: float,
          rng: np.random.Generator, generator: torch.Generator | None = None):
    """Return ``(images, aux, labels_a, labels_b, lam)``, mixed as described in the module doc."""
    if alpha < 0:
        raise ValueError(f"mixup alpha must be >= 0 (0 turns mixup off), got {alpha}")
    if alpha == 0:
        return images, aux, labels, labels, 1.0
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(len(labels), generator=generator)
    mixed_images = lam * images + (1 - lam) * images[perm]
    mixed_aux = lam * aux + (1 - lam) * aux[perm]
    return mixed_images, mixed_aux, labels, labels[perm], lam


def mixup_cross_entropy(logits: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor, lam: float,
                        label_smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy against both label sets of a mixed batch, weighted by ``lam``."""
    loss_a = F.cross_entropy(logits, labels_a, label_smoothing=label_smoothing)
    if lam == 1.0:
        return loss_a
    return lam * loss_a + (1 - lam) * F.cross_entropy(logits, labels_b, label_smoothing=label_smoothing)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor at optimisation step ``step`` (0-based).

    During warm-up the factor rises linearly, ``(step + 1) / warmup_steps``, reaching 1 at the
    last warm-up step; afterwards it follows ``0.5 * (1 + cos(pi * t))`` with ``t`` going from 0
    at the first step after warm-up to 1 at ``total_steps``.
    """
    if total_steps <= 0 or warmup_steps < 0:
        raise ValueError(f"need total_steps > 0 and warmup_steps >= 0, got {total_steps} and {warmup_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """Number of samples whose label is among the top ``k`` scores, for each ``k`` (capped at the class count)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == labels[:, None]
    return {k: int(hits[:, :k].any(dim=1).sum()) for k in ks}
