"""AV-MNIST models for the fusion baselines of ``hfcore.fusion``, registered by name.

Every model uses the LeNet encoders and the two-layer MLP head of the main models, so that
only the fusion differs. Each builder takes ``primary`` (the modality whose feature the
fusion keeps or transforms; image by default) and the encoder and head options of
``build_late_fusion``. Method options keep the defaults stated in each fusion module.

| name | method | fusion output fed to the head |
| --- | --- | --- |
| ``lfn`` | Tensor Fusion (Zadeh et al., 2017) | ``vec([1, z_p] (x) [1, z_a])`` |
| ``lmf`` | Low-rank Multimodal Fusion (Liu et al., 2018) | rank-8 tensor fusion, 128 wide |
| ``mfm`` | MFM (Tsai et al., 2019b) | discriminative factor, 64 wide |
| ``gb`` | Gradient Blending (Wang et al., 2020a) | ``[z_p, z_a]`` |
| ``mbt`` | MBT (Nagrani et al., 2021) | each stream's class token, 64 wide (logits averaged) |
| ``mfas`` | MFAS architecture (Pérez-Rúa et al., 2019) | second fusion layer, 64 wide |
| ``refnet`` | Refnet (Sankaran et al., 2021) | fused embedding, 128 wide |
| ``film`` | FiLM (Perez et al., 2018) | modulated primary embedding |
| ``mag`` | MAG gate (Rahman et al., 2020) | shifted primary embedding |
| ``dynamic_mlp_c`` | Dynamic MLP type C (Yang et al., 2022) | primary embedding + generated layer |
"""

from __future__ import annotations

from torch import nn

from .fusion import (
    BottleneckTransformer,
    DynamicMLPC,
    FactorizedMultimodal,
    FiLM,
    GradientBlending,
    LowRankFusion,
    MAGGate,
    MFASFusion,
    RefinerFusion,
    TensorFusion,
)
from .models import MultimodalModel, TappedModel, _avmnist_encoders, _check_primary, mlp_head, register_model

INPUT_SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}
# Encoder depths tapped by MBT and MFAS: image layers are 4, audio layers 6.
MBT_DEPTHS = {"image": (2,), "audio": (4,)}
MFAS_DEPTHS = {"image": (2, 3), "audio": (4, 5)}


def _embedding_model(primary: str, base_channels: int, layer_order: str, head_hidden: int, num_classes: int, make_fusion):
    """Build a model that fuses the final embeddings with ``make_fusion(d_p, d_a, primary, auxiliary)``."""
    auxiliary = _check_primary(primary)
    encoders = _avmnist_encoders(base_channels, layer_order)
    fusion = make_fusion(encoders[primary].out_dim, encoders[auxiliary].out_dim, primary, auxiliary)
    return MultimodalModel(
        primary_encoder=encoders[primary],
        auxiliary_encoder=encoders[auxiliary],
        fusion=fusion,
        head=mlp_head(fusion.out_dim, head_hidden, num_classes),
        primary_modality=primary,
        auxiliary_modality=auxiliary,
    )


def _tapped_model(primary, base_channels, layer_order, head_hidden, num_classes, depths, make_fusion):
    """Build a ``TappedModel`` with ``make_fusion(primary_encoder, auxiliary_encoder, d_p, d_a)``."""
    auxiliary = _check_primary(primary)
    encoders = _avmnist_encoders(base_channels, layer_order)
    fusion = make_fusion(encoders[primary], encoders[auxiliary], depths[primary], depths[auxiliary])
    return TappedModel(
        primary_encoder=encoders[primary],
        auxiliary_encoder=encoders[auxiliary],
        primary_depths=depths[primary],
        auxiliary_depths=depths[auxiliary],
        fusion=fusion,
        head=mlp_head(fusion.out_dim, head_hidden, num_classes),
        primary_modality=primary,
        auxiliary_modality=auxiliary,
    )



@register_model("lfn")
def build_tensor_fusion(*, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10):
    """Tensor Fusion Network: outer product of the embeddings each extended by 1."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes, lambda d_p, d_a, *_: TensorFusion(d_p, d_a)
    )


@register_model("lmf")
def build_low_rank_fusion(
    *, primary="image", rank=8, base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10
):
    """Low-rank Multimodal Fusion of rank ``rank``."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes,
        lambda d_p, d_a, *_: LowRankFusion(d_p, d_a, rank=rank),
    )


@register_model("mfm")
def build_mfm(*, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10):
    """MFM: discriminative factor for the label, generative factors reconstruct the inputs."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes,
        lambda d_p, d_a, p, a: FactorizedMultimodal(d_p, d_a, INPUT_SHAPES[p], INPUT_SHAPES[a]),
    )


@register_model("gb")
def build_gradient_blending(
    *, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10
):
    """Gradient Blending: late fusion plus per-modality heads with blended loss weights."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes,
        lambda d_p, d_a, *_: GradientBlending(
            d_p, d_a, mlp_head(d_p, head_hidden, num_classes), mlp_head(d_a, head_hidden, num_classes)
        ),
    )


@register_model("refnet")
def build_refnet(*, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10):
    """Refnet: fused embedding with a refiner that reconstructs the unimodal embeddings."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes, lambda d_p, d_a, *_: RefinerFusion(d_p, d_a)
    )


@register_model("film")
def build_film(*, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10):
    """FiLM: the auxiliary embedding scales and shifts the primary one."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes, lambda d_p, d_a, *_: FiLM(d_p, d_a)
    )


@register_model("mag")
def build_mag(*, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10):
    """MAG: a gated, norm-limited shift of the primary embedding."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes, lambda d_p, d_a, *_: MAGGate(d_p, d_a)
    )


@register_model("dynamic_mlp_c")
def build_dynamic_mlp_c(
    *, primary="image", hidden_dim=64, base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10
):
    """Dynamic MLP type C: weights generated from both embeddings, ``hidden_dim`` wide."""
    return _embedding_model(
        primary, base_channels, layer_order, head_hidden, num_classes,
        lambda d_p, d_a, *_: DynamicMLPC(d_p, d_a, hidden_dim),
    )


def _channels(encoder: nn.Module, depth: int) -> int:
    return encoder.feature_shape(depth)[0]


def _positions(encoder: nn.Module, depth: int) -> int:
    _, height, width = encoder.feature_shape(depth)
    return height * width


@register_model("mbt")
def build_mbt(*, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10):
    """MBT: token streams of image layer 2 and audio layer 4 joined by 4 bottleneck tokens."""
    return _tapped_model(
        primary, base_channels, layer_order, head_hidden, num_classes, MBT_DEPTHS,
        lambda enc_p, enc_a, dp, da: BottleneckTransformer(
            _channels(enc_p, dp[-1]), _channels(enc_a, da[-1]), _positions(enc_p, dp[-1]), _positions(enc_a, da[-1])
        ),
    )


@register_model("mfas")
def build_mfas(*, primary="image", base_channels=6, head_hidden=100, layer_order="conv-pool-bn-relu", num_classes=10):
    """MFAS's AV-MNIST architecture: image layers 2, 3 fused with audio layers 4, 5."""
    return _tapped_model(
        primary, base_channels, layer_order, head_hidden, num_classes, MFAS_DEPTHS,
        lambda enc_p, enc_a, dp, da: MFASFusion([_channels(enc_p, d) for d in dp], [_channels(enc_a, d) for d in da]),
    )
