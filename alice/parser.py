"""ALICE's rule-based semantic parser (Liang, Zou & Yu 2020, section 3.2): from an expert's contrastive
explanation to the set of *parts* it mentions.

The parser is a lexicon of rules α → β: a word or phrase α (a part name, a synonym, a plural) maps
to a canonical part β. The sentence is lower-cased and split into words; at each position the
longest phrase of the lexicon that matches is taken (so "lower mandible" is one match), and any
word the lexicon does not know is skipped — so the parser always returns a set, possibly empty,
whatever it is given.

``BIRD_PARTS`` is the CUB vocabulary (the 15 annotated parts, grouped as the paper groups them:
bill, crown, nape, throat, eye, forehead, breast, belly, back, wing, tail, leg, foot) with common
synonyms; ``GARMENT_PARTS`` is the Fashion-MNIST proxy's vocabulary. A lexicon is a plain dict, so a
new domain is one more dict (or a YAML mapping passed as ``lexicon``).
"""

from __future__ import annotations

import re
from typing import Mapping

BIRD_PARTS: dict[str, str] = {
    "bill": "bill", "bills": "bill", "beak": "bill", "beaks": "bill", "mandible": "bill", "mandibles": "bill",
    "lower mandible": "bill", "upper mandible": "bill", "maxilla": "bill", "culmen": "bill",
    "crown": "crown", "cap": "crown", "head top": "crown", "top of the head": "crown",
    "nape": "nape", "hindneck": "nape", "back of the neck": "nape",
    "throat": "throat", "chin": "throat", "gorget": "throat",
    "eye": "eye", "eyes": "eye", "eyering": "eye", "eye ring": "eye", "eyebrow": "eye", "eyestripe": "eye",
    "forehead": "forehead", "front": "forehead",
    "breast": "breast", "chest": "breast",
    "belly": "belly", "abdomen": "belly", "underparts": "belly", "vent": "belly",
    "back": "back", "mantle": "back", "upperparts": "back",
    "wing": "wing", "wings": "wing", "wingbar": "wing", "wingbars": "wing", "wing bar": "wing",
    "wing bars": "wing", "primaries": "wing", "secondaries": "wing", "coverts": "wing", "flight feathers": "wing",
    "tail": "tail", "tails": "tail", "tail feathers": "tail", "rectrices": "tail",
    "leg": "leg", "legs": "leg", "tarsus": "leg", "tarsi": "leg", "shank": "leg",
    "foot": "foot", "feet": "foot", "toe": "foot", "toes": "foot", "claw": "foot", "claws": "foot",
    "talon": "foot", "talons": "foot",
}

GARMENT_PARTS: dict[str, str] = {
    "collar": "collar", "neckline": "collar", "neck": "collar", "hood": "collar",
    "sleeve": "sleeve", "sleeves": "sleeve", "arm": "sleeve", "arms": "sleeve", "cuff": "sleeve", "cuffs": "sleeve",
    "hem": "hem", "hemline": "hem", "bottom edge": "hem", "skirt": "hem",
    "placket": "placket", "buttons": "placket", "button": "placket", "zipper": "placket", "zip": "placket",
    "opening": "placket", "front opening": "placket",
    "shoulder": "shoulder", "shoulders": "shoulder", "strap": "strap", "straps": "strap",
    "waist": "waist", "waistband": "waist", "belt": "waist",
    "leg": "leg", "legs": "leg", "trouser leg": "leg",
    "toe": "toe", "toes": "toe", "toe box": "toe", "tip": "toe",
    "heel": "heel", "heels": "heel", "sole": "sole", "soles": "sole", "outsole": "sole",
    "shaft": "shaft", "ankle": "shaft", "upper": "upper", "laces": "upper", "lace": "upper",
    "handle": "handle", "handles": "handle",
}

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


class SemanticParser:
    """Rules α → β over a lexicon (module docstring); ``parse(sentence)`` → the set of parts β."""

    def __init__(self, lexicon: Mapping[str, str] = BIRD_PARTS):
        self.lexicon = dict(lexicon)
        self.rules = {tuple(_WORD.findall(k.lower())): v for k, v in lexicon.items()}
        if any(not k for k in self.rules):
            raise ValueError("a lexicon entry has no word in it")
        self.longest = max(len(k) for k in self.rules)

    def words(self, sentence: str) -> list[str]:
        return _WORD.findall(str(sentence).lower())

    def parse(self, sentence: str) -> set[str]:
        words = self.words(sentence)
        parts, i = set(), 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):  # longest match first
                part = self.rules.get(tuple(words[i:i + n]))
                if part is not None:
                    parts.add(part)
                    i += n
                    break
            else:
                i += 1  # an unknown word: skipped
        return parts
