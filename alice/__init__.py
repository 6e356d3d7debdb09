"""ALICE — Active Learning with Contrastive natural-language Explanations (Liang, Zou, Yu; EMNLP 2020).

Here so far: :mod:`alice.parser` (the rule-based semantic parser: explanation → parts) and
:mod:`alice.pairs` (class-pair selection by the Jensen–Shannon divergence of per-class Ledoit–Wolf
Gaussians, exact, low-rank and batched over all pairs). Still to come (issue 4): the
``contrast_classes`` question, grounding (crops of the named parts), architecture morphing
(super-classes plus local classifiers with shared latent-query attention), the data and the
reproduction.
"""
