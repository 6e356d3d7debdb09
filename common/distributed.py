"""One active loop over several processes and machines: launched by ``torchrun`` or SLURM's ``srun``.

``trainer=ddp_multi`` (GPUs) and ``trainer=ddp_multi_cpu`` (CPU processes over gloo) use Lightning's DDP in
processes that a launcher started (``torchrun --nnodes=N --nproc-per-node=G``, or ``srun`` with one task per
device). ``trainer=ddp`` (``ddp_spawn``) stays the way for one machine without a launcher: the loop runs in
one process and each round's fit spawns workers.

**Rank 0 runs the loop; the others follow.** Rank 0 alone composes and resumes the config, writes the
journal, the checkpoints and the logs, and talks to the oracle: one writer, as in a single-process run, so a
killed run resumes the same way (relaunch the same command with ``loop.resume=<run dir>``). Every other rank
builds the same data and model from the config rank 0 sends it and then serves rank 0's commands, broadcast
over a gloo control group. :class:`Team` carries the commands and the outputs; what a follower does with each
is :mod:`exil.common.follower`'s:

* ``fit`` — the round's labelled set, annotations, extras and the model's architecture: every rank calls
  ``trainer.fit`` with the same seed and Lightning's DDP splits the batches (DDP copies rank 0's weights to
  every rank when it wraps the model);
* ``score`` — a :class:`~exil.common.strategies.context.PoolOutput` over a list of pool items (with rank 0's
  weights when the follower's copy differs): each rank computes its contiguous shard, whose ends are
  multiples of the batch size, and sends it to rank 0 with the pool index of every item it served; rank 0
  checks that the gathered items are exactly the ones asked, once each, in order
  (:func:`~exil.common.strategies.context.check_served`), then selects on the gathered outputs;
* ``done`` — the run is over (a multirun's next job sends its config again).

**Same queries as one process?** Scoring is exact: the gathered outputs are those a single process computes
with the same weights (the batches are the same). The fit is not: DDP gives each of W ranks 1/W of every
epoch's batches and averages their gradients, so the weights — and the queries that follow — differ from a
single process's unless the fit does not depend on the batch split (``strategy=random``, or rounds whose
queries come before any fit).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from exil.common.errors import ExilError
from exil.common.launcher import (  # noqa: F401 - re-exported
    LAUNCHED,
    check_launch,
    devices_per_node,
    launched_rank,
    launcher_env,
    num_nodes,
)
from exil.common.pool_map import allocate, check_served, map_pool

#: this process's team once joined: a multirun's jobs run in one process and share its process group
_TEAM: "Team | None" = None


def join(trainer_cfg) -> "Team | None":
    """The process group of this run (made once per process), or None for a single process (the checks of
    :func:`check_launch` first). The run engine joins once, where a run starts, and passes the team on."""
    global _TEAM
    env = check_launch(trainer_cfg)
    if env is None:
        return None
    if _TEAM is not None:
        return _TEAM
    import torch.distributed as dist
    from lightning.fabric.utilities.distributed import _init_dist_connection

    accelerator = str(trainer_cfg.get("accelerator", "cpu"))
    gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(env.local_rank())
    _init_dist_connection(env, "nccl" if gpu else "gloo")  # Lightning's DDP finds and keeps this group
    control = dist.new_group(backend="gloo")  # commands and gathered outputs travel on the CPU
    atexit.register(_leave)  # gloo's threads torn down before the interpreter's: no abort at exit
    device = torch.device("cuda", env.local_rank()) if gpu else torch.device("cpu")
    _TEAM = Team(env.global_rank(), env.world_size(), env.local_rank(), control, device)
    return _TEAM


def _leave() -> None:
    import torch.distributed as dist

    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - at exit, a group already gone is fine
        pass


@dataclass
class Team:
    """This process's place in a multi-process run, and the commands rank 0 sends the others (module docstring)."""

    rank: int
    world_size: int
    local_rank: int
    control: Any  # the gloo process group of commands and gathers
    device: torch.device
    _synced: str | None = None  # fingerprint of the weights the followers hold (rank 0), None: unknown

    # --------------------------------------------------------------- messages
    def broadcast(self, obj: Any = None) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def send_config(self, config: dict, run_dir: str) -> None:
        self.broadcast(("config", config, str(run_dir)))

    def done(self) -> None:
        self.broadcast(("done",))

    # ----------------------------------------------------------------- rank 0
    def fit(self, round: int, seed: int, module, datamodule) -> None:
        """Tell the followers to fit round ``round`` with rank 0's pool state; rank 0 then calls ``trainer.fit``."""
        self.broadcast(("fit", round, seed, pool_state(datamodule), module.architecture_spec()))
        # DDP keeps the parameters equal, but each rank's last batch moves its own batch-norm statistics
        self._synced = None

    def score(self, module, datamodule, indices: np.ndarray, output, device: torch.device,
              keep: tuple[str, ...] = ()) -> tuple[torch.Tensor, ...]:
        """``output`` over ``indices`` computed in shards by every rank, gathered here in order and checked."""
        import torch.distributed as dist


        bounds = shard_bounds(len(indices), datamodule.eval_batch_size, self.world_size)
        fingerprint = weights_fingerprint(module)
        state = None
        if self._synced != fingerprint:
            state = (module.architecture_spec(), {k: v.detach().cpu() for k, v in module.state_dict().items()})
        self.broadcast(("score", indices, bounds, output, state))
        self._synced = fingerprint
        lo, hi = bounds[0]
        mine, served = map_pool(module, datamodule, indices[lo:hi], output, device, keep, start=lo)
        shapes = [None] * self.world_size
        dist.gather_object(None, shapes, dst=0, group=self.control)  # each follower's output shapes and dtypes
        dim = output.item_dim
        like = mine if hi > lo else _shaped_like(shapes, dim, device, len(mine))
        outs = [allocate(m, dim, len(indices), keep[i] if i < len(keep) else None) for i, m in enumerate(like)]
        all_served = np.empty(len(indices), dtype=np.int64)
        all_served[lo:hi] = served
        if hi > lo:
            for o, m in zip(outs, mine):
                o.narrow(dim, lo, hi - lo).copy_(m)
        for r in range(1, self.world_size):
            lo, hi = bounds[r]
            got = torch.empty(hi - lo, dtype=torch.int64)
            dist.recv(got, src=r, group=self.control)
            all_served[lo:hi] = got.numpy()
            for o, (shape, dtype) in zip(outs, shapes[r]):
                buf = torch.empty(shape, dtype=getattr(torch, dtype))
                dist.recv(buf, src=r, group=self.control)
                if hi > lo:
                    o.narrow(dim, lo, hi - lo).copy_(buf)
        check_served(all_served, indices)
        return tuple(outs)

    # -------------------------------------------------------------- followers
    def commands(self) -> Iterator[tuple]:
        """Rank 0's commands as they come (``("config", config, run_dir)``, ``("fit", round, seed, pool state,
        architecture)``, ``("score", indices, bounds, output, weights or None)``), until it says the run is done.
        What a follower does with each is :mod:`exil.common.follower`'s."""
        while True:
            cmd = self.broadcast()
            if cmd[0] == "done":
                return
            if cmd[0] not in ("config", "fit", "score"):
                raise ExilError(f"unknown command from rank 0: {cmd[0]!r}")
            yield cmd

    def send_shard(self, out: tuple[torch.Tensor, ...], served: np.ndarray) -> None:
        """A follower's shard of a ``score`` command to rank 0: its outputs' shapes and dtypes, the pool index of
        every item it served, then the outputs (what :meth:`score` receives)."""
        import torch.distributed as dist

        out = [o.cpu().contiguous() for o in out]
        dist.gather_object([(tuple(o.shape), str(o.dtype).removeprefix("torch.")) for o in out], None,
                           dst=0, group=self.control)
        dist.send(torch.from_numpy(served), dst=0, group=self.control)
        for o in out:
            dist.send(o, dst=0, group=self.control)


def _shaped_like(shapes: list, dim: int, device: torch.device, n: int) -> tuple[torch.Tensor, ...]:
    """Outputs shaped like a follower's (rank 0's own shard is empty, so it has no shapes of its own)."""
    for s in shapes[1:]:
        if s and s[0][0][dim]:
            return tuple(torch.empty(shape, dtype=getattr(torch, dtype), device=device) for shape, dtype in s)
    return (torch.empty(0, device=device),) * n


@contextlib.contextmanager
def alone(module):
    """Rank 0 evaluates by itself: its torchmetrics must not wait to sync with ranks that are not evaluating."""
    from torchmetrics import Metric

    metrics = [m for m in module.modules() if isinstance(m, Metric)]
    before = [m.sync_on_compute for m in metrics]
    for m in metrics:
        m.sync_on_compute = m._to_sync = False
    try:
        yield
    finally:
        for m, b in zip(metrics, before):
            m.sync_on_compute = m._to_sync = b


def shard_bounds(n: int, batch_size: int, world_size: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) shards of ``n`` items for ``world_size`` ranks, split on whole batches of ``batch_size``
    (so each batch is the one a single process would form); the last shard takes the partial batch."""
    batches = -(-n // batch_size)
    cuts = [min(n, (batches * r // world_size) * batch_size) for r in range(world_size)] + [n]
    return [(cuts[r], cuts[r + 1]) for r in range(world_size)]


def weights_fingerprint(module) -> str:
    """A hash of the module's weights and architecture: whether the followers' copy needs rank 0's."""
    h = hashlib.blake2b(repr(module.architecture_spec()).encode(), digest_size=16)
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if v.numel() else b"")
    return h.hexdigest()


def pool_state(dm) -> dict[str, Any]:
    """What a follower's data module needs to serve the same training set: labels, annotations, extras."""
    return {"labels": dict(dm.labels), "annotations": dict(dm.annotations), "extras": list(dm.extras)}


def set_pool_state(dm, state: dict[str, Any]) -> None:
    labels = state["labels"]
    dm.restore(list(labels), list(labels.values()), state["annotations"], state["extras"])
