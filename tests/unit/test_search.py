"""A persistent Optuna study (``hydra.sweeper.storage=sqlite:///...``): exil's seeded samplers make a resumed study
ask new trials, not the first invocation's again; storage settings that cannot work are refused in one line."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")


def _objective(trial):
    return trial.suggest_float("lr", 1e-4, 1e-1, log=True) + len(trial.suggest_categorical("s", ["ab", "c"]))


def _invocations(sampler_cls, storage, sizes, name="s"):
    """Each of ``sizes`` is one invocation: a fresh sampler (seed 7), the study loaded from ``storage``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for n in sizes:
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="maximize",
                                    sampler=sampler_cls(seed=7, n_startup_trials=3))
        study.optimize(_objective, n_trials=n)
    return [t.params for t in study.trials]


def test_a_resumed_study_asks_new_trials_the_same_as_one_run_in_one_go(tmp_path):
    from exil.common.search import TPESampler

    resumed = _invocations(TPESampler, f"sqlite:///{tmp_path / 'a.db'}", [2, 2, 2])
    at_once = _invocations(TPESampler, f"sqlite:///{tmp_path / 'b.db'}", [6])
    assert len(resumed) == 6 and len({p["lr"] for p in resumed}) == 6
    assert resumed == at_once  # trial n's draws depend on (seed, n) only
    # Optuna's own seeded sampler, made afresh by the second invocation, repeats the first invocation's (random
    # start-up) trials
    plain = _invocations(lambda **kw: optuna.samplers.TPESampler(**kw), f"sqlite:///{tmp_path / 'c.db'}", [2, 1])
    assert plain[2] == plain[0]


def test_an_unseeded_sampler_is_optunas(tmp_path):
    from exil.common.search import RandomSampler, TPESampler

    study = optuna.create_study(sampler=TPESampler(seed=None))
    study.optimize(_objective, n_trials=3)
    study = optuna.create_study(sampler=RandomSampler(seed=3))
    study.optimize(_objective, n_trials=3)
    assert len(study.trials) == 3


def test_storage_settings_that_cannot_work_are_one_line_naming_what_works(tmp_path):
    import sqlalchemy

    from exil.common.cli import missing_plugin

    def said(*argv):
        return missing_plugin(["-m", "hparams_search=digits_optuna", *argv])

    if int(sqlalchemy.__version__.split(".")[0]) >= 2:  # installed without exil[search]'s SQLAlchemy 1.4
        msg = said(f"hydra.sweeper.storage=sqlite:///{tmp_path}/s.db")
        assert "pip install 'exil[search]'" in msg and "\n" not in msg
        return
    assert said(f"hydra.sweeper.storage=sqlite:///{tmp_path}/s.db") is None
    msg = said("hydra.sweeper.storage=study.db")
    assert msg.startswith("hydra.sweeper.storage=study.db is not a database URL") and "sqlite:///study.db" in msg
    msg = said(f"hydra.sweeper.storage=sqlite:///{tmp_path}/nowhere/s.db")
    assert f"the folder {tmp_path}/nowhere does not exist" in msg
    # a resumed study's trials would be numbered from 0 again onto the earlier invocation's runs
    (tmp_path / "sweep" / "0").mkdir(parents=True)
    (tmp_path / "sweep" / "0" / "journal.sqlite").write_bytes(b"")
    msg = said(f"hydra.sweeper.storage=sqlite:///{tmp_path}/s.db", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert msg.startswith(f"hydra.sweep.dir={tmp_path / 'sweep'} already holds the runs of an earlier invocation (0)")
    assert "a folder of its own" in msg and "\n" not in msg
    assert said(f"hydra.sweeper.storage=sqlite:///{tmp_path}/s.db", f"hydra.sweep.dir={tmp_path / 'new'}") is None
