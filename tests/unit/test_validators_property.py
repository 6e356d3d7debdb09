"""Every registered question kind's validator against arbitrary answers (hypothesis).

Whatever a teacher sends — random text (unicode, control characters, lone surrogates as JSON may carry, a
megabyte), arbitrary JSON values, numbers (nan, inf, ints of thousands of digits), nested junk, and answers
of the right shape but wrong (a mask of another size, a list of the wrong length, exemplars out of range,
negative indices, a bool where an int is expected, ``2.0`` for a label) — a validator either returns the
canonical answer (checked here: type, shape, range; JSON as the journal stores it; validating it again gives
it back) or raises :class:`InvalidAnswer` with a short, non-empty message. Anything else is a bug.

The label decisions (documented in :meth:`exil.common.oracle.label.Label.validate`) are asserted by example at the end.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exil.alice.questions  # noqa: F401  (registers contrast_classes)
import exil.caipi.questions  # noqa: F401  (registers correct_explanation)
import exil.common.oracle  # noqa: F401  (registers label, relevance, explain_label)
import exil.exbl.questions  # noqa: F401  (registers choose_exemplars)
from exil.alice.questions import MAX_CHARS as CONTRAST_MAX
from exil.alice.questions import contrast_question
from exil.caipi.questions import correction_question
from exil.common.explain.segmentation import grid
from exil.common.oracle.base import validate
from exil.common.oracle.explanations import MAX_CHARS as EXPLAIN_MAX
from exil.common.oracle.explanations import explanation_question
from exil.common.oracle.kinds import registered
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question
from exil.common.oracle.relevance import decode_mask, encode_mask, relevance_question
from exil.exbl.questions import exemplars_question

#: modest and reproducible: the whole file runs in well under a minute on two slow cores
PROPERTY = settings(max_examples=120, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MESSAGE_MAX = 2000


class Data:
    """What the validators may look at of a data module (they read the question and the class names only)."""

    def __init__(self, class_names):
        self.class_names = list(class_names)


def context(class_names) -> OracleContext:
    return OracleContext(Data(class_names), list(class_names), Path("/nonexistent/oracle"), round=1, strategy="entropy")


ANIMALS = ["cat", "dog", "bird", "fish", "frog"]
DIGIT_NAMES = [str(c) for c in range(10)]  # a data module's default names
#: CUB-sized: a refusal that lists the classes must still be short
BIRDS = [f"Black-footed Albatross number {c} of the Laysan kind" for c in range(200)]

# ── arbitrary answers ───────────────────────────────────────────────────────────────────────────────

#: any code point, incl. control characters and lone surrogates (JSON's "\ud800" decodes to one)
any_char = st.characters(codec=None, exclude_categories=())
texts = st.text(any_char, max_size=40)
digitlike = st.text(st.characters(categories=["Nd", "No", "Nl"]) | st.sampled_from(" +-_.,x0123456789"),
                    min_size=1, max_size=8)
#: up to a megabyte, built by repetition (cheap to draw)
long_texts = st.builds(lambda piece, n: piece * n,
                       st.sampled_from(["x", "9", " ", "٣", "\x00", "a b ", "0 ", "dog", "\ud800", "é\u0301"]),
                       st.integers(1_000, 1_000_000))
big_ints = st.builds(lambda k, sign: sign * 10 ** k, st.integers(15, 6000), st.sampled_from([1, -1]))
numbers = (st.integers() | big_ints | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0, 1e300, 2 ** 63, -(2 ** 63), 2 ** 64]))
scalars = st.none() | st.booleans() | numbers | texts | digitlike
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(texts | st.sampled_from(["label", "skip", "relevant", "irrelevant",
                                                                       "shape", "bits", "explanations", "good",
                                                                       "bad", "wrong", "text"]), inner, max_size=5),
                           max_leaves=20)
junk = json_values | long_texts | digitlike


def refused_or(question: Question, answer, ctx: OracleContext):
    """``("ok", value)`` or ``("refused", message)``; any other exception fails the test."""
    try:
        value = validate(question, answer, ctx)
    except InvalidAnswer as e:
        message = str(e)
        assert isinstance(message, str) and message.strip(), f"empty refusal of {answer!r:.200}"
        assert len(message) < MESSAGE_MAX, f"a refusal of {len(message)} characters: {message[:200]}…"
        return "refused", message
    # what the journal stores: JSON, and the same value back
    assert json.loads(json.dumps(value, allow_nan=False)) == value
    # a canonical answer is valid as it is
    assert validate(question, value, ctx) == value
    return "ok", value


# ── label ───────────────────────────────────────────────────────────────────────────────────────────

def label_question(skippable: bool) -> Question:
    payload = {"probs": [0.1, 0.5, 0.2, 0.1, 0.1], "strategy": "entropy", "score": 1.2}
    if skippable:
        payload["skippable"] = True
    return Question("label", "4", item=4, payload=payload)


def label_answers(names):
    c = len(names)
    near = (st.integers(-3, c + 3) | st.sampled_from([True, False, 2.0, -0.0, float(c), math.nan, math.inf])
            | st.sampled_from(names) | st.sampled_from(["skip", " SKIP ", "?", "don't know", "", " ", "none"]))
    cased = st.builds(lambda n, up, pad: (n.upper() if up else n.title()).join(pad),
                      st.sampled_from(names), st.booleans(), st.sampled_from([("", ""), (" ", "\t"), ("\n", " ")]))
    typed = st.builds(lambda i, fmt: fmt.format(i), st.integers(-3, c + 3),
                      st.sampled_from(["{}", " {} ", "+{}", "-{}", "0{}", "{}.0", "0x{}", "{}_0", "1_{}", "{}e0",
                                       "{0} {0}", "{},"]))
    unicode_digits = st.builds(lambda i, base: "".join(chr(base + int(d)) for d in str(i)), st.integers(0, c + 3),
                               st.sampled_from([0x660, 0xFF10, 0x966, 0x1D7CE, 0x7C0]))  # Arabic-Indic, fullwidth, …
    dicts = st.fixed_dictionaries({}, optional={"label": near | junk, "skip": st.booleans() | junk})
    return near | cased | typed | unicode_digits | dicts | junk


@pytest.mark.parametrize("names", [ANIMALS, DIGIT_NAMES, BIRDS], ids=["animals", "digit-names", "200-birds"])
@pytest.mark.parametrize("skippable", [False, True], ids=["required", "skippable"])
def test_label_validator_on_arbitrary_answers(names, skippable):
    ctx, q = context(names), label_question(skippable)
    lowered = [n.lower() for n in names]

    @PROPERTY
    @given(label_answers(names))
    def check(answer):
        outcome, value = refused_or(q, answer, ctx)
        if outcome == "refused":
            return
        if value is None:
            assert skippable, f"{answer!r:.100} skipped an item that needs a label"
            return
        assert type(value) is int and 0 <= value < len(names)
        assert not isinstance(answer, (bool, float))
        if isinstance(answer, str):  # ASCII digits naming the index, or a class name
            s = answer.strip()
            assert (s.isascii() and s.isdigit() and int(s) == value) or s.lower() == lowered[value], answer
        elif isinstance(answer, int):
            assert answer == value

    check()


# ── relevance ───────────────────────────────────────────────────────────────────────────────────────

H, W = 8, 8


def masks_of_any_shape():
    shapes = st.sampled_from([(H, W), (1, H, W), (1, 1, H, W), (W, H + 1), (H * W,), (H, W, 1), (0, H), (2, H, W),
                              (), (3, 3), (28, 28)])
    dtypes = st.sampled_from([bool, np.uint8, np.int64, np.float32, np.float64])
    values = st.sampled_from(["binary", "eye", "noise", "nan", "two", "negative"])

    def build(shape, dtype, kind, seed):
        rng = np.random.default_rng(seed)
        a = rng.random(shape)
        a = {"binary": a > 0.5, "eye": np.zeros(shape) if len(shape) != 2 else np.eye(*shape), "noise": a,
             "nan": np.where(a > 0.5, np.nan, 0.0), "two": (a > 0.5) * 2, "negative": -(a > 0.5).astype(int)}[kind]
        return np.asarray(a).astype(dtype) if not (kind == "nan" and dtype in (bool, np.uint8, np.int64)) else a

    arrays = st.builds(build, shapes, dtypes, values, st.integers(0, 2 ** 16))
    return arrays | arrays.map(torch.as_tensor) | arrays.map(lambda a: a.tolist())


def encodings():
    good = encode_mask(np.eye(H, dtype=bool))
    shapes = st.sampled_from([[H, W], [W, H], [H * W], [1, H, W], [-1, 64], [H, -W], [True, W], [8.0, 8.0],
                              ["8", "8"], [10 ** 30, 10 ** 30], [2 ** 62, 4], [], [0, 0], None, "8x8", {"h": 8},
                              [math.nan, 8], [math.inf, 8], [1] * 100]) | st.builds(lambda: [10 ** 5000, 1])
    bits = st.sampled_from([good["bits"], "", "!!!!", "AAAA", "\ud800", "é", "A" * 999_999, None, 7, [1, 2],
                            base64.b64encode(b"\xff" * 7).decode(), base64.b64encode(b"\xff" * 9).decode()])
    return (st.fixed_dictionaries({"shape": shapes, "bits": bits}) | st.just(good)
            | st.fixed_dictionaries({}, optional={"shape": shapes | junk, "bits": bits | junk, "extra": junk}))


def relevance_answers():
    mask = masks_of_any_shape() | encodings() | junk
    return (mask | st.fixed_dictionaries({"relevant": mask}, optional={"irrelevant": mask | st.none()})
            | st.fixed_dictionaries({}, optional={"relevant": mask | st.none(), "irrelevant": mask, "other": junk}))


@PROPERTY
@given(relevance_answers())
def test_relevance_validator_on_arbitrary_answers(answer):
    q, ctx = relevance_question(3, (H, W), label=1), context(ANIMALS)
    outcome, value = refused_or(q, answer, ctx)
    if outcome == "refused":
        return
    assert set(value) <= {"relevant", "irrelevant"} and "relevant" in value
    for encoded in value.values():
        m = decode_mask(encoded)
        assert m.dtype == torch.bool and tuple(m.shape) == (H, W)


# ── explain_label ───────────────────────────────────────────────────────────────────────────────────

explanation = (st.text(any_char, max_size=30) | st.sampled_from(["", "  ", "\n\t", "fine", " padded "])
               | st.builds(lambda n: "y" * n, st.sampled_from([EXPLAIN_MAX - 1, EXPLAIN_MAX, EXPLAIN_MAX + 1]))
               | long_texts | junk)


def explain_answers(names):
    c = len(names)
    lists = st.lists(explanation, min_size=max(0, c - 1), max_size=c + 1)
    keyed = st.dictionaries(st.sampled_from(names + [n.upper() for n in names] + [str(i) for i in range(c + 1)]),
                            explanation, max_size=c + 1)
    labels = (st.integers(-2, c + 2) | st.sampled_from([True, False, 1.0, 1.5, math.nan, math.inf, "1", " 1 ", "٣",
                                                         "fresh", "FRESH", "-1", "abc", None, [1], {"a": 1}])
              | junk)
    full = st.fixed_dictionaries({"explanations": lists | keyed}, optional={"label": labels, "other": junk})
    return full | lists | keyed | junk


@pytest.mark.parametrize("names", [["rotten", "fresh"], ANIMALS, BIRDS[:40]], ids=["two", "five", "forty"])
def test_explain_label_validator_on_arbitrary_answers(names):
    q, ctx = explanation_question(0, 1, ("a great movie",)), context(names)

    @PROPERTY
    @given(explain_answers(names))
    def check(answer):
        outcome, value = refused_or(q, answer, ctx)
        if outcome == "refused":
            return
        assert set(value) == {"label", "explanations"}
        assert type(value["label"]) is int and 0 <= value["label"] < len(names)
        assert isinstance(value["explanations"], list) and len(value["explanations"]) == len(names)
        for e in value["explanations"]:
            assert isinstance(e, str) and e == e.strip() and 0 < len(e) <= EXPLAIN_MAX

    check()


# ── correct_explanation ─────────────────────────────────────────────────────────────────────────────

SHOWN = [3, 9, 12]


def correction_questions():
    image = correction_question(5, SHOWN, prediction=1, segments=grid(8, 8, cell=2))
    masks = torch.zeros(len(SHOWN), 20, dtype=torch.bool)  # tokens / features: what each shown component covers
    for j, c in enumerate(SHOWN):
        masks[j, c] = True
    return [image, correction_question(6, SHOWN, prediction=0, masks=masks)]


def correction_answers():
    ids = st.sampled_from(SHOWN) | st.integers(-20, 30) | st.sampled_from([True, False, 3.0, 9.5, "3", None])
    lists = st.lists(ids, max_size=6) | st.lists(st.sampled_from(SHOWN), max_size=6).map(tuple)
    typed = st.builds(lambda xs, sep, pad: pad + sep.join(xs) + pad,
                      st.lists(st.sampled_from(["3", "9", "12", "03", "-3", "--3", "4", "٣", "３", "²", "3.0", "+9",
                                                "9" * 5000, "none", "", "x"]), min_size=1, max_size=3),
                      st.sampled_from([" ", ",", ", ", ",,"]), st.sampled_from(["", " ", "\n"]))
    return st.one_of(typed, typed, lists, st.fixed_dictionaries({"wrong": lists | typed | junk}), junk)


@pytest.mark.parametrize("q", correction_questions(), ids=["image", "features"])
def test_correct_explanation_validator_on_arbitrary_answers(q):
    ctx = context(DIGIT_NAMES)

    @PROPERTY
    @given(correction_answers())
    def check(answer):
        outcome, value = refused_or(q, answer, ctx)
        if outcome == "refused":
            return
        assert isinstance(value, list) and all(type(c) is int for c in value)
        assert len(set(value)) == len(value) and set(value) <= set(SHOWN)
        assert value == sorted(value, key=SHOWN.index)

    check()


# ── choose_exemplars ────────────────────────────────────────────────────────────────────────────────

CANDIDATES = [10, 20, 30, 40]


def exemplar_answers():
    ids = (st.sampled_from(CANDIDATES) | st.integers(-5, 50)
           | st.sampled_from([True, False, 20.0, 10.5, "10", None, math.nan]) | big_ints)
    pairs = st.fixed_dictionaries({"good": ids, "bad": ids}) | st.fixed_dictionaries(
        {}, optional={"good": ids | junk, "bad": ids | junk, "other": junk})
    positions = st.builds(lambda a, b, sep: f"{a}{sep}{b}",
                          st.sampled_from(["0", "1", "3", "4", "-1", "٠", "２", "²", "01", "9" * 5000, "1.0", "+1"]),
                          st.sampled_from(["0", "2", "3", "5", "-0", "١", "", "0 1"]),
                          st.sampled_from([" ", ",", ", ", "  ", "\t"]))
    return pairs | positions | junk


@PROPERTY
@given(exemplar_answers())
def test_choose_exemplars_validator_on_arbitrary_answers(answer):
    q = exemplars_question(2, CANDIDATES, torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(0)),
                           labels=[0, 1, 1, 2])
    outcome, value = refused_or(q, answer, context(ANIMALS))
    if outcome == "refused":
        return
    assert set(value) == {"good", "bad"}
    assert type(value["good"]) is int and type(value["bad"]) is int
    assert value["good"] in CANDIDATES and value["bad"] in CANDIDATES and value["good"] != value["bad"]


# ── contrast_classes ────────────────────────────────────────────────────────────────────────────────

def contrast_answers():
    sentences = (st.text(any_char, max_size=60)
                 | st.builds(lambda n, pad: pad + "w " * n + pad,
                             st.integers(CONTRAST_MAX // 2 - 3, CONTRAST_MAX // 2 + 3), st.sampled_from(["", " ", "\n\n"]))
                 | st.sampled_from(["a cat has whiskers while a bird has a beak", "  ", "\u3000", "\x00", "\ud800"]))
    return sentences | st.fixed_dictionaries({"text": sentences | junk}) | long_texts | junk


@PROPERTY
@given(contrast_answers())
def test_contrast_classes_validator_on_arbitrary_answers(answer):
    q = contrast_question(2, 0, ANIMALS, examples={0: [1, 2], 2: [3]}, lexicon={"beak": "bill", "whiskers": "head"})
    outcome, value = refused_or(q, answer, context(ANIMALS))
    if outcome == "refused":
        return
    assert isinstance(value, str) and value and len(value) <= CONTRAST_MAX
    assert value == " ".join(value.split())


def test_every_registered_kind_is_covered():
    covered = {"label", "relevance", "explain_label", "correct_explanation", "choose_exemplars", "contrast_classes"}
    assert set(registered()) == covered, "a new question kind needs its property test here"


# ── the label decisions, by example (Label.validate's docstring) ────────────────────────────────────

@pytest.fixture
def animals():
    return context(ANIMALS), Question("label", "4", item=4)


def refusal(q, answer, ctx) -> str:
    with pytest.raises(InvalidAnswer) as e:
        validate(q, answer, ctx)
    return str(e.value)


def test_label_accepts_ascii_digits_and_class_names_whitespace_stripped(animals):
    ctx, q = animals
    for answer in (3, np.int64(3), "3", " 3 ", "\t3\n", "03", "fish", "FISH", " Fish ", {"label": 3},
                   {"label": "fish", "skip": False}):
        assert validate(q, answer, ctx) == 3, answer
    assert type(validate(q, np.int64(3), ctx)) is int


def test_label_refuses_unicode_digits(animals):
    ctx, q = animals
    for answer in ("٣", "３", "३", "𝟑", "߃", "³", "²", " ٣ ", "1٣"):  # int() takes most of them as 3 (or 13)
        assert "not a class" in refusal(q, answer, ctx), answer


def test_label_refuses_bools_and_floats_even_integral_ones(animals):
    ctx, q = animals
    for answer in (True, False, {"label": True}):
        assert "not a class" in refusal(q, answer, ctx)
    for answer in (2.0, 0.0, -0.0, 3.0, 1.5, math.nan, math.inf, 1e300):
        assert "whole number" in refusal(q, answer, ctx), answer


def test_label_refuses_signs_hex_underscores_and_other_number_spellings():
    ctx, q = context(BIRDS[:12]), Question("label", "4", item=4)  # 12 classes: "1_0" would be 10, "+3" 3
    assert validate(q, "10", ctx) == 10 and validate(q, " 3 ", ctx) == 3
    for answer in ("+3", "-3", "-0", "+0", "0x1", "0b1", "0o7", "1_0", "1.0", "3.", "1e0", "3 3", "3,", "", "-1", 12,
                   -1, "12", "9" * 5000, "0" * 5000 + "13"):
        assert "not a class" in refusal(q, answer, ctx), answer
    assert validate(q, "0" * 5000 + "3", ctx) == 3  # leading zeros: still three


def test_label_digits_are_indices_even_where_classes_are_named_by_digits():
    ctx, q = context(["1", "2", "3"]), Question("label", "1", item=1)
    assert validate(q, "1", ctx) == 1 and validate(q, "0", ctx) == 0
    with pytest.raises(InvalidAnswer):
        validate(q, "3", ctx)
    ctx = context(DIGIT_NAMES)
    assert validate(q, "7", ctx) == 7


def test_label_skips_only_where_skippable_and_dict_forms(animals):
    ctx, q = animals
    skippable = Question("label", "4", item=4, payload={"skippable": True})
    for answer in (None, "skip", " Skip ", "?", "don't know", {"skip": True}, {"label": None}, {"label": "skip"}):
        assert validate(skippable, answer, ctx) is None, answer
        assert "needs a label" in refusal(q, answer, ctx)
    for answer in ({}, {"skip": False}, {"skip": "yes"}, {"skip": 1}, {"skip": True, "label": 2}, {"label": 2.0},
                   {"label": 2, "other": 1}):
        refusal(skippable, answer, ctx)


def test_label_refusals_are_short_whatever_was_sent(animals):
    ctx, q = animals
    for answer in ("x" * 1_000_000, "9" * 1_000_000, 10 ** 5000, -(10 ** 5000), list(range(100_000)),
                   {"label": "y" * 1_000_000}, [[[[[[[[1]]]]]]]] * 1000):
        message = refusal(q, answer, ctx)
        assert 0 < len(message) < 400, message[:100]
    assert len(refusal(q, "horse", context(BIRDS))) < 600  # 200 classes: the list is cut short


# ── the other validators' fixed bugs, by example ────────────────────────────────────────────────────

def test_relevance_needs_a_relevant_mask_of_zeros_and_ones():
    q, ctx = relevance_question(3, (H, W)), context(ANIMALS)
    for answer in ({"relevant": None}, {"irrelevant": np.eye(H, dtype=bool)}, {"relevant": np.full((H, W), 0.5)},
                   {"relevant": np.where(np.eye(H), np.nan, 0)}, {"relevant": np.eye(H) * 2},
                   {"relevant": [["1"] * W] * H}, {"relevant": {"shape": [10 ** 30, 10 ** 30], "bits": "AAAA"}},
                   {"relevant": {"shape": [math.inf, 8], "bits": "AAAA"}},
                   {"relevant": {"shape": [True, 8], "bits": "AAAA"}},
                   {"relevant": {"shape": [10 ** 5000, 1], "bits": "AAAA"}}):
        refusal(q, answer, ctx)
    ok = validate(q, {"relevant": np.eye(H, dtype=np.uint8).tolist(), "irrelevant": None}, ctx)
    assert torch.equal(decode_mask(ok["relevant"]), torch.eye(H).bool()) and "irrelevant" not in ok


def test_explain_label_reads_its_label_like_a_label_answer():
    q, ctx = explanation_question(0, 1, ("a great movie",)), context(["rotten", "fresh"])
    both = ["bad", "good"]
    assert validate(q, {"label": "fresh", "explanations": both}, ctx)["label"] == 1
    assert validate(q, {"label": " 0 ", "explanations": both}, ctx)["label"] == 0
    for label in ("abc", True, 1.0, 1.5, math.nan, math.inf, "٣", -1, 2, [1]):
        assert "label" in refusal(q, {"label": label, "explanations": both}, ctx), label


def test_correct_explanation_and_exemplars_read_only_ascii_numbers_and_ints():
    ctx = context(DIGIT_NAMES)
    q = correction_question(5, SHOWN, prediction=1, segments=grid(8, 8, cell=2))
    assert validate(q, "12, 3", ctx) == [3, 12] and validate(q, " 09 ", ctx) == [9]
    for answer in ("²", "--3", "9" * 5000, "٣", "３", [3.0], [True], "3.0"):
        refusal(q, answer, ctx)
    assert "not shown" in refusal(q, "-3", ctx) and "not shown" in refusal(q, list(range(100, 100_000)), ctx)
    q = exemplars_question(0, CANDIDATES, torch.zeros(4, 8, 8))
    assert validate(q, "1 0", ctx) == {"good": 20, "bad": 10}
    for answer in ({"good": True, "bad": 10}, {"good": 20.0, "bad": 10}, "² 0", "٢ 0", "9" * 5000 + " 0"):
        refusal(q, answer, ctx)
