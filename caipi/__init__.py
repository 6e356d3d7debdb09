"""CAIPI — explanatory active learning with LIME (Teso & Kersting; AIES 2019).

Will hold: round hooks that predict, explain (LIME from ``common.explain``) and ask for
corrections (``correct_explanation``), counterexample generation (randomise / alternative
value / substitute), explanation-quality metrics, and the colors, decoy and text problems.
"""
