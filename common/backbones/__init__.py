"""Feature extractors for exil's modules: small nets, torchvision, timm and transformers (see ``factory``).

``build_backbone`` is read from :mod:`~exil.common.backbones.factory` when first asked for (PEP 562), so that
importing a submodule — ``exil.common.backbones.weights``, which registers the offline weights with
:mod:`exil.common.acquire` — does not import the factory, which asks ``acquire`` for those weights.
"""

from typing import Any

__all__ = ["build_backbone"]


def __getattr__(name: str) -> Any:
    if name == "build_backbone":
        from exil.common.backbones.factory import build_backbone

        return build_backbone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
