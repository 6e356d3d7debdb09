"""A **simulated** teacher of explanations for sentiment tasks, from the VADER sentiment lexicon.

Not a person and not an LLM: a stand-in for the demo and the tests, offline and reproducible. It reads
the valence of each word of the text in VADER's lexicon (Hutto & Gilbert 2014; the ``vaderSentiment``
package ships it) and writes, for every class ``c`` (with polarity ±1 from ``polarity``):

* the **reasonable** explanation (gold class ``c``): the review is ``c`` because of the words of ``c``'s
  polarity in it, the strongest ``top`` first;
* an **unreasonable** explanation (a wrong class ``c'``): the review is ``c'`` because of those same words,
  which in fact carry the *gold* class's polarity — evidence that contradicts the claim.

A text without words of the gold polarity gets, for each class, the words of that class's polarity (an
unreasonable one then cites real but misleading evidence), or "although it has no clearly … words".

Same text and label → same explanations.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Mapping

from exil.common.errors import ConfigError
from exil.common.oracle.question import OracleContext, Question

WORD = re.compile(r"[a-z][a-z'-]*")


@lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """VADER's word → mean valence (−4 … 4)."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ConfigError("the simulated lexicon teacher needs the vaderSentiment package (pip install vaderSentiment)") from None
    return dict(SentimentIntensityAnalyzer().lexicon)


def polar_words(text: str, sign: int, lexicon: Mapping[str, float], top: int) -> list[str]:
    """The words of ``text`` whose valence has ``sign``, strongest first (ties: first occurrence), at most ``top``."""
    seen: dict[str, float] = {}
    for w in WORD.findall(text.lower()):
        v = lexicon.get(w, 0.0)
        if v * sign > 0 and w not in seen:
            seen[w] = abs(v)
    return sorted(seen, key=lambda w: -seen[w])[:top]


class LexiconTeacher:
    """Simulated explanations of sentiment labels from the VADER lexicon (module docstring).

    Args:
        polarity: each class name's polarity, e.g. ``{fresh: 1, rotten: -1}``.
        top: at most this many words in an explanation.
        subject: what the text is, in the explanations (``review``).

    Explanations are short (the decoder's cost grows with their length): "fresh because of the positive
    words great, fun", "rotten because of the negative words great, fun".
    """

    def __init__(self, polarity: Mapping[str, int], top: int = 3, subject: str = "review"):
        self.polarity = {str(k).lower(): (1 if v > 0 else -1) for k, v in dict(polarity).items()}
        self.top, self.subject = top, subject
        if top < 1:
            raise ConfigError(f"the lexicon teacher's top must be at least 1, got {top}")

    def explanations(self, text: str, label: int, class_names: list[str]) -> list[str]:
        missing = [n for n in class_names if n.lower() not in self.polarity]
        if missing:
            raise ConfigError(f"the lexicon teacher needs the polarity of classes {missing} (oracle.explainer.polarity)")
        lex = vader_lexicon()
        gold = self.polarity[class_names[label].lower()]
        gold_words = polar_words(text, gold, lex, self.top)
        out = []
        for name in class_names:
            sign = self.polarity[name.lower()]
            # the gold class's evidence, claimed for every class; without any, the class's own words
            words = gold_words or polar_words(text, sign, lex, self.top)
            kind = "positive" if sign > 0 else "negative"
            if words:
                out.append(f"{name} because of the {kind} words {', '.join(words)}")
            else:
                out.append(f"{name} although the {self.subject} has no clearly {kind} words")
        return out

    def explain(self, question: Question, ctx: OracleContext) -> dict[str, Any]:
        text = " ".join(ctx.datamodule.text_of(question.item))
        label = int(question.payload["label"])
        return {"label": label, "explanations": self.explanations(text, label, list(ctx.class_names))}
