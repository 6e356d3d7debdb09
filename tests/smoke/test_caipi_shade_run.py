"""CAIPI with ``cx_strategy=shade`` end to end on decoy digits (embedded): each counterexample sets the
corrected swatch segment to one new uniform shade, and the decoy diagnostics are logged every round."""

from __future__ import annotations

import torch

from exil.common.engine import run
from exil.common.journal import Journal, read_journal


def test_shade_counterexamples_are_one_new_shade_on_the_swatch(run_cfg):
    run_dir = run(run_cfg(["dataset=decoy_digits", "method=caipi", "oracle.irrelevant_field=decoy",
                           "method.hooks.segment_cell=2", "method.hooks.lime.num_samples=200",
                           "method.hooks.cx_strategy=shade", "loop.query_size=10", "loop.initial_per_class=3",
                           "trainer.max_epochs=15", "loop.threads=1"]))
    j = Journal(run_dir / "journal.sqlite")
    extras = j.extras()
    assert extras and all(e.kind == "counterexample" for e in extras)
    from exil.common.data.decoy import DecoyDigitsDataModule

    dm = DecoyDigitsDataModule(patch_size=2)
    dm.setup()
    for e in extras:
        index, values = e.fields["x@index"].long(), e.fields["x@values"]
        assert index.numel() == 4 and torch.all(values == values[0])  # the whole 2x2 segment, one shade
        original = dm.pool_item(e.origin)["x"].flatten()
        swatch = dm.ground_truth(e.origin, "decoy").flatten()
        assert swatch[index].all()  # the simulated teacher marked the swatch: that is what changed
        assert torch.all(original[index] != values[0])
    metrics = read_journal(run_dir / "journal.sqlite")["metrics"]
    assert all({"test/decoy_agreement", "test/acc_noise_swatch", "test/acc_label_swatch"} <= set(m)
               for m in metrics.values())
