"""Multimodal bottleneck transformer (MBT): Nagrani et al., "Attention Bottlenecks for
Multimodal Fusion", NeurIPS 2021.

Each modality is a sequence of tokens with its own transformer layers. For the first
``fusion_layer`` layers the streams run separately. From then on a few shared bottleneck
tokens join each stream's layer: each stream attends over its own tokens plus the
bottleneck, and the bottleneck's updates from the two streams are averaged. The streams
exchange information only through these tokens.

Our reading for AV-MNIST, where the encoders are LeNets rather than ViTs. The tokens are the
positions of a LeNet feature map: by default image layer 2 and audio layer 4, each 7 x 7, so
49 tokens per modality. Each token is projected to ``dim``, and each stream gets a learned
position embedding and a class token. The transformer replaces the remaining encoder layers.
As in MBT, each stream's final class token goes, after its own LayerNorm, through the same
classification head, and the two streams' logits are averaged: the fusion returns both tokens
as ``(batch, 2, dim)`` and ``TappedModel`` averages the head's logits over them.
"""

from __future__ import annotations

import torch
from torch import nn


def _tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """Return ``(batch, H * W, C)`` tokens of a ``(batch, C, H, W)`` map (or one of ``(batch, C)``)."""
    if feature_map.dim() == 2:
        return feature_map.unsqueeze(1)
    return feature_map.flatten(2).transpose(1, 2)


class BottleneckTransformer(nn.Module):
    """Fusion over token maps: ``([map_p], [map_a]) -> (batch, 2, dim)``, the two class tokens.

    Args:
        primary_channels, aux_channels: channels of the tapped feature maps.
        primary_tokens, aux_tokens: number of positions of each map.
        dim, num_layers, num_heads: transformer width, depth and heads.
        fusion_layer: index of the first layer with bottleneck tokens (0 fuses from the start).
        num_bottleneck: number of bottleneck tokens.
    """

    def __init__(
        self,
        primary_channels: int,
        aux_channels: int,
        primary_tokens: int,
        aux_tokens: int,
        *,
        dim: int = 64,
        num_layers: int = 4,
        num_heads: int = 4,
        fusion_layer: int = 2,
        num_bottleneck: int = 4,
    ):
        super().__init__()
        if not 0 <= fusion_layer < num_layers:
            raise ValueError(f"MBT: fusion_layer {fusion_layer} must be in [0, {num_layers - 1}]")
        self.out_dim = dim
        self.fusion_layer = fusion_layer
        self.primary_in = nn.Linear(primary_channels, dim)
        self.aux_in = nn.Linear(aux_channels, dim)
        self.primary_class = nn.Parameter(torch.zeros(1, 1, dim))
        self.aux_class = nn.Parameter(torch.zeros(1, 1, dim))
        self.primary_position = nn.Parameter(torch.randn(1, primary_tokens + 1, dim) * 0.02)
        self.aux_position = nn.Parameter(torch.randn(1, aux_tokens + 1, dim) * 0.02)
        self.bottleneck = nn.Parameter(torch.randn(1, num_bottleneck, dim) * 0.02)

        def layer():
            return nn.TransformerEncoderLayer(
                dim, num_heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
            )

        self.primary_layers = nn.ModuleList(layer() for _ in range(num_layers))
        self.aux_layers = nn.ModuleList(layer() for _ in range(num_layers))
        self.primary_norm = nn.LayerNorm(dim)
        self.aux_norm = nn.LayerNorm(dim)

    def fusion_step(self, index: int, x_p: torch.Tensor, x_a: torch.Tensor, bottleneck: torch.Tensor):
        """Run layer ``index`` of both streams with the bottleneck; return ``(x_p, x_a, bottleneck)``.

        The primary stream's output depends on ``x_p`` and ``bottleneck`` only, and the
        auxiliary stream's on ``x_a`` and ``bottleneck`` only.
        """
        n_p, n_a = x_p.shape[1], x_a.shape[1]
        y_p = self.primary_layers[index](torch.cat([x_p, bottleneck], dim=1))
        y_a = self.aux_layers[index](torch.cat([x_a, bottleneck], dim=1))
        return y_p[:, :n_p], y_a[:, :n_a], (y_p[:, n_p:] + y_a[:, n_a:]) / 2

    def forward(self, taps_p: list[torch.Tensor], taps_a: list[torch.Tensor]) -> torch.Tensor:
        tokens_p, tokens_a = _tokens(taps_p[-1]), _tokens(taps_a[-1])
        batch = tokens_p.shape[0]
        x_p = torch.cat([self.primary_class.expand(batch, -1, -1), self.primary_in(tokens_p)], dim=1)
        x_a = torch.cat([self.aux_class.expand(batch, -1, -1), self.aux_in(tokens_a)], dim=1)
        x_p, x_a = x_p + self.primary_position, x_a + self.aux_position
        bottleneck = self.bottleneck.expand(batch, -1, -1)
        for index in range(len(self.primary_layers)):
            if index < self.fusion_layer:
                x_p, x_a = self.primary_layers[index](x_p), self.aux_layers[index](x_a)
            else:
                x_p, x_a, bottleneck = self.fusion_step(index, x_p, x_a, bottleneck)
        return torch.stack([self.primary_norm(x_p[:, 0]), self.aux_norm(x_a[:, 0])], dim=1)
