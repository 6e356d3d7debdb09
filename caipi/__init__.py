"""CAIPI — explanatory active learning with LIME (Teso & Kersting; AIES 2019).

* :mod:`caipi.hooks` — the round: predict, explain with LIME (``common.explain.lime``), ask for the label
  and the correction, add counterexamples;
* :mod:`caipi.questions` — the ``correct_explanation`` question kind (validator, simulated teacher,
  terminal and web views);
* :mod:`caipi.counterexamples` — randomise / alternative values / substitute, batched.
"""
