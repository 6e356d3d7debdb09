"""The ``correct_explanation`` question of CAIPI (Teso & Kersting 2019): "the model predicts this, because
of these components — which of them are *not* relevant?"

The payload shows the ``components`` of the explanation (ids of image segments, tokens or features,
the top-k of LIME), the ``segments`` map (H, W) of component ids for images (or, for features and
tokens, ``component_masks``: (k, *input) bool, what each shown component covers), and the
``prediction``. The answer is the list of shown components that are wrongly deemed relevant —
``[]`` means right for the right reasons. At a terminal it is typed as numbers (``none`` for none).

:func:`wrongly_relevant` is the simulated teacher: a shown component is wrongly relevant when it
covers any ground-truth *irrelevant* input (e.g. a decoy swatch) — or, when only the relevant
input is known, when it covers none of it.
"""

from __future__ import annotations

import numbers
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from exil.common.abilities import HasTexts
from exil.common.oracle.kinds import QuestionKind, register
from exil.common.oracle.label import brief, class_list
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question

#: a component id typed at a terminal: ASCII digits, perhaps a minus (then it is not shown)
_NUMBER = re.compile(r"-?[0-9]+")


def component_masks(segments: torch.Tensor, components: Sequence[int]) -> torch.Tensor:
    """(k, H, W) bool: where each of ``components`` lies in a segment map (H, W)."""
    ids = torch.as_tensor(list(components), dtype=segments.dtype, device=segments.device)
    return segments.unsqueeze(0) == ids.view(-1, *([1] * segments.dim()))


def correction_question(item: int, components: Sequence[int], prediction: int, segments: torch.Tensor | None = None,
                        masks: torch.Tensor | None = None) -> Question:
    if (segments is None) == (masks is None):
        raise ValueError("give either the segment map or the components' masks")
    shown = [int(c) for c in components]
    payload = {"components": shown, "prediction": int(prediction),
               "component_masks": masks if masks is not None else component_masks(segments, shown)}
    if segments is not None:
        payload["segments"] = segments
    return Question("correct_explanation", key=str(int(item)), item=int(item), payload=payload)


def wrongly_relevant(masks: torch.Tensor, components: Sequence[int], irrelevant: torch.Tensor | None = None,
                     relevant: torch.Tensor | None = None) -> list[int]:
    """Shown components covering irrelevant input (if known), else covering no relevant input."""
    flat = masks.flatten(1).bool()
    if irrelevant is not None:
        hit = (flat & irrelevant.flatten().bool().to(flat.device)).any(1)
    elif relevant is not None:
        hit = ~(flat & relevant.flatten().bool().to(flat.device)).any(1)
    else:
        raise ValueError("the simulated teacher needs the relevant or the irrelevant input")
    return [int(c) for c, h in zip(components, hit.tolist()) if h]


@register
class CorrectExplanation(QuestionKind):
    name = "correct_explanation"
    agreement_measure = "jaccard"

    def agreement(self, a: Any, b: Any, method: Any = None) -> float:
        """The Jaccard index of the segments the two teachers marked as wrongly relevant (both none: 1)."""
        x, y = set(a), set(b)
        return 1.0 if not x | y else len(x & y) / len(x | y)
    view = Path(__file__).parent / "views" / "correct_explanation.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> list[int]:
        """The shown components the teacher marks wrongly relevant, each once, in the order shown (``[]``: right
        for the right reasons). An answer is a list of component ids (integers, not bools), ``{"wrong": list}``,
        or a string of ASCII numbers separated by spaces or commas (``"none"`` or an empty line: none)."""
        shown = [int(c) for c in question.payload["components"]]
        usage = f"type the numbers of the wrongly relevant components among [{class_list(shown)}], or 'none'"
        if isinstance(answer, dict) and set(answer) == {"wrong"}:
            answer = answer["wrong"]
        if isinstance(answer, str):
            s = answer.strip().lower()
            if s in ("none", ""):
                return []
            parts = s.replace(",", " ").split()
            if not all(_NUMBER.fullmatch(p) for p in parts):  # ASCII only: int() would take "٣" and choke on "²"
                raise InvalidAnswer(usage)
            huge = [p for p in parts if len(p) > 19]  # longer than any id (and int() refuses over 4300 digits)
            if huge:
                raise InvalidAnswer(f"{brief(huge[0])} is not shown; {usage}")
            answer = [int(p) for p in parts]
        if not isinstance(answer, (list, tuple)) or \
                any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in answer):
            raise InvalidAnswer(usage)
        unknown = sorted(set(int(a) for a in answer) - set(shown))
        if unknown:
            raise InvalidAnswer(f"{brief(unknown)} {'is' if len(unknown) == 1 else 'are'} not shown; {usage}")
        return sorted(set(int(a) for a in answer), key=shown.index)

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> list[int]:
        p = question.payload
        irrelevant = teacher.irrelevant_field_of(ctx)
        if irrelevant:
            return wrongly_relevant(p["component_masks"], p["components"],
                                    irrelevant=teacher.field(ctx, question.item, irrelevant))
        return wrongly_relevant(p["component_masks"], p["components"],
                                relevant=teacher.field(ctx, question.item, teacher.relevance_field))

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        from exil.common.oracle.sheets import save_components

        term.show(question, ctx)
        p = question.payload
        shown = p["components"]
        term.say(f"predicted: {ctx.class_names[p['prediction']]}")
        masks = p["component_masks"]
        if masks.dim() == 3:  # image components
            x = ctx.datamodule.pool_item(question.item)["x"]
            path = save_components(x, masks, shown, ctx.out_dir / f"round_{ctx.round:03d}_item_{question.key}_why.png")
            term.say(f"because of the highlighted parts {shown}: {path}")
        else:
            term.say(f"because of the components {self._names(shown, ctx)}")
        return term.ask("which of them do NOT matter for the label? [numbers or 'none'] > ")

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        from exil.common.web.media import item_view, label_map

        p = question.payload
        shown = [int(c) for c in p["components"]]
        out = {"components": shown, "prediction": ctx.class_names[int(p["prediction"])]}
        masks = p["component_masks"]
        if masks.dim() == 3:  # image segments: a map of 0 (none) or j + 1 (the j-th shown component)
            regions = torch.zeros(masks.shape[1:], dtype=torch.uint8)
            for j, m in enumerate(masks.bool().cpu()):
                regions[m & (regions == 0)] = j + 1
            out.update(item=item_view(ctx, question.item, media), regions=label_map(regions))
        else:
            out.update(item=item_view(ctx, question.item, media) if isinstance(ctx.datamodule, HasTexts) else {},
                       words=[{"id": c, "word": n} for c, n in zip(shown, self._names(shown, ctx))])
        return out

    @staticmethod
    def _names(shown: list[int], ctx: OracleContext) -> list[str]:
        vocabulary = getattr(ctx.datamodule, "vocabulary", None) or getattr(ctx.datamodule, "feature_names", None)
        return [str(vocabulary[c]) if vocabulary is not None and c < len(vocabulary) else f"feature {c}"
                for c in shown]

    def summary(self, answer: Any, ctx: OracleContext) -> str:
        return "right for the right reasons" if not answer else f"wrongly relevant: {', '.join(map(str, answer))}"
