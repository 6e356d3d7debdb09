import pytest
import torch

from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems
from exil.common.errors import ExilError, RunStopped
from exil.common.journal import Journal
from exil.common.oracle.asker import Asker
from exil.common.oracle.base import Oracle, validate
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question
from exil.common.oracle.simulated import SimulatedOracle
from exil.common.oracle.terminal import TerminalOracle


class Tiny(PoolDataModule):
    def load(self):
        g = torch.Generator().manual_seed(0)
        pool = TensorItems(x=torch.rand(40, 1, 4, 4, generator=g), y=torch.arange(40) % 3)
        test = TensorItems(x=torch.rand(9, 1, 4, 4, generator=g), y=torch.arange(9) % 3)
        return pool, None, test

    @property
    def class_names(self):
        return ["cat", "dog", "bird"]


@pytest.fixture
def ctx(tmp_path):
    dm = Tiny()
    dm.setup()
    return OracleContext(dm, dm.class_names, tmp_path / "oracle")


def test_label_validator_accepts_indices_and_names(ctx):
    q = Question("label", "1", item=1)
    assert validate(q, 2, ctx) == 2
    assert validate(q, " 1 ", ctx) == 1
    assert validate(q, "Dog", ctx) == 1
    for bad in (3, -1, "horse", "", True, 1.5):
        with pytest.raises(InvalidAnswer):
            validate(q, bad, ctx)


def test_simulated_oracle_is_ground_truth_and_noise_is_order_independent(ctx):
    clean = SimulatedOracle()
    assert [clean.answer(Question("label", str(i), item=i), ctx) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    noisy = SimulatedOracle(noise=0.3, seed=5)
    qs = [Question("label", str(i), item=i) for i in range(40)]
    forward = [noisy.answer(q, ctx) for q in qs]
    backward = [noisy.answer(q, ctx) for q in reversed(qs)][::-1]
    assert forward == backward
    wrong = sum(a != ctx.datamodule.true_label(i) for i, a in enumerate(forward))
    assert 3 <= wrong <= 22  # ~30% of 40 flipped, never to the true class


def test_terminal_oracle_reasks_until_valid_and_journals_once(ctx, tmp_path):
    typed = iter(["seven", "9", "bird"])
    shown = []
    oracle = TerminalOracle(input_fn=lambda prompt: next(typed), print_fn=lambda *a: shown.append(" ".join(map(str, a))))
    j = Journal(tmp_path / "j.sqlite")
    ask = Asker(oracle, j, ctx)
    q = Question("label", "4", item=4, payload={"probs": [0.1, 0.7, 0.2]})
    assert ask(2, q) == 2
    assert sum("✗" in s for s in shown) == 2  # two rejections, each explained
    assert any("image:" in s for s in shown) and any("dog (0.70)" in s for s in shown)
    assert (tmp_path / "oracle" / "round_002_item_4.png").exists()
    assert ask(2, q) == 2 and ask.asked == 1 and ask.reused == 1  # second time from the journal
    (row,) = j.answers()
    seconds = row.pop("seconds")  # the person's time, prompt to valid answer
    assert row == dict(round=2, question="label", key="4", answer=2, oracle="TerminalOracle", session=j.session)
    assert 0 <= seconds < 5


def test_asker_stops_after_max_attempts_and_journals_nothing(ctx, tmp_path):
    class Stubborn(Oracle):
        max_attempts = 3

        def answer(self, question, c):
            return "no idea"

    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(ExilError, match="3 invalid answers"):
        Asker(Stubborn(), j, ctx)(0, Question("label", "1", item=1))
    assert j.answers() == []


def test_asker_refuses_questions_the_oracle_cannot_answer(ctx, tmp_path):
    class LabelsOnly(SimulatedOracle):
        kinds = ("label",)

    with pytest.raises(ExilError, match="cannot answer 'contrast_classes'"):
        Asker(LabelsOnly(), Journal(tmp_path / "j.sqlite"), ctx)(0, Question("contrast_classes", "1-2"))


def test_terminal_end_of_input_stops_with_a_resume_hint_and_prints_hints_verbatim(ctx, tmp_path):
    shown, prompts = [], []

    def typed(prompt):
        prompts.append(prompt)
        raise EOFError

    oracle = TerminalOracle(input_fn=typed, print_fn=lambda *a: shown.append(" ".join(map(str, a))))
    paused = []

    class Pause:
        def __enter__(self):
            paused.append("in")

        def __exit__(self, *exc):
            paused.append("out")

    oracle.attach_display(Pause)
    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(RunStopped, match="Ctrl-D") as stopped:  # the command line names the resume command
        Asker(oracle, j, ctx)(0, Question("label", "4", item=4, payload={"skippable": True}))
    assert stopped.value.status == 130
    assert prompts == ["label? [0=cat, 1=dog, 2=bird] or 'skip' > "]  # the hint in brackets reaches the person
    assert paused == ["in", "out"] and j.answers() == []


def test_a_skipped_label_is_journaled_as_null_only_where_the_method_allows_it(ctx):
    assert validate(Question("label", "1", item=1, payload={"skippable": True}), "skip", ctx) is None
    with pytest.raises(InvalidAnswer, match="needs a label"):
        validate(Question("label", "1", item=1), "skip", ctx)
