"""Asking through the journal: an answer is reused if the run has it, else asked, validated and committed.

This is what makes a resumed run never ask a question twice and never lose an
answer: the answer is in the journal (committed) before the method sees it.

A **live** oracle (the web page) is offered a batch of questions at once and its answers arrive from other
threads, in any order, through :meth:`Asker.submit`: validated by the question's kind, committed, and only
then reported saved. Until a round is *settled* (:meth:`Asker.settle`, just before its answers are
incorporated) the teacher may revise an answer: the journal keeps both (``revisions``), the newest counts,
and if the method had already read the old one its ask stage is run again on the newest answers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from exil.common.errors import ExilError
from exil.common.journal import Journal
from exil.common.kill_points import reached
from exil.common.oracle.base import Oracle, validate
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question


class AnswerTaken(ExilError):
    """The question was answered already (by another tab or person)."""


class AnswerInUse(ExilError):
    """The round's answers have been used (incorporated): an answer can no longer be revised."""


class Asker:
    """Journal-backed asking for one run; counts what it asked and what it reused."""

    def __init__(self, oracle: Oracle, journal: Journal, ctx: OracleContext):
        self.oracle, self.journal, self.ctx = oracle, journal, ctx
        self.asked = 0
        self.reused = 0
        self._cond = threading.Condition()
        self._answered: dict[int, set[tuple[str, str]]] = {}  # what live teachers answered in this process
        self._closed: set[int] = set()  # rounds whose answers are in use
        self._read: dict[int, set[tuple[str, str]]] = {}  # answers the method has been given, per round
        self._stale: set[int] = set()  # rounds with an answer revised after the method read it

    def oracle_for(self, kind: str) -> Oracle:
        """The oracle that answers ``kind`` (a router's route for it, else the oracle itself)."""
        route = getattr(self.oracle, "route", None)
        return route(kind) if route is not None else self.oracle

    def __call__(self, round: int, question: Question) -> Any:
        oracle = self.oracle_for(question.kind)
        if oracle.live:
            return self.many(round, [question])[0]
        found, answer = self.journal.answer(round, question.kind, question.key)
        if found:
            self.reused += 1
            return self._give(round, question, answer)
        t0 = time.monotonic()
        answer = self._ask(round, question, oracle)
        seconds = oracle.seconds(question.kind, time.monotonic() - t0)
        self.journal.add_answer(round, question.kind, question.key, answer, oracle.name, seconds=seconds)
        self.asked += 1
        return self._give(round, question, answer)

    def many(self, round: int, questions: list[Question], chunk: int = 1000) -> list[Any]:
        """Answers to many questions, each from the oracle that answers its kind (:meth:`_many_from`)."""
        groups: dict[int, tuple[Oracle, list[int]]] = {}
        for pos, q in enumerate(questions):
            oracle = self.oracle_for(q.kind)
            groups.setdefault(id(oracle), (oracle, []))[1].append(pos)
        if len(groups) <= 1:
            oracle = next(iter(groups.values()))[0] if groups else self.oracle
            return self._many_from(oracle, round, questions, chunk)
        out: list[Any] = [None] * len(questions)
        for oracle, positions in groups.values():
            for pos, a in zip(positions, self._many_from(oracle, round, [questions[p] for p in positions], chunk)):
                out[pos] = a
        return out

    def _many_from(self, oracle: Oracle, round: int, questions: list[Question], chunk: int) -> list[Any]:
        """Answers to many questions. A live oracle is offered the unanswered ones at once and each answer
        commits as it arrives (:meth:`submit`). Other oracles' answers commit one by one, as with
        ``__call__``, after the oracle was offered the unanswered ones at once (:meth:`Oracle.prefetch`: an
        LLM asks them concurrently); a ``cheap`` (simulated) oracle's commit ``chunk`` at a time — after a kill
        the uncommitted part of a chunk is simply asked again, which costs nothing and gives the same answers."""
        if not questions:
            return []
        known = self.journal.answers_of(round, {q.kind for q in questions})
        if oracle.live:
            todo = [q for q in questions if (q.kind, q.key) not in known]
            self.reused += len(questions) - len(todo)
            if todo:
                before = [(q, known[(q.kind, q.key)]) for q in questions if (q.kind, q.key) in known]
                self._collect(oracle, round, todo, before)
                known = self.journal.answers_of(round, {q.kind for q in questions})
            return [self._give(round, q, known[(q.kind, q.key)]) for q in questions]
        if not oracle.cheap:
            todo = [q for q in questions if (q.kind, q.key) not in known and q.kind in oracle.kinds]
            if len(todo) > 1:
                self.ctx.round = round
                oracle.prefetch(todo, self.ctx)
            self.reused += sum((q.kind, q.key) in known for q in questions)
            return [self._give(round, q, known[(q.kind, q.key)]) if (q.kind, q.key) in known else self(round, q)
                    for q in questions]
        out: list[Any] = [None] * len(questions)
        pending: list[tuple[str, str, Any]] = []
        for pos, q in enumerate(questions):
            if (q.kind, q.key) in known:
                out[pos] = known[(q.kind, q.key)]
                self.reused += 1
                continue
            out[pos] = self._ask(round, q, oracle)
            pending.append((q.kind, q.key, out[pos]))
            if len(pending) >= chunk:
                self._commit(round, pending, oracle)
        self._commit(round, pending, oracle)
        return out

    # ------------------------------------------------------------ live oracles
    def check(self, round: int, question: Question, raw: Any) -> Any:
        """The canonical answer a live teacher gave (raises :class:`InvalidAnswer`, :class:`AnswerInUse`), without
        committing it: one teacher's opinion on a question several are asked (``oracle.overlap``)."""
        oracle = self.oracle_for(question.kind)
        if question.kind not in oracle.kinds:
            raise InvalidAnswer(f"{oracle.name} does not answer {question.kind!r} questions")
        answer = validate(question, raw, self.ctx)
        if self.is_closed(round):
            raise AnswerInUse("this answer is already in use: the model was trained on it")
        return answer

    def opinion(self, round: int, question: Question, teacher: str, raw: Any, seconds: float | None) -> Any:
        """Validate and commit one named teacher's answer to a question several teachers are asked (the settled
        answer goes through :meth:`submit`); returns the canonical answer. Raises as :meth:`check`, and
        :class:`AnswerTaken` when this teacher answered it already."""
        import sqlite3

        answer = self.check(round, question, raw)
        try:
            self.journal.add_opinion(round, question.kind, question.key, teacher, answer, seconds)
        except sqlite3.IntegrityError:
            raise AnswerTaken(f"{teacher} answered this question already") from None
        return answer

    def opinions(self, round: int) -> list[dict[str, Any]]:
        """Every teacher's answer of ``round`` to questions several teachers are asked."""
        return self.journal.opinions(round)

    def submit(self, round: int, question: Question, raw: Any, revise: bool = False, teacher: str | None = None,
               seconds: float | None = None) -> Any:
        """Validate and commit a live teacher's answer (from any thread); returns the canonical answer.
        ``teacher``: who gave it; ``seconds``: what it cost them (:meth:`Journal.add_answer`).

        Raises :class:`InvalidAnswer` (nothing is written), :class:`AnswerTaken` (answered already and
        ``revise`` is false) or :class:`AnswerInUse` (the round's answers have been incorporated)."""
        oracle = self.oracle_for(question.kind)
        if question.kind not in oracle.kinds:
            raise InvalidAnswer(f"{oracle.name} does not answer {question.kind!r} questions")
        answer = validate(question, raw, self.ctx)
        with self._cond:
            if round in self._closed:
                raise AnswerInUse("this answer is already in use: the model was trained on it")
            found, _ = self.journal.answer(round, question.kind, question.key)
            if found and not revise:
                raise AnswerTaken("this question was answered already (in another tab?)")
            if found:
                self.journal.add_revision(round, question.kind, question.key, answer, oracle.name, teacher, seconds)
                if (question.kind, question.key) in self._read.get(round, set()):
                    self._stale.add(round)
            else:
                self.journal.add_answer(round, question.kind, question.key, answer, oracle.name, teacher, seconds)
                self.asked += 1
            self._answered.setdefault(round, set()).add((question.kind, question.key))
            self._cond.notify_all()
        return answer

    def is_closed(self, round: int) -> bool:
        with self._cond:
            return round in self._closed

    def settle(self, round: int) -> bool:
        """The method has asked everything it needs for ``round``: let a live teacher review, then close the
        round for revisions. Returns True (and leaves it open) if an answer the method read was revised
        meanwhile: the caller runs its ask stage again on the newest answers, then settles again."""
        for oracle in self.live_oracles():
            oracle.settle(round, self)
        with self._cond:
            if round in self._stale:
                self._stale.discard(round)
                self._read.pop(round, None)
                return True
            self._closed.add(round)
            return False

    def live_oracles(self) -> list[Oracle]:
        routes = getattr(self.oracle, "oracles", None)
        return [o for o in (routes() if routes is not None else [self.oracle]) if o.live]

    def _collect(self, oracle: Oracle, round: int, questions: list[Question],
                 answered: list[tuple[Question, Any]] = ()) -> None:
        """Offer ``questions`` to the live oracle (with the round's ``answered`` ones, which stay revisable) and
        wait until every one is answered (through submit)."""
        self.ctx.round = round
        oracle.offer(round, questions, self.ctx, self, answered)
        pending = {(q.kind, q.key) for q in questions}
        with self._cond:
            self._cond.wait_for(lambda: pending <= self._answered.get(round, set()))

    def _give(self, round: int, question: Question, answer: Any) -> Any:
        """Note that the method has read this answer (a later revision then re-runs its ask stage)."""
        if self.oracle_for(question.kind).live:
            with self._cond:
                self._read.setdefault(round, set()).add((question.kind, question.key))
        return answer

    # --------------------------------------------------------------- helpers
    def _commit(self, round: int, rows: list[tuple[str, str, Any]], oracle: Oracle) -> None:
        if rows:
            cost = {q: oracle.seconds(q, None) for q in {r[0] for r in rows}}
            self.journal.add_answers(round, rows, oracle.name, {q: c for q, c in cost.items() if c is not None})
            self.asked += len(rows)
            rows.clear()

    def _ask(self, round: int, question: Question, oracle: Oracle) -> Any:
        """Ask until the answer is valid (at most ``max_attempts`` times); returns the validated answer."""
        if question.kind not in oracle.kinds:
            raise ExilError(f"oracle {oracle.name} cannot answer {question.kind!r} questions "
                            f"(it answers: {', '.join(oracle.kinds)}); choose another oracle=")
        self.ctx.round = round
        for _ in range(max(1, oracle.max_attempts)):
            raw = oracle.answer(question, self.ctx)
            try:
                answer = validate(question, raw, self.ctx)
                reached("answer")
                break
            except InvalidAnswer as e:
                oracle.reject(question, raw, str(e))
        else:
            raise ExilError(f"{oracle.name} gave {oracle.max_attempts} invalid answers in a row to "
                            f"{question.kind} question {question.key!r}; the run stopped (resume it to ask again)")
        return answer
