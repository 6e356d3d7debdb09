"""XAL — explainable active learning for text (Luo et al.; NAACL 2024).

* :mod:`exil.xal.losses`: L_cls, L_gen, L_rank, the length-normalised explanation score and the selection score;
* :mod:`exil.xal.module`: the encoder classifier + explaining decoder (L = L_cls + λ1·L_gen + λ2·L_rank);
* :mod:`exil.xal.strategy`: ``strategy=xal`` — batched generation and scoring over the pool, mixed with entropy;
* :mod:`exil.xal.hooks`: ``explain_label`` questions (label and explanations in one, where one teacher gives
  both) whose answers become decoder targets
  (:mod:`exil.xal.targets`). The teachers (bank, LLM, simulated lexicon) live in ``exil.common.oracle``.
"""
