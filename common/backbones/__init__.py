"""Feature extractors for exil's modules: small nets, torchvision, timm and transformers (see ``factory``)."""

from exil.common.backbones.factory import build_backbone

__all__ = ["build_backbone"]
