"""Fusion baselines, one module per method, each behind the fusion interface of ``hfcore.models``.

Every module's docstring names its source paper and states our reading where the source
leaves a choice open. ``hfcore.baselines`` registers one AV-MNIST model per method.
"""

from .dynamic_mlp import DynamicMLPC
from .film import FiLM
from .gradient_blending import GradientBlending, blend_weights
from .lmf import LowRankFusion
from .mag import MAGGate
from .mbt import BottleneckTransformer
from .mfas import MFASFusion
from .mfm import FactorizedMultimodal
from .refnet import RefinerFusion
from .tensor_fusion import TensorFusion

__all__ = [
    "BottleneckTransformer",
    "DynamicMLPC",
    "FactorizedMultimodal",
    "FiLM",
    "GradientBlending",
    "LowRankFusion",
    "MAGGate",
    "MFASFusion",
    "RefinerFusion",
    "TensorFusion",
    "blend_weights",
]
