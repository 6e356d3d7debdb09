"""eXBL (Hagos et al. 2023), explanation-guided alternating training (Tao & Shokri 2025) and RRR
(Ross et al. 2017): learning from explanation signals in the loss.

* :mod:`exil.exbl.losses`      — the three explanation losses as pure tensor functions;
* :mod:`exil.exbl.rrr`         — ``method=rrr``: cross-entropy + input-gradient penalty on irrelevant input;
* :mod:`exil.exbl.exbl`        — ``method=exbl``: cross-entropy + triplet loss towards a good exemplar Grad-CAM;
* :mod:`exil.exbl.alternating` — ``method=alternating``: label and alignment stages taking turns;
* :mod:`exil.exbl.hooks`       — round hooks: relevance masks for labelled items, exemplar choice, metrics.
"""
