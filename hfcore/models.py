"""One model interface for every system: primary encoder, auxiliary encoder, fusion, head.

``MultimodalModel`` runs the primary encoder up to the fusion position, fuses the auxiliary
embedding there, runs the rest of the primary encoder, and applies the head. A unimodal
model is the same class with no auxiliary encoder and ``PrimaryOnly`` fusion. Experiments
build models by name through ``build_model``; new systems register a builder with
``register_model`` and take the same keyword arguments.

A fusion module is any ``nn.Module`` with an ``out_dim`` attribute and
``forward(z_p, z_a) -> (batch, out_dim)``. It receives the primary feature flattened to
``(batch, primary_dim)`` and the auxiliary embedding as ``(batch, aux_dim)``.

Methods with a training objective beyond the classification loss (MFM's reconstructions,
Refnet's refiner, Gradient Blending's per-modality heads) give their fusion module two
optional hooks, which the training loop reaches through ``MultimodalModel``:

- ``training_loss(loss, labels, x_p, x_a) -> loss``: the full training loss, given the
  cross-entropy ``loss`` of the logits of the last forward pass in training mode. The forward
  pass caches what the extra terms need.
- ``end_epoch(model, train_data, val_data)``: called after each epoch's validation, for
  methods that adapt during training (Gradient Blending re-estimates its loss weights there).
  Whatever it changes must live in buffers, so that checkpoints and resumed runs keep it.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import HyperFuse
from .encoders import LAYER_ORDERS, audio_encoder, image_encoder

AVMNIST_MODALITIES = ("image", "audio")


class PrimaryOnly(nn.Module):
    """Fusion that ignores the auxiliary input: the unimodal baseline."""

    def __init__(self, primary_dim: int):
        super().__init__()
        self.out_dim = primary_dim

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor | None = None) -> torch.Tensor:
        return z_p


class ConcatFusion(nn.Module):
    """Late fusion by concatenation (LF; Vielzeuf et al., 2018): ``[z_p, z_a]``."""

    def __init__(self, primary_dim: int, aux_dim: int):
        super().__init__()
        self.out_dim = primary_dim + aux_dim

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        return torch.cat([z_p, z_a], dim=1)


def mlp_head(in_dim: int, hidden_dim: int, num_classes: int) -> nn.Sequential:
    """Return the two-layer MLP head used by every AV-MNIST model (MultiBench's ``MLP``)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes))


class MultimodalModel(nn.Module):
    """Primary encoder, optional auxiliary encoder, fusion and head behind one interface.

    Args:
        primary_encoder: module with ``forward(x, start, stop)`` and ``num_layers`` when
            ``fusion_position`` is below its depth; otherwise any module mapping the primary
            input to ``(batch, d)``.
        fusion: fusion module (see the module docstring).
        head: module mapping ``(batch, fusion.out_dim)`` to logits, or to the primary
            encoder's remaining layers' input when the fusion sits inside the encoder.
        auxiliary_encoder: module mapping the auxiliary input to ``(batch, aux_dim)``, or None
            for a unimodal model.
        fusion_position: number of primary-encoder layers run before the fusion; None means
            after the whole encoder. Inside the encoder the fusion must keep the primary
            width, and the feature map is flattened for it and reshaped back after it.
        primary_modality, auxiliary_modality: names of the inputs, used to pick them from a
            batch.
    """

    def __init__(
        self,
        *,
        primary_encoder: nn.Module,
        fusion: nn.Module,
        head: nn.Module,
        auxiliary_encoder: nn.Module | None = None,
        fusion_position: int | None = None,
        primary_modality: str,
        auxiliary_modality: str | None = None,
    ):
        super().__init__()
        self.primary_encoder = primary_encoder
        self.auxiliary_encoder = auxiliary_encoder
        self.fusion = fusion
        self.head = head
        self.primary_modality = primary_modality
        self.auxiliary_modality = auxiliary_modality
        depth = getattr(primary_encoder, "num_layers", None)
        if fusion_position is not None and depth is not None and fusion_position == depth:
            fusion_position = None
        if fusion_position is not None:
            if depth is None or not 1 <= fusion_position < depth:
                raise ValueError(
                    f"fusion_position {fusion_position} is invalid for a primary encoder with "
                    f"{depth} layers; use 1..{depth} (or None for after the encoder)"
                )
            if fusion.out_dim != primary_encoder.feature_numel(fusion_position):
                raise ValueError("a fusion inside the encoder must keep the primary feature width")
        self.fusion_position = fusion_position

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the inputs the model reads, primary first."""
        if self.auxiliary_modality is None:
            return (self.primary_modality,)
        return (self.primary_modality, self.auxiliary_modality)

    def encode(
        self, x_p: torch.Tensor, x_a: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the encoders up to the fusion: the primary stem and the auxiliary embedding."""
        if self.fusion_position is None:
            h_p = self.primary_encoder(x_p)
        else:
            h_p = self.primary_encoder(x_p, 0, self.fusion_position)
        z_a = None
        if self.auxiliary_encoder is not None:
            if x_a is None:
                raise ValueError(f"model needs the auxiliary input {self.auxiliary_modality!r}")
            z_a = self.auxiliary_encoder(x_a)
        return h_p, z_a

    def fuse(self, h_p: torch.Tensor, z_a: torch.Tensor | None) -> torch.Tensor:
        """Fuse the encoded inputs and return logits; pairs ``encode`` for cached features."""
        if self.fusion_position is None:
            return self.head(self.fusion(h_p, z_a))
        fused = self.fusion(h_p.flatten(1), z_a).view_as(h_p)
        rest = self.primary_encoder(fused, self.fusion_position, None)
        return self.head(rest)

    def forward(self, x_p: torch.Tensor, x_a: torch.Tensor | None = None) -> torch.Tensor:
        return self.fuse(*self.encode(x_p, x_a))

    def batch_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(x_p, x_a)`` from a batch given as a mapping from modality name to tensor."""
        x_a = batch[self.auxiliary_modality] if self.auxiliary_modality is not None else None
        return batch[self.primary_modality], x_a

    def forward_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return logits for a batch given as a mapping from modality name to tensor."""
        return self(*self.batch_inputs(batch))

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, x_p: torch.Tensor, x_a: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the training loss for the ``logits`` of the last forward pass on ``x_p, x_a``.

        The cross-entropy of the logits, passed through the fusion's ``training_loss`` hook
        when it has one (see the module docstring).
        """
        loss = F.cross_entropy(logits.float(), labels)
        hook = getattr(self.fusion, "training_loss", None)
        if hook is not None and self.training:
            loss = hook(loss, labels, x_p, x_a)
        return loss

    def end_epoch(self, train_data, val_data) -> None:
        """Run the fusion's ``end_epoch`` hook, if it has one, after an epoch's validation."""
        hook = getattr(self.fusion, "end_epoch", None)
        if hook is not None:
            hook(self, train_data, val_data)


class TappedModel(MultimodalModel):
    """A model whose fusion reads feature maps from several depths of both encoders.

    MFAS and MBT fuse intermediate layers rather than the final embeddings. ``encode`` runs
    each encoder as deep as its deepest tap and returns the list of tapped feature maps per
    modality (``(batch, C, H, W)`` feature maps); ``fuse`` passes both lists to
    ``fusion(taps_p, taps_a)`` and applies the head. The fusion returns ``(batch, dim)``, or
    ``(batch, tokens, dim)`` when the head should read several tokens and average their logits.
    Encoder layers after the deepest tap are removed from the model.

    Args:
        primary_depths, auxiliary_depths: encoder depths (1-based layer counts) to tap.
    """

    def __init__(
        self,
        *,
        primary_encoder: nn.Module,
        auxiliary_encoder: nn.Module,
        primary_depths: tuple[int, ...],
        auxiliary_depths: tuple[int, ...],
        fusion: nn.Module,
        head: nn.Module,
        primary_modality: str,
        auxiliary_modality: str,
    ):
        super().__init__(
            primary_encoder=primary_encoder,
            auxiliary_encoder=auxiliary_encoder,
            fusion=fusion,
            head=head,
            primary_modality=primary_modality,
            auxiliary_modality=auxiliary_modality,
        )
        for name, encoder, depths in (
            ("primary_depths", primary_encoder, primary_depths),
            ("auxiliary_depths", auxiliary_encoder, auxiliary_depths),
        ):
            if not depths or any(not 1 <= d <= encoder.num_layers for d in depths):
                raise ValueError(f"{name} {depths!r} must be non-empty depths in 1..{encoder.num_layers}")
        self.primary_depths = tuple(primary_depths)
        self.auxiliary_depths = tuple(auxiliary_depths)
        # Layers below the deepest tap are never run: drop them, so that they are neither
        # counted as parameters nor left without gradients (which DDP rejects).
        for encoder, depths in ((primary_encoder, primary_depths), (auxiliary_encoder, auxiliary_depths)):
            encoder.layers = encoder.layers[: max(depths)]

    @staticmethod
    def _taps(encoder: nn.Module, x: torch.Tensor, depths: tuple[int, ...]) -> list[torch.Tensor]:
        taps = {}
        for depth in range(1, max(depths) + 1):
            x = encoder.layers[depth - 1](x)
            if depth in depths:
                taps[depth] = x
        return [taps[d] for d in depths]

    def encode(self, x_p: torch.Tensor, x_a: torch.Tensor | None = None):
        if x_a is None:
            raise ValueError(f"model needs the auxiliary input {self.auxiliary_modality!r}")
        return (
            self._taps(self.primary_encoder, x_p, self.primary_depths),
            self._taps(self.auxiliary_encoder, x_a, self.auxiliary_depths),
        )

    def fuse(self, taps_p, taps_a) -> torch.Tensor:
        logits = self.head(self.fusion(taps_p, taps_a))
        # A fusion may return several tokens, (batch, tokens, dim): the head reads each one and
        # their logits are averaged (MBT's class token per stream).
        return logits.mean(dim=1) if logits.dim() == 3 else logits


ModelBuilder = Callable[..., MultimodalModel]
MODEL_BUILDERS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a model builder under ``name`` for ``build_model``."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in MODEL_BUILDERS:
            raise ValueError(f"model name {name!r} is already registered")
        MODEL_BUILDERS[name] = builder
        return builder

    return decorator


def model_names() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(MODEL_BUILDERS)


def model_option_names(name: str) -> set[str]:
    """Return the keyword options that the builder of model ``name`` takes."""
    if name not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")
    return set(inspect.signature(MODEL_BUILDERS[name]).parameters)


def build_model(name: str, **options) -> MultimodalModel:
    """Build the registered model ``name`` with keyword ``options``.

    Raises ValueError for an unknown name (listing the valid ones) or an option the builder
    does not take.
    """
    accepted = model_option_names(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"model {name!r} does not take option(s) {unknown}; it takes {sorted(accepted)}")
    return MODEL_BUILDERS[name](**options)


def _avmnist_encoders(base_channels: int, layer_order: str) -> dict[str, nn.Module]:
    if layer_order not in LAYER_ORDERS:
        raise ValueError(f"unknown layer_order {layer_order!r}; use one of {LAYER_ORDERS}")
    return {
        "image": image_encoder(base_channels=base_channels, order=layer_order),
        "audio": audio_encoder(base_channels=base_channels, order=layer_order),
    }


def _check_primary(primary: str) -> str:
    if primary not in AVMNIST_MODALITIES:
        raise ValueError(f"primary modality {primary!r} is not an AV-MNIST modality; use one of {AVMNIST_MODALITIES}")
    return next(m for m in AVMNIST_MODALITIES if m != primary)


def _unimodal(modality: str, *, base_channels: int, head_hidden: int, layer_order: str, num_classes: int):
    encoder = _avmnist_encoders(base_channels, layer_order)[modality]
    return MultimodalModel(
        primary_encoder=encoder,
        fusion=PrimaryOnly(encoder.out_dim),
        head=mlp_head(encoder.out_dim, head_hidden, num_classes),
        primary_modality=modality,
    )


@register_model("image_only")
def build_image_only(
    *, base_channels: int = 6, head_hidden: int = 100, layer_order: str = "conv-pool-bn-relu", num_classes: int = 10
) -> MultimodalModel:
    """Image LeNet and MLP head."""
    return _unimodal(
        "image", base_channels=base_channels, head_hidden=head_hidden, layer_order=layer_order, num_classes=num_classes
    )


@register_model("audio_only")
def build_audio_only(
    *, base_channels: int = 6, head_hidden: int = 100, layer_order: str = "conv-pool-bn-relu", num_classes: int = 10
) -> MultimodalModel:
    """Spectrogram LeNet and MLP head."""
    return _unimodal(
        "audio", base_channels=base_channels, head_hidden=head_hidden, layer_order=layer_order, num_classes=num_classes
    )


@register_model("lf")
def build_late_fusion(
    *,
    primary: str = "image",
    base_channels: int = 6,
    head_hidden: int = 100,
    layer_order: str = "conv-pool-bn-relu",
    num_classes: int = 10,
) -> MultimodalModel:
    """Late fusion: both LeNet embeddings concatenated, then the MLP head."""
    auxiliary = _check_primary(primary)
    encoders = _avmnist_encoders(base_channels, layer_order)
    fusion = ConcatFusion(encoders[primary].out_dim, encoders[auxiliary].out_dim)
    return MultimodalModel(
        primary_encoder=encoders[primary],
        auxiliary_encoder=encoders[auxiliary],
        fusion=fusion,
        head=mlp_head(fusion.out_dim, head_hidden, num_classes),
        primary_modality=primary,
        auxiliary_modality=auxiliary,
    )


@register_model("hyperfuse")
def build_hyperfuse(
    *,
    primary: str = "image",
    hidden_dim: int = 64,
    num_blocks: int = 1,
    fusion_position: int | None = None,
    aux_mlp: bool = False,
    final_skip: bool | None = None,
    generator: str = "full",
    rank: int | None = None,
    block: str = "base",
    base_channels: int = 6,
    head_hidden: int = 100,
    layer_order: str = "conv-pool-bn-relu",
    num_classes: int = 10,
) -> MultimodalModel:
    """HyperFuse: the auxiliary embedding generates the weights applied to the primary feature.

    ``fusion_position`` k places the blocks after primary-encoder layer k (1-based) on the
    flattened feature map; None places them after the whole encoder. The head receives the
    fused primary feature only, as in the HyperFuse paper's architecture figure (Figure 3).
    ``generator="factorized"`` (with ``rank``) swaps the paper's generator for the
    factorized one of ``hfcore.blocks``, and ``block`` ("base", "I" .. "IV") picks the block
    design (``hfcore.block_variants``). ``final_skip`` (None: on for the base block, off for the
    variants) adds the primary feature to the output of the last block. The variants define
    their own residual connections, so an extra skip would blur the contrast between them:
    Block II (no residual) would become ``out + z_p`` and Block III ``out + 2 z_p``.
    """
    if final_skip is None:
        final_skip = block == "base"
    auxiliary = _check_primary(primary)
    encoders = _avmnist_encoders(base_channels, layer_order)
    primary_encoder = encoders[primary]
    position = primary_encoder.num_layers if fusion_position is None else fusion_position
    if not 1 <= position <= primary_encoder.num_layers:
        raise ValueError(
            f"fusion_position {fusion_position} is outside 1..{primary_encoder.num_layers} "
            f"for the {primary} encoder"
        )
    primary_dim = primary_encoder.feature_numel(position)
    fusion = HyperFuse(
        primary_dim,
        encoders[auxiliary].out_dim,
        hidden_dim,
        num_blocks=num_blocks,
        aux_mlp=aux_mlp,
        final_skip=final_skip,
        generator=generator,
        rank=rank,
        block=block,
    )
    return MultimodalModel(
        primary_encoder=primary_encoder,
        auxiliary_encoder=encoders[auxiliary],
        fusion=fusion,
        head=mlp_head(primary_encoder.out_dim, head_hidden, num_classes),
        fusion_position=position,
        primary_modality=primary,
        auxiliary_modality=auxiliary,
    )


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
