"""An image backbone from torchvision with location and date fused at its penultimate layer (paper Table 2).

``build_geo_model(fusion, backbone="resnet50", num_classes, aux_dim)`` takes any torchvision
classification model by name, with weights from a local file when given (random otherwise),
and replaces its classifier with ``fusion`` and a new linear classifier. Where the classifier
is an MLP (VGG, MobileNet), all of it is replaced and the fusion reads the feature before it. The auxiliary input is
the encoded location and date (``hfcore.geo.encoding``), first passed through a small MLP
(``aux_width`` units, ReLU), as the geo-aware baselines do.

Fusions, all on the pooled image feature ``z`` (2048-d for ResNet-50) and the auxiliary
embedding ``a``:

- ``image_only``: ``z`` alone.
- ``concat`` (Tang et al., 2015): the classifier reads ``[z, a]``.
- ``dynamic_mlp_c`` (Yang et al., 2022): ``hfcore.fusion.dynamic_mlp.DynamicMLPC``, with its residual.
- ``geonet_modulation`` (Chu et al., 2019, feature modulation): ``z * (1 + gamma(a)) + beta(a)``,
  FiLM started at the identity (``hfcore.fusion.film.FiLM``).
- ``geonet_prior`` (Chu et al., 2019, geolocation prior; Mac Aodha et al., 2019): a location
  network predicts ``p(y | location)``, and the logits are the image logits plus its log
  probabilities, so the class probabilities are the product of both. Trained jointly.
- ``ensemble`` (EnsembleNet, Terry et al., 2020): the mean of the image classifier's and the
  location classifier's logits.
- ``hyperfuse``: HyperFuse blocks on ``z`` with weights generated from ``a``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..blocks import HyperFuse
from ..fusion.dynamic_mlp import DynamicMLPC
from ..fusion.film import FiLM

GEO_FUSIONS = ("image_only", "concat", "dynamic_mlp_c", "geonet_modulation", "geonet_prior", "ensemble", "hyperfuse")


def build_backbone(name: str = "resnet50", weights: str | Path | None = None) -> tuple[nn.Module, int]:
    """Return a torchvision classification model without its classifier, and its feature width.

    ``weights`` is a local state-dict file (``torch.save`` of the model's ``state_dict``, as
    torchvision's own weight files are); without it the weights are random.
    """
    import torchvision

    try:
        model = torchvision.models.get_model(name, weights=None)
    except ValueError as error:
        raise ValueError(f"unknown torchvision model {name!r}; see torchvision.models.list_models()") from error
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} not found; save the torchvision weights of {name} as a "
                                    f"state-dict file (torch.save(torchvision.models.{name}(weights='DEFAULT')"
                                    ".state_dict(), FILE) on a machine with internet) and pass that file")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    for attribute in ("fc", "classifier", "head", "heads"):
        head = getattr(model, attribute, None)
        if head is None:
            continue
        # The whole classifier is replaced, so the feature width is the input of its first Linear
        # (an MLP classifier, as in VGG or MobileNet, is dropped with it).
        linear = head if isinstance(head, nn.Linear) else next((m for m in head.modules() if isinstance(m, nn.Linear)),
                                                               None)
        if linear is None:
            continue
        setattr(model, attribute, nn.Identity())
        return model, linear.in_features
    raise ValueError(f"cannot find the classifier of torchvision model {name!r} (fc, classifier, head or heads)")


class GeoClassifier(nn.Module):
    """Backbone, auxiliary MLP, fusion and classifier; ``forward(images, aux)`` returns logits."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, aux_dim: int, fusion: str,
                 *, aux_width: int = 256, hidden_dim: int = 64, num_blocks: int = 1, block: str = "base"):
        super().__init__()
        if fusion not in GEO_FUSIONS:
            raise ValueError(f"fusion must be one of {GEO_FUSIONS}, got {fusion!r}")
        self.fusion_kind = fusion
        self.backbone = backbone
        self.aux_net = None if fusion == "image_only" else nn.Sequential(nn.Linear(aux_dim, aux_width), nn.ReLU())
        self.fusion = None
        classifier_in = feature_dim
        if fusion == "concat":
            classifier_in = feature_dim + aux_width
        elif fusion == "dynamic_mlp_c":
            self.fusion = DynamicMLPC(feature_dim, aux_width, hidden_dim)
        elif fusion == "geonet_modulation":
            self.fusion = FiLM(feature_dim, aux_width)
        elif fusion == "hyperfuse":
            self.fusion = HyperFuse(feature_dim, aux_width, hidden_dim, num_blocks=num_blocks, block=block)
        elif fusion in ("geonet_prior", "ensemble"):
            self.location_classifier = nn.Linear(aux_width, num_classes)
        self.classifier = nn.Linear(classifier_in, num_classes)

    def forward(self, images: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        z = self.backbone(images)
        if self.aux_net is None:
            return self.classifier(z)
        a = self.aux_net(aux)
        if self.fusion_kind == "concat":
            return self.classifier(torch.cat([z, a], dim=1))
        if self.fusion is not None:
            return self.classifier(self.fusion(z, a))
        image_logits, location_logits = self.classifier(z), self.location_classifier(a)
        if self.fusion_kind == "geonet_prior":
            return image_logits + F.log_softmax(location_logits, dim=1)
        return (image_logits + location_logits) / 2


def build_geo_model(fusion: str, *, backbone: str = "resnet50", weights: str | Path | None = None,
                    num_classes: int, aux_dim: int = 6, aux_width: int = 256, hidden_dim: int = 64,
                    num_blocks: int = 1, block: str = "base") -> GeoClassifier:
    """Build the classifier of Table 2 named ``fusion`` on a torchvision ``backbone``."""
    if fusion not in GEO_FUSIONS:
        raise ValueError(f"fusion must be one of {GEO_FUSIONS}, got {fusion!r}")
    network, width = build_backbone(backbone, weights)
    return GeoClassifier(network, width, num_classes, aux_dim, fusion, aux_width=aux_width, hidden_dim=hidden_dim,
                         num_blocks=num_blocks, block=block)
