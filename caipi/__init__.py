"""CAIPI — explanatory active learning with LIME (Teso & Kersting; AIES 2019).

* :mod:`exil.caipi.hooks` — the round: predict, explain with LIME (``exil.common.explain.lime``), ask for the label
  and the correction, add counterexamples;
* :mod:`exil.caipi.questions` — the ``correct_explanation`` question kind (validator, simulated teacher,
  terminal and web views);
* :mod:`exil.caipi.counterexamples` — randomise / alternative values / substitute, batched.
"""
