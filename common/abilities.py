"""What a module, a data module or a strategy can do, as typed protocols, and the composition check.

A method's round hooks (and a strategy) declare what they need of the other parts of a run in ``needs``
— a tuple of :class:`Need` (which part, which ability) — instead of probing with ``hasattr`` at the
moment of use. :func:`check_composition` checks a whole run before anything is trained
(``ActiveLoop.run`` calls it first) and names, for each need that is not met, what is missing and which
config choices would meet it (found by importing the ``_target_`` of each YAML in the part's config
group), e.g.::

    method=alice needs a pair strategy (chooses class pairs to explain), and strategy=entropy is EntropyStrategy;
    choices that work: strategy=jsd_pairs, strategy=random_pairs
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from exil.common.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent / "conf"
#: your own config folders (``exil --config-dir my_conf``): searched after exil's, their groups are valid keys
USER_CONF_DIRS: list[Path] = []


@runtime_checkable
class Explains(Protocol):
    """A model that generates explanations of its predictions (XAL's encoder–decoder)."""

    def explain(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class Morphs(Protocol):
    """A model that changes its architecture with what the teacher said (ALICE: super-classes, local heads)."""

    def morph(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class MapsExplanations(Protocol):
    """A model whose explanation maps (Grad-CAM) are differentiable training targets (eXBL)."""

    def explanation_maps(self, x: Any, target: Any) -> Any: ...


@runtime_checkable
class HasTexts(Protocol):
    """A data module whose items are texts a teacher reads (``text_of(index)``)."""

    def text_of(self, idx: int, split: str = "pool") -> tuple[str, ...]: ...


@runtime_checkable
class ReadsText(Protocol):
    """A model whose inputs are token ids (a text backbone: ``method=text_baseline``, XAL's encoder–decoder)."""

    reads_text: bool


@runtime_checkable
class HasParts(Protocol):
    """A data module that knows where named parts lie in each image (ALICE's part grounding)."""

    def part_locations(self, items: Sequence[int]) -> Any: ...


#: the config group that chooses each part of a run, and where a YAML file keeps the part's ``_target_``
GROUPS = {"module": ("method", ("module", "_target_")), "datamodule": ("dataset", ("_target_",)),
          "strategy": ("strategy", ("_target_",))}


@dataclass(frozen=True)
class Need:
    """``part`` (``module`` | ``datamodule`` | ``strategy``) must be an instance of ``ability`` (a protocol or a
    class); ``what`` says it in words."""

    part: str
    ability: type
    what: str


TEXT_NEED = Need("module", ReadsText, "a model that reads text (experiment=own_text: nothing to fetch; "
                "method=text_baseline backbone=minilm; or method=xal)")


class TextData:
    """The needs of a text dataset, checked beside the method's and the strategy's (a token-id tensor given to an
    image model fails mid-fit with a dtype error)."""

    needs = (TEXT_NEED,)


def unmet(parts: dict[str, Any], needs: Sequence[Need]) -> list[Need]:
    return [n for n in needs if not isinstance(parts[n.part], n.ability)]


def check_composition(who: dict[str, Any], parts: dict[str, Any], choices: dict[str, str] | None = None) -> None:
    """Refuse a run whose parts cannot work together, before anything runs.

    Args:
        who: ``{name: object with needs}``, e.g. ``{"method=alice": hooks, "strategy=xal": strategy}``.
        parts: ``{"module": ..., "datamodule": ..., "strategy": ...}``.
        choices: the config choices of the run (``cfg.choices``), to name the current one.
    """
    problems = []
    for name, obj in who.items():
        for need in unmet(parts, getattr(obj, "needs", ())):
            group = GROUPS[need.part][0]
            current = (choices or {}).get(group)
            have = f"{group}={current}" if current else group
            works = working_choices(need)
            hint = f"; choices that work: {', '.join(works)}" if works else ""
            problems.append(f"{name} needs {need.what}, and {have} is {type(parts[need.part]).__name__}{hint}")
    if problems:
        raise ConfigError("these parts cannot work together: " + " · ".join(problems))


def working_choices(need: Need, conf_dir: Path = CONF_DIR) -> list[str]:
    """``group=choice`` for each YAML of the part's group whose ``_target_`` class meets ``need``."""
    import yaml
    from hydra.utils import get_class

    group, path = GROUPS[need.part]
    out = []
    for f in sorted(p for d in (conf_dir, *USER_CONF_DIRS) for p in (d / group).glob("*.yaml")):
        try:
            node = yaml.safe_load(f.read_text()) or {}
            for key in path:
                node = node[key]
            cls = get_class(node)
            if isinstance(cls, type) and issubclass(cls, need.ability):
                out.append(f"{group}={f.stem}")
        except Exception:  # a YAML without a plain _target_ (or whose import needs an extra): not offered
            continue
    return out
