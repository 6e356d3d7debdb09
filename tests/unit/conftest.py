"""Fixtures shared by the unit tests' modules."""

from __future__ import annotations

import pytest

from exil.common.journal import Journal
from exil.common.oracle.asker import Asker
from exil.common.oracle.question import OracleContext
from exil.common.oracle.web import WebOracle
from tests.unit.test_oracle import Tiny


def serve(tmp_path, **settings):
    """A web teacher with ``settings`` serving over real HTTP on a free loopback port, with its asker and journal
    (a generator: the fixtures below yield its one value and then close both)."""
    dm = Tiny()
    dm.setup()
    ctx = OracleContext(dm, dm.class_names, tmp_path / "oracle", strategy="entropy")
    oracle = WebOracle(print_fn=lambda s: None, **settings)
    journal = Journal(tmp_path / "journal.sqlite")
    asker = Asker(oracle, journal, ctx)
    oracle.start(ctx)
    yield oracle, asker, journal
    oracle.close()
    journal.close()


@pytest.fixture
def served(tmp_path):
    """A web teacher serving over real HTTP on a free loopback port, with its asker and journal."""
    yield from serve(tmp_path, review_seconds=0.3, claim_seconds=60, max_body=20_000)


@pytest.fixture
def team(tmp_path):
    """A web teacher for alice, bob and carol (each question to two of them; carol reviews), hiding the model."""
    yield from serve(tmp_path, review_seconds=0, teachers=["alice", "bob", "carol"], overlap=2, reviewer="carol",
                     show_model_explanation=False)
