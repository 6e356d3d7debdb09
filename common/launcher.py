"""Whether a launcher (``torchrun``, SLURM's ``srun``) started this process among several, read from the
environment alone: every ``exil`` command asks before anything else, so this module imports neither torch nor
Lightning unless the environment says a launcher is there (:mod:`exil.common.distributed` runs the team)."""

from __future__ import annotations

import os

from exil.common.errors import ConfigError

#: the trainer strategy that means "processes started by a launcher" (trainer=ddp_multi, ddp_multi_cpu)
LAUNCHED = "ddp"


def launcher_env():
    """Lightning's cluster environment of a launcher that started several processes (torchrun, srun), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return None  # one process: decided without importing Lightning (seconds every `exil` command would wait)
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return SLURMEnvironment()
    return None


def launched_rank() -> int | None:
    """This process's global rank when a launcher started several (before any process group exists)."""
    env = launcher_env()
    return env.global_rank() if env is not None else None


def devices_per_node() -> int:
    """Processes per node of the launch (torchrun's LOCAL_WORLD_SIZE, SLURM's tasks per node), else 1."""
    if "LOCAL_WORLD_SIZE" in os.environ:
        return int(os.environ["LOCAL_WORLD_SIZE"])
    tasks = os.environ.get("SLURM_NTASKS_PER_NODE")
    if tasks:
        return int(tasks.split("(")[0])
    if "SLURM_NTASKS" in os.environ and "SLURM_NNODES" in os.environ:
        return int(os.environ["SLURM_NTASKS"]) // int(os.environ["SLURM_NNODES"])
    return 1


def num_nodes() -> int:
    """Nodes of the launch (WORLD_SIZE / LOCAL_WORLD_SIZE under torchrun, SLURM_NNODES under srun), else 1."""
    if "WORLD_SIZE" in os.environ and "LOCAL_WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"]) // int(os.environ["LOCAL_WORLD_SIZE"])
    return int(os.environ.get("SLURM_NNODES", "1"))


def check_launch(trainer_cfg):
    """The launcher's environment when one started this process among several, else None. Refuses a launched
    run whose trainer would not use the launched processes, and a ``ddp_multi`` trainer without a launcher."""
    strategy = str(trainer_cfg.get("strategy", "auto"))
    env = launcher_env()
    if env is None:
        if strategy == LAUNCHED:
            raise ConfigError("trainer.strategy=ddp (trainer=ddp_multi / ddp_multi_cpu) runs in processes a launcher "
                              "started: `torchrun --nproc-per-node=N $(which exil) trainer=ddp_multi ...` or `srun "
                              "exil trainer=ddp_multi ...`; on one machine without a launcher use trainer=ddp "
                              "(ddp_spawn) or trainer=ddp_sim")
        return None
    if strategy != LAUNCHED:
        raise ConfigError(f"this process is one of {env.world_size()} that a launcher started, but "
                          f"trainer.strategy={strategy} runs one loop per process (they would write the same run "
                          "folder): use trainer=ddp_multi (GPUs) or trainer=ddp_multi_cpu (CPU processes, gloo)")
    return env
