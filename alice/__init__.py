"""ALICE — Active Learning with Contrastive natural-language Explanations (Liang, Zou, Yu; EMNLP 2020).

* :mod:`exil.alice.pairs` — per-class Ledoit–Wolf Gaussians and the exact low-rank JSD of all class pairs;
* :mod:`exil.alice.strategies` — ``jsd_pairs`` / ``random_pairs``;
* :mod:`exil.alice.parser` — the rule-based semantic parser (explanation → parts);
* :mod:`exil.alice.grounding` — box providers (annotated parts, random boxes) and crop extras;
* :mod:`exil.alice.morph`, :mod:`exil.alice.model` — super-class merging and the morphing classifier (global
  head, local classifiers with shared latent-query attention, hierarchical prediction);
* :mod:`exil.alice.hooks` — the round: pairs → ``contrast_classes`` → parse → ground → morph;
* :mod:`exil.alice.saliency` — Simonyan saliency sheets of the asked pairs.
"""
