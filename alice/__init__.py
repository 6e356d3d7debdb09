"""ALICE — Active Learning with Contrastive natural-language Explanations (Liang, Zou, Yu; EMNLP 2020).

Will hold: class-pair selection by Jensen–Shannon divergence of per-class Gaussians, the
``contrast_classes`` oracle question and its rule-based semantic parser, grounding (crops of the
parts an explanation names), and architecture morphing (super-classes in the global head plus
local classifiers with shared latent-query attention), as round hooks on ``common``'s loop.
"""
