"""XAL's selection (Luo et al., NAACL 2024, §2.3): predictive entropy + the score of the model's own explanation.

For every scored pool item the model generates an explanation (greedy, or the top beam of a beam
search) and scores it (``p_i``, length-normalised log-probability); items are ranked by
``s_i = λ/(1+λ) · softmax(−p)_i + 1/(1+λ) · softmax(c)_i`` (:func:`exil.xal.losses.selection_scores`),
both softmaxes over the scored pool as in the authors' code. Everything is batched: per batch one
encoder pass, one batched ``generate`` from its states and one teacher-forced scoring pass
(:meth:`exil.xal.module.XALModule.explain`), on the loop's device.

Ablations: ``entropy: false`` is "w/o ME" (explanation score only); "ME-Exp" is XAL's model with
``strategy=entropy``. Generation is XAL's expensive part: ``loop.pool_subsample`` (exil's one way to score
fewer candidates, the same for every strategy) scores that many random unlabelled items per round.
"""

from __future__ import annotations

import torch

from exil.common.abilities import Explains, Need
from exil.common.errors import ConfigError
from exil.common.strategies.base import ScoreStrategy
from exil.common.strategies.context import QueryContext
from exil.xal.losses import predictive_entropy, selection_scores


def explain_pool(ctx: QueryContext, num_beams: int = 1, max_new_tokens: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) and explanation scores p (N,) of the context's candidates, in one batched pass of the
    context's own :meth:`~exil.common.strategies.context.QueryContext.map` (its device and pool loader)."""
    module = ctx.module

    def both(x):
        logits, _, p = module.explain(x, num_beams, max_new_tokens)
        return torch.cat([logits.float(), p.float()[:, None]], dim=1)

    out = ctx.map(ctx.candidates, both)
    return out[:, :-1], out[:, -1]


class XALStrategy(ScoreStrategy):
    """Entropy + explanation score (module docstring).

    Args:
        lam: λ, the weight of the explanation term.
        entropy: include the entropy term (false: "w/o ME").
        explanation: include the explanation term (false: entropy alone).
        num_beams: 1 = greedy generation, else beam search (its top beam).
        max_new_tokens: longest generated explanation.
        name: the config's name (``xal``, ``xal_explanation_only``).
    """

    needs = (Need("module", Explains, "a model that explains its predictions (method=xal)"),)

    def __init__(self, lam: float = 0.5, entropy: bool = True, explanation: bool = True, num_beams: int = 1,
                 max_new_tokens: int = 32, name: str = "xal"):
        if not (entropy or explanation):
            raise ConfigError("strategy xal needs entropy: true, explanation: true, or both")
        if lam < 0 or num_beams < 1 or max_new_tokens < 1:
            raise ConfigError(f"strategy xal: lam >= 0, num_beams >= 1 and max_new_tokens >= 1 are needed, got "
                              f"lam={lam}, num_beams={num_beams}, max_new_tokens={max_new_tokens}")
        self.lam, self.use_entropy, self.use_explanation = lam, entropy, explanation
        self.num_beams, self.max_new_tokens, self.name = num_beams, max_new_tokens, name

    def score(self, ctx: QueryContext) -> torch.Tensor:
        if self.use_explanation:
            logits, p = explain_pool(ctx, self.num_beams, self.max_new_tokens)
        else:
            logits, p = ctx.logits(), None
        return selection_scores(predictive_entropy(logits) if self.use_entropy else None, p, self.lam)
