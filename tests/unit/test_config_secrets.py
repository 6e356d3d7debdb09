"""Credentials in URLs are redacted wherever a config is written: the copy :func:`redact_config` makes, the
journal's config and overrides, the loggers' hyperparameters (``csv/hparams.yaml``), and Hydra's own
``.hydra/*.yaml`` and ``multirun.yaml`` (rewritten by the ``RedactSavedConfig`` callback of a real Hydra run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from exil.common.config_secrets import redact_config, redact_url
from exil.common.oracle.llm import redact

ROOT = Path(__file__).resolve().parents[2]
URL = "https://alice:hunter2-pw@llm.example/v1?api_key=k-abc123&x=1&token=t-xyz789#frag"
SECRETS = ("hunter2-pw", "k-abc123", "t-xyz789", "pw2-secret")


def no_secret(text: str) -> bool:
    return not any(s in text for s in SECRETS)


def test_redact_config_hides_credentials_in_urls_and_keeps_the_rest():
    config = {
        "oracle": {"client": {"base_url": URL, "timeout": 60, "api_key_env": "OPENAI_API_KEY"},
                   "task": "sentiment"},
        "mirrors": ["http://bob:pw2-secret@proxy.local:8080/", "https://plain.example/v1?q=1", 3, None, True],
        "pair": ("https://h/x?access_token=t-xyz789", "x"),
        "dataset": {"name": "sk-learn_digits_0123456789", "note": "Bearer abcdefgh", "query": "a?key=b"},
        "https://carol:pw@key.example": "keys are kept",
    }
    before = json.dumps(config, default=str)
    clean = redact_config(config)
    assert json.dumps(config, default=str) == before  # a copy: the config given is unchanged
    assert clean["oracle"]["client"] == {
        "base_url": "https://alice:[redacted]@llm.example/v1?api_key=[redacted]&x=1&token=[redacted]#frag",
        "timeout": 60, "api_key_env": "OPENAI_API_KEY"}
    assert clean["mirrors"] == ["http://bob:[redacted]@proxy.local:8080/", "https://plain.example/v1?q=1", 3, None,
                                True]
    assert clean["pair"] == ("https://h/x?access_token=[redacted]", "x")
    assert clean["dataset"] == config["dataset"]  # no URL in them: not touched (sk-..., Bearer: not a URL's)
    assert "https://carol:pw@key.example" in clean  # keys are not values
    assert no_secret(json.dumps(clean, default=str))
    # one set of patterns: the client's redact() hides the same in its messages
    assert redact_url(URL) == redact(URL) == clean["oracle"]["client"]["base_url"]


def test_the_journal_and_the_loggers_get_the_redacted_config(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from exil.common.hooks import RoundHooks
    from exil.common.journal import Journal, read_journal
    from exil.common.loop import ActiveLoop, LoopConfig
    from exil.common.run_log import RunLog

    config = {"oracle": {"client": {"base_url": URL}}, "loop": {"seed": 1}}
    overrides = [f"oracle.client.base_url={URL}", "loop.seed=1"]
    loop = ActiveLoop(LoopConfig(), None, None, None, None, RoundHooks(), None, tmp_path, config=config,
                      overrides=overrides)
    loop.journal = Journal(tmp_path / "journal.sqlite")
    loop._check_config()
    loop.journal.close()
    meta = read_journal(tmp_path / "journal.sqlite")["meta"]
    assert "[redacted]" in json.dumps(meta["config"]) and no_secret(json.dumps(meta))
    assert meta["overrides"][1] == "loop.seed=1" and "[redacted]" in meta["overrides"][0]

    # a journal written before redaction (its config has the password) still resumes: compared redacted
    (tmp_path / "old").mkdir()
    old = Journal(tmp_path / "old" / "journal.sqlite")
    old.set_meta("config", config)
    resumed = ActiveLoop(LoopConfig(), None, None, None, None, RoundHooks(), None, tmp_path / "old", config=config)
    resumed.journal = old
    resumed._check_config()  # no "started with another config"
    old.close()

    lg = CSVLogger(tmp_path, name="csv", version="")
    RunLog([lg]).start(config)
    lg.save()
    hparams = (Path(lg.log_dir) / "hparams.yaml").read_text()
    assert "[redacted]" in hparams and no_secret(hparams)


def test_a_real_hydra_run_and_sweep_leave_no_credential_in_their_saved_configs(tmp_path):
    # exil's own config registers the callback
    callbacks = OmegaConf.load(ROOT / "common" / "conf" / "config.yaml").hydra.callbacks
    assert callbacks.redact._target_ == "exil.common.config_secrets.RedactSavedConfig"
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(
        "base_url: https://api.example/v1\nfrom_env: ${oc.env:NO_SUCH_VARIABLE_HERE,https://d.example}\n"
        "seed: 0\nhydra:\n  callbacks:\n    redact:\n      _target_: exil.common.config_secrets.RedactSavedConfig\n")
    app = tmp_path / "app.py"
    app.write_text(
        "import hydra\n"
        f"@hydra.main(version_base='1.3', config_path={str(conf)!r}, config_name='config')\n"
        "def main(cfg):\n"
        "    print('RAN', cfg.base_url)\n"
        "main()\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="1")

    def hydra(*args: str) -> str:
        done = subprocess.run([sys.executable, str(app), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run = tmp_path / "run"
    out = hydra(f"base_url='{URL}'", f"hydra.run.dir={run}")  # quoted: the query's = and & in an override
    assert "RAN https://alice:hunter2-pw@" in out  # the job itself gets the real URL
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        text = (run / ".hydra" / name).read_text()
        assert "[redacted]" in text and no_secret(text), name
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert saved.base_url == redact_url(URL) and saved.seed == 0
    assert OmegaConf.to_container(saved)["from_env"] == "${oc.env:NO_SUCH_VARIABLE_HERE,https://d.example}"

    sweep = tmp_path / "sweep"
    hydra("-m", f"base_url='{URL}','http://bob:pw2-secret@h/v1'", f"hydra.sweep.dir={sweep}")
    files = [sweep / "multirun.yaml", *sorted(sweep.glob("*/.hydra/*.yaml"))]
    assert len(files) == 7
    for f in files:
        assert no_secret(f.read_text()), f
    assert not list(sweep.rglob("*.tmp"))


@pytest.mark.parametrize("body", ["[1, 2]", "a: https://u:pw@h\n"])
def test_redact_yaml_file_rewrites_only_what_has_a_credential(tmp_path, body):
    from exil.common.config_secrets import redact_yaml_file

    f = tmp_path / "c.yaml"
    f.write_text(body)
    assert redact_yaml_file(f) == ("pw" in body)
    assert "pw@" not in f.read_text()
    assert not redact_yaml_file(tmp_path / "absent.yaml")
