"""The ``choose_exemplars`` question of eXBL (Hagos et al. 2023, section 3.2): "of these explanations,
which one is good and which one is bad?"

The payload lists ``candidates`` (pool item ids) and their explanation ``maps`` (N, H, W), the
model's Grad-CAM of each item for its label. The teacher answers with one good and one bad
exemplar, as ``{"good": item, "bad": item}`` or, typed at a terminal, as two candidate *positions*
``"<good> <bad>"`` (0-based, as they are numbered on screen). The validated answer is always
``{"good": item, "bad": item}`` with two different candidates.

:func:`pick_by_activation_recall` is the paper's automatic teacher: the candidates whose maps have
the highest and the lowest Activation Recall against the ground-truth masks.

Views: at the terminal, a numbered contact sheet of the overlays; on the web page a gallery of each
candidate's image and its Grad-CAM overlay, where the person picks one good and one bad.
"""

from __future__ import annotations

import hashlib
import numbers
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from exil.common.explain.metrics import activation_scores
from exil.common.oracle.kinds import QuestionKind, register
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question

#: the most candidates a person's page shows (12: three rows of four)
SHOWN = 12

_DIGITS = re.compile(r"[0-9]+")


def exemplars_question(round: int, candidates: Sequence[int], maps: torch.Tensor,
                       labels: Sequence[int] | None = None) -> Question:
    return Question("choose_exemplars", key=f"round_{round}", payload={
        "candidates": [int(c) for c in candidates], "maps": maps.detach().cpu(),
        "labels": None if labels is None else [int(y) for y in labels]})


def pick_by_activation_recall(maps: torch.Tensor, masks: torch.Tensor, candidates: Sequence[int],
                              threshold: float | None = 0.5) -> dict[str, int]:
    """The highest- and lowest-recall candidates (ties: the first); items with empty masks are skipped."""
    recall = activation_scores(maps, masks, threshold)["recall"]
    valid = ~torch.isnan(recall)
    if int(valid.sum()) < 2:
        raise ValueError("fewer than two candidates have a non-empty ground-truth mask")
    hi = torch.where(valid, recall, torch.full_like(recall, -1.0)).argmax()
    lo = torch.where(valid, recall, torch.full_like(recall, 2.0)).argmin()
    if hi == lo:  # every recall equal: any two different candidates
        lo = next(i for i in torch.flatnonzero(valid).tolist() if i != int(hi))
    return {"good": int(candidates[int(hi)]), "bad": int(candidates[int(lo)])}


@register
class ChooseExemplars(QuestionKind):
    name = "choose_exemplars"
    view = Path(__file__).parent / "views" / "choose_exemplars.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> dict[str, int]:
        """``{"good": item, "bad": item}``, two different candidates. An answer is that dict (item ids: integers,
        not bools or floats) or a string of two candidate positions in ASCII digits, ``"<good> <bad>"``."""
        candidates = [int(c) for c in question.payload["candidates"]]
        usage = f"type two candidate numbers 0..{len(candidates) - 1}: the good one, then the bad one (e.g. '0 3')"
        if isinstance(answer, str):
            parts = answer.replace(",", " ").split()
            if len(parts) != 2 or not all(_DIGITS.fullmatch(p) for p in parts):  # ASCII: int() takes "٣", not "²"
                raise InvalidAnswer(usage)
            pos = [int(p) if len(p) <= 19 else len(candidates) for p in parts]  # int() refuses over 4300 digits
            if any(p >= len(candidates) for p in pos):
                raise InvalidAnswer(f"there are {len(candidates)} candidates; {usage}")
            answer = {"good": candidates[pos[0]], "bad": candidates[pos[1]]}
        if not isinstance(answer, dict) or set(answer) != {"good", "bad"}:
            raise InvalidAnswer(usage)
        good, bad = answer["good"], answer["bad"]
        if good is None or bad is None:
            raise InvalidAnswer("pick one good and one bad explanation")
        if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in (good, bad)):
            raise InvalidAnswer(f"good and bad are item ids (whole numbers) among the candidates; {usage}")
        if good not in candidates or bad not in candidates:
            raise InvalidAnswer(f"good and bad must be among the candidates; {usage}")
        if good == bad:
            raise InvalidAnswer(f"the good and the bad exemplar must differ; {usage}")
        return {"good": int(good), "bad": int(bad)}

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> dict[str, int]:
        candidates = question.payload["candidates"]
        masks = torch.stack([teacher.field(ctx, i, teacher.relevance_field) for i in candidates])
        return pick_by_activation_recall(question.payload["maps"], masks, candidates, teacher.exemplar_threshold)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        from exil.common.oracle.sheets import save_overlays

        cands = question.payload["candidates"]
        labels = question.payload.get("labels") or [None] * len(cands)
        images = [ctx.datamodule.pool_item(i)["x"] for i in cands]
        path = save_overlays(images, question.payload["maps"],
                             [f"{p}: {ctx.class_names[y] if y is not None else ''}" for p, y in enumerate(labels)],
                             ctx.out_dir / f"round_{ctx.round:03d}_exemplars.png")
        term.say(f"\n── round {ctx.round} · choose_exemplars · {len(cands)} candidate explanations ──")
        term.say(f"overlays: {path} (red = where the model looks)")
        return term.ask("good and bad exemplar? [two numbers, e.g. '0 3'] > ")

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        """At most :data:`SHOWN` candidates (drawn at random, seeded by the question, when there are more: a person
        cannot compare thousands of maps; any shown one is a valid answer), their Grad-CAMs on one colour scale,
        and how many there were."""
        cands = [int(c) for c in question.payload["candidates"]]
        labels = question.payload.get("labels") or [None] * len(cands)
        maps = question.payload["maps"]
        shown = list(range(len(cands)))
        if len(cands) > SHOWN:
            seed = int(hashlib.sha256(f"{question.kind}/{question.key}".encode()).hexdigest()[:8], 16)
            shown = sorted(np.random.default_rng(seed).choice(len(cands), SHOWN, replace=False).tolist())
        heats = [torch.as_tensor(maps[j]).float() for j in shown]
        scale = (min(float(m.min()) for m in heats), max(float(m.max()) for m in heats)) if heats else None
        out = []
        for pos, (j, m) in enumerate(zip(shown, heats)):
            i, y = cands[j], labels[j]
            x = ctx.datamodule.pool_item(i)["x"]
            out.append({"item": i, "position": pos, "label": None if y is None else ctx.class_names[int(y)],
                        "image": media.image(x), "overlay": media.overlay(x, m, scale)})
        return {"candidates": out, "of": len(cands)}

    def summary(self, answer: Any, ctx: OracleContext) -> str:
        return f"good: item {answer['good']}, bad: item {answer['bad']}"
