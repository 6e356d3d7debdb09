"""Each question kind to its own teacher: e.g. labels from the data, explanations from a person.

A common real case is labelled data whose expert only explains: ``oracle=web_explanations`` routes ``label``
to the simulated teacher (the dataset's ground truth) or to :class:`LabelFile` (your own labels, a CSV),
and every other kind to the web page, so eXBL, ALICE, RRR and CAIPI runs never make a person label the pool.
The journal records which teacher gave each answer.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping

from exil.common.errors import ConfigError, ExilError
from exil.common.oracle.base import SIMULATED_SETTINGS, Oracle, check_ignored
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question
from exil.common.oracle.simulated import SimulatedOracle


class RoutingOracle(Oracle):
    """Routes questions by kind (module docstring).

    Args:
        routes: question kind → the oracle that answers it.
        default: the oracle for every other kind (``None``: only the routed kinds are answered).
        **settings: machine-teacher settings an experiment sets (``irrelevant_field``, ``explainer``, ...): given to
            the routed simulated teachers, ignored by the rest.
    """

    def __init__(self, routes: Mapping[str, Oracle], default: Oracle | None = None, **settings: Any):
        check_ignored("router", settings)
        self.routes, self.default = dict(routes), default
        for o in self.oracles():
            if isinstance(o, SimulatedOracle):
                for k in SIMULATED_SETTINGS & set(settings):
                    setattr(o, k, settings[k])
        if not self.routes and default is None:
            raise ConfigError("oracle routes: give at least one route or a default teacher")

    @property
    def name(self) -> str:
        return "RoutingOracle(" + ", ".join(f"{k}: {o.name}" for k, o in self.routes.items()) + \
            (f", *: {self.default.name}" if self.default is not None else "") + ")"

    def route(self, kind: str) -> Oracle:
        oracle = self.routes.get(kind, self.default)
        if oracle is None:
            raise ExilError(f"no teacher answers {kind!r} questions: routes are {', '.join(self.routes)}; "
                            f"add oracle.routes.{kind} or oracle.default")
        return oracle

    def oracles(self) -> list[Oracle]:
        out: list[Oracle] = []
        for o in [*self.routes.values(), *([self.default] if self.default is not None else [])]:
            if all(o is not p for p in out):
                out.append(o)
        return out

    @property
    def kinds(self) -> tuple[str, ...]:
        if self.default is not None:
            return tuple(self.default.kinds) + tuple(k for k in self.routes if k not in self.default.kinds)
        return tuple(self.routes)

    @property
    def labels_from_truth(self) -> bool:  # type: ignore[override]
        return self.route("label").labels_from_truth

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        return self.route(question.kind).answer(question, ctx)

    def reject(self, question: Question, answer: Any, reason: str) -> None:
        self.route(question.kind).reject(question, answer, reason)

    def prefetch(self, questions: list[Question], ctx: OracleContext) -> None:
        for o in self.oracles():
            mine = [q for q in questions if self.route(q.kind) is o]
            if mine:
                o.prefetch(mine, ctx)

    def start(self, ctx: OracleContext) -> None:
        for o in self.oracles():
            o.start(ctx)

    def status(self, info: dict[str, Any]) -> None:
        for o in self.oracles():
            o.status(info)

    def attach_display(self, paused: Callable[[], ContextManager]) -> None:
        for o in self.oracles():
            o.attach_display(paused)

    def close(self) -> None:
        for o in self.oracles():
            o.close()


class LabelFile(Oracle):
    """Labels from your own CSV: a column of item ids (the dataset's ``item_id``, else the pool index) and a
    column of labels (class names or indices).

    Args:
        path: the CSV file.
        id_column, label_column: the header names of the two columns.
    """

    kinds = ("label",)
    cheap = True
    max_attempts = 1

    def __init__(self, path: str | Path, id_column: str = "id", label_column: str = "label"):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"oracle labels file {self.path} does not exist")
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {id_column, label_column} - set(reader.fieldnames or ())
            if missing:
                raise ConfigError(f"{self.path}: no column {', '.join(sorted(missing))} (the header has "
                                  f"{', '.join(reader.fieldnames or ()) or 'nothing'})")
            self.labels = {str(row[id_column]).strip(): str(row[label_column]).strip() for row in reader}

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        dm = ctx.datamodule
        item_id = dm.item_id(question.item) if hasattr(dm, "item_id") else str(question.item)
        if item_id not in self.labels:
            raise ExilError(f"{self.path} has no label for item {item_id}; add a row for it")
        return self.labels[item_id]

    def reject(self, question: Question, answer: Any, reason: str) -> None:
        raise InvalidAnswer(f"{self.path}: the label {answer!r} of item {question.key} is not valid: {reason}")
