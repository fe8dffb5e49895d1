"""Segment everything by tiles: cut masks dropped, duplicates merged by NMS, per-tile resume."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam import InputError
from pointsam.automatic import AutomaticMaskGenerator
from pointsam.scene.synthetic import separated_objects
from pointsam.scene.tiles import make_tiles, merge_masks, segment_tiles

from conftest import tiny_model


class _PerfectGenerator:
    """A stand-in generator: one mask per object present in the tile (object id stored in red)."""

    num_prompts = 1
    calls = 0

    def generate(self, xyz, rgb=None):
        type(self).calls += 1
        out = []
        for k in np.unique(rgb[:, 0]):
            idx = np.flatnonzero(rgb[:, 0] == k)
            out.append({"indices": idx, "score": 0.9 - 0.01 * len(out), "predicted_iou": 0.9,
                        "stability_score": 0.95, "prompt_index": int(idx[0]), "candidate": 0})
        return out


def _row_scene():
    rng = np.random.default_rng(0)
    centres = [0.5, 2.5, 5.0, 6.3, 7.5, 9.5]  # 5.0 is whole in both tiles, 6.3 is cut by tile 0
    parts = [rng.uniform(-0.5, 0.5, (300, 3)) + [c, 0.5, 0.5] for c in centres]
    xyz = np.concatenate(parts).astype(np.float32)
    inst = np.repeat(np.arange(len(centres)), 300)
    rgb = np.zeros((xyz.shape[0], 3), np.uint8)
    rgb[:, 0] = inst
    return xyz, rgb, inst


def test_object_split_across_tiles_comes_out_once_and_whole(tmp_path):
    xyz, rgb, inst = _row_scene()
    tiles = make_tiles(xyz, 5.0, 1.5)
    assert len(tiles) == 2 and tiles[0].inner_edges == (False, True, False, False)
    records = segment_tiles(_PerfectGenerator(), xyz, rgb, tile_size=5.0, overlap=1.5,
                            out_dir=tmp_path / "tiles")
    got = sorted(tuple(np.sort(r["indices"])) for r in records)
    want = sorted(tuple(np.flatnonzero(inst == k)) for k in range(6))
    assert got == want  # every object exactly once, with all of its points
    assert sorted(p.name for p in (tmp_path / "tiles").iterdir()) == ["tile_0000_0000.npz",
                                                                      "tile_0001_0000.npz"]


def test_resume_reuses_finished_tiles_and_refuses_other_settings(tmp_path):
    xyz, rgb, _ = _row_scene()
    first = segment_tiles(_PerfectGenerator(), xyz, rgb, tile_size=5.0, overlap=1.5, out_dir=tmp_path)
    _PerfectGenerator.calls = 0
    again = segment_tiles(_PerfectGenerator(), xyz, rgb, tile_size=5.0, overlap=1.5, out_dir=tmp_path)
    assert _PerfectGenerator.calls == 0
    assert [r["indices"].tolist() for r in again] == [r["indices"].tolist() for r in first]
    with pytest.raises(InputError, match="other settings"):
        segment_tiles(_PerfectGenerator(), xyz, rgb, tile_size=5.0, overlap=1.0, out_dir=tmp_path)


def test_merge_masks_suppresses_overlaps_by_point_iou():
    a = {"indices": np.arange(0, 100), "score": 0.9}
    b = {"indices": np.arange(5, 100), "score": 0.8}  # IoU 0.95 with a: dropped
    c = {"indices": np.arange(50, 200), "score": 0.7}  # IoU 50/200 with a: kept
    kept = merge_masks([b, c, a], 300, 0.5)
    assert [r["score"] for r in kept] == [0.9, 0.7]


def test_real_generator_on_tiles_gives_global_indices(tmp_path):
    xyz, rgb, _ = separated_objects(3000, 9, seed=4)
    gen = AutomaticMaskGenerator(tiny_model(), num_prompts=8, pred_iou_thresh=0.0,
                                 stability_score_thresh=0.0, min_mask_points=1)
    records = segment_tiles(gen, xyz, rgb, tile_size=4.0, overlap=1.0, out_dir=tmp_path)
    assert records
    for r in records:
        assert r["indices"].max() < len(xyz) and r["indices"].size == r["num_points"]
        np.testing.assert_array_equal(r["prompt_point"], xyz[r["prompt_index"]].astype(np.float64))
    assert len(list(tmp_path.glob("tile_*.npz"))) == len(make_tiles(xyz, 4.0, 1.0))
