"""Shared test helpers: compose the real configs (shrunk) the way `exil` does, and run them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exil.common.engine import compose  # noqa: F401  (tests import it from here)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # (and for every exil process a test starts)
    import torch

    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

#: overrides that make any run tiny: few rounds, few epochs, small pool
TINY = [
    "loop.rounds=2",
    "loop.query_size=5",
    "loop.initial_per_class=1",
    "trainer.max_epochs=2",
    "logger=csv",
]


@pytest.fixture
def run_cfg(tmp_path):
    """``run_cfg(overrides)`` → a composed, tiny config whose run directory is under tmp_path."""

    def make(overrides: list[str] = (), tiny: bool = True):
        return compose([*(TINY if tiny else []), *overrides], tmp_path / "run")

    return make
