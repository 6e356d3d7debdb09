"""``make reproduce-alice-marks``: ALICE's Table-2 rows on its controlled task, where a local part must decide.

Setting (``experiment=alice_fashion_marks``, common/data/fashion_marks.py says why it is a fair test): four
Fashion-MNIST garments, each split into two sub-classes that differ only by a 6-pixel checked or striped patch
at one named part (collar, waist, toe, handle); k = 15 images per class (120 in all), 2,000 test images,
MobileNetV2 (ImageNet) at stride 16, 64 px; 3 rounds of b = 1 pair; crops a quarter of the image side;
otherwise the proxy's schedule (``make reproduce-alice``); 3 seeds.

If the implementation is right: ALICE > w/o grounding ≈ random grounding > base, random pairs help less (a
random pair is one of the four sub-class pairs with probability 4/28).

**Labels per explanation**, as in ``make reproduce-alice``: ALICE's final accuracy read off the
random-sampling curve (15, 20, 25, 30 images per class), less the base's 15 per class, per explanation.

**Where the local classifier stands** (the last table): for each merged group of the final ALICE models, the
group's local classifier's accuracy inside the group on the test images of its classes, from the whole image
(what the paper's inference gives it) and from a crop of the marked part (the box the grounding cuts in
training, here from the test images' part locations), and the end-to-end accuracy on those images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reproduce.alice import reproduce, slug
from reproduce.runner import markdown

LOCAL_ARMS = ["alice", "ALICE, pairs from the initial encoder"]


def local_accuracy(run_dir: Path, data_dir: str, rounds: int) -> list[list]:
    """Per merged group of the run's final model: the local classifier's accuracy on whole test images and on
    crops of the marked part, and the end-to-end accuracy (module docstring)."""
    from exil.alice.grounding import PartBoxes
    from exil.common.data.fashion_marks import MARKED
    from exil.common.data.fashion_parts import GARMENT_PART_NAMES
    from exil.common.data.parts import crop_to_boxes
    from exil.common.engine import build_loop, compose
    from exil.common.run_folder import load_checkpoint, load_module_state

    loop = build_loop(compose(["experiment=alice_fashion_marks", f"paths.data_dir={data_dir}"], run_dir / "rebuild"),
                      run_dir / "rebuild")
    m, dm = loop.module, loop.dm
    load_module_state(m, load_checkpoint(run_dir / "checkpoints" / f"round_{rounds:03d}_fit.pt"))
    m.eval()
    t = dm.test.__getitems__(list(range(len(dm.test))))
    x, y = t["x"], t["y"]
    part = torch.tensor([GARMENT_PART_NAMES.index(MARKED[dm.base[int(c) // 2]]) for c in y])
    h, w = x.shape[-2:]
    boxes = PartBoxes(size=float(loop.hooks.grounding.size)).square(t["parts"][torch.arange(len(y)), part, :2], h, w)
    out = []
    with torch.no_grad():
        crops = crop_to_boxes(x, boxes)
        for k, g in enumerate(m.groups):
            rows = torch.isin(y, torch.tensor(g))
            pos = m.position[y[rows]]
            local = [float((m.local_logits(m.parts(v)[1], k).argmax(-1) == pos).float().mean())
                     for v in (x[rows], crops[rows])]
            end = float((m.predict(x[rows]) == y[rows]).float().mean())
            out.append([str(g), f"{local[0]:.3f}", f"{local[1]:.3f}", f"{end:.3f}"])
    return out


def main() -> None:
    a = reproduce(__doc__, "alice_fashion_marks", 2000, 8,
                  "ALICE on the controlled task: sub-classes differing by a mark at a named part", "alice_marks",
                  skip=["w/o hierarchy, old schedule"])
    if a.quick:
        return
    out = Path(a.out or "outputs/reproduce/alice_marks")
    data_dir = str(Path(a.data_dir or "data").resolve())
    rows = [[arm, s, *r] for arm in LOCAL_ARMS for s in range(a.seeds)
            if (out / slug(arm) / f"seed{s}" / "journal.sqlite").exists()
            for r in local_accuracy(out / slug(arm) / f"seed{s}", data_dir, 3)]
    print("\nWhere the local classifier stands: its accuracy inside its group on the test images of the group, from "
          "the whole image (the paper's inference) and from a crop of the marked part\n")
    print(markdown(["arm", "seed", "group", "local, whole image", "local, part crop", "end to end"], rows))


if __name__ == "__main__":
    main()
