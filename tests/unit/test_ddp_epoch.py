"""Under DDP an epoch keeps ``min_epoch_size``: Lightning's sampler injection splits it across ranks.

Lightning replaces a ``RandomSampler`` by a ``DistributedSampler`` over the dataset (one pass over the labelled
set per epoch, split), which silently dropped ``min_epoch_size``: a 2-process fit of 20 labelled digits took 1
step per epoch where one process takes 8, and ended at 17 % test accuracy against 69 %."""

from __future__ import annotations

import torch
from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
from torch.utils.data import RandomSampler

from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems


class _Pool(PoolDataModule):
    def load(self):
        items = TensorItems(x=torch.randn(100, 3), y=torch.arange(100) % 2)
        return items, None, items


def _dm() -> _Pool:
    dm = _Pool(batch_size=8, min_epoch_size=64)
    dm.setup()
    dm.label(list(range(20)), [i % 2 for i in range(20)])
    return dm


def test_each_rank_gets_its_share_of_the_whole_epoch():
    dl = _dm().train_dataloader()
    assert len(dl.sampler) == 64
    shares = []
    for rank in (0, 1):
        torch.manual_seed(5)  # every rank's global RNG is seeded alike (seed_everything)
        s = _get_distributed_sampler(dl, shuffle=True, overfit_batches=0, num_replicas=2, rank=rank)
        shares.append(list(iter(s)))
    assert [len(x) for x in shares] == [32, 32]  # 64 draws split, not 20 items split
    torch.manual_seed(5)
    epoch = list(iter(dl.sampler))
    assert sorted(shares[0] + shares[1]) == sorted(epoch)  # together, exactly the one epoch's draws


def test_one_process_draws_what_a_random_sampler_draws():
    dm = _dm()
    ds = dm.train_dataset()
    torch.manual_seed(3)
    ours = list(iter(dm.train_dataloader().sampler))
    torch.manual_seed(3)
    theirs = list(iter(RandomSampler(ds, num_samples=64)))
    assert ours == theirs and sorted(set(ours)) == list(range(20))
