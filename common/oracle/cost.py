"""What an answer costs a person, by question kind: the simulated teacher's cost model (``oracle.cost``).

A person's answers are timed (the web page, the terminal); a simulated teacher's are charged these seconds,
so a run's budget can be counted in teacher time (``loop.budget_seconds``) and methods that ask different
questions compared at equal human cost. The defaults, per answer, and where they come from:

=======================  =====  ==========================================================================
kind                     s      source
=======================  =====  ==========================================================================
``label``                10.0   1 s per class considered (Bearman et al., "What's the Point", ECCV 2016: their
                                cost model's image-level label time, reproducing their 20 s per PASCAL image
                                of 20 classes), × the 10 classes of the datasets exil ships
``relevance``            10.9   a scribble over the region (Bearman et al. 2016: 10.9 s per scribble); a precise
                                mask costs 79 s (Lin et al., COCO, ECCV 2014 §4.3: 22 worker-hours per 1,000
                                segmentations), a box 7 s (Papadopoulos et al., "Extreme clicking", ICCV 2017)
``correct_explanation``  7.2    marking 3 of LIME's segments at 2.4 s per click (Bearman et al. 2016's point time)
``choose_exemplars``     6.4    4 maps checked yes/no at 1.6 s each (a box-verification time attributed to
                                Papadopoulos et al., CVPR 2016; not checked against the paper: an estimate)
``contrast_classes``     30.0   one typed sentence on how two classes differ — an estimate: no published time
                                was found for ALICE's explanations
``explain_label``        20.0   twice a label (Wang et al., NExT, ICLR 2020: with explanations "the annotation
                                time only doubles")
=======================  =====  ==========================================================================

Set your own with ``oracle.cost={label: 4, relevance: 30}`` (seconds; a kind left out costs nothing), or
``oracle.cost={}`` for none. Measured seconds of real teachers (``exil teachers <run>``) are the better source.
"""

from __future__ import annotations

#: seconds per answer of each question kind (module docstring)
DEFAULT_SECONDS: dict[str, float] = {
    "label": 10.0,
    "relevance": 10.9,
    "correct_explanation": 7.2,
    "choose_exemplars": 6.4,
    "contrast_classes": 30.0,
    "explain_label": 20.0,
}
