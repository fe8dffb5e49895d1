"""Few-shot part segmentation (paper Sec. 5.3) on real PartNet shapes with a tiny random encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pointsam.checkpoint import save_model
from pointsam.cli import main
from pointsam.data import DatasetWriter, LabelledCloud, PointCloudDataset
from pointsam.data.converters import partnet_object
from pointsam.errors import InputError
from pointsam.fewshot import (
    FeatureExtractor,
    HeadConfig,
    majority_baseline,
    part_labels,
    predict_parts,
    resolve_layers,
    shape_miou,
    split_categories,
    summarize,
    train_head,
)
from pointsam.fewshot.features import capture_blocks

from conftest import DATA, require
from conftest import tiny_model as build_tiny_model

PARTNET = DATA / "partnet_mobility"
FAST = HeadConfig(hidden=64, dropout=0.1, epochs=80, lr=3e-3, points_per_shape=256)


def need(path: Path) -> Path:
    return require(path)


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny_model(seed=0)


def pinned_objects(categories: tuple[str, ...] = ("Faucet", "Table"), origin: str = "bestman") -> list[str]:
    """The objects these tests use: one fixed source's PartNet samples (the shared folder may grow)."""
    with open(need(PARTNET / "INDEX.csv"), newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["category"] in categories and r["origin"] == origin
                and r["partnet_point_sample"] == "True"]
    return sorted(r["path"] for r in rows)


@pytest.fixture(scope="module")
def partnet_two(tmp_path_factory) -> Path:
    """Faucet + Table PartNet point samples of the first shared source (10 + 20 shapes) as a dataset."""
    objects = pinned_objects()
    assert [o.split("/")[0] for o in objects].count("Faucet") == 10 and len(objects) == 30
    out = tmp_path_factory.mktemp("fewshot") / "pm"
    with DatasetWriter(out, name="pm") as writer:
        for rel in objects:
            category = rel.split("/")[0]
            writer.add(partnet_object(need(PARTNET / rel), category=category), split="train")
    return out


# ------------------------------------------------------------------------------ features


def test_resolve_layers():
    assert resolve_layers((4, 8, -1), 24) == [3, 7, 23]
    assert resolve_layers((4, 8, -1), 12) == [3, 7, 11]
    assert resolve_layers((4, 8, -1), 2, clamp=True) == [1]  # shallow model: all map to the last
    assert resolve_layers((1, -1), 2) == [0, 1]
    for bad in ((0,), (3,), (-3,), ()):
        with pytest.raises(InputError, match="block"):
            resolve_layers(bad, 2)


def test_hooked_features_match_the_encoder(tiny_model, partnet_two):
    cloud = PointCloudDataset(partnet_two)[0]
    ext = FeatureExtractor(tiny_model, layers=(1, 2))
    assert ext.layers == [1, 2] and ext.feature_dim == 128
    feats = ext(cloud.xyz)
    assert feats.patch_features.shape == (32, 128)
    assert feats.interp_idx.shape == (cloud.num_points, 3)
    assert torch.allclose(feats.interp_weight.sum(1), torch.ones(cloud.num_points))
    # the hooked last block, normalised, is the encoder's own fc_norm output (identity affine at init)
    pred = ext.predictor
    pred.set_point_cloud(cloud.xyz)
    emb = pred.embedding
    enc = tiny_model.pc_encoder
    with torch.no_grad():
        grey = torch.zeros_like(emb.coords)
        tokens = enc.tokens(emb.coords, grey, emb.patches)
        with capture_blocks(tiny_model, [0, 1]) as got:
            final = enc.transformer(tokens)[0]
    assert torch.allclose(feats.patch_features[:, 64:], final, atol=1e-5)
    assert torch.allclose(feats.patch_features[:, :64], F.layer_norm(got[0][0], (64,)), atol=1e-5)
    assert not torch.allclose(feats.patch_features[:, :64], feats.patch_features[:, 64:], atol=1e-2)
    # per-point features: exact at a patch centre, shape (N, C)
    points = feats.point_features()
    assert points.shape == (cloud.num_points, 128)
    centre = int(emb.patches.fps_idx[0, 5])
    assert torch.allclose(points[centre], feats.patch_features[5], atol=1e-4)


def test_feature_extractor_leaves_the_callers_model_as_it_was(partnet_two):
    """No freezing in place: requires_grad and train mode survive; features are those of eval mode."""
    model = build_tiny_model(seed=1)
    model.pc_encoder.requires_grad_(False)
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    assert any(flags) and not all(flags)
    xyz = PointCloudDataset(partnet_two)[0].xyz
    feats = FeatureExtractor(model, layers=(1, 2))(xyz)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert model.training and all(m.training for m in model.modules())
    assert not feats.patch_features.requires_grad
    reference = FeatureExtractor(model.eval(), layers=(1, 2))(xyz)
    assert torch.equal(feats.patch_features, reference.patch_features)


# ------------------------------------------------------------------------------ labels


def test_part_labels_from_the_partnet_hierarchy(partnet_two):
    ds = PointCloudDataset(partnet_two)
    faucet = next(c for c in ds if c.category == "Faucet")
    labels, names = part_labels(faucet)
    assert set(names) <= {"frame", "spout", "switch"} and len(names) >= 2
    assert (labels >= 0).mean() > 0.95
    for k, name in enumerate(names):  # each label is the union of that part's level-2 masks
        union = np.zeros(faucet.num_points, bool)
        for mask, mname in zip(faucet.masks, faucet.names, strict=True):
            if mname.endswith("/" + name):
                union[mask] = True
        assert np.array_equal(labels == k, union)
    table = next(c for c in ds if c.category == "Table")
    labels, names = part_labels(table, level=2)
    assert "tabletop" in names
    with pytest.raises(InputError, match="level"):
        part_labels(table, level=0)


def test_part_labels_flat_masks_and_overlaps():
    xyz = np.random.default_rng(0).normal(size=(6, 3))
    flat = LabelledCloud(xyz, [np.array([0, 1, 2]), np.array([2, 3]), np.array([5])],
                         names=["wing", "body", "wing"])
    labels, names = part_labels(flat)
    assert names == ["body", "wing"]
    assert labels.tolist() == [1, 1, -1, 0, -1, 1]  # point 2 in two parts: ignored; point 4: none
    with pytest.raises(InputError, match="no mask names"):
        part_labels(LabelledCloud(xyz, [np.array([0])]))


def test_split_categories(partnet_two):
    ds = PointCloudDataset(partnet_two)
    eps = split_categories(ds, shots=2, seed=3)
    assert [e.category for e in eps] == ["Faucet", "Table"]
    faucet = eps[0]
    assert len(faucet.support) == 2 and len(faucet.test) == 8
    assert not {s.file for s in faucet.support} & {s.file for s in faucet.test}
    assert all(s.labels.max() < len(faucet.parts) for s in faucet.support + faucet.test)
    again = split_categories(ds, shots=2, seed=3)
    assert [s.file for s in again[0].support] == [s.file for s in faucet.support]
    other = split_categories(ds, shots=2, seed=4, categories=["Table"], max_test=3)
    assert [e.category for e in other] == ["Table"] and len(other[0].test) == 3
    with pytest.raises(InputError, match="too few in: Faucet"):
        split_categories(ds, shots=10)
    with pytest.raises(InputError, match="shots"):
        split_categories(ds, shots=0)
    with pytest.raises(InputError, match="unknown categories"):
        split_categories(ds, shots=1, categories=["Chair"])


# ------------------------------------------------------------------------------ metrics, head


def test_shape_miou_convention():
    pred, gt = np.array([0, 0, 1, 1]), np.array([0, 1, 1, -1])
    # part 0: 1/2, part 1: 1/2, part 2 absent from both: 1 (point 3 is ignored)
    assert shape_miou(pred, gt, 3) == pytest.approx(2 / 3)
    assert shape_miou(gt.clip(0), gt, 2) == 1.0
    s = summarize({"a": [1.0, 0.5], "b": [0.0]})
    assert s == {"class_miou": pytest.approx(0.375), "instance_miou": pytest.approx(0.5)}


def test_head_learns_real_parts_with_a_random_frozen_encoder(tiny_model, partnet_two):
    ds = PointCloudDataset(partnet_two)
    (table,) = split_categories(ds, shots=2, seed=0, categories=["Table"], max_test=4)
    ext = FeatureExtractor(tiny_model)
    support = [(ext(s.cloud.xyz), s.labels) for s in table.support]
    labels = [lab for _, lab in support]
    n = len(table.parts)
    rng = np.random.default_rng(0)
    chance = max(majority_baseline(labels, labels, n),
                 np.mean([shape_miou(rng.integers(0, n, len(lab)), lab, n) for lab in labels]))
    head = train_head(support, n, FAST, seed=0)
    train = np.mean([shape_miou(predict_parts(head, f), lab, n) for f, lab in support])
    assert train > chance + 0.25, (train, chance)
    test = np.mean([shape_miou(predict_parts(head, ext(s.cloud.xyz)), s.labels, n) for s in table.test])
    assert 0.0 <= test <= 1.0
    with pytest.raises(InputError, match="labels must lie"):
        train_head([(support[0][0], np.full(support[0][0].num_points, n))], n, FAST)


# ------------------------------------------------------------------------------ command line


def test_cli_fewshot_end_to_end(tiny_model, partnet_two, tmp_path, capsys):
    ckpt = save_model(tiny_model, tmp_path / "tiny.safetensors")
    out = tmp_path / "report.json"
    args = ["fewshot", "--data", str(partnet_two), "--split", "train", "--shots", "1", "--checkpoint",
            str(ckpt), "--config", "auto", "--epochs", "3", "--max-test", "2", "--out", str(out),
            "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Faucet" in printed and "Table" in printed and "class mIoU" in printed
    report = json.loads(out.read_text())
    assert report["shots"] == 1 and report["layers"] == [2]
    assert set(report["categories"]) == {"Faucet", "Table"}
    for r in report["categories"].values():
        assert len(r["support"]) == 1 and r["num_test"] == 2 and 0.0 <= r["miou"] <= 1.0
    means = [r["miou"] for r in report["categories"].values()]
    assert report["class_miou"] == pytest.approx(np.mean(means), abs=1e-5)
    assert main(args) == 2  # refuses to overwrite the report
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--shots", "0"], "at least 1"),
    (["--shots", "1", "--split", "val"], "no split 'val'"),
    (["--shots", "12"], "too few in: Faucet (10)"),
    (["--shots", "1", "--categories", "Chair"], "unknown categories"),
    (["--shots", "1", "--out", "report.txt"], "must end in .json"),
    (["--shots", "1", "--checkpoint", "missing.safetensors"], "missing.safetensors"),
])
def test_cli_fewshot_bad_inputs(partnet_two, capsys, extra, message):
    assert main(["fewshot", "--data", str(partnet_two), *extra]) == 2
    assert message in capsys.readouterr().err
