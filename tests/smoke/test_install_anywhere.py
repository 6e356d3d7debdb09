"""exil as a user installs it: the built wheel in a fresh virtual environment carries every config and runs from
an unrelated folder, by command and by the Python API; and a user's own strategy and method, in their own folder
outside the repository, run with ``--config-dir`` and no ``PYTHONPATH``."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("test_install_anywhere")  # its module-scoped fixture is built once, in one worker

TINY = ["loop.rounds=1", "loop.query_size=5", "loop.initial_per_class=1", "trainer.max_epochs=1", "loop.threads=1"]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return dict(env, WANDB_MODE="offline", WANDB_SILENT="true")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new virtual environment with only the wheel of exil installed in it (``--no-deps``); its dependencies
    come from this environment's site-packages through a ``.pth`` line (whose own ``.pth`` files, the editable
    install's among them, are not run), so the test costs seconds, not a 6 GB install."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, cwd=tmp, env=clean_env(), timeout=600)
    (wheel,) = (tmp / "dist").glob("exil-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, env=clean_env(), timeout=600)
    return venv


def test_the_wheel_carries_every_config_and_runs_from_anywhere(fresh_venv, tmp_path):
    import zipfile

    (wheel,) = (fresh_venv.parent / "dist").glob("exil-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    ours = sorted(str(p.relative_to(ROOT / "common")) for p in (ROOT / "common" / "conf").rglob("*.yaml"))
    assert sorted(n[len("exil/common/"):] for n in names if n.startswith("exil/common/conf/")) == ours
    assert "exil/__init__.py" in names and any(n.endswith("views/label.js") for n in names)
    # one name at the top: exil (and its metadata, the licence among it)
    assert {n.split("/")[0] for n in names} == {"exil", wheel.name.split("-py3")[0] + ".dist-info"}
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names) and "exil/py.typed" in names

    elsewhere = tmp_path / "somewhere"  # the `exil` command from an unrelated folder: the namesake test below
    elsewhere.mkdir()
    script = textwrap.dedent(f"""
        import exil.common, exil
        assert {str(fresh_venv)!r} in exil.common.__file__, exil.common.__file__  # the wheel's copy, not the repository
        cfg = exil.compose({TINY!r} + ["strategy=margin"], run_dir={str(elsewhere / 'api')!r})
        rows = exil.results(exil.run(cfg))
        print("rows", [(r["round"], r["n_labels"]) for r in rows])
    """)
    p = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", script], cwd=elsewhere, env=clean_env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "rows [(0, 10), (1, 15)]" in p.stdout


PROJECT = {
    "my_strategies.py": '''
        """A user's strategy: the smallest margin between the two most likely classes."""
        from exil.common.strategies.base import ScoreStrategy


        class SmallestMargin(ScoreStrategy):
            name = "smallest_margin"

            def score(self, ctx):
                top2 = ctx.probs().topk(2, dim=1).values
                return -(top2[:, 0] - top2[:, 1])  # higher = asked first
        ''',
    "my_method.py": '''
        """A user's method: plain active learning that also reports how many labels each class holds."""
        from exil.common.hooks import RoundHooks


        class CountingHooks(RoundHooks):
            def metrics(self, ctx):
                labels = list(ctx.datamodule.labels.values())
                return {"my/classes_labelled": float(len(set(labels)))}
        ''',
    "my_conf/strategy/smallest_margin.yaml": "_target_: my_strategies.SmallestMargin\n",
    "my_conf/method/counting.yaml": '''
        defaults:
          - baseline
          - _self_
        name: counting
        hooks:
          _target_: my_method.CountingHooks
        ''',
}


#: a user project whose own package names are the ones exil's folders have (and PyPI's `common`): the wheel
#: installs only `exil`, so neither shadows the other
NAMESAKES = {
    "common/__init__.py": "",
    "common/utils.py": '''
        def margin(probs):
            top2 = probs.topk(2, dim=1).values
            return top2[:, 0] - top2[:, 1]
        ''',
    "alice/__init__.py": 'WHO = "the user\'s own alice"\n',
    "utils/__init__.py": "",
    "my_strategies.py": '''
        from common.utils import margin  # the user's own `common`, not exil's
        from exil.common.strategies.base import ScoreStrategy


        class SmallestMargin(ScoreStrategy):
            name = "smallest_margin"

            def score(self, ctx):
                return -margin(ctx.probs())
        ''',
    "my_conf/strategy/smallest_margin.yaml": "_target_: my_strategies.SmallestMargin\n",
}


def test_the_wheel_beside_a_project_with_its_own_common_alice_and_utils(fresh_venv, tmp_path):
    project = tmp_path / "proj"
    for rel, text in NAMESAKES.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(textwrap.dedent(text).lstrip())
    exe = fresh_venv / "bin" / "exil"
    p = subprocess.run([str(exe), "-m", "--config-dir", str(project / "my_conf"), "strategy=smallest_margin",
                        "loop.seed=0,1", *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=project,
                       env=clean_env(), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    journals = sorted((tmp_path / "sweep").rglob("journal.sqlite"))
    assert len(journals) == 2
    from exil.common.journal import read_journal

    for j in journals:
        meta = read_journal(j)["meta"]
        assert meta["config"]["strategy"]["_target_"] == "my_strategies.SmallestMargin"
    # from Python in the project's folder: both packages importable side by side
    p = subprocess.run([str(fresh_venv / "bin" / "python"), "-c",
                        "import alice, common.utils, exil.alice.hooks, exil; print(alice.WHO, exil.__version__)"],
                       cwd=project, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.startswith("the user's own alice ")


def test_a_target_that_fails_to_import_names_its_cause_in_one_line(tmp_path):
    """A ``_target_`` whose module fails inside (here: an import of a missing module) is reported with that
    cause, in one line, not as Hydra's "Error locating target" alone."""
    conf = tmp_path / "conf" / "strategy"
    conf.mkdir(parents=True)
    (conf / "broken.yaml").write_text("_target_: broken_strategy.Broken\n")
    (tmp_path / "broken_strategy.py").write_text("import not_installed_anywhere\n")
    p = subprocess.run([str(Path(sys.executable).parent / "exil"), "--config-dir", str(tmp_path / "conf"),
                        "strategy=broken", *TINY, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                       env=clean_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "broken_strategy.Broken" in lines[0] and "No module named 'not_installed_anywhere'" in lines[0]
    assert "EXIL_TRACEBACK=1" in lines[0]
    # EXIL_TRACEBACK=1: the whole traceback, down to the import that failed, with no second variable to set
    p = subprocess.run([str(Path(sys.executable).parent / "exil"), "--config-dir", str(tmp_path / "conf"),
                        "strategy=broken", *TINY, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                       env={**clean_env(), "EXIL_TRACEBACK": "1"}, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "Traceback (most recent call last)" in p.stderr, p.stderr[-3000:]
    assert 'broken_strategy.py", line 1' in p.stderr and "import not_installed_anywhere" in p.stderr
    assert "for a complete stack trace" not in p.stderr, p.stderr[-3000:]  # Hydra's own shortening is off


def test_your_own_strategy_and_method_outside_the_repository(tmp_path):
    project = tmp_path / "my_project"
    for rel, text in PROJECT.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(textwrap.dedent(text).lstrip())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exe = Path(sys.executable).parent / "exil"
    p = subprocess.run([str(exe), "--config-dir", str(project / "my_conf"), "strategy=smallest_margin",
                        "method=counting", *TINY, "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}"], cwd=elsewhere,
                       env=clean_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    from exil.common.journal import read_journal
    from tests.wandb_records import summary

    # the method's own metric is drawn against the labels in W&B, as the built-in ones are
    (wandb_file,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    defined = dict(summary(wandb_file)["metrics"])
    assert defined.get("my/classes_labelled") == "n_labels" and defined.get("test/acc") == "n_labels", defined

    j = read_journal(tmp_path / "run" / "journal.sqlite")
    assert j["meta"]["config"]["choices"]["strategy"] == "smallest_margin"
    assert j["meta"]["config"]["method"]["hooks"]["_target_"] == "my_method.CountingHooks"
    assert all("my/classes_labelled" in m for m in j["metrics"].values())
    # the same from Python
    import exil

    cfg = exil.compose(["strategy=smallest_margin", "method=counting", *TINY], run_dir=tmp_path / "api",
                       config_dir=project / "my_conf")
    rows = exil.results(exil.run(cfg))
    assert rows[-1]["my/classes_labelled"] >= 1
