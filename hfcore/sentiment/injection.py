"""Condition any Hugging Face ``transformers`` encoder on extra per-token inputs at layer k.

``FusionAtLayer(model, fusion, layer=k)`` changes the hidden states that enter encoder
layer ``k`` (0: the embeddings' output, where MAG-BERT puts its gate) to
``fusion(hidden, aux, mask)``, where ``aux`` holds extra features for every token (audio and
video, say) and ``mask`` marks the real tokens. The model itself is untouched: a forward
pre-hook on layer ``k`` does the change, so pretrained weights load as usual and every head of
the model keeps working. Example::

    from transformers import AutoModelForSequenceClassification
    from hfcore.sentiment.injection import FusionAtLayer, HyperFuseInjection

    model = AutoModelForSequenceClassification.from_pretrained("path/to/bert", num_labels=1)
    width = model.config.hidden_size
    fused = FusionAtLayer(model, HyperFuseInjection(width, aux_dim=47 + 74, hidden_dim=64), layer=0)
    scores = fused(aux=torch.cat([visual, acoustic], dim=-1), input_ids=ids, attention_mask=mask).logits

The layers are found as the ``nn.ModuleList`` whose length is the configuration's number of
layers (``model.encoder.layer`` in BERT and RoBERTa, ``model.transformer.layer`` in XLNet).
Models that keep hidden states sequence-first (XLNet) are recognised by
``SEQUENCE_FIRST`` and transposed around the fusion.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..blocks import HyperFuse

SEQUENCE_FIRST = {"xlnet", "transfo-xl"}  # model types whose layers see (seq, batch, width)


def find_layers(model: nn.Module) -> nn.ModuleList:
    """Return the encoder's list of layers: the ModuleList with one entry per layer of the config."""
    config = getattr(model, "config", None)
    count = getattr(config, "num_hidden_layers", None)
    if count is None:
        raise ValueError("the model has no config.num_hidden_layers; pass its layers to FusionAtLayer(layers=...)")
    candidates = [module for module in model.modules() if isinstance(module, nn.ModuleList) and len(module) == count]
    if not candidates:
        raise ValueError(f"no list of {count} layers found in {type(model).__name__}; pass layers=... explicitly")
    return candidates[0]


class FusionAtLayer(nn.Module):
    """A ``transformers`` model whose layer ``layer`` sees ``fusion(hidden, aux, mask)`` (see the module doc).

    Args:
        model: a ``transformers`` model (any head).
        fusion: a module called as ``fusion(hidden (B, L, d), aux (B, L, a), mask (B, L) bool)``
            that returns the new ``(B, L, d)`` hidden states.
        layer: index of the encoder layer whose input is changed; 0 is the embeddings' output.
        layers: the encoder's layers, when ``find_layers`` cannot find them.
        sequence_first: whether the layers take ``(seq, batch, d)``; None decides from the model type.
    """

    def __init__(self, model: nn.Module, fusion: nn.Module, *, layer: int = 0, layers: nn.ModuleList | None = None,
                 sequence_first: bool | None = None):
        super().__init__()
        self.model = model
        self.fusion = fusion
        layers = layers if layers is not None else find_layers(model)
        if not isinstance(layer, int) or not 0 <= layer < len(layers):
            raise ValueError(f"layer must be an integer in 0..{len(layers) - 1} for this model, got {layer!r}")
        self.layer = layer
        model_type = getattr(getattr(model, "config", None), "model_type", "")
        self.sequence_first = model_type in SEQUENCE_FIRST if sequence_first is None else sequence_first
        self._context: tuple[torch.Tensor, torch.Tensor] | None = None
        self._handle = layers[layer].register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if self._context is None:
            raise RuntimeError("call the FusionAtLayer wrapper, not the wrapped model, so that aux reaches layer "
                               f"{self.layer}")
        aux, mask = self._context
        if args:
            hidden, rest = args[0], args[1:]
        else:
            name = next(k for k in ("hidden_states", "output_h", "x") if k in kwargs)
            hidden = kwargs[name]
        batch_first = hidden.transpose(0, 1) if self.sequence_first else hidden
        if batch_first.shape[:2] != aux.shape[:2]:
            raise ValueError(f"aux has shape {tuple(aux.shape)} but layer {self.layer} sees hidden states of "
                             f"shape {tuple(hidden.shape)}; aux needs one row per token")
        fused = self.fusion(batch_first, aux, mask)
        fused = fused.transpose(0, 1) if self.sequence_first else fused
        if args:
            return (fused, *rest), kwargs
        return args, {**kwargs, name: fused}

    def forward(self, *, aux: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs):
        """Run the model on ``inputs`` with ``aux`` (B, L, a) fused in at the chosen layer."""
        mask = (attention_mask.bool() if attention_mask is not None
                else torch.ones(aux.shape[:2], dtype=torch.bool, device=aux.device))
        self._context = (aux, mask)
        try:
            return self.model(attention_mask=attention_mask, **inputs)
        finally:
            self._context = None

    def remove(self) -> nn.Module:
        """Remove the hook and return the original model."""
        self._handle.remove()
        return self.model


class HyperFuseInjection(nn.Module):
    """HyperFuse blocks on every real token: the token's hidden state is primary, ``aux`` auxiliary.

    Each token gets its own generated ``h x h`` weights from its auxiliary features; padding
    tokens pass unchanged. ``block`` and ``num_blocks`` are those of ``hfcore.blocks.HyperFuse``;
    the stack's final skip connection is left out, since the base block already adds its input.
    """

    def __init__(self, width: int, aux_dim: int, hidden_dim: int = 64, *, num_blocks: int = 1, block: str = "base"):
        super().__init__()
        self.hyperfuse = HyperFuse(width, aux_dim, hidden_dim, num_blocks=num_blocks, block=block, final_skip=False)

    def forward(self, hidden: torch.Tensor, aux: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fused = hidden.clone()
        fused[mask] = self.hyperfuse(hidden[mask], aux[mask])
        return fused


class MAGInjection(nn.Module):
    """The multimodal adaptation gate of MAG-BERT (Rahman et al., ACL 2020), for visual and acoustic features.

    For a token's hidden state ``z`` with visual ``v`` and acoustic ``a`` features:
    ``g_v = ReLU(W_gv [v, z])``, ``g_a = ReLU(W_ga [a, z])``, the shift
    ``s = g_v * (W_v v) + g_a * (W_a a)``, its scale ``alpha = min(beta * |z| / |s|, 1)``, and the output
    ``LayerNorm(z + alpha * s)`` followed by dropout. ``aux`` is ``[v, a]``, split at ``visual_dim``.
    """

    def __init__(self, width: int, visual_dim: int, acoustic_dim: int, *, beta_shift: float = 1.0,
                 dropout: float = 0.5, eps: float = 1e-6):
        super().__init__()
        self.visual_dim, self.acoustic_dim = visual_dim, acoustic_dim
        self.visual_gate = nn.Linear(visual_dim + width, width)
        self.acoustic_gate = nn.Linear(acoustic_dim + width, width)
        self.visual_shift = nn.Linear(visual_dim, width)
        self.acoustic_shift = nn.Linear(acoustic_dim, width)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.beta_shift, self.eps = beta_shift, eps

    def shift(self, hidden: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Return the scaled shift ``alpha * s`` that the gate adds to ``hidden``."""
        visual, acoustic = aux[..., : self.visual_dim], aux[..., self.visual_dim:]
        gate_v = F.relu(self.visual_gate(torch.cat([visual, hidden], dim=-1)))
        gate_a = F.relu(self.acoustic_gate(torch.cat([acoustic, hidden], dim=-1)))
        shift = gate_v * self.visual_shift(visual) + gate_a * self.acoustic_shift(acoustic)
        shift_norm = shift.norm(dim=-1, keepdim=True)
        shift_norm = torch.where(shift_norm == 0, torch.ones_like(shift_norm), shift_norm)
        alpha = torch.clamp(self.beta_shift * hidden.norm(dim=-1, keepdim=True) / (shift_norm + self.eps), max=1.0)
        return alpha * shift

    def forward(self, hidden: torch.Tensor, aux: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(hidden + self.shift(hidden, aux)))
