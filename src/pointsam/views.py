"""Test-time view ensembling: one cloud encoded under K turns about the up axis, answers averaged.

Training turns every cloud by a random angle about y (`pointsam.train.sampling`), so the model
answers a turned cloud about as well as the cloud itself, but not identically. `ViewEnsemble`
encodes the cloud at K evenly spaced turns (2*pi*k/K, view 0 is the cloud as given), decodes every
prompt in every view in one batched decoder call, and averages the logits and predicted IoUs. The
grouping is shared (FPS and kNN only see distances, which turning keeps), so the points and their
order are the same in every view. Costs K encodes and K decodes per click; the answer is exactly
invariant to turning the input by a multiple of 2*pi/K about y (up to float rounding).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from pointsam.errors import InputError
from pointsam.modeling import CloudEmbedding, PointSAM
from pointsam.modeling.patch_embed import Patches

__all__ = ["MAX_VIEWS", "ViewEnsemble", "check_views", "view_rotations"]

MAX_VIEWS = 16


def check_views(views: object) -> int:
    """Validate a number of views (an integer in 1..MAX_VIEWS) and return it."""
    if isinstance(views, bool) or not isinstance(views, int) or not 1 <= views <= MAX_VIEWS:
        raise InputError(f"views must be an integer from 1 to {MAX_VIEWS}, got {views!r}")
    return views


def view_rotations(views: int) -> torch.Tensor:
    """[K, 3, 3] rotations by 2*pi*k/K about y (applied as xyz @ R.T); the first is the identity."""
    angles = 2 * np.pi * np.arange(check_views(views)) / views
    return torch.from_numpy(Rotation.from_euler("y", angles[:, None]).as_matrix()).float()


class ViewEnsemble:
    """A model and one encoded cloud seen from K views; `decode` answers as `PointSAM.decode` would
    for that cloud, averaged over the views.

    >>> views = ViewEnsemble(model, cloud, features, views=4)   # cloud: model.encode(...) of 1 cloud
    >>> logits, iou_preds = views.decode(cloud, prompt_coords, prompt_labels)
    """

    def __init__(self, model: PointSAM, cloud: CloudEmbedding, features: torch.Tensor, views: int) -> None:
        if cloud.coords.dim() != 3 or cloud.coords.shape[0] != 1:
            raise InputError(f"ViewEnsemble needs one encoded cloud (B = 1), got coords "
                             f"{list(cloud.coords.shape)}")
        self.model, self.cloud, self.num_views = model, cloud, check_views(views)
        dev = cloud.coords.device
        self.rotations = view_rotations(views).to(dev, cloud.coords.dtype)
        turned = self.rotations[1:]
        if turned.shape[0] == 0:
            self.stacked = cloud
            return
        p, k = cloud.patches, turned.shape[0]
        coords = torch.einsum("nc,kdc->knd", cloud.coords[0], turned)
        patches = Patches(p.fps_idx.expand(k, -1), torch.einsum("lc,kdc->kld", p.centers[0], turned),
                          p.knn_idx.expand(k, -1, -1))
        with torch.no_grad():
            extra = model.encode(coords, features.expand(k, -1, -1), patches=patches, lean=True)
        self.stacked = CloudEmbedding(  # view k is cloud k of a batch of K
            torch.cat([cloud.coords, extra.coords]),
            Patches(torch.cat([p.fps_idx, patches.fps_idx]), torch.cat([p.centers, patches.centers]),
                    torch.cat([p.knn_idx, patches.knn_idx])),
            torch.cat([cloud.embeddings, extra.embeddings]), torch.cat([cloud.pe, extra.pe]),
            cloud.interp_idx.expand(views, -1, -1), cloud.interp_weight.expand(views, -1, -1),
        )

    def decode(
        self,
        cloud: CloudEmbedding,
        prompt_coords: torch.Tensor,
        prompt_labels: torch.Tensor,
        prompt_masks: torch.Tensor | None = None,
        multimask_output: bool = True,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean logits [P, C, N] and IoU predictions [P, C] over the views (arguments as `PointSAM.decode`;
        `cloud` must be the one this ensemble was built for)."""
        if cloud is not self.cloud:
            raise InputError("this ViewEnsemble decodes only the cloud it was built for")
        k, p = self.num_views, prompt_coords.shape[0]
        coords = torch.einsum("pqc,kdc->kpqd", prompt_coords, self.rotations.to(prompt_coords.dtype))
        masks = None if prompt_masks is None else prompt_masks.repeat(k, 1)
        logits, iou = self.model.decode(self.stacked, coords.reshape(k * p, *prompt_coords.shape[1:]),
                                        prompt_labels.repeat(k, 1), masks, multimask_output, chunk_size)
        return logits.view(k, p, *logits.shape[1:]).mean(0), iou.view(k, p, -1).mean(0)
