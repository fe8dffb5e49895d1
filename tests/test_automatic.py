"""AutomaticMaskGenerator ("segment everything"): filters, NMS, labels, down-sampling, real model."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from pointsam import InputError, PointSAMConfig, build_model
from pointsam.automatic import (
    AutomaticMaskGenerator,
    mask_iou_matrix,
    mask_nms,
    records_to_labels,
    stability_score,
)
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import TINY_CONFIG_KW

TINY = PointSAMConfig.base(**TINY_CONFIG_KW)
CENTERS = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0], [6, 6, 1], [3, 3, 5]], np.float64)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def make_scene(points_per_object: int, background: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated blobs (labels 0..K-1) plus a sparse background shell (label -1), shuffled."""
    rng = np.random.default_rng(seed)
    xyz = [c + rng.uniform(-1, 1, (points_per_object, 3)) for c in CENTERS]
    labels = [np.full(points_per_object, k) for k in range(len(CENTERS))]
    shell = rng.normal(size=(background, 3))
    xyz.append(np.array([3, 3, 2]) + 10 * shell / np.linalg.norm(shell, axis=1, keepdims=True))
    labels.append(np.full(background, -1))
    xyz_all, lab = np.concatenate(xyz), np.concatenate(labels)
    perm = rng.permutation(lab.size)
    return xyz_all[perm].astype(np.float32), lab[perm]


class OracleDecoder:
    """Stands in for `PointSAM.decode`: exact object masks for a click, as 3 candidates.

    Candidates: 0 = the clicked object (IoU 0.95, logits +-5 so fully stable), 1 = the object plus
    the next one at logit +0.5 (IoU 0.9 but unstable), 2 = a 10-point fragment (IoU 0.9, too
    small). A click on the background gives the whole background with a low IoU (0.3).
    """

    def __init__(self, predictor: PointCloudPredictor, xyz: np.ndarray, labels: np.ndarray) -> None:
        self.predictor, self.labels = predictor, labels
        self.tree = cKDTree(xyz.astype(np.float64))
        self.calls = 0

    def _labels_of(self, normalized: np.ndarray) -> np.ndarray:
        norm = self.predictor.normalization
        _, idx = self.tree.query(normalized.astype(np.float64) * norm.scale + norm.center)
        return self.labels[idx]

    def __call__(self, cloud, coords, labels, masks=None, multimask=True, chunk=None):
        self.calls += 1
        assert multimask and masks is None and bool((labels == 1).all()) and coords.shape[1] == 1
        pts = cloud.coords[0].numpy()
        point_label = self._labels_of(pts)
        click = self._labels_of(coords[:, 0].numpy())
        p, n = coords.shape[0], pts.shape[0]
        logits = torch.full((p, 3, n), -5.0)
        scores = torch.zeros(p, 3)
        for i, k in enumerate(click):
            obj = torch.from_numpy(point_label == k)
            if k < 0:
                logits[i, :, obj] = 5.0
                scores[i] = 0.3
                continue
            logits[i, 0, obj] = 5.0
            logits[i, 1, obj] = 5.0
            logits[i, 1, torch.from_numpy(point_label == (k + 1) % len(CENTERS))] = 0.5
            d = np.linalg.norm(pts - coords[i, 0].numpy(), axis=1)
            logits[i, 2, np.argsort(d)[:10]] = 5.0
            scores[i] = torch.tensor([0.95, 0.9, 0.9])
        return logits, scores


def oracle_predictor(model, xyz, labels) -> tuple[PointCloudPredictor, OracleDecoder]:
    pred = PointCloudPredictor(model)
    oracle = OracleDecoder(pred, xyz, labels)
    model.decode = oracle  # instance attribute: only this model object is patched
    return pred, oracle


def assert_objects_found(records, labels):
    k = len(CENTERS)
    assert len(records) == k
    found = sorted(tuple(np.unique(labels[r["indices"]])) for r in records)
    assert found == [(i,) for i in range(k)]
    for r in records:
        obj = labels[r["indices"][0]]
        np.testing.assert_array_equal(r["indices"], np.flatnonzero(labels == obj))
        assert r["indices"].dtype == np.int64 and r["num_points"] == r["indices"].size
        assert labels[r["prompt_index"]] == obj
        assert r["candidate"] == 0 and r["predicted_iou"] == pytest.approx(0.95)
        assert r["stability_score"] == 1.0
    paint = records_to_labels(records, labels.size)
    assert paint.dtype == np.int32
    np.testing.assert_array_equal(paint < 0, labels < 0)
    for i, r in enumerate(records):
        assert (paint[r["indices"]] == i).all()


def test_oracle_scene_returns_each_object_once():
    model = build_model(TINY).eval()
    xyz, labels = make_scene(400, 300)
    pred, oracle = oracle_predictor(model, xyz, labels)
    encodes = []
    real_encode = model.encode
    model.encode = lambda *a, **k: encodes.append(1) or real_encode(*a, **k)
    gen = AutomaticMaskGenerator(pred, num_prompts=64, points_per_batch=16)
    records = gen.generate(xyz)
    assert len(encodes) == 1 and oracle.calls == 4  # encoded once, 64 prompts in 4 batches
    assert_objects_found(records, labels)
    np.testing.assert_array_equal(gen.labels(records, labels.size), records_to_labels(records, labels.size))
    # Every filter matters: without them the unstable / small / background candidates survive.
    loose = AutomaticMaskGenerator(pred, num_prompts=64, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                                   min_mask_points=0).generate(xyz)
    assert len(loose) > len(records)
    top2 = AutomaticMaskGenerator(pred, num_prompts=64, max_masks=2).generate(xyz)
    assert len(top2) == 2


def test_downsampled_scene_propagates_to_full_cloud():
    model = build_model(TINY).eval()
    xyz, labels = make_scene(58_000, 10_000, seed=1)  # 300k points
    assert xyz.shape[0] == 300_000
    pred, oracle = oracle_predictor(model, xyz, labels)
    # min_mask_points counts full-cloud points: the 10-point fragment of the 20k working cloud
    # stands for ~150 full points, so it passes min_mask_points=20 but not 500.
    gen = AutomaticMaskGenerator(pred, num_prompts=48, points_per_batch=48, max_points=20_000,
                                 min_mask_points=500)
    records = gen.generate(xyz)
    assert pred.num_points == 20_000 and oracle.calls == 1
    assert_objects_found(records, labels)
    for r in records:
        np.testing.assert_array_equal(r["prompt_point"], xyz[r["prompt_index"]].astype(np.float64))


def test_stability_score_by_hand():
    logits = torch.tensor([[3.0, 2.0, 0.5, -0.5, -3.0], [-3.0, -2.0, -2.0, -2.0, -3.0],
                           [0.5, 0.0, -0.5, -0.9, -5.0]])
    np.testing.assert_allclose(stability_score(logits, 1.0).numpy(), [2 / 4, 0.0, 0.0])
    np.testing.assert_allclose(stability_score(logits, 0.25).numpy(), [1.0, 0.0, 1 / 2])
    assert stability_score(torch.zeros(2, 3, 7)).shape == (2, 3)


def test_nms_and_iou_on_hand_made_masks():
    n = 100
    m = np.zeros((5, n), bool)
    m[0, :50] = True     # A
    m[1, :45] = True     # inside A, IoU 0.9 with A
    m[2, 50:80] = True   # B, disjoint from A
    m[3, 40:80] = True   # overlaps A (10/80) and B (30/40 = 0.75)
    m[4, 90:] = True     # C
    iou = mask_iou_matrix(m, block=2)
    assert iou[0, 1] == pytest.approx(0.9) and iou[2, 3] == pytest.approx(0.75)
    assert iou[0, 2] == 0 and np.allclose(np.diag(iou), 1) and np.allclose(iou, iou.T)
    scores = np.array([0.9, 0.95, 0.5, 0.8, 0.1])
    # 1 (best) suppresses 0 (IoU .9); 3 then suppresses 2 (IoU .75); 4 is alone.
    np.testing.assert_array_equal(mask_nms(m, scores, 0.7, block=2), [1, 3, 4])
    np.testing.assert_array_equal(mask_nms(m, scores, 0.8), [1, 3, 2, 4])
    np.testing.assert_array_equal(mask_nms(m, scores, 0.95), [1, 0, 3, 2, 4])
    # Weights measure IoU on the full cloud: points 45..49 stand for 20 points each, so
    # IoU(0, 1) = 45 / 145 and IoU(2, 3) = 30 / 135 and nothing is suppressed any more.
    w = np.ones(n)
    w[45:50] = 20
    np.testing.assert_array_equal(mask_nms(m, scores, 0.7, weights=w), [1, 0, 3, 2, 4])
    # Greedy NMS equals the brute-force reference on random masks, whatever the block size.
    rng = np.random.default_rng(0)
    r = rng.random((60, 200)) < rng.random((60, 1))
    s = rng.random(60)
    ref_iou = mask_iou_matrix(r)
    kept: list[int] = []
    for i in np.argsort(-s):
        if not kept or (ref_iou[i, kept] <= 0.5).all():
            kept.append(int(i))
    for block in (1, 7, 256):
        np.testing.assert_array_equal(mask_nms(r, s, 0.5, block=block), kept)


def test_labels_best_score_wins_overlaps():
    recs = [{"indices": np.array([0, 1, 2]), "score": 0.9},
            {"indices": np.array([2, 3]), "score": 0.5},
            {"indices": np.array([3, 4]), "score": 0.7}]
    np.testing.assert_array_equal(records_to_labels(recs, 6), [0, 0, 0, 2, 2, -1])
    with pytest.raises(InputError):
        records_to_labels([{"indices": np.array([7]), "score": 1.0}], 6)


@pytest.mark.slow
def test_real_tiny_model_on_example_table(tiny_model):
    cloud = read_point_cloud(files("pointsam") / "assets" / "example_table.ply")
    gen = AutomaticMaskGenerator(tiny_model, num_prompts=24, points_per_batch=12, pred_iou_thresh=0.0,
                                 stability_score_thresh=0.0, min_mask_points=1, max_points=4000)
    records = gen.generate(cloud.xyz, cloud.rgb)
    n = cloud.num_points
    assert all(a["score"] >= b["score"] for a, b in zip(records, records[1:], strict=False))
    for r in records:
        idx = r["indices"]
        assert idx.dtype == np.int64 and idx.size == r["num_points"] >= 1
        assert idx.min() >= 0 and idx.max() < n and np.all(np.diff(idx) > 0)
        assert 0.0 <= r["stability_score"] <= 1.0 and r["score"] == r["predicted_iou"]
        assert 0 <= r["prompt_index"] < n and 0 <= r["candidate"] < 3
        np.testing.assert_array_equal(r["prompt_point"], cloud.xyz[r["prompt_index"]])
    labels = gen.labels(records, n)
    assert labels.shape == (n,) and labels.min() >= -1 and labels.max() < len(records)


@pytest.mark.parametrize("kwargs", [
    {"num_prompts": 0}, {"num_prompts": 2.5}, {"points_per_batch": 0}, {"pred_iou_thresh": 1.5},
    {"stability_score_thresh": -0.1}, {"stability_score_offset": -1.0}, {"nms_iou_thresh": 2},
    {"min_mask_points": -1}, {"max_masks": 0}, {"max_points": 2}, {"num_patches": 1},
    {"patch_size": 0}, {"seed": -1}, {"pred_iou_thresh": float("nan")}, {"num_prompts": True},
])
def test_bad_parameters_raise(tiny_model, kwargs):
    with pytest.raises(InputError):
        AutomaticMaskGenerator(tiny_model, **kwargs)


def test_bad_inputs_raise(tiny_model):
    with pytest.raises(InputError, match="PointCloudPredictor"):
        AutomaticMaskGenerator("model.safetensors")
    gen = AutomaticMaskGenerator(tiny_model)
    with pytest.raises(InputError):
        gen.generate(np.zeros((10, 2)))
    with pytest.raises(InputError, match="rgb"):
        gen.generate(np.random.rand(50, 3), np.zeros((49, 3)))
    with pytest.raises(InputError):
        mask_nms(np.zeros((2, 3), bool), np.zeros(3), 0.5)
    with pytest.raises(InputError):
        mask_iou_matrix(np.zeros((2, 3), np.float32))


def test_everything_command_writes_all_formats(tmp_path, capsys):
    import json

    from plyfile import PlyData

    from pointsam.checkpoint import save_model
    from pointsam.cli import main

    example = files("pointsam") / "assets" / "example_table.ply"
    ckpt = save_model(build_model(TINY), tmp_path / "m.safetensors")
    common = [str(example), "--checkpoint", str(ckpt), "--num-prompts", "16"]
    assert main(["everything", *common, "--out", str(tmp_path / "o.ply")]) == 0
    v = PlyData.read(str(tmp_path / "o.ply"))["vertex"]
    assert len(v) == 10800 and v["label"].min() >= -1
    assert main(["everything", *common, "--out", str(tmp_path / "o.npy")]) == 0
    assert np.load(tmp_path / "o.npy").shape == (10800,)
    assert main(["everything", *common, "--out", str(tmp_path / "o.json")]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["num_points"] == 10800
    assert "masks covering" in capsys.readouterr().out
    assert main(["everything", *common, "--out", str(tmp_path / "o.las")]) == 2
    assert main(["everything", *common, "--out", str(tmp_path / "o.ply")]) == 2  # exists
    assert main(["everything", *common, "--num-prompts", "0", "--out", str(tmp_path / "p.ply")]) == 2


def test_everything_command_by_tiles_resumes(tmp_path, capsys):
    """`everything --tile-size` segments overlapping tiles, keeps them, and a rerun resumes them."""
    from pointsam.checkpoint import save_model
    from pointsam.cli import main

    example = files("pointsam") / "assets" / "example_table.ply"
    ckpt = save_model(build_model(TINY), tmp_path / "m.safetensors")
    common = [str(example), "--checkpoint", str(ckpt), "--num-prompts", "8", "--pred-iou-thresh", "0",
              "--stability-thresh", "0", "--tile-size", "1.0", "--tiles-dir", str(tmp_path / "tiles")]
    assert main(["everything", *common, "--out", str(tmp_path / "a.npy")]) == 0
    first = np.load(tmp_path / "a.npy")
    tiles = sorted((tmp_path / "tiles").glob("*.npz"))
    assert first.shape == (10800,) and len(tiles) >= 2
    capsys.readouterr()
    assert main(["everything", *common, "--out", str(tmp_path / "b.npy")]) == 0
    assert "resumed" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), first)
    assert main(["everything", str(example), "--checkpoint", str(ckpt), "--tile-size", "-1",
                 "--out", str(tmp_path / "c.npy")]) == 2
    assert main(["everything", str(example), "--checkpoint", str(ckpt), "--tiles-dir", str(tmp_path),
                 "--out", str(tmp_path / "c.npy")]) == 2
