"""Segment everything in a big scan by overlapping tiles, merged by point-set NMS on global indices.

The scan's xy extent is cut into square tiles of `tile_size`, each grown by `overlap` on every
side. `AutomaticMaskGenerator.generate` proposes masks in each grown tile; a mask that reaches a
grown tile's inner edge (where a neighbour tile continues the scan) is cut there and dropped, since
the neighbour sees that object whole when `overlap` exceeds the object's size. Proposals are then
merged across tiles with `mask_nms` on full-cloud indices. Each tile's proposals are saved as one
.npz in `out_dir` (written atomically) and reused when the run is resumed with the same settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointsam.automatic import mask_nms
from pointsam.errors import InputError
from pointsam.utils.files import atomic_output


@dataclass(frozen=True)
class Tile:
    """One tile: grid cell `(ix, iy)`, its grown xy box `lo`..`hi` and the points inside (sorted)."""

    ix: int
    iy: int
    lo: np.ndarray
    hi: np.ndarray
    inner_edges: tuple[bool, bool, bool, bool]  # x-low, x-high, y-low, y-high sides that cut the scan
    indices: np.ndarray

    @property
    def name(self) -> str:
        return f"tile_{self.ix:04d}_{self.iy:04d}"


def make_tiles(xyz: np.ndarray, tile_size: float, overlap: float) -> list[Tile]:
    """Square xy tiles of `tile_size` grown by `overlap` on each side; empty tiles are skipped."""
    if not tile_size > 0 or not overlap >= 0:
        raise InputError(f"tile_size must be > 0 and overlap >= 0, got {tile_size!r} and {overlap!r}")
    xy = np.asarray(xyz)[:, :2]
    lo_all, hi_all = xy.min(axis=0).astype(np.float64), xy.max(axis=0).astype(np.float64)
    counts = np.maximum(1, np.ceil((hi_all - lo_all) / tile_size).astype(int))
    tiles = []
    for ix in range(counts[0]):
        for iy in range(counts[1]):
            core_lo = lo_all + np.array([ix, iy]) * tile_size
            lo, hi = core_lo - overlap, core_lo + tile_size + overlap
            inside = np.flatnonzero(((xy >= lo) & (xy <= hi)).all(axis=1))
            if inside.size == 0:
                continue
            edges = (ix > 0, ix < counts[0] - 1, iy > 0, iy < counts[1] - 1)
            tiles.append(Tile(ix, iy, lo, hi, edges, inside))
    return tiles


def _cut_by_edge(tile: Tile, xy: np.ndarray, width: float) -> bool:
    """True when the points `xy` (M, 2) reach one of the tile's inner edges."""
    lo_x, lo_y = xy.min(axis=0)
    hi_x, hi_y = xy.max(axis=0)
    near = (lo_x <= tile.lo[0] + width, hi_x >= tile.hi[0] - width,
            lo_y <= tile.lo[1] + width, hi_y >= tile.hi[1] - width)
    return any(n and e for n, e in zip(near, tile.inner_edges, strict=True))


def _save(path: Path, records: list[dict[str, Any]], settings: str) -> None:
    sizes = np.array([r["indices"].size for r in records], np.int64)
    arrays = {
        "settings": np.array(settings),
        "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "indices": (np.concatenate([r["indices"] for r in records]) if records
                    else np.zeros(0, np.int64)),
        "score": np.array([r["score"] for r in records], np.float64),
        "predicted_iou": np.array([r["predicted_iou"] for r in records], np.float64),
        "stability_score": np.array([r["stability_score"] for r in records], np.float64),
        "prompt_index": np.array([r["prompt_index"] for r in records], np.int64),
        "candidate": np.array([r["candidate"] for r in records], np.int64),
    }
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _load(path: Path, settings: str) -> list[dict[str, Any]]:
    with np.load(path, allow_pickle=False) as npz:
        if str(npz["settings"]) != settings:
            raise InputError(f"{path} holds tile results from other settings; resume with the same "
                             "settings or use another tile folder")
        off = npz["offsets"]
        return [{"indices": npz["indices"][off[k]:off[k + 1]], "score": float(npz["score"][k]),
                 "predicted_iou": float(npz["predicted_iou"][k]),
                 "stability_score": float(npz["stability_score"][k]),
                 "prompt_index": int(npz["prompt_index"][k]), "candidate": int(npz["candidate"][k])}
                for k in range(off.size - 1)]


def _tile_records(generator, xyz, rgb, tile: Tile, edge_width: float) -> list[dict[str, Any]]:
    idx = tile.indices
    found = generator.generate(xyz[idx], None if rgb is None else rgb[idx])
    records = []
    for rec in found:
        local = np.asarray(rec["indices"], np.int64)
        if local.size == 0 or _cut_by_edge(tile, np.asarray(xyz[idx[local], :2], np.float64), edge_width):
            continue
        records.append({"indices": idx[local], "score": float(rec["score"]),
                        "predicted_iou": float(rec["predicted_iou"]),
                        "stability_score": float(rec["stability_score"]),
                        "prompt_index": int(idx[rec["prompt_index"]]), "candidate": int(rec["candidate"])})
    return records


def merge_masks(records: list[dict[str, Any]], num_points: int, iou_thresh: float) -> list[dict[str, Any]]:
    """Greedy point-set NMS (`mask_nms`) on records holding full-cloud `indices`, best score first.

    Points are grouped by the exact set of masks holding them, so the IoU is computed on one
    weighted column per group rather than on every point of the cloud.
    """
    if not records:
        return []
    rng = np.random.default_rng(0)
    keys = rng.integers(1, 2**63 - 1, len(records), dtype=np.uint64)
    signature = np.zeros(num_points, np.uint64)
    for key, rec in zip(keys, records, strict=True):
        signature[rec["indices"]] += key  # wraps modulo 2**64: a collision is vanishingly unlikely
    covered = np.flatnonzero(signature)
    groups, inverse, weights = np.unique(signature[covered], return_inverse=True, return_counts=True)
    column = np.zeros(num_points, np.int64)
    column[covered] = inverse
    dense = np.zeros((len(records), groups.size), bool)
    for row, rec in enumerate(records):
        dense[row, column[rec["indices"]]] = True
    keep = mask_nms(dense, np.array([r["score"] for r in records]), iou_thresh, weights)
    return [dict(records[k], num_points=int(records[k]["indices"].size)) for k in keep]


def segment_tiles(generator, xyz, rgb=None, *, tile_size: float, overlap: float,
                  out_dir: str | Path | None = None, nms_iou_thresh: float = 0.5,
                  edge_width: float | None = None, progress: Callable[[str], None] | None = None
                  ) -> list[dict[str, Any]]:
    """Masks for every object of a big scan; records as `AutomaticMaskGenerator.generate`'s but with
    full-cloud "indices" and "prompt_index", best score first.

    generator: an `AutomaticMaskGenerator` (its settings apply within each tile). With `out_dir`,
    each finished tile is saved there and skipped when the run is resumed with the same settings.
    """
    say = progress or (lambda _msg: None)
    xyz = np.asarray(xyz)
    tiles = make_tiles(xyz, tile_size, overlap)
    width = edge_width if edge_width is not None else 0.01 * tile_size
    settings = json.dumps({"n": int(xyz.shape[0]), "tile_size": tile_size, "overlap": overlap,
                           "edge_width": width, "generator": _generator_settings(generator)})
    folder = None if out_dir is None else Path(out_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for k, tile in enumerate(tiles, 1):
        path = None if folder is None else folder / f"{tile.name}.npz"
        if path is not None and path.exists():
            found = _load(path, settings)
            say(f"tile {k}/{len(tiles)} ({tile.name}): {len(found)} masks, resumed")
        else:
            found = _tile_records(generator, xyz, rgb, tile, width)
            if path is not None:
                _save(path, found, settings)
            say(f"tile {k}/{len(tiles)} ({tile.name}, {tile.indices.size:,} points): {len(found)} masks")
        records.extend(found)
    merged = merge_masks(records, xyz.shape[0], nms_iou_thresh)
    say(f"{len(merged)} masks after merging {len(records)} across {len(tiles)} tiles")
    for rec in merged:
        rec["prompt_point"] = np.asarray(xyz[rec["prompt_index"]], np.float64)
    return merged


def _generator_settings(generator) -> dict[str, Any]:
    names = ("num_prompts", "pred_iou_thresh", "stability_score_thresh", "nms_iou_thresh",
             "min_mask_points", "max_masks", "max_points", "num_patches", "patch_size", "seed")
    settings = {n: getattr(generator, n, None) for n in names}
    settings["views"] = getattr(getattr(generator, "predictor", None), "views", 1)  # changes the masks too
    return settings
