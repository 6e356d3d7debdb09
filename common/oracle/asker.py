"""Asking through the journal: an answer is reused if the run has it, else asked, validated and committed.

This is what makes a resumed run never ask a question twice and never lose an
answer: the answer is in the journal (committed) before the method sees it.
"""

from __future__ import annotations

from typing import Any

from common.errors import ExilError
from common.journal import Journal
from common.oracle.base import InvalidAnswer, Oracle, OracleContext, Question, validate


class Asker:
    """Journal-backed asking for one run; counts what it asked and what it reused."""

    def __init__(self, oracle: Oracle, journal: Journal, ctx: OracleContext):
        self.oracle, self.journal, self.ctx = oracle, journal, ctx
        self.asked = 0
        self.reused = 0

    def __call__(self, round: int, question: Question) -> Any:
        found, answer = self.journal.answer(round, question.kind, question.key)
        if found:
            self.reused += 1
            return answer
        answer = self._ask(round, question)
        self.journal.add_answer(round, question.kind, question.key, answer, self.oracle.name)
        self.asked += 1
        return answer

    def many(self, round: int, questions: list[Question], chunk: int = 1000) -> list[Any]:
        """Answers to many questions. Other oracles' answers commit one by one, as with ``__call__``, after
        the oracle was offered the unanswered ones at once (:meth:`Oracle.prefetch`: an LLM asks them
        concurrently); a ``cheap`` (simulated) oracle's commit ``chunk`` at a time — after a kill the
        uncommitted part of a chunk is simply asked again, which costs nothing and gives the same answers."""
        known = self.journal.answers_of(round, {q.kind for q in questions})
        if not self.oracle.cheap:
            todo = [q for q in questions if (q.kind, q.key) not in known and q.kind in self.oracle.kinds]
            if len(todo) > 1:
                self.ctx.round = round
                self.oracle.prefetch(todo, self.ctx)
            self.reused += sum((q.kind, q.key) in known for q in questions)
            return [known[(q.kind, q.key)] if (q.kind, q.key) in known else self(round, q) for q in questions]
        out: list[Any] = [None] * len(questions)
        pending: list[tuple[str, str, Any]] = []
        for pos, q in enumerate(questions):
            if (q.kind, q.key) in known:
                out[pos] = known[(q.kind, q.key)]
                self.reused += 1
                continue
            out[pos] = self._ask(round, q)
            pending.append((q.kind, q.key, out[pos]))
            if len(pending) >= chunk:
                self._commit(round, pending)
        self._commit(round, pending)
        return out

    def _commit(self, round: int, rows: list[tuple[str, str, Any]]) -> None:
        if rows:
            self.journal.add_answers(round, rows, self.oracle.name)
            self.asked += len(rows)
            rows.clear()

    def _ask(self, round: int, question: Question) -> Any:
        """Ask until the answer is valid (at most ``max_attempts`` times); returns the validated answer."""
        if question.kind not in self.oracle.kinds:
            raise ExilError(f"oracle {self.oracle.name} cannot answer {question.kind!r} questions "
                            f"(it answers: {', '.join(self.oracle.kinds)}); choose another oracle=")
        self.ctx.round = round
        for _ in range(max(1, self.oracle.max_attempts)):
            raw = self.oracle.answer(question, self.ctx)
            try:
                answer = validate(question, raw, self.ctx)
                break
            except InvalidAnswer as e:
                self.oracle.reject(question, raw, str(e))
        else:
            raise ExilError(f"{self.oracle.name} gave {self.oracle.max_attempts} invalid answers in a row to "
                            f"{question.kind} question {question.key!r}; the run stopped (resume it to ask again)")
        return answer
