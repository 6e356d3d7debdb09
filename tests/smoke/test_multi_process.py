"""Real multi-process runs launched by torchrun on this machine: CPU processes over gloo (trainer=ddp_multi_cpu).

* 2 processes: the run finishes with one writer (rank 0's run folder, one oracle session), and the queries it
  journaled are the top entropy of a single-process scoring of the same weights (the sharded, gathered
  scores are exact);
* 2 "nodes" × 2 processes, two torchrun launchers rendezvousing on the loopback address: the same queries
  as a single-process run of the same seed where the maths allows it (``strategy=random``: the selection does
  not depend on the weights, which DDP's batch split changes);
* a killed 2-process run resumed with ``loop.resume`` ends with the uninterrupted run's journal: labels,
  queries, answers (none lost, none asked twice) and metrics.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.smoke.test_resume_after_kill import outcome, query

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["loop.rounds=2", "loop.query_size=5", "loop.initial_per_class=1", "trainer.max_epochs=2", "loop.seed=3",
        "print_config=false", "loop.keep_checkpoints=all"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], nproc: int = 2, nnodes: int = 1, node_rank: int = 0, port: int | None = None,
             cwd: Path = ROOT) -> subprocess.Popen:
    """``torchrun … -m exil.common.cli <args>``."""
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--nproc-per-node={nproc}",
           f"--node-rank={node_rank}", "--master-addr=127.0.0.1", f"--master-port={port or _free_port()}",
           "-m", "exil.common.cli", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def single(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "exil.common.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        raise
    assert proc.returncode == 0, out[-5000:]
    return out


def test_two_processes_score_in_shards_and_write_once(tmp_path):
    run_dir = tmp_path / "run"
    out = finish(torchrun([*ARGS, "trainer=ddp_multi_cpu", "strategy=entropy", f"hydra.run.dir={run_dir}"]))
    assert "learning curve" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the follower wrote no run folder of its own
    db = run_dir / "journal.sqlite"
    assert query(db, "SELECT COUNT(*) FROM answers")[0][0] == 10 + 2 * 5
    assert len(query(db, "SELECT DISTINCT session FROM answers")) == 1  # one writer, one oracle
    assert query(db, "SELECT value FROM meta WHERE key = 'config'")[0][0].count('"strategy": "ddp"') == 1

    # round 1's queries against a single-process scoring of round 1's weights
    import json
    import sqlite3

    from omegaconf import OmegaConf

    from exil.common.engine import build_parts
    from exil.common.run_folder import load_checkpoint, load_module_state
    from exil.common.strategies import heuristics
    from exil.common.strategies.context import QueryContext

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    config = json.loads(con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
    labelled = con.execute("SELECT item, label FROM labelled WHERE round <= 1 ORDER BY seq").fetchall()
    asked = [r[0] for r in con.execute("SELECT item FROM queries WHERE round = 1 ORDER BY position")]
    scores = [r[0] for r in con.execute("SELECT score FROM queries WHERE round = 1 ORDER BY position")]
    con.close()
    config["trainer"] = {"_target_": "lightning.pytorch.Trainer", "accelerator": "cpu", "devices": 1}
    config["paths"] = {"data_dir": str(ROOT / "data"), "log_dir": str(tmp_path)}
    parts = build_parts(OmegaConf.create(config))
    load_module_state(parts.module, load_checkpoint(run_dir / "checkpoints" / "round_001_end.pt"))
    parts.dm.label([i for i, _ in labelled], [y for _, y in labelled])
    ctx = QueryContext(parts.module, parts.dm, parts.dm.unlabelled_indices, "cpu")
    entropy = heuristics.entropy(ctx.probs()).double().numpy()
    top = ctx.candidates[np.argsort(-entropy, kind="stable")[:5]]
    assert sorted(asked) == sorted(top.tolist())
    np.testing.assert_allclose(scores, entropy[np.searchsorted(ctx.candidates, asked)], rtol=1e-6)


@pytest.mark.slow  # four processes; CI keeps two processes scoring in shards and the srun launch
def test_two_nodes_of_two_processes_ask_what_one_process_asks(tmp_path):
    args = [*ARGS, "strategy=random", "loop.rounds=3"]
    port = _free_port()
    nodes = [torchrun([*args, "trainer=ddp_multi_cpu", f"hydra.run.dir={tmp_path / 'multi'}"], nproc=2, nnodes=2,
                      node_rank=k, port=port) for k in (0, 1)]
    ref = single([*args, f"hydra.run.dir={tmp_path / 'single'}"])
    for p in nodes:
        finish(p)
    finish(ref)
    multi, one = outcome(tmp_path / "multi"), outcome(tmp_path / "single")
    assert multi["queries"] == one["queries"] and multi["labelled"] == one["labelled"]
    assert multi["answers"] == one["answers"]
    config = query(tmp_path / "multi" / "journal.sqlite", "SELECT value FROM meta WHERE key = 'config'")[0][0]
    assert '"num_nodes": 2' in config and '"devices": 2' in config  # read from torchrun's environment
    # the model trained: its accuracy is not the single run's (DDP splits the batches), but it is a number
    accs = [v for r, n, name, v in multi["metrics"] if name == "test/acc"]
    assert len(accs) == 4 and all(np.isfinite(accs))


@pytest.mark.slow  # a launched run killed and resumed; CI keeps the multi-process runs and the single-process kills
def test_killed_multi_process_run_resumes_like_a_single_one(tmp_path):
    args = [*ARGS, "trainer=ddp_multi_cpu", "strategy=entropy", "oracle.latency=0.15", "loop.rounds=3",
            "loop.query_size=4"]
    ref = torchrun([*args, f"hydra.run.dir={tmp_path / 'ref'}"])
    finish(ref)
    killed_dir = tmp_path / "killed"
    proc = torchrun([*args, f"hydra.run.dir={killed_dir}"])
    db = killed_dir / "journal.sqlite"
    t0 = time.time()
    while time.time() - t0 < 300:  # mid-ask in round 1: two of its four answers are in
        rows = query(db, "SELECT COUNT(*) >= 2 FROM answers WHERE round = 1")
        if rows and rows[0][0]:
            kill_tree(proc.pid)  # every process of the launch, as a lost job
            proc.wait()
            time.sleep(0.5)
            break
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.02)
    else:
        kill_tree(proc.pid)
        pytest.fail("kill point never reached")
    before = query(db, "SELECT COUNT(*) FROM answers WHERE round >= 0")[0][0]
    assert 0 < before < 12
    finish(torchrun(["trainer=ddp_multi_cpu", f"loop.resume={killed_dir}"]))
    got, expected = outcome(killed_dir), outcome(tmp_path / "ref")
    assert got == expected
    assert len(got["answers"]) == 10 + 3 * 4
    sessions = query(db, "SELECT session, COUNT(*) FROM answers GROUP BY session")
    assert len(sessions) == 2  # answered by the killed launch and the resumed one, none twice


def test_processes_started_by_srun_form_one_run(tmp_path):
    """Two tasks of a SLURM job step as ``srun --ntasks=2`` starts them (the environment SLURM gives each task,
    simulated here: no SLURM on this machine), found by Lightning's SLURM environment."""
    port = _free_port()
    procs = []
    for task in (0, 1):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_", "GROUP_"))
               and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")}
        env.update(WANDB_MODE="offline", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", SLURM_NTASKS="2",
                   SLURM_PROCID=str(task), SLURM_LOCALID=str(task), SLURM_NODEID="0", SLURM_NNODES="1",
                   SLURM_NTASKS_PER_NODE="2", SLURM_JOB_ID="4242", SLURM_JOB_NAME="exil",
                   SLURM_NODELIST="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "exil.common.cli", *ARGS, "loop.rounds=1", "trainer.max_epochs=1",
             "trainer=ddp_multi_cpu", "strategy=random",
             f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    for p in procs:
        finish(p)
    db = tmp_path / "run" / "journal.sqlite"
    assert query(db, "SELECT COUNT(*) FROM answers")[0][0] == 10 + 5  # one round (a fit across both tasks)
    config = query(db, "SELECT value FROM meta WHERE key = 'config'")[0][0]
    assert '"devices": 2' in config and '"num_nodes": 1' in config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
