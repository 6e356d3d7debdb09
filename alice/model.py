"""ALICE's morphing classifier (Liang, Zou & Yu 2020, section 3.4 and figure 3).

One encoder φ (a conv backbone's activation map, φ(x) ∈ R^{d×H×W}: Inception-v3 at Mixed_6e in the
paper) feeds

* the **global classifier** over super-classes: ``head(mean_{H×W} φ(x))``. After a round merges
  class pairs into super-classes (:mod:`exil.alice.morph`) the global head is rebuilt for the new number of
  super-classes (the paper resets it) and the encoder is fine-tuned on;
* one **local classifier** per super-class group, with the paper's shared attention: M learnable
  latent queries (a 1×1 convolution, ``queries``) score every position of φ(x); a softmax over the
  H×W positions gives M attention maps a_m, and the attended features z_m = Σ_hw a_m(h, w) φ(x)_hw
  (keys = values = φ(x)) are flattened to M·d and read by the group's own fully connected layer.
  The queries are shared by every local classifier; each local FC layer is private.

Training loss (per batch): L = mean CE(global(x), super(y)) over the whole images + λ_local · mean
CE(local_g(x), y within g) over the images of classes in some group g, crops included. Crops of parts
(extras with ``crop`` True, see :mod:`exil.common.data.parts`) are cut out of their origin image on the
batch's device and resized to full resolution, and train only the local classifier of their group
(with ``hierarchy: false`` — the paper's "w/o hierarchy" ablation — no group is ever formed and the
crops are extra training images of the flat classifier).

Prediction (``predict``): the global head picks a super-class; only if it is a group does that
group's local classifier choose the fine class inside it. ``forward`` returns the log-probabilities of
the fine classes, log p(s(c) | x) + log p(c | s(c), x), for strategies and explanations.

The morph is recorded in :meth:`architecture_spec` (``groups`` and the ``asked`` pairs, plus the
number of queries), so a checkpoint or a resumed run rebuilds the exact architecture before its
weights are loaded.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from exil.alice.morph import merge_groups, super_classes
from exil.common.data.parts import crop_to_boxes
from exil.common.errors import ConfigError
from exil.common.modules.classifier import Classifier


class LatentQueryAttention(nn.Module):
    """M latent queries over an activation map (module docstring): (B, d, H, W) → (B, M·d), and the maps."""

    def __init__(self, channels: int, queries: int = 6):
        super().__init__()
        self.queries = nn.Conv2d(channels, queries, kernel_size=1)
        self.num_queries = queries

    def maps(self, fmap: torch.Tensor) -> torch.Tensor:
        """Attention maps (B, M, H·W), each a softmax over the positions."""
        return self.queries(fmap).flatten(2).softmax(dim=-1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        values = fmap.flatten(2).transpose(1, 2)  # (B, H·W, d)
        return (self.maps(fmap) @ values).flatten(1)  # (B, M·d)


class AliceClassifier(Classifier):
    """Global classifier over super-classes + local classifiers of merged groups (module docstring).

    Args:
        backbone: a conv backbone with ``feature_map`` (``out_features`` = its channels d).
        num_classes: fine classes.
        queries: M, the latent queries of the shared attention (6 in the paper).
        hierarchy: merge queried pairs into super-classes with local classifiers (False: the flat
            ablation, crops become extra training images).
        local_weight: λ_local.
        finetune_lr: after the first round's morph, the encoder φ learns at this factor of the learning rate,
            while the reset global head, the attention and the local classifiers learn at the full rate
            (the paper's "fine-tune the image encoder φ and reset the global classifier"; 1: every round
            restarts the whole model at the full rate).
        optimizer, scheduler, dropout: as :class:`~exil.common.modules.classifier.Classifier` (the paper: SGD,
            momentum 0.9, weight decay 1e-5, learning rate × 0.9 every 2 epochs).
    """

    changes_architecture = True  # the loop refuses loop.reset_each_round=true before round 0

    def __init__(self, backbone: nn.Module, num_classes: int, queries: int = 6, hierarchy: bool = True,
                 local_weight: float = 1.0,
                 optimizer: Callable[..., torch.optim.Optimizer] = partial(torch.optim.SGD, lr=0.01, momentum=0.9),
                 dropout: float = 0.0, scheduler: Callable[..., Any] | None = None, finetune_lr: float = 1.0):
        if not hasattr(backbone, "feature_map"):
            raise ConfigError(f"ALICE attends over an activation map; backbone {type(backbone).__name__} has no "
                              "feature_map (use a conv backbone: mobilenet_v2, efficientnet_lite0, inception_v3, "
                              "small_cnn)")
        super().__init__(backbone, num_classes, optimizer=optimizer, dropout=dropout, scheduler=scheduler)
        if not 0 < finetune_lr <= 1:
            raise ConfigError(f"method.module.finetune_lr must be in (0, 1] (a factor of the learning rate), got "
                              f"{finetune_lr}")
        self.hierarchy, self.local_weight, self.finetune_lr = hierarchy, local_weight, finetune_lr
        self.attention = LatentQueryAttention(backbone.out_features, queries)
        self.local = nn.ModuleDict()
        self.groups: list[list[int]] = []
        self.asked: list[list[int]] = []
        self._set_groups([])

    # ---------------------------------------------------------------- morphing
    @staticmethod
    def group_key(group: list[int]) -> str:
        return "g" + "_".join(map(str, group))

    def _set_groups(self, groups: list[list[int]]) -> None:
        self.groups = [list(map(int, g)) for g in groups]
        super_of, members = super_classes(self.num_classes, self.groups)
        group_id = torch.full((self.num_classes,), -1, dtype=torch.long)
        position = torch.zeros(self.num_classes, dtype=torch.long)
        for k, g in enumerate(self.groups):
            group_id[g] = k
            position[g] = torch.arange(len(g))
        dev = self.head.weight.device
        self.register_buffer("super_of", torch.tensor(super_of, dtype=torch.long, device=dev), persistent=False)
        self.register_buffer("group_id", group_id.to(dev), persistent=False)
        self.register_buffer("position", position.to(dev), persistent=False)
        self.members = members
        self.num_super = len(members)

    def morph(self, pairs: list[tuple[int, int]]) -> None:
        """Record the round's asked ``pairs``; with ``hierarchy``, merge them into super-classes: groups that
        change get new local classifiers, and the global head is rebuilt (reset) for the new super-classes."""
        self.apply_architecture_spec({**self.architecture_spec(),
                                      "asked": self.asked + [sorted(map(int, p)) for p in pairs],
                                      "groups": merge_groups(self.groups, pairs) if self.hierarchy else []})

    def architecture_spec(self) -> dict[str, Any]:
        if not self.asked and not self.groups:
            return {}
        return {"asked": [list(p) for p in self.asked], "groups": [list(g) for g in self.groups],
                "queries": self.attention.num_queries}

    def apply_architecture_spec(self, spec: dict[str, Any]) -> None:
        if spec.get("queries", self.attention.num_queries) != self.attention.num_queries:
            raise ConfigError(f"the checkpoint's attention has {spec['queries']} queries; the config has "
                              f"{self.attention.num_queries} (method.module.queries)")
        groups = [list(map(int, g)) for g in spec.get("groups", [])]
        if groups and not self.hierarchy:
            raise ConfigError("the checkpoint has super-class groups but method.module.hierarchy=false")
        self.asked = [list(map(int, p)) for p in spec.get("asked", [])]
        if groups == self.groups:
            return
        self._set_groups(groups)
        dev = self.head.weight.device
        keep = {self.group_key(g) for g in groups}
        for k in [k for k in self.local if k not in keep]:
            del self.local[k]
        width = self.attention.num_queries * self.backbone.out_features
        for g in groups:
            if self.group_key(g) not in self.local:
                self.local[self.group_key(g)] = nn.Linear(width, len(g)).to(dev)
        self.head = nn.Linear(self.backbone.out_features, self.num_super).to(dev)  # the groups changed: reset (paper)

    # ---------------------------------------------------------------- forward
    def classify(self, h: torch.Tensor) -> torch.Tensor:
        if self.groups:
            raise NotImplementedError("a morphed ALICE model classifies from the activation map: call forward(x)")
        return super().classify(h)

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Global logits over super-classes (B, S) and the attended features (B, M·d) (None before any merge)."""
        fmap = self.backbone.feature_map(x)
        g = self.head(self.dropout(fmap.mean(dim=(2, 3))))
        return g, (self.attention(fmap) if self.groups else None)

    def local_logits(self, z: torch.Tensor, k: int) -> torch.Tensor:
        return self.local[self.group_key(self.groups[k])](self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """log p(c | x) = log p(s(c) | x) + log p(c | s(c), x) for every fine class c (B, C)."""
        g, z = self.parts(x)
        if not self.groups:
            return g
        out = g.log_softmax(-1)[:, self.super_of]
        for k, members in enumerate(self.groups):
            out[:, members] = out[:, members] + self.local_logits(z, k).log_softmax(-1)
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's test-time decision: the global head's super-class, refined by its local classifier
        (run only on the images predicted into its group)."""
        g, z = self.parts(x)
        s = g.argmax(-1)
        if not self.groups:
            return s
        members = torch.tensor([m[0] for m in self.members], device=s.device)
        pred = members[s]
        for k, group in enumerate(self.groups):
            rows = (s == self.super_of[group[0]]).nonzero().squeeze(1)
            if len(rows):
                pred[rows] = torch.tensor(group, device=s.device)[self.local_logits(z[rows], k).argmax(-1)]
        return pred

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        """One optimizer; once the model has been morphed (a later round fine-tunes it), the encoder's
        parameter group learns at ``finetune_lr`` × the rate, everything else at the full rate."""
        if not self.asked or self.finetune_lr == 1:
            return super().configure_optimizers()
        encoder = list(self.backbone.parameters())
        mine = {id(p) for p in encoder}
        rest = [p for p in self.parameters() if id(p) not in mine]

        def slower_encoder(opt: torch.optim.Optimizer) -> None:
            opt.param_groups[1]["lr"] *= self.finetune_lr

        return self.optimizers_for([{"params": rest}, {"params": encoder}], adjust=slower_encoder)

    def batch_inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's images with crops cut out and resized, and the crop flags."""
        x = self.inputs(batch)
        crop = batch.get("crop")
        if crop is None or not bool(crop.any()):
            return x, torch.zeros(len(x), dtype=torch.bool, device=x.device)
        x = x.clone()
        x[crop] = crop_to_boxes(x[crop], batch["box"][crop])
        return x, crop

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        x, crop = self.batch_inputs(batch)
        y = batch["y"]
        g, z = self.parts(x)
        if not self.groups:  # flat: every image, crops included, trains the one classifier
            return F.cross_entropy(g, y) + self._untouched([self.attention])
        whole = ~crop
        loss = F.cross_entropy(g[whole], self.super_of[y[whole]]) if bool(whole.any()) else g.sum() * 0
        gid = self.group_id[y]
        local, n, idle = g.new_zeros(()), 0, []
        for k, group in enumerate(self.groups):
            rows = (gid == k).nonzero().squeeze(1)
            if len(rows):
                local = local + F.cross_entropy(self.local_logits(z[rows], k), self.position[y[rows]], reduction="sum")
                n += len(rows)
            else:
                idle.append(self.local[self.group_key(group)])
        return loss + self.local_weight * local / max(n, 1) + self._untouched(idle)

    @staticmethod
    def _untouched(modules: list[nn.Module]) -> torch.Tensor:
        """0 × the parameters a batch did not use, so that every parameter is in every step's graph (DDP
        needs that; the gradient is unchanged)."""
        return sum((0.0 * p.sum() for m in modules for p in m.parameters()), torch.zeros(()))
