"""CAIPI — explanatory active learning with LIME (Teso & Kersting; AIES 2019).

Here so far: :mod:`caipi.counterexamples` (randomise / alternative values / substitute, batched).
The ``correct_explanation`` question lives in ``common.oracle.corrections`` and batched LIME in
``common.explain.lime``. Still to come (issue 3): the round hooks that predict, explain, ask for
corrections and add counterexamples, explanation-quality metrics, the colors and text problems,
linear learners, and the Table 1 reproduction.
"""
