"""Shared test helpers: compose the real configs (shrunk) the way `exil` does, and run them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

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


def compose(overrides: list[str], run_dir: Path | None = None):
    """The composed config for ``overrides``, with Hydra's runtime set as in a real run in ``run_dir``."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from common.cli import _register_resolvers

    _register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=overrides, return_hydra_config=True)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.paths.log_dir = str(run_dir.parent)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: the task sees the config without the hydra node
    return cfg


@pytest.fixture
def run_cfg(tmp_path):
    """``run_cfg(overrides)`` → a composed, tiny config whose run directory is under tmp_path."""

    def make(overrides: list[str] = (), tiny: bool = True):
        return compose([*(TINY if tiny else []), *overrides], tmp_path / "run")

    return make
