"""The trainable part-segmentation head on frozen features: feature propagation + per-point MLP."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointsam.errors import InputError
from pointsam.fewshot.features import CloudFeatures
from pointsam.ops import interpolate


@dataclass(frozen=True)
class HeadConfig:
    """Head size and its few-shot training recipe (AdamW, cosine decay, cross-entropy)."""

    hidden: int = 256
    dropout: float = 0.5
    global_features: bool = True
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-2
    points_per_shape: int = 2048

    def validate(self) -> HeadConfig:
        for name in ("hidden", "epochs", "points_per_shape"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0:
            raise InputError(f"lr must be > 0, got {self.lr}")
        return self


class PartSegHead(nn.Module):
    """Logits [n, parts] for points of one cloud from its per-patch features.

    Feature propagation (PointNet++ style, as in Point-BERT / Uni3D): a linear map of the patch
    features 3-NN interpolated to the points (the same as interpolating first, since the weights
    sum to 1), plus a linear map of each point's own normalised xyz (the skip input) and of the
    cloud's max- and mean-pooled features; then LayerNorm-ReLU-Dropout-Linear twice.
    """

    def __init__(self, in_dim: int, num_parts: int, hidden: int = 256, dropout: float = 0.5,
                 global_features: bool = True) -> None:
        super().__init__()
        if num_parts < 1:
            raise InputError(f"a head needs at least one part, got {num_parts}")
        self.propagate = nn.Linear(in_dim, hidden)
        self.skip = nn.Linear(3, hidden, bias=False)
        self.pooled = nn.Linear(2 * in_dim, hidden, bias=False) if global_features else None
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_parts),
        )

    def forward(self, feats: CloudFeatures, indices: torch.Tensor | None = None) -> torch.Tensor:
        idx, weight = feats.interp_idx, feats.interp_weight
        if indices is not None:
            idx, weight = idx[indices], weight[indices]
        xyz = feats.xyz if indices is None else feats.xyz[indices]
        h = interpolate(self.propagate(feats.patch_features)[None], idx[None], weight[None])[0]
        h = h + self.skip(xyz)
        if self.pooled is not None:
            pf = feats.patch_features
            h = h + self.pooled(torch.cat([pf.max(dim=0).values, pf.mean(dim=0)]))
        return self.mlp(h)


def train_head(
    support: Sequence[tuple[CloudFeatures, np.ndarray]],
    num_parts: int,
    config: HeadConfig | None = None,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> PartSegHead:
    """Train a head on (features, labels (N,) with -1 = ignored) pairs; returns it in eval mode.

    Each epoch is one AdamW step on `points_per_shape` random labelled points of every shape.
    """
    config = (config or HeadConfig()).validate()
    if not support:
        raise InputError("no support shapes to train on")
    device = support[0][0].patch_features.device
    in_dim = support[0][0].patch_features.shape[1]
    targets = []
    for feats, labels in support:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=device)
        if labels.shape != (feats.num_points,):
            raise InputError(f"labels must have shape ({feats.num_points},), got {tuple(labels.shape)}")
        if labels.max() >= num_parts or labels.min() < -1:
            raise InputError(f"labels must lie in [-1, {num_parts})")
        targets.append(labels)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = PartSegHead(in_dim, num_parts, config.hidden, config.dropout,
                           config.global_features).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    labelled = [torch.nonzero(t >= 0).squeeze(1).cpu() for t in targets]
    if not any(len(lab) for lab in labelled):
        raise InputError("the support shapes have no labelled point")
    head.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(config.epochs):
            loss = torch.zeros((), device=device)
            count = 0
            for (feats, _), target, lab in zip(support, targets, labelled, strict=True):
                if not len(lab):
                    continue
                pick = lab[torch.randperm(len(lab), generator=gen)[: config.points_per_shape]]
                pick = pick.to(device)
                loss = loss + F.cross_entropy(head(feats, pick), target[pick], reduction="sum")
                count += len(pick)
            loss = loss / count
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(epoch + 1, float(loss))
    return head.eval()


@torch.no_grad()
def predict_parts(head: PartSegHead, feats: CloudFeatures) -> np.ndarray:
    """Part index (N,) of every point of one cloud."""
    head.eval()
    return head(feats).argmax(dim=1).cpu().numpy()
