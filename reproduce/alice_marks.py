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
"""

from __future__ import annotations

from reproduce.alice import reproduce


def main() -> None:
    reproduce(__doc__, "alice_fashion_marks", 2000, 8,
              "ALICE on the controlled task: sub-classes differing by a mark at a named part", "alice_marks",
              skip=["w/o hierarchy, old schedule"])


if __name__ == "__main__":
    main()
