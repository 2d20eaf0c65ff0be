"""Multimodal Factorization Model (MFM): Tsai et al., "Learning Factorized Multimodal
Representations", ICLR 2019.

MFM splits the representation into one multimodal discriminative factor ``F_y``, computed
from all modalities and used for the label, and one modality-specific generative factor
``F_m`` per modality. A decoder per modality reconstructs that modality from ``[F_y, F_m]``,
so the objective is the classification loss plus the reconstruction losses.

Our reading, for AV-MNIST with LeNet encoders:

- ``F_y`` is an MLP of the concatenated embeddings; each ``F_m`` an MLP of its own embedding.
- The decoders are MLPs that reconstruct the standardised inputs, average-pooled to at most
  ``recon_size`` x ``recon_size`` (28 x 28: the whole image, and the spectrogram at a quarter
  of its resolution). Reconstructing the inputs, not the learned embeddings, keeps the
  encoders from shrinking their embeddings to make the loss small.
- The loss is ``CE + recon_weight * (MSE_p + MSE_a)``. MFM's Wasserstein-autoencoder prior term
  (an MMD between factors and a Gaussian) only serves sampling from the generative model and
  is left out; MultiBench's MFM baseline leaves it out too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def reconstruction_target(x: torch.Tensor, recon_size: int) -> torch.Tensor:
    """Return ``x`` (``(batch, C, S, S)``) average-pooled to at most ``recon_size``, flattened."""
    if x.shape[-1] > recon_size:
        x = F.adaptive_avg_pool2d(x, recon_size)
    return x.flatten(1).float()


class FactorizedMultimodal(nn.Module):
    """MFM fusion: returns ``F_y`` and adds the reconstruction losses in training.

    Args:
        primary_shape, aux_shape: ``(channels, height, width)`` of the raw inputs.
        factor_dim: width of every factor; ``F_y`` is the fusion output.
        recon_size: largest side of the reconstructed inputs.
        recon_weight: weight of the reconstruction losses.
    """

    def __init__(
        self,
        primary_dim: int,
        aux_dim: int,
        primary_shape: tuple[int, int, int],
        aux_shape: tuple[int, int, int],
        *,
        factor_dim: int = 64,
        recon_size: int = 28,
        recon_weight: float = 1.0,
    ):
        super().__init__()
        self.out_dim = factor_dim
        self.recon_size = recon_size
        self.recon_weight = recon_weight
        self.discriminative = _mlp(primary_dim + aux_dim, factor_dim, factor_dim)
        self.primary_factor = _mlp(primary_dim, factor_dim, factor_dim)
        self.aux_factor = _mlp(aux_dim, factor_dim, factor_dim)
        self.primary_decoder = _mlp(2 * factor_dim, 4 * factor_dim, self._recon_numel(primary_shape))
        self.aux_decoder = _mlp(2 * factor_dim, 4 * factor_dim, self._recon_numel(aux_shape))
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def _recon_numel(self, shape: tuple[int, int, int]) -> int:
        channels, height, width = shape
        return channels * min(height, self.recon_size) * min(width, self.recon_size)

    def reconstruct(self, f_y: torch.Tensor, z_p: torch.Tensor, z_a: torch.Tensor):
        """Return the reconstructions ``(x_p_hat, x_a_hat)``, flattened."""
        x_p_hat = self.primary_decoder(torch.cat([f_y, self.primary_factor(z_p)], dim=1))
        x_a_hat = self.aux_decoder(torch.cat([f_y, self.aux_factor(z_a)], dim=1))
        return x_p_hat, x_a_hat

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        f_y = self.discriminative(torch.cat([z_p, z_a], dim=1))
        self._cache = self.reconstruct(f_y, z_p, z_a) if self.training else None
        return f_y

    def reconstruction_loss(self, x_p: torch.Tensor, x_a: torch.Tensor) -> torch.Tensor:
        """Return ``MSE_p + MSE_a`` of the reconstructions cached by the last training forward."""
        if self._cache is None:
            raise RuntimeError("MFM: run a forward pass in training mode before asking for its loss")
        x_p_hat, x_a_hat = self._cache
        return F.mse_loss(x_p_hat.float(), reconstruction_target(x_p, self.recon_size)) + F.mse_loss(
            x_a_hat.float(), reconstruction_target(x_a, self.recon_size)
        )

    def training_loss(self, loss, labels, x_p, x_a):
        return loss + self.recon_weight * self.reconstruction_loss(x_p, x_a)
