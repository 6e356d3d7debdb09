"""ALICE — Active Learning with Contrastive natural-language Explanations (Liang, Zou, Yu; EMNLP 2020).

* :mod:`alice.pairs` — per-class Ledoit–Wolf Gaussians and the exact low-rank JSD of all class pairs;
* :mod:`alice.strategies` — ``jsd_pairs`` / ``random_pairs``;
* :mod:`alice.parser` — the rule-based semantic parser (explanation → parts);
* :mod:`alice.grounding` — box providers (annotated parts, random boxes) and crop extras;
* :mod:`alice.morph`, :mod:`alice.model` — super-class merging and the morphing classifier (global
  head, local classifiers with shared latent-query attention, hierarchical prediction);
* :mod:`alice.hooks` — the round: pairs → ``contrast_classes`` → parse → ground → morph;
* :mod:`alice.saliency` — Simonyan saliency sheets of the asked pairs.
"""
