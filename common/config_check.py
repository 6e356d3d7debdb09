"""One validation pass over a composed config's values, before anything is built, trained or asked.

Every node with a ``_target_`` is checked against the signature of what it builds, as a structured config
would be: a value whose type the parameter's annotation rules out (``trainer.max_epochs=abc`` against
Lightning's ``max_epochs: Optional[int]``, ``oracle.noise=abc`` against ``noise: float``) is refused with its
key named. Annotations the check cannot read (forward references, classes a config node builds) are not
guessed at: those values are left to their constructors.

Then the values whose valid range is known by their parameter's name, wherever it appears (:data:`RANGES`):
``test_size=1.5`` is neither a fraction of the data nor a count, ``latency=-1`` is no time to wait (``null`` is
left to the type check: it is valid where the annotation allows it). Both
checks run before the data module is built, so no value reaches a library that would fail on it mid-run.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import os
import types
import typing
from pathlib import PurePath
from typing import Any, Callable

from exil.common.errors import ConfigError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _share_or_count(v: Any) -> bool:
    return v is None or (_whole(v) and v >= 1) or (_number(v) and not _whole(v) and 0 < v < 1)


#: parameter name → (holds, what it must be): checked wherever a built object takes a parameter of that name
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "test_size": (_share_or_count, "a fraction in (0, 1) or a whole number of items ≥ 1"),
    "val_size": (lambda v: v == 0 or _share_or_count(v), "0 (none), a fraction in (0, 1) or a whole number ≥ 1"),
    "latency": (lambda v: _number(v) and v >= 0, "seconds ≥ 0"),
    "noise": (lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "lr": (lambda v: _number(v) and v > 0, "a learning rate > 0"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a number ≥ 0"),
    "batch_size": (lambda v: _whole(v) and v >= 1, "a whole number ≥ 1"),
    "max_epochs": (lambda v: v is None or (_whole(v) and v >= -1), "a whole number ≥ 1 (-1: no limit) or null"),
    "min_epochs": (lambda v: v is None or (_whole(v) and v >= 0), "a whole number ≥ 0 or null"),
    "dropout": (lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)"),
}

#: keys of a node that are Hydra's, not the target's
HYDRA_KEYS = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


def check_values(cfg) -> None:
    """Refuse the first value of ``cfg`` (a composed config) that its target's signature or :data:`RANGES` rules
    out, naming its key: one :class:`ConfigError` before any work."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    why = _problem(plain, "")
    if why:
        raise ConfigError(why)


def _problem(node: Any, path: str) -> str | None:
    if isinstance(node, list):
        for i, v in enumerate(node):
            why = _problem(v, f"{path}[{i}]")
            if why:
                return why
        return None
    if not isinstance(node, dict):
        return None
    hints = _hints(node["_target_"]) if isinstance(node.get("_target_"), str) else None
    for key, value in node.items():
        where = f"{path}.{key}" if path else str(key)
        if key in HYDRA_KEYS or value == "???":
            continue
        if hints is not None and key in hints and not _fits(value, hints[key]):
            return f"{where}={_shown(value)}: must be {_describe(hints[key])}"
        if hints is not None and key in RANGES and value is not None and not RANGES[key][0](value):
            return f"{where}={_shown(value)}: must be {RANGES[key][1]}"
        why = _problem(value, where)
        if why:
            return why
    return None


def _hints(target: str) -> dict[str, Any] | None:
    """The annotated parameters of what ``target`` builds ({} when nothing can be read; None: not importable,
    which instantiation reports with its own message)."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception:
        return None
    fn = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a forward reference the module does not import at run time: only real annotations
        hints = {k: p.annotation for k, p in params.items() if not isinstance(p.annotation, str)}
    return {k: hints[k] for k in params if k in hints and hints[k] is not inspect.Parameter.empty}


def _fits(value: Any, ann: Any) -> bool:
    """Whether a config value (plain YAML: None, bool, int, float, str, list, dict) can be ``ann``."""
    if ann is Any or ann is object:
        return True
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, a) for a in typing.get_args(ann))
    if origin is typing.Literal:
        return value in typing.get_args(ann)
    if origin is typing.Annotated:
        return _fits(value, typing.get_args(ann)[0])
    if ann is type(None) or ann is None:
        return value is None
    if isinstance(value, dict) and "_target_" in value:
        return True  # an object the config builds: its own node is checked on its own
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return _whole(value)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    if ann in (PurePath, os.PathLike) or (inspect.isclass(ann) and issubclass(ann, PurePath)):
        return isinstance(value, str)
    base = origin or ann
    if base in (list, tuple, collections.abc.Sequence):
        return isinstance(value, (list, tuple))
    if base in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return True  # a class or protocol a plain value may still become: its constructor decides


def _describe(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(dict.fromkeys(_describe(a) for a in typing.get_args(ann)))
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(ann))
    if origin is typing.Annotated:
        return _describe(typing.get_args(ann)[0])
    names = {type(None): "null", bool: "true or false", int: "a whole number", float: "a number", str: "text",
             list: "a list", tuple: "a list", dict: "a mapping"}
    return names.get(origin or ann, getattr(ann, "__name__", str(ann)))


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
