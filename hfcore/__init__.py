"""HyperFuse: multimodal fusion through hypernetworks.

The main entry points are ``HyperFuseBlock`` and ``HyperFuse`` (the fusion layers),
``build_model`` (every system by name) and ``run_avmnist`` (one AV-MNIST experiment).
"""

from .blocks import HyperFuse, HyperFuseBlock
from .models import MultimodalModel, build_model, model_names, register_model
from . import baselines  # noqa: F401  (registers the baseline models)

__version__ = "0.1.0"

__all__ = ["HyperFuse", "HyperFuseBlock", "MultimodalModel", "build_model", "model_names", "register_model"]


def __getattr__(name):
    # Imported on first use so that ``import hfcore`` does not load the data and training stack.
    if name == "run_avmnist":
        from .experiments import run_avmnist

        return run_avmnist
    raise AttributeError(f"module 'hfcore' has no attribute {name!r}")
