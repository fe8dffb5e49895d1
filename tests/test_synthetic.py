"""Procedural part-labelled shapes: valid clouds, a real hierarchy, a dataset the trainer reads."""

import numpy as np
import pytest

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


def test_parts_are_spatially_coherent():
    """Each part is a connected primitive: its points are closer to each other than the shape's extent."""
    cloud = random_shape(np.random.default_rng(7), num_points=4096)
    extent = np.ptp(cloud.xyz, axis=0).max()
    for mask, lv in zip(cloud.masks, cloud.levels, strict=True):
        if lv == 2 and len(mask) > 50:
            assert np.ptp(cloud.xyz[mask], axis=0).max() <= extent + 1e-6
            assert np.ptp(cloud.xyz[mask], axis=0).max() < 3.5  # primitives are at most ~1.5 units


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
