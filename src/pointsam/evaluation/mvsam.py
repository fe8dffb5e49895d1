"""MV-SAM baseline (paper Sec. 5.1): prompt 2D SAM per view with simulated clicks, lift to the points.

Each view shows the labelled cloud (rendered by point splatting: evaluation datasets hold points,
not meshes). Per view, click 1 is the pixel of the 2D ground truth (the projection of the 3D mask)
farthest from its border, each later click the centre of the larger error region between SAM's
prediction and that ground truth; the most confident of SAM's three masks is kept, and its
low-res logits are fed back as the mask prompt. After k clicks per view, each point's foreground
probability is the mean of sigmoid(SAM logits) over the views that see it (points seen by no
view take their nearest seen neighbour's); IoU@k is the IoU of probability > 0.5 with the mask.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np
from scipy.spatial import cKDTree

from pointsam.data.dataset import LabelledCloud
from pointsam.engine import (
    BACKGROUND,
    DEPTH_TOLERANCE,
    Camera,
    SamSegmenter,
    Segmenter2D,
    error_click,
    load_sam,
    object_cameras,
)
from pointsam.errors import InputError
from pointsam.evaluation.interactive import ObjectResult, summarize
from pointsam.evaluation.report import markdown_table, refuse_existing, write_report
from pointsam.utils.masks import mask_iou

MVSAM_VIEWS = 12
MVSAM_IMAGE_SIZE = 256


def splat_points(xyz: np.ndarray, rgb: np.ndarray | None, cameras: list[Camera], radius_px: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffered square splats: rgb (V, H, W, 3) uint8, depth (V, H, W), pixel_point (V, H, W)."""
    h, w = cameras[0].height, cameras[0].width
    colors = np.full((len(xyz), 3), 128, np.uint8) if rgb is None else np.asarray(rgb, np.uint8)
    images = np.full((len(cameras), h, w, 3), BACKGROUND, np.uint8)
    depth = np.zeros((len(cameras), h, w), np.float32)
    winner = np.full((len(cameras), h, w), -1, np.int64)
    offsets = np.arange(-radius_px, radius_px + 1)
    for v, cam in enumerate(cameras):
        uv, z = cam.project(xyz.astype(np.float64))
        base = np.floor(uv).astype(np.int64)
        pts, pix, zs = [], [], []
        for dy in offsets:
            for dx in offsets:
                col, row = base[:, 0] + dx, base[:, 1] + dy
                ok = (z > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
                pts.append(np.flatnonzero(ok))
                pix.append(row[ok] * w + col[ok])
                zs.append(z[ok])
        pts, pix, zs = np.concatenate(pts), np.concatenate(pix), np.concatenate(zs)
        order = np.lexsort((zs, pix))
        first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]] if len(order) else order
        flat = winner[v].reshape(-1)
        flat[pix[first]] = pts[first]
        depth[v].reshape(-1)[pix[first]] = zs[first]
        images[v].reshape(-1, 3)[pix[first]] = colors[pts[first]]
    return images, depth, winner


def splat_radius(xyz: np.ndarray, camera: Camera, center: np.ndarray) -> int:
    """Splat half-size in pixels that closes the gaps between neighbouring points (1..6)."""
    spacing = float(np.median(cKDTree(xyz).query(xyz, k=2)[0][:, 1]))
    dist = float(np.linalg.norm(camera.position - center))
    pixel = dist / camera.K[0, 0]
    return int(np.clip(np.ceil(0.5 * spacing / max(pixel, 1e-12)), 1, 6))


class MultiViewCloud:
    """A labelled cloud rendered from fixed views, with its pixel <-> point maps."""

    def __init__(self, cloud: LabelledCloud, views: int = MVSAM_VIEWS, image_size: int = MVSAM_IMAGE_SIZE
                 ) -> None:
        xyz = cloud.xyz.astype(np.float64)
        center = (xyz.min(axis=0) + xyz.max(axis=0)) / 2
        radius = float(np.linalg.norm(xyz - center, axis=1).max())
        if radius <= 0:
            raise InputError(f"cloud {cloud.name!r}: all points coincide")
        self.cameras = object_cameras(center, radius, views, image_size)
        r = splat_radius(xyz, self.cameras[0], center)
        self.images, self.depth, self.pixel_point = splat_points(xyz, cloud.rgb, self.cameras, r)
        self.point_pixel = np.full((views, len(xyz)), -1, np.int64)
        # a splat hides its neighbours up to r pixels away: allow that much depth slope as well
        tol = DEPTH_TOLERANCE * radius + 2.0 * r * (self.cameras[0].position - center).dot(
            self.cameras[0].position - center) ** 0.5 / self.cameras[0].K[0, 0]
        for v, cam in enumerate(self.cameras):
            uv, z = cam.project(xyz)
            col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
            ok = (z > 0) & (col >= 0) & (col < image_size) & (row >= 0) & (row < image_size)
            idx = np.flatnonzero(ok)
            d = self.depth[v, row[idx], col[idx]]
            seen = (d > 0) & (d >= z[idx] - tol)
            self.point_pixel[v, idx[seen]] = row[idx[seen]] * image_size + col[idx[seen]]
        seen_any = (self.point_pixel >= 0).any(axis=0)
        self.fill_from = np.arange(len(xyz))
        if seen_any.any() and not seen_any.all():
            tree = cKDTree(xyz[seen_any])
            self.fill_from[~seen_any] = np.flatnonzero(seen_any)[tree.query(xyz[~seen_any])[1]]

    def project(self, view: int, mask: np.ndarray) -> np.ndarray:
        pix = self.pixel_point[view]
        return (pix >= 0) & mask[np.maximum(pix, 0)]

    def lift(self, probs: np.ndarray) -> np.ndarray:
        """Per-point mean of per-view probability maps (V, H, W) over the views seeing the point."""
        flat = probs.reshape(len(probs), -1)
        seen = self.point_pixel >= 0
        values = np.where(seen, np.take_along_axis(flat, np.maximum(self.point_pixel, 0), axis=1), 0.0)
        count = seen.sum(axis=0)
        mean = values.sum(axis=0) / np.maximum(count, 1)
        return mean[self.fill_from]


def _first_click(gt: np.ndarray) -> tuple[int, int, bool]:
    return error_click(gt, np.zeros_like(gt))


def view_rollout(segmenter: Segmenter2D, view: int, gt: np.ndarray, clicks: int) -> np.ndarray:
    """(clicks, H, W) foreground probabilities of SAM after 1..clicks simulated clicks on one view."""
    out = np.zeros((clicks, *gt.shape), np.float32)
    if not gt.any():
        return out  # the object is not in this view: no click, background everywhere
    points, labels, low_res, pred, logits = [], [], None, None, None
    for k in range(clicks):
        click = _first_click(gt) if pred is None else error_click(gt, pred)
        if click is not None:
            points.append(click[:2])
            labels.append(int(click[2]))
            res = segmenter.predict(view, np.array(points), np.array(labels), mask_input=low_res,
                                    multimask=low_res is None)
            best = int(np.argmax(res.scores))
            logits = res.logits[best]
            low_res = None if res.low_res is None else res.low_res[best]
            pred = logits > 0
        out[k] = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    return out


def evaluate_cloud_mvsam(segmenter: Segmenter2D, cloud: LabelledCloud, max_clicks: int = 10,
                         min_mask_points: int = 1, views: int = MVSAM_VIEWS,
                         image_size: int = MVSAM_IMAGE_SIZE) -> list[ObjectResult]:
    """IoU after 1..max_clicks clicks per view for every mask of one cloud."""
    keep = [i for i, m in enumerate(cloud.masks) if len(m) >= min_mask_points]
    if not keep:
        return []
    mv = MultiViewCloud(cloud, views, image_size)
    segmenter.set_images(mv.images)
    dense = cloud.dense_masks()
    results = []
    for i in keep:
        gt = dense[i]
        probs = np.stack([view_rollout(segmenter, v, mv.project(v, gt), max_clicks) for v in range(views)])
        ious = []
        for k in range(max_clicks):
            pred = mv.lift(probs[:, k]) > 0.5
            ious.append(float(mask_iou(pred, gt)))
        results.append(ObjectResult(
            cloud=cloud.name, mask=i, name=cloud.names[i] if cloud.names else str(i),
            category=cloud.category, num_points=cloud.num_points, mask_points=int(len(cloud.masks[i])),
            ious=[float(v) for v in ious]))
    return results


def evaluate_mvsam(segmenter: Segmenter2D, clouds: Iterable[LabelledCloud], max_clicks: int = 10,
                   min_mask_points: int = 1, progress: Callable[[int, LabelledCloud], None] | None = None,
                   views: int = MVSAM_VIEWS, image_size: int = MVSAM_IMAGE_SIZE) -> list[ObjectResult]:
    """MV-SAM IoU@k for every mask of every cloud (k clicks per view)."""
    results: list[ObjectResult] = []
    for i, cloud in enumerate(clouds):
        if progress:
            progress(i, cloud)
        results += evaluate_cloud_mvsam(segmenter, cloud, max_clicks, min_mask_points, views, image_size)
    return results


def run_mvsam_eval(args: argparse.Namespace, clouds) -> None:
    """`pointsam eval --baseline mv-sam`: the same report as for Point-SAM, from the MV-SAM baseline."""
    if args.sam_checkpoint is None:
        raise InputError("--baseline mv-sam needs --sam-checkpoint (a local transformers SAM folder)")
    refuse_existing([args.out / n for n in ("results.json", "report.md")], args.overwrite)
    segmenter = SamSegmenter(load_sam(args.sam_checkpoint, args.device))
    start = time.perf_counter()
    results = evaluate_mvsam(
        segmenter, clouds, args.max_clicks, args.min_mask_points,
        progress=lambda i, c: print(f"[{i + 1}/{len(clouds)}] {c.name} ({c.num_masks} masks)",
                                    file=sys.stderr, flush=True))
    summary = summarize(results)
    title = f"{args.dataset.name}: MV-SAM ({args.sam_checkpoint.name}, {MVSAM_VIEWS} views, clicks per view)"
    files = write_report(results, summary, args.out, title=title, overwrite=args.overwrite)
    print(markdown_table(summary, title))
    print(f"{len(results)} masks in {len(clouds)} clouds, {time.perf_counter() - start:.1f} s; "
          f"wrote {', '.join(str(f) for f in files)}")
