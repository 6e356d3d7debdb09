"""eXBL (Hagos et al. 2023), explanation-guided alternating training (Tao & Shokri 2025) and RRR
(Ross et al. 2017): learning from explanation signals in the loss.

Will hold: the triplet Grad-CAM explanation loss with exemplar choice (``choose_exemplars``),
the alternating label / alignment training, and the right-for-the-right-reasons input-gradient
penalty, over the masked datasets of ``common.data``.
"""
