"""Pool scoring sharded over gloo processes equals one process's scoring, item for item, and is checked.

Two (and three) real processes join a gloo group; rank 0 asks the others for their shards through
:class:`exil.common.distributed.Team` exactly as a launched run does, and compares the gathered outputs with
``map_pool`` run over the whole list in one process."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems
from exil.common.distributed import Team, shard_bounds
from exil.common.errors import ExilError
from exil.common.follower import follow
from exil.common.modules.classifier import Classifier
from exil.common.strategies.context import PoolOutput, QueryContext, check_served, map_pool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Pool(PoolDataModule):
    def load(self):
        g = torch.Generator().manual_seed(0)
        items = TensorItems(x=torch.randn(1100, 12, generator=g), y=torch.arange(1100) % 4)
        return items, None, items


class _Mlp(nn.Module):
    out_features = 16

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 16)

    def forward(self, x):
        return torch.relu(self.lin(x))


def _parts():
    dm = _Pool(eval_batch_size=64)
    dm.setup()
    torch.manual_seed(0)
    return Classifier(_Mlp(), num_classes=4, dropout=0.3), dm


def _worker(rank: int, world: int, port: int, queue, indices: np.ndarray) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    team = Team(rank, world, rank, dist.new_group(backend="gloo"), torch.device("cpu"))
    module, dm = _parts()
    if rank:
        with torch.no_grad():  # a follower's weights differ until rank 0 sends its own with the first score
            for p in module.parameters():
                p.add_(1.0)
        follow(team, lambda config, run_dir: SimpleNamespace(module=module, dm=dm, make_trainer=None))
        dist.destroy_process_group()
        return
    team.send_config({}, ".")
    out = {}
    for name, output, keep in [("logits", PoolOutput("logits"), ()),
                               ("both", PoolOutput("features_and_logits"), ("float16",)),
                               ("mc", PoolOutput("mc_probs", 5, 123), ())]:
        got = team.score(module, dm, indices, output, torch.device("cpu"), keep)
        out[name] = [g.numpy().copy() for g in got]
    team.done()
    queue.put(out)
    dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, pytest.param(3, marks=pytest.mark.slow)])  # 3: an uneven split
def test_sharded_scoring_equals_one_process(world):
    module, dm = _parts()
    rng = np.random.default_rng(0)
    indices = np.sort(rng.choice(len(dm.pool), size=700, replace=False))  # 11 batches of 64, the last partial
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, queue, indices)) for r in range(world)]
    for p in procs:
        p.start()
    got = queue.get(timeout=240)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    device = torch.device("cpu")
    (logits,), served = map_pool(module, dm, indices, PoolOutput("logits"), device)
    assert np.array_equal(served, indices)
    (h, lg), _ = map_pool(module, dm, indices, PoolOutput("features_and_logits"), device, ("float16",))
    (mc,), _ = map_pool(module, dm, indices, PoolOutput("mc_probs", 5, 123), device)
    assert np.array_equal(got["logits"][0], logits.numpy())  # bit for bit: the same batches on every rank
    assert got["both"][0].dtype == np.float16 and np.array_equal(got["both"][0], h.numpy())
    assert np.array_equal(got["both"][1], lg.numpy())
    assert np.array_equal(got["mc"][0], mc.numpy())  # the same dropout masks: seeded per batch position
    # and the whole-list result is what a plain forward pass gives (an independent reference)
    module.eval()
    with torch.no_grad():
        ref = module(torch.stack([dm.pool[int(i)]["x"] for i in indices]))
    np.testing.assert_allclose(got["logits"][0], ref.numpy(), rtol=1e-5, atol=1e-5)


def test_shards_cover_every_item_once_on_batch_boundaries():
    for n in [0, 1, 63, 64, 65, 700, 1000]:
        for world in [1, 2, 3, 4, 7]:
            b = shard_bounds(n, 64, world)
            assert b[0][0] == 0 and b[-1][1] == n and all(b[i][1] == b[i + 1][0] for i in range(world - 1))
            assert all(lo % 64 == 0 for lo, hi in b if hi > lo)


def test_outputs_not_one_per_item_are_refused():
    idx = np.array([3, 5, 8, 13])
    check_served(idx.copy(), idx)
    for bad in ([3, 5, 8], [3, 5, 5, 13], [5, 3, 8, 13], [3, 5, 8, 13, 13]):
        with pytest.raises(ExilError, match="pool scoring returned"):
            check_served(np.array(bad), idx)


def test_a_loader_that_serves_other_items_is_caught():
    module, dm = _parts()
    ctx = QueryContext(module, dm, np.arange(10), "cpu")
    real = dm.pool_dataloader
    dm.pool_dataloader = lambda indices=None: real(np.asarray(indices)[::-1].copy())  # reordered
    with pytest.raises(ExilError, match="order lost|never scored|more than once|outputs for"):
        ctx.probs()


def test_embeddings_kept_as_asked():
    module, dm = _parts()
    idx = np.arange(300)
    full = QueryContext(module, dm, idx, "cpu", embeddings="float32").embeddings()
    half = QueryContext(module, dm, idx, "cpu", embeddings="float16").embeddings()
    disk = QueryContext(module, dm, idx, "cpu", embeddings="disk").embeddings()
    assert full.dtype == torch.float32 and half.dtype == torch.float16 and disk.dtype == torch.float16
    assert np.array_equal(half.numpy(), full.half().numpy()) and np.array_equal(disk.numpy(), half.numpy())
    assert isinstance(disk.numpy().base, np.memmap) or hasattr(disk.numpy().base, "filename") \
        or not disk.numpy().flags.owndata  # a view of the memory-mapped file
