"""``build_backbone``: one entry point over exil's small nets, torchvision, timm and transformers.

Every backbone is an ``nn.Module`` with an ``out_features`` (int) attribute whose ``forward``
returns pooled features of shape (B, out_features). Conv backbones also have
``feature_map(x) -> (B, C, H, W)``, the last conv activation map (what Grad-CAM and ALICE's
attention read), and ``forward(x) = pool(feature_map(x))``. Text backbones take a dict batch
(``input_ids``, ``attention_mask``, optionally ``token_type_ids``).

``weights`` is one of

* ``none``: random initialisation;
* ``file:<path>``: a state dict (``.pt``/``.pth``/``.ckpt``/``.safetensors``), either of the
  library's own model (its classifier head may be there or not: it is dropped) or of an exil
  backbone (``backbone.state_dict()``); for transformers also a Hugging Face folder. Relative
  paths are resolved against ``data_dir``;
* ``hub``: the library's own download (torchvision ``DEFAULT`` weights, timm ``pretrained=True``,
  transformers ``from_pretrained(name)``) — needs a network, for users who have one;
* ``offline:<source>``: weights fetched with ``exil data fetch <source>`` into ``data_dir``
  (see :mod:`exil.common.backbones.weights`).

``feature_layer`` (torchvision / timm) ends the trunk at a named module instead of the last conv
layer: a dotted path through the net's children in forward order, e.g. ``Mixed_6e`` for timm's
Inception-v3 (ALICE's choice: 768 channels at stride 16) or ``features.13`` for MobileNetV2
(96 channels at stride 16). ``feature_map`` then runs the children up to and including it.

``freeze_layers: N`` freezes the first N *layers*, where a layer is a module that owns parameters
directly (``module.parameters(recurse=False)`` is not empty: a Conv2d, a BatchNorm2d, a Linear,
an Embedding, a LayerNorm, ...), counted in ``backbone.modules()`` order, i.e. from the input
onwards. MobileNetV2's ``features`` has 104 of them (52 convolutions, 52 batch norms), so eXBL's
"first 50 layers" is ``freeze_layers: 50``. A frozen batch norm also keeps its running statistics
(it stays in eval mode when the backbone is trained), as a frozen Keras layer does.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from exil.common.backbones.small import SMALL
from exil.common.backbones.weights import OFFLINE, OfflineWeights, load_state_dict, read_state_dict
from exil.common.errors import ConfigError

SOURCES = ("exil", "torchvision", "timm", "transformers")
TORCHVISION_FAMILIES = ("mobilenet", "efficientnet", "vgg", "resnet", "resnext", "wide_resnet")
WRAPPED_PREFIX = "model."  # keys of a library backbone's own state dict: "model." + the library model's keys


def build_backbone(
    source: str,
    name: str,
    weights: str | None = "none",
    input_shape: Sequence[int] | None = None,
    data_dir: str | Path = "data",
    freeze_layers: int = 0,
    normalize: Sequence[Sequence[float]] | None = None,
    feature_layer: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the backbone ``name`` of ``source`` (exil | torchvision | timm | transformers).

    Args:
        source: which library the network comes from.
        name: the network in that library (``mlp``, ``mobilenet_v2``, ``tf_efficientnet_lite0``, a
            Hugging Face model id, ...).
        weights: ``none`` | ``file:<path>`` | ``hub`` | ``offline:<source>`` (see the module docstring).
        input_shape: the shape of one input, e.g. (1, 28, 28); exil's nets need it; for image
            library nets a 1-channel shape makes the backbone repeat the channel to RGB.
        data_dir: where ``exil data fetch`` puts things; relative ``file:`` paths start here.
        freeze_layers: freeze the first N parameterised layers (see the module docstring).
        normalize: ``[mean, std]`` (per RGB channel) that image library nets subtract and divide by
            after the grey-to-RGB repeat: what pretrained weights expect of inputs in [0, 1]
            (ImageNet statistics for torchvision's nets, 0.5 / 0.5 for the TF EfficientNet-Lite).
        feature_layer: end an image library net's trunk at this module (see the module docstring).
        **kwargs: passed to the network: ``hidden``/``dropout`` (mlp), ``channels``/``pool``
            (small_cnn), the torchvision/timm constructor, or for transformers ``pooling``
            (``mean`` | ``cls``) and ``config`` (config overrides; with ``model_type`` in it, a
            config built from scratch — the way to get a tiny random-init model).
    """
    if source not in SOURCES:
        raise ConfigError(f"unknown backbone source {source!r}; valid: {', '.join(SOURCES)}")
    kind, arg = _parse_weights(weights)
    if source == "exil":
        net = _build_exil(name, kind, arg, input_shape, data_dir, kwargs)
    else:
        offline = _offline(arg, source, name) if kind == "offline" else None
        path = _weights_path(kind, arg, offline, data_dir)
        if source == "torchvision":
            net = _build_torchvision(name, kind, path, offline, input_shape, kwargs)
        elif source == "timm":
            net = _build_timm(name, kind, path, offline, input_shape, kwargs)
        else:
            net = _build_transformers(name, kind, path, kwargs)
    if isinstance(net, ImageBackbone):
        net.set_normalization(normalize)
        if feature_layer:
            net = TruncatedBackbone(net, feature_layer)
    elif normalize is not None or feature_layer:
        if feature_layer:
            raise ConfigError(f"feature_layer applies to torchvision / timm image backbones, not to {source}:{name}")
        raise ConfigError(f"normalize applies to torchvision / timm image backbones, not to {source}:{name}")
    if freeze_layers:
        freeze_first_layers(net, int(freeze_layers))
    return net


# --------------------------------------------------------------------------- weights


def _parse_weights(weights: str | None) -> tuple[str, str]:
    weights = "none" if weights is None else str(weights)
    kind, _, arg = weights.partition(":")
    if kind in ("none", "hub") and not arg or kind in ("file", "offline") and arg:
        return kind, arg
    raise ConfigError(f"weights must be none, hub, file:<path> or offline:<source>; got {weights!r}")


def _offline(name: str, source: str, model: str) -> OfflineWeights:
    if name not in OFFLINE:
        raise ConfigError(f"unknown offline weights {name!r}; valid: {', '.join(sorted(OFFLINE))}")
    spec = OFFLINE[name]
    if spec.library != source or spec.names and model not in spec.names:
        fits = f"{spec.library} " + (" / ".join(spec.names) if spec.names else "models")
        raise ConfigError(f"offline weights {name!r} fit {fits}, not {source} {model}")
    return spec


def _weights_path(kind: str, arg: str, offline: OfflineWeights | None, data_dir: str | Path) -> Path | None:
    if kind == "file":
        path = Path(arg).expanduser()
        return path if path.is_absolute() else Path(data_dir) / path
    if kind == "offline":
        import exil.common.backbones.weights  # noqa: F401  (registers the offline weights)
        from exil.common.fetch_kit import require

        return require(arg, data_dir) / offline.path
    return None


def _load_library_weights(model: nn.Module, path: Path, head: tuple[str, ...], offline: OfflineWeights | None) -> None:
    """Load a state dict file into a library model (before its head is dropped)."""
    sd = read_state_dict(path)
    if sd and all(k.startswith(WRAPPED_PREFIX) for k in sd):  # saved from an exil backbone
        sd = {k.removeprefix(WRAPPED_PREFIX): v for k, v in sd.items()}
    if offline is not None and offline.convert is not None:
        sd = offline.convert(sd, model.state_dict())
    load_state_dict(model, sd, f"weights {path}", optional=head)


# --------------------------------------------------------------------------- exil


def _build_exil(name: str, kind: str, arg: str, input_shape, data_dir, kwargs) -> nn.Module:
    if name not in SMALL:
        raise ConfigError(f"unknown exil backbone {name!r}; valid: {', '.join(sorted(SMALL))}")
    if kind not in ("none", "file"):
        raise ConfigError(f"exil backbones are trained from scratch: weights none or file:<path>, not {kind}")
    net = SMALL[name](input_shape, **kwargs)
    if kind == "file":
        path = _weights_path(kind, arg, None, data_dir)
        load_state_dict(net, read_state_dict(path), f"weights {path}")
    return net


# --------------------------------------------------------------------------- image libraries


class ImageBackbone(nn.Module):
    """A library conv net without its classifier head, as ``self.model``.

    A 1-channel input is repeated to the 3 channels the library nets expect. Batch norms whose
    parameters are all frozen stay in eval mode (see ``freeze_layers``).
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int] | None):
        super().__init__()
        self.model = model
        channels = int(input_shape[0]) if input_shape is not None else 3
        if channels not in (1, 3):
            raise ConfigError(f"image backbones take 1- or 3-channel inputs, got input_shape {tuple(input_shape)}")
        self.grey = channels == 1

    def set_normalization(self, normalize: Sequence[Sequence[float]] | None) -> None:
        """Inputs become ``(x − mean) / std`` per RGB channel (``None``: left as they are)."""
        if normalize is None:
            self.mean = self.std = None
            return
        mean, std = (torch.as_tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in normalize)
        if mean.numel() != 3 or std.numel() != 3:
            raise ConfigError(f"normalize must be [[3 means], [3 stds]], got {normalize}")
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def _rgb(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if self.grey else x
        if getattr(self, "mean", None) is not None:
            x = (x - self.mean) / self.std
        return x

    def train(self, mode: bool = True) -> "ImageBackbone":
        super().train(mode)
        for m in self.modules():
            params = list(m.parameters(recurse=False))
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))


class TruncatedBackbone(ImageBackbone):
    """An image library backbone whose trunk ends at a named module (``feature_layer``): ``model`` is
    that trunk alone, so only its parameters are registered, saved and counted by ``freeze_layers``.

    The path is followed through ``net.model``'s children in registration order, which is forward
    order for the nets this serves (torchvision's ``features`` Sequential, timm's Inception-v3): at
    each level the children before the named one are kept whole, and the named one is descended
    into (or kept whole at the path's end). It keeps ``net``'s grey→RGB input and normalisation.
    """

    def __init__(self, net: ImageBackbone, feature_layer: str):
        trunk = nn.Sequential(*_modules_until(net.model, feature_layer.split("."), feature_layer))
        super().__init__(trunk, (1 if net.grey else 3,))
        if getattr(net, "mean", None) is None:
            self.mean = self.std = None
        else:
            self.register_buffer("mean", net.mean, persistent=False)
            self.register_buffer("std", net.std, persistent=False)
        with torch.no_grad():
            was = trunk.training
            trunk.eval()
            self.out_features = int(self.feature_map(torch.zeros(1, 3, 96, 96)).shape[1])
            trunk.train(was)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._rgb(x))


def _modules_until(module: nn.Module, path: list[str], full: str) -> list[nn.Module]:
    names = [n for n, _ in module.named_children()]
    if path[0] not in names:
        raise ConfigError(_unknown(f"feature_layer {full!r}: module", path[0], names))
    out = []
    for name, child in module.named_children():
        if name == path[0]:
            return out + ([child] if len(path) == 1 else _modules_until(child, path[1:], full))
        if not isinstance(child, nn.Identity):
            out.append(child)
    return out


class TorchvisionBackbone(ImageBackbone):
    """A torchvision classification net's conv trunk (``features``, or ``conv1 … layer4`` for ResNets)
    followed by global average pooling; MobileNetV2 gives 1280-d features."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int] | None):
        super().__init__(model, input_shape)
        self.resnet = not hasattr(model, "features")
        with torch.no_grad():
            was = model.training
            model.eval()
            self.out_features = int(self.feature_map(torch.zeros(1, 3, 64, 64)).shape[1])
            model.train(was)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self._rgb(x)
        if not self.resnet:
            return self.model.features(x)
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))


def _build_torchvision(name: str, kind: str, path: Path | None, offline: OfflineWeights | None, input_shape, kwargs):
    import torchvision

    names = [n for n in torchvision.models.list_models(module=torchvision.models) if n.startswith(TORCHVISION_FAMILIES)]
    if name not in names:
        raise ConfigError(_unknown("torchvision backbone", name, names))
    model = torchvision.models.get_model(name, weights="DEFAULT" if kind == "hub" else None, **kwargs)
    head = "fc" if hasattr(model, "fc") else "classifier"
    if path is not None:
        _load_library_weights(model, path, (f"{head}.",), offline)
    setattr(model, head, nn.Identity())
    return TorchvisionBackbone(model, input_shape)


class TimmBackbone(ImageBackbone):
    """A timm model with ``num_classes=0``: ``feature_map = forward_features``,
    ``forward = forward_head(feature_map)``: timm's own global pooling, plus whatever the model
    puts after it (timm's MobileNetV3 has a 1×1 conv there, so its features are wider than its map)."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int] | None):
        super().__init__(model, input_shape)
        self.out_features = int(getattr(model, "head_hidden_size", None) or model.num_features)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(self._rgb(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.feature_map(x))


def _build_timm(name: str, kind: str, path: Path | None, offline: OfflineWeights | None, input_shape, kwargs):
    import timm

    if not timm.is_model(name):
        raise ConfigError(_unknown("timm backbone", name, timm.list_models()))
    model = timm.create_model(name, pretrained=kind == "hub", **kwargs)
    if path is not None:
        head = model.pretrained_cfg.get("classifier") or ()
        head = (head,) if isinstance(head, str) else tuple(head)
        _load_library_weights(model, path, tuple(f"{h}." for h in head), offline)
    model.reset_classifier(0)
    return TimmBackbone(model, input_shape)


# --------------------------------------------------------------------------- text


class TextBackbone(nn.Module):
    """A Hugging Face encoder; ``forward(batch)`` pools ``last_hidden_state``.

    ``pooling: mean``: the attention-masked mean over tokens, ``Σ_t m_t h_t / Σ_t m_t`` (what
    sentence-transformers' all-MiniLM-L6-v2 was trained with); ``pooling: cls``: ``h_0``.
    ``name_or_path`` says where a matching tokenizer is (the local folder the weights came from,
    else the model name).
    """

    def __init__(self, model: nn.Module, pooling: str, name_or_path: str):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"text backbone pooling must be 'mean' or 'cls', got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.name_or_path = name_or_path
        self.out_features = int(model.config.hidden_size)
        accepted = inspect.signature(model.forward).parameters
        self._keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in accepted]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = self.model(**{k: batch[k] for k in self._keys if k in batch}).last_hidden_state
        if self.pooling == "cls":
            return h[:, 0]
        mask = batch.get("attention_mask")
        if mask is None:
            return h.mean(dim=1)
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)


def _build_transformers(name: str, kind: str, path: Path | None, kwargs) -> nn.Module:
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    pooling = kwargs.pop("pooling", "mean")
    overrides = dict(kwargs.pop("config", None) or {})
    if kwargs:
        raise ConfigError(f"unknown arguments for a transformers backbone: {', '.join(kwargs)} (valid: pooling, config)")
    folder = path if path is not None and path.is_dir() else None
    origin = str(folder) if folder is not None else name
    if "model_type" in overrides and folder is None:
        config = AutoConfig.for_model(**overrides)
    else:
        config = AutoConfig.from_pretrained(origin, **overrides)
    model_class = AutoModel._model_mapping[type(config)]
    extra = {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters else {}
    if kind == "hub" or folder is not None:
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the unused pooler weights are expected; missing ones are checked below
        hf_logging.disable_progress_bar()
        try:
            model, info = AutoModel.from_pretrained(origin, config=config, output_loading_info=True, **extra)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        if info["missing_keys"]:
            raise ConfigError(f"weights in {origin} lack {len(info['missing_keys'])} tensors: {info['missing_keys'][:5]}")
        # from_pretrained leaves the model in eval mode, and Lightning (≥ 2.2) keeps each submodule's mode through
        # fit: without this a pretrained encoder was fine-tuned with its dropout off (as the seq2seq backbones were)
        model.train()
    else:
        model = AutoModel.from_config(config, **extra)
        if path is not None:
            _load_library_weights(model, path, ("pooler.",), None)
    return TextBackbone(model, pooling, origin)


# --------------------------------------------------------------------------- freezing


def parameterised_layers(module: nn.Module) -> list[nn.Module]:
    """The modules that own parameters directly, in ``modules()`` order (input first)."""
    return [m for m in module.modules() if next(m.parameters(recurse=False), None) is not None]


def freeze_first_layers(module: nn.Module, n: int) -> None:
    """Freeze (``requires_grad = False``) the first ``n`` of :func:`parameterised_layers`."""
    layers = parameterised_layers(module)
    if not 0 <= n <= len(layers):
        raise ConfigError(f"freeze_layers={n}, but {type(module).__name__} has {len(layers)} parameterised layers")
    for layer in layers[:n]:
        for p in layer.parameters(recurse=False):
            p.requires_grad_(False)


def _unknown(what: str, name: str, choices: Sequence[str]) -> str:
    if len(choices) <= 40:
        return f"unknown {what} {name!r}; valid: {', '.join(sorted(choices))}"
    close = difflib.get_close_matches(name, choices, n=8, cutoff=0.5)
    return f"unknown {what} {name!r}; {len(choices)} are valid" + (f", closest: {', '.join(close)}" if close else "")
