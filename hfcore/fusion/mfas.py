"""The AV-MNIST architecture found by MFAS: Pérez-Rúa et al., "MFAS: Multimodal Fusion
Architecture Search", CVPR 2019.

MFAS searches over sequences of fusion layers. Fusion layer ``l`` reads one layer of each
unimodal network and the previous fusion layer:
``f_l = act_l(W_l [x_{i_l}, y_{j_l}, f_{l-1}])``. We do not search. As the HyperFuse paper
does (its Figure 5), we use the final AV-MNIST architecture: layer 1 fuses image layer 2 with
audio layer 4, layer 2 fuses image layer 3 with audio layer 5 and layer 1's output.

Our reading: each tapped feature map is reduced to its channel vector by global average
pooling (the taps have different spatial sizes), the activations are ReLU, and every fusion
layer has ``hidden_dim`` units. Encoder layers after the deepest tap are not used.
"""

from __future__ import annotations

import torch
from torch import nn


def global_pool(feature_map: torch.Tensor) -> torch.Tensor:
    """Return the channel vector of a ``(batch, C, H, W)`` map (a ``(batch, C)`` one is kept)."""
    return feature_map if feature_map.dim() == 2 else feature_map.mean(dim=(2, 3))


class MFASFusion(nn.Module):
    """Sequential fusion of tapped layers: ``(taps_p, taps_a) -> (batch, hidden_dim)``.

    Args:
        primary_channels, aux_channels: channels of each tap, one per fusion layer, in order.
    """

    def __init__(self, primary_channels: list[int], aux_channels: list[int], hidden_dim: int = 64):
        super().__init__()
        if len(primary_channels) != len(aux_channels) or not primary_channels:
            raise ValueError(
                f"MFAS: one primary and one auxiliary tap per fusion layer, got {primary_channels} and {aux_channels}"
            )
        self.out_dim = hidden_dim
        self.fusion_layers = nn.ModuleList()
        previous = 0
        for c_p, c_a in zip(primary_channels, aux_channels):
            self.fusion_layers.append(nn.Sequential(nn.Linear(c_p + c_a + previous, hidden_dim), nn.ReLU()))
            previous = hidden_dim

    def forward(self, taps_p: list[torch.Tensor], taps_a: list[torch.Tensor]) -> torch.Tensor:
        fused = None
        for layer, t_p, t_a in zip(self.fusion_layers, taps_p, taps_a):
            parts = [global_pool(t_p), global_pool(t_a)] + ([] if fused is None else [fused])
            fused = layer(torch.cat(parts, dim=1))
        return fused
