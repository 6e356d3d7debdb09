"""LIME (Ribeiro, Singh & Guestrin, KDD 2016), batched over perturbations and over instances.

An instance has d interpretable components (image segments, tokens, features); ``z ∈ {0,1}^d``
says which are kept. For each instance:

1. Perturbations z_1..z_n, with z_1 = 1 (the instance itself). ``sampling="count"`` (the ``lime``
   package's text explainer): the number of components switched off is uniform in 1..d, then which
   ones, uniformly; ``sampling="bernoulli"`` (its image explainer): each component on with probability ½.
2. Targets y_s = p(c | x(z_s)): the model's probability (softmax of its logits) of the explained
   class c, by default the class predicted for the instance itself.
3. Weights π_s = sqrt(exp(−D_s² / σ²)), with D_s = 1 − ⟨z_s, 1⟩ / (‖z_s‖ ‖1‖) = 1 − sqrt(|z_s| / d)
   the cosine distance to the instance (1 when z_s = 0, as scikit-learn's ``cosine_distances``) and
   σ = ``kernel_width``: ``lime``'s kernel exactly (its image default σ = 0.25; its text explainer's
   σ = 25 on distances × 100 is the same 0.25).
4. k components are selected as in ``lime``'s ``LimeBase``: ``forward_selection`` (greedy: add the
   component whose unregularised weighted least-squares fit, together with those already chosen,
   has the largest weighted R²), ``highest_weights`` (the k largest |β| of a weighted ridge with
   α = 0.01 on all components), ``auto`` (forward selection if k ≤ 6, else highest weights).
5. The local model: weighted ridge with an unpenalised intercept on the k components,
   min_{β, b} Σ_s π_s (y_s − b − z_sᵀβ)² + α‖β‖² (α = ``alpha``, 1 like scikit-learn's ``Ridge``);
   its weighted R² is the explanation's ``score``.

Every fit goes through the weighted moments of (z, y) (:class:`Moments`): with m_z = Σπz / Σπ,
m_y = Σπy / Σπ, G = Σπ (z − m_z)(z − m_z)ᵀ, g = Σπ (z − m_z)(y − m_y), s = Σπ (y − m_y)²,
a fit on a subset S is one |S|×|S| solve: β = (G_SS + αI)⁻¹ g_S, b = m_y − m_z,Sᵀβ,
SS_res = s − 2βᵀg_S + βᵀG_SSβ, R² = 1 − SS_res / s. Forward selection solves the systems of all
candidates of all instances at once (one batched ``torch.linalg.solve`` per step).

``repeats`` = R > 1 runs LIME R times with independent perturbations (as CAIPI does to stabilise
it) and keeps the k components selected in most runs (ties: larger Σ_runs |β|); the local model on
them is then fitted to the samples of all runs together (their moments add up).

Instances of one batch may have different numbers of components (segmentations with different
numbers of superpixels, texts of different lengths): components are padded to the largest d and a
``valid`` mask (B, d) marks the real ones; padded components stay on, are never selected, and do not
count in the distance.

Perturbed inputs are built from the instance and z by a ``perturb(x_rows, z_rows)`` function (for
images, z gathered through the segment map and one ``torch.where``), evaluated on the model's device in
batches of ``batch_size`` under ``torch.inference_mode``; the perturbations of all instances (and all
runs) are stacked into the same batches. Random draws use ``generator`` (on its device), so results
are a function of its seed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from exil.common.errors import ConfigError
from exil.common.explain.segmentation import Segmenter, grid

SELECTIONS = ("auto", "forward_selection", "highest_weights")
SAMPLINGS = ("count", "bernoulli")
HIGHEST_WEIGHTS_ALPHA = 0.01  # lime's ridge for highest_weights
AUTO_FORWARD_MAX_K = 6  # lime's "auto": forward selection up to 6 features
JITTER = 1e-10  # × Σπ added to the diagonal, so unregularised fits of collinear columns stay solvable

Perturb = Callable[[Any, torch.Tensor], Any]


@dataclass(frozen=True)
class LimeConfig:
    """LIME's settings (see the module docstring).

    Args:
        num_samples: perturbations per instance and run, the instance itself included.
        k: components in an explanation.
        selection: auto | forward_selection | highest_weights.
        kernel_width: σ of the exponential kernel on the cosine distance.
        sampling: count | bernoulli.
        repeats: runs whose selections are put to a vote.
        alpha: ridge penalty of the local model.
        batch_size: perturbed inputs per forward pass.
        softmax: the model returns logits (True) or already the targets, e.g. probabilities (False).
    """

    num_samples: int = 1000
    k: int = 5
    selection: str = "auto"
    kernel_width: float = 0.25
    sampling: str = "count"
    repeats: int = 1
    alpha: float = 1.0
    batch_size: int = 1000
    softmax: bool = True

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ConfigError(f"unknown LIME selection {self.selection!r}; valid: {', '.join(SELECTIONS)}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"unknown LIME sampling {self.sampling!r}; valid: {', '.join(SAMPLINGS)}")
        for name in ("num_samples", "k", "repeats", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LIME {name} must be at least 1, got {getattr(self, name)}")
        if self.kernel_width <= 0 or self.alpha < 0:
            raise ConfigError(f"LIME needs kernel_width > 0 and alpha ≥ 0, got {self.kernel_width}, {self.alpha}")


@dataclass
class LimeExplanation:
    """LIME explanations of B instances, components ordered by decreasing |weight|.

    Attributes:
        components: (B, k) component indices (segment labels, feature indices, token positions).
        weights: (B, k) their coefficients in the local model.
        intercept: (B,) the local model's intercept.
        score: (B,) its weighted R².
        target: (B,) the explained class.
        votes: (B, k) in how many of the runs each component was selected.
        segments: (B, H, W) the segment maps, for images.
    """

    components: torch.Tensor
    weights: torch.Tensor
    intercept: torch.Tensor
    score: torch.Tensor
    target: torch.Tensor
    votes: torch.Tensor
    segments: torch.Tensor | None = None

    def mask(self) -> torch.Tensor:
        """(B, H, W) bool: the pixels of the selected segments."""
        if self.segments is None:
            raise ValueError("only image explanations have a pixel mask")
        b, d = self.segments.shape[0], int(self.segments.max()) + 1
        chosen = torch.zeros(b, d, dtype=torch.bool, device=self.segments.device)
        chosen.scatter_(1, self.components, True)
        return chosen.gather(1, self.segments.flatten(1)).view_as(self.segments)


# ------------------------------------------------------------------ local linear models
class Moments(NamedTuple):
    """Weighted sums of N local data sets:
    Σπ (N,), Σπz (N, d), Σπy (N,), Σπzzᵀ (N, d, d), Σπzy (N, d), Σπy² (N,)."""

    sw: torch.Tensor
    sz: torch.Tensor
    sy: torch.Tensor
    szz: torch.Tensor
    szy: torch.Tensor
    syy: torch.Tensor

    @classmethod
    def of(cls, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> Moments:
        """The moments of samples z (N, n, d), targets y (N, n) and weights w (N, n)."""
        zw = z * w.unsqueeze(-1)
        return cls(w.sum(1), zw.sum(1), (w * y).sum(1), zw.transpose(1, 2) @ z,
                   (zw * y.unsqueeze(-1)).sum(1), (w * y * y).sum(1))  # fmt: skip

    def pooled(self, runs: int) -> Moments:
        """Moments of R runs per instance, stacked instance-major (N·R, ...), added up: (N, ...)."""
        return Moments(*(t.view(-1, runs, *t.shape[1:]).sum(1) for t in self))

    def centred(self) -> tuple[torch.Tensor, ...]:
        """(m_z, m_y, G, g, s) of the module docstring."""
        mz, my = self.sz / self.sw[:, None], self.sy / self.sw
        G = self.szz - self.sw[:, None, None] * mz[:, :, None] * mz[:, None, :]
        g = self.szy - self.sw[:, None] * mz * my[:, None]
        return mz, my, G, g, self.syy - self.sw * my * my


def ridge(moments: Moments, subsets: torch.Tensor, alpha: float = 1.0) -> tuple[torch.Tensor, ...]:
    """Weighted ridge of each instance on its components ``subsets`` (N, ..., m) — several subsets per
    instance solved at once: coefficients (N, ..., m), intercept (N, ...), weighted R² (N, ...).

    R² is 1 where y is constant (scikit-learn's ``r2_score`` for a perfect fit)."""
    mz, my, G, g, s = moments.centred()
    n, m = G.shape[0], subsets.shape[-1]
    inst = torch.arange(n, device=G.device).view(n, *([1] * (subsets.dim() - 1)))
    Gs = G[inst[..., None], subsets[..., :, None], subsets[..., None, :]]
    gs = g[inst, subsets].unsqueeze(-1)
    batch = [n] + [1] * (subsets.dim() - 2)
    penalty = (alpha + JITTER * moments.sw).view(*batch, 1, 1) * torch.eye(m, dtype=G.dtype, device=G.device)
    beta = torch.linalg.solve(Gs + penalty, gs)
    s = s.view(batch)
    ss_res = s - 2 * (beta * gs).sum((-1, -2)) + (beta.transpose(-1, -2) @ Gs @ beta).flatten(-3)
    r2 = torch.where(s > 0, 1 - ss_res / s.clamp_min(torch.finfo(s.dtype).tiny), torch.ones_like(ss_res))
    beta = beta.squeeze(-1)
    return beta, my.view(batch) - (mz[inst, subsets] * beta).sum(-1), r2


def forward_selection(moments: Moments, k: int, valid: torch.Tensor) -> torch.Tensor:
    """Greedy selection of k components (N, k), in order of selection: at each step, the valid
    unselected component whose unregularised fit with the selected ones has the largest R²."""
    n, d = valid.shape
    chosen = torch.zeros(n, 0, dtype=torch.long, device=valid.device)
    candidates = torch.arange(d, device=valid.device).expand(n, d)
    free = valid.clone()
    for _ in range(k):
        subsets = torch.cat([chosen[:, None, :].expand(n, d, chosen.shape[1]), candidates[..., None]], dim=-1)
        _, _, r2 = ridge(moments, subsets, 0.0)
        best = r2.masked_fill(~free, -torch.inf).argmax(1, keepdim=True)
        chosen = torch.cat([chosen, best], dim=1)
        free.scatter_(1, best, False)
    return chosen


def highest_weights(moments: Moments, k: int, valid: torch.Tensor) -> torch.Tensor:
    """The k valid components (N, k) with the largest |β| of a weighted ridge (α = 0.01) on all of them."""
    n, d = valid.shape
    beta, _, _ = ridge(moments, torch.arange(d, device=valid.device).expand(n, d), HIGHEST_WEIGHTS_ALPHA)
    return beta.abs().masked_fill(~valid, -1.0).topk(k, dim=1).indices


def select(moments: Moments, k: int, valid: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """k components per instance (N, k) by ``method`` (auto | forward_selection | highest_weights)."""
    if method == "auto":
        method = "forward_selection" if k <= AUTO_FORWARD_MAX_K else "highest_weights"
    return forward_selection(moments, k, valid) if method == "forward_selection" else highest_weights(moments, k, valid)


# --------------------------------------------------------------------- perturbations
def sample_masks(valid: torch.Tensor, num_samples: int, sampling: str = "count",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Perturbations z (N, n, d) bool for N instances with ``valid`` components (N, d); z[:, 0] = 1.

    Drawn on the generator's device (CPU if none) in one call, instance after instance, and returned
    on ``valid``'s device: on a CPU generator, N instances drawn together get the same z as drawn
    one at a time from the same stream.
    """
    n_inst, d = valid.shape
    at = generator.device if generator is not None else torch.device("cpu")
    ok = valid.to(at)[:, None, :]
    if sampling == "bernoulli":
        on = torch.rand(n_inst, num_samples, d, generator=generator, device=at) < 0.5
    else:  # number switched off uniform in 1..D, then a uniformly random set of that size
        u = torch.rand(n_inst, num_samples, d + 1, generator=generator, device=at)
        size = ok.sum(-1, keepdim=True)
        off = (u[..., d:] * size).long() + 1
        scores = u[..., :d].masked_fill(~ok, 2.0)
        kth = scores.sort(-1).values.gather(-1, torch.minimum(off, size) - 1)
        on = scores > kth
    on = on | ~ok
    on[:, 0] = True
    return on.to(valid.device)


def kernel_weights(z: torch.Tensor, valid: torch.Tensor, kernel_width: float,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """π = sqrt(exp(−D² / σ²)), D = 1 − sqrt(|z| / d) the cosine distance of z (N, n, d) to all-ones."""
    kept = (z & valid[:, None, :]).sum(-1).to(dtype)
    dist = 1 - torch.sqrt(kept / valid.sum(-1, keepdim=True).to(dtype))
    return torch.sqrt(torch.exp(-(dist**2) / kernel_width**2))


# ---------------------------------------------------------------------- the explainer
def _length(x: Any) -> int:
    if torch.is_tensor(x):
        return x.shape[0]
    if isinstance(x, Mapping):
        return _length(next(iter(x.values())))
    return len(x)


def _take(x: Any, rows: torch.Tensor) -> Any:
    """Rows of a tensor, of every tensor of a mapping, or items of a sequence."""
    if torch.is_tensor(x):
        return x.index_select(0, rows.to(x.device))
    if isinstance(x, Mapping):
        return {key: _take(v, rows) for key, v in x.items()}
    return [x[i] for i in rows.tolist()]


def _repeat(x: Any, i: int, count: int) -> Any:
    """Instance i of x repeated ``count`` times, as a broadcast view (no copy) for tensors."""
    if torch.is_tensor(x):
        return x[i : i + 1].expand(count, *x.shape[1:])
    if isinstance(x, Mapping):
        return {key: _repeat(v, i, count) for key, v in x.items()}
    return [x[i]] * count


def _device(model: Any, x: Any) -> torch.device:
    if isinstance(model, nn.Module):
        param = next(model.parameters(), None)
        if param is not None:
            return param.device
    if torch.is_tensor(x):
        return x.device
    return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    if not isinstance(model, nn.Module):
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.inference_mode()
def _predict(model: Callable[[Any], torch.Tensor], x: Any, perturb: Perturb, z: torch.Tensor, runs: int,
             batch_size: int, softmax: bool) -> torch.Tensor:
    """Model outputs (B·R, n, C) on the perturbations z (B·R, n, d) of R runs per instance of x.

    A batch within one instance gets it as a broadcast view; one spanning several, gathered rows."""
    rows, n, d = z.shape
    flat, per = z.view(rows * n, d), n * runs
    instance = torch.arange(rows * n, device=z.device) // per
    out = []
    with _eval_mode(model):
        for start in range(0, rows * n, batch_size):
            end = min(start + batch_size, rows * n)
            first, last = start // per, (end - 1) // per
            x_rows = _repeat(x, first, end - start) if first == last else _take(x, instance[start:end])
            out.append(model(perturb(x_rows, flat[start:end])))
    out = torch.cat(out).view(rows, n, -1)
    return out.softmax(-1) if softmax else out


def vote(selected: torch.Tensor, magnitude: torch.Tensor, valid: torch.Tensor, runs: int,
         k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k components (N, k) selected in most of the R runs of each instance, and their votes (N, k).

    ``selected`` and ``magnitude`` (N·R, k') are each run's components and |β|, instance-major;
    ``valid`` (N, d). Ties go to the larger Σ_runs |β|.
    """
    n, d = valid.shape
    counts = torch.zeros(n * runs, d, device=valid.device).scatter_(1, selected, 1.0).view(n, runs, d).sum(1)
    mags = torch.zeros(n * runs, d, dtype=magnitude.dtype, device=valid.device).scatter_(1, selected, magnitude)
    mags = mags.view(n, runs, d).sum(1)
    tie = mags / (2 * mags.amax(1, keepdim=True) + torch.finfo(mags.dtype).tiny)  # in [0, ½]
    chosen = (counts.to(mags.dtype) + tie).masked_fill(~valid, -1.0).topk(k, dim=1).indices
    return chosen, counts.gather(1, chosen).long()


def lime(model: Callable[[Any], torch.Tensor], x: Any, perturb: Perturb, num_components: int,
         config: LimeConfig = LimeConfig(), *, valid: torch.Tensor | None = None, target: torch.Tensor | None = None,
         generator: torch.Generator | None = None, device: torch.device | str | None = None) -> LimeExplanation:
    """Explain B instances ``x`` (a tensor, a mapping of tensors with a leading B, or a sequence).

    Args:
        model: maps a batch of perturbed inputs to logits (B', C) (or targets, with ``softmax=False``).
        x: the instances, with whatever the perturbation needs (segment maps, fill values, ...).
        perturb: ``perturb(x_rows, z)`` → the model's inputs for R instances ``x_rows`` (rows of
            ``x``, possibly read-only broadcast views) with kept components ``z`` (R, d) bool.
        num_components: d, the (padded) number of components.
        config: the settings.
        valid: (B, d) bool, the real components of each instance (all, by default).
        target: (B,) the classes to explain; the predicted ones by default.
        generator: the source of randomness; the global CPU one by default.
        device: where z and the local models live; the model's by default.
    """
    device = torch.device(device) if device is not None else _device(model, x)
    b, d, runs, k = _length(x), num_components, config.repeats, config.k
    valid = torch.ones(b, d, dtype=torch.bool, device=device) if valid is None else valid.to(device, torch.bool)
    if valid.shape != (b, d):
        raise ValueError(f"valid must have shape {(b, d)}, got {tuple(valid.shape)}")
    if int(valid.sum(1).min()) < k:
        raise ValueError(f"an instance has {int(valid.sum(1).min())} components, fewer than k={k}")
    valid_runs = valid.repeat_interleave(runs, 0)  # run r of instance i is row i·R + r
    z = sample_masks(valid_runs, config.num_samples, config.sampling, generator).to(device)
    out = _predict(model, x, perturb, z, runs, config.batch_size, config.softmax)
    target = out[::runs, 0].argmax(-1) if target is None else torch.as_tensor(target, device=out.device).long().view(b)
    dtype = torch.float32 if device.type == "mps" else torch.float64
    y = out[torch.arange(out.shape[0], device=out.device), :, target.repeat_interleave(runs)].to(device, dtype)
    moments = Moments.of(z.to(dtype), y, kernel_weights(z, valid_runs, config.kernel_width, dtype))
    selected = select(moments, k, valid_runs, config.selection)
    beta, _, _ = ridge(moments, selected, config.alpha)
    chosen, votes = vote(selected, beta.abs(), valid, runs, k)
    weights, intercept, score = ridge(moments.pooled(runs), chosen, config.alpha)
    order = weights.abs().argsort(dim=1, descending=True, stable=True)
    return LimeExplanation(components=chosen.gather(1, order), weights=weights.gather(1, order), intercept=intercept,
                           score=score, target=target.to(device), votes=votes.gather(1, order))  # fmt: skip


# ----------------------------------------------------------------------------- images
def _image_perturb(x: Mapping[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """x where the pixel's segment is kept, else the fill: one gather of z through the segment maps."""
    images = x["x"]
    on = z.gather(1, x["segments"]).view(images.shape[0], 1, *images.shape[2:])
    return torch.where(on, images, x["fill"])


def _segment_maps(segments: torch.Tensor | Segmenter | None, images: torch.Tensor) -> torch.Tensor:
    b, _, h, w = images.shape
    if segments is None:
        segments = grid(h, w, 4, device=images.device)
    elif callable(segments) and not torch.is_tensor(segments):
        segments = torch.stack([segments(image) for image in images])
    segments = segments.to(images.device, torch.long)
    if segments.shape[-2:] != (h, w) or segments.dim() not in (2, 3):
        raise ValueError(f"segment maps must be (H, W) or (B, H, W) with H, W = {h}, {w}, got {tuple(segments.shape)}")
    return segments.expand(b, h, w).contiguous()


def _fill(images: torch.Tensor, segments: torch.Tensor, d: int, hide_color: float | None) -> torch.Tensor:
    """What replaces a switched-off segment: ``hide_color``, or (None) the segment's mean colour, as in ``lime``."""
    if hide_color is not None:
        return torch.full_like(images, float(hide_color))
    b, c = images.shape[:2]
    flat = segments.flatten(1)
    index = flat[:, None, :].expand(b, c, flat.shape[1])
    sums = torch.zeros(b, c, d, dtype=images.dtype, device=images.device).scatter_add_(2, index, images.flatten(2))
    sizes = torch.zeros(b, 1, d, dtype=images.dtype, device=images.device).scatter_add_(
        2, flat[:, None, :], torch.ones_like(images[:, :1].flatten(2)))
    return (sums / sizes.clamp_min(1)).gather(2, index).view_as(images)


def explain_batch(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                  segments: torch.Tensor | Segmenter | None = None, config: LimeConfig = LimeConfig(), *,
                  hide_color: float | None = 0.0, target: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> LimeExplanation:
    """LIME on images (B, C, H, W), components = segments.

    Args:
        segments: segment maps (H, W) shared by all images or (B, H, W), labels 0..S_i−1; or a
            segmenter (see :mod:`exil.common.explain.segmentation`); a 4-pixel grid by default.
        hide_color: the value of a switched-off segment's pixels, or None for the segment's mean colour.
        model, config, target, generator: see :func:`lime`.
    """
    device = _device(model, images)
    images = images.to(device)
    segments = _segment_maps(segments, images)
    sizes = segments.flatten(1).amax(1) + 1
    d = int(sizes.max())
    valid = torch.arange(d, device=device) < sizes[:, None]
    x = {"x": images, "segments": segments.flatten(1), "fill": _fill(images, segments, d, hide_color)}
    e = lime(model, x, _image_perturb, d, config, valid=valid, target=target, generator=generator, device=device)
    return replace(e, segments=segments)


# ------------------------------------------------------------------ features and tokens
def _compact(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (B, d) of the True entries of ``valid`` (B, F), first and in order, then the others;
    and which of the d are True. d = the largest number of True entries of a row."""
    sizes = valid.sum(1)
    order = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)[:, : int(sizes.max())]
    return order, torch.arange(order.shape[1], device=valid.device) < sizes[:, None]


def _kept(x: Mapping[str, torch.Tensor], z: torch.Tensor, width: int) -> torch.Tensor:
    """(R, F) bool: positions whose component is on (positions that are no component stay on)."""
    return torch.ones(z.shape[0], width, dtype=torch.bool, device=z.device).scatter_(1, x["index"], z | ~x["valid"])


def _feature_perturb(x: Mapping[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    return torch.where(_kept(x, z, x["x"].shape[1]), x["x"], x["baseline"])


def explain_features(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, config: LimeConfig = LimeConfig(),
                     *, baseline: float | torch.Tensor = 0.0, valid: torch.Tensor | None = None,
                     target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> LimeExplanation:
    """LIME on feature vectors x (B, F): a switched-off feature takes its ``baseline`` value (a
    scalar, (F,) e.g. the training mean, or (B, F)).

    ``valid`` (B, F) bool restricts the components to some features per instance (for a bag of
    words, ``x != 0``: the words of the document, as ``lime``'s text explainer); ``components`` are
    feature indices either way. See :func:`lime` for the other arguments.
    """
    device = _device(model, x)
    x = x.to(device)
    b, f = x.shape
    valid = torch.ones(b, f, dtype=torch.bool, device=device) if valid is None else valid.to(device, torch.bool)
    index, comp_valid = _compact(valid)
    base = torch.as_tensor(baseline, dtype=x.dtype, device=device).expand(b, f)
    inputs = {"x": x, "baseline": base, "index": index, "valid": comp_valid}
    e = lime(model, inputs, _feature_perturb, index.shape[1], config, valid=comp_valid, target=target,
             generator=generator, device=device)  # fmt: skip
    return replace(e, components=index.gather(1, e.components))


def _token_perturb(mask_token_id: int | None) -> Perturb:
    def perturb(x: Mapping[str, torch.Tensor], z: torch.Tensor) -> dict[str, torch.Tensor]:
        kept = _kept(x, z, x["input_ids"].shape[1])
        if mask_token_id is None:
            return {"input_ids": x["input_ids"].contiguous(), "attention_mask": x["attention_mask"] * kept}
        return {"input_ids": x["input_ids"].masked_fill(~kept, mask_token_id), "attention_mask": x["attention_mask"]}

    return perturb


def explain_tokens(model: Callable[[dict[str, torch.Tensor]], torch.Tensor], input_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None, config: LimeConfig = LimeConfig(), *,
                   mask_token_id: int | None = None, target: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> LimeExplanation:
    """LIME on token ids (B, L), components = the attended token positions.

    A switched-off token leaves the attention mask (``mask_token_id=None``) or becomes
    ``mask_token_id``; the model receives ``{"input_ids", "attention_mask"}``. ``components`` are
    token positions. See :func:`lime` for the other arguments.
    """
    device = _device(model, input_ids)
    input_ids = input_ids.to(device)
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    index, comp_valid = _compact(attention_mask.bool())
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "index": index, "valid": comp_valid}
    e = lime(model, inputs, _token_perturb(mask_token_id), index.shape[1], config, valid=comp_valid, target=target,
             generator=generator, device=device)  # fmt: skip
    return replace(e, components=index.gather(1, e.components))


def explain_texts(model: Callable[[list[str]], torch.Tensor], texts: Sequence[Sequence[str]],
                  config: LimeConfig = LimeConfig(), *, sep: str = " ", target: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> LimeExplanation:
    """LIME on tokenised texts (lists of strings), components = token positions; the model receives
    the kept tokens joined by ``sep``, one string per perturbation. See :func:`lime` for the rest."""
    lengths = torch.tensor([len(t) for t in texts])
    valid = torch.arange(int(lengths.max())) < lengths[:, None]

    def perturb(rows: list[Sequence[str]], z: torch.Tensor) -> list[str]:
        return [sep.join(tok for tok, on in zip(tokens, keep) if on) for tokens, keep in zip(rows, z.tolist())]

    return lime(model, list(texts), perturb, valid.shape[1], config, valid=valid, target=target, generator=generator)
