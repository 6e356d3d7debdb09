"""What a follower rank of a multi-process run does with rank 0's commands (:mod:`exil.common.distributed`).

* ``config`` — build the run's data and model from rank 0's config (``build(config, run_dir)``);
* ``fit`` — take rank 0's pool state and architecture, seed as rank 0 does, and call ``trainer.fit``: Lightning's
  DDP splits the batches across the ranks;
* ``score`` — load rank 0's weights when sent, compute this rank's shard of the pool output and send it back.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from exil.common.distributed import Team, set_pool_state
from exil.common.pool_map import map_pool
from exil.common.run_folder import load_module_state


def follow(team: Team, build: Callable[[dict, str], Any]) -> str | None:
    """Serve rank 0's commands until the run is done; ``build(config, run_dir)`` returns the run's parts
    (``module``, ``dm``, ``make_trainer``). Returns rank 0's run folder (None if rank 0 sent no run)."""
    import lightning.pytorch as pl

    parts, run_dir = None, None
    for cmd in team.commands():
        if cmd[0] == "config":
            _, config, run_dir = cmd
            parts = build(config, run_dir)
        elif cmd[0] == "fit":
            _, r, seed, state, arch = cmd
            set_pool_state(parts.dm, state)
            if arch != parts.module.architecture_spec():
                parts.module.apply_architecture_spec(arch)
            pl.seed_everything(seed, workers=True, verbose=False)
            trainer = parts.make_trainer(r, os.path.join(run_dir, "rounds", f"{r:03d}"))
            trainer.fit(parts.module, datamodule=parts.dm)
        else:  # score
            _, indices, bounds, output, weights = cmd
            if weights is not None:
                load_module_state(parts.module, {"arch": weights[0], "state_dict": weights[1]})
            lo, hi = bounds[team.rank]
            team.send_shard(*map_pool(parts.module, parts.dm, indices[lo:hi], output, team.device, start=lo))
    return run_dir
