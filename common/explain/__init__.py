"""Explainers shared by every method (filled by the CAIPI and eXBL issues): batched LIME for images,
text and tabular data, input-gradient saliency, and Grad-CAM that can be differentiated for a loss."""
