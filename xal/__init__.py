"""XAL — explainable active learning for text (Luo et al.; NAACL 2024).

Will hold: the encoder-decoder classifier with generation and ranking losses
(L = L_cls + λ1·L_gen + λ2·L_rank), the ``xal`` selection strategy mixing predictive entropy
with the explanation score, and the ``explain_label`` teachers (bank, LLM client, simulated).
"""
