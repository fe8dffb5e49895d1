"""Procedural part-labelled shapes: valid clouds, a real hierarchy, a dataset the trainer reads."""

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from pointsam.data.dataset import PointCloudDataset
from pointsam.data.synthetic import random_shape, write_synthetic_dataset
from pointsam.errors import InputError


def test_random_shape_hierarchy_is_consistent():
    rng = np.random.default_rng(1)
    for _ in range(10):
        cloud = random_shape(rng, num_points=2048)
        assert cloud.num_points == 2048 and np.isfinite(cloud.xyz).all()
        levels = cloud.levels
        parts = [set(m.tolist()) for m, lv in zip(cloud.masks, levels, strict=True) if lv == 2]
        # parts partition the cloud
        assert sum(len(p) for p in parts) == 2048 and set().union(*parts) == set(range(2048))
        # every group is a union of whole parts, the whole shape is one mask at level 0
        for mask, lv in zip(cloud.masks, levels, strict=True):
            if lv == 1:
                members = set(mask.tolist())
                assert all(p <= members or not (p & members) for p in parts)
                assert 1 < sum(p <= members for p in parts) < len(parts)
        assert list(levels).count(0) == 1 and len(cloud.masks[list(levels).index(0)]) == 2048


def _components(xyz: np.ndarray, spacing_factor: float = 8.0) -> int:
    """Connected components of the graph joining points closer than a few times their median spacing."""
    tree = cKDTree(xyz)
    radius = spacing_factor * float(np.median(tree.query(xyz, k=2)[0][:, 1]))
    return connected_components(tree.sparse_distance_matrix(tree, radius, output_type="coo_matrix"),
                                directed=False)[0]


@pytest.mark.parametrize("seed", [0, 6, 13])
def test_parts_are_connected_pieces_attached_to_each_other(seed):
    """Each part is one connected primitive surface; the parts touch, so the whole shape is one piece."""
    cloud = random_shape(np.random.default_rng(seed), num_points=4096)
    parts = [mask for mask, lv in zip(cloud.masks, cloud.levels, strict=True) if lv == 2]
    assert len(parts) >= 2
    for mask in parts:
        assert _components(cloud.xyz[mask]) == 1
        assert np.ptp(cloud.xyz[mask], axis=0).max() < 3.5  # primitives are at most ~1.5 units
    assert _components(cloud.xyz) == 1
    # two parts taken apart by 10 units are two pieces: the check can fail
    moved = cloud.xyz.copy()
    moved[parts[0]] += 10.0
    assert _components(moved) >= 2


def test_write_dataset_round_trip_and_no_overwrite(tmp_path):
    out = write_synthetic_dataset(tmp_path / "syn", 3, num_points=512, seed=3)
    ds = PointCloudDataset(out, split="train")
    assert len(ds) == 3 and ds[0].category == "Synthetic" and ds[0].num_masks >= 3
    with pytest.raises(FileExistsError):
        write_synthetic_dataset(tmp_path / "syn", 3, num_points=512)
    with pytest.raises(InputError):
        write_synthetic_dataset(tmp_path / "other", 0)
    with pytest.raises(InputError):
        random_shape(np.random.default_rng(0), num_points=10)
