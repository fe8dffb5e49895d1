"""Instance crops with context on a shared ScanNet scene."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam.data.converters import pointcept_scene
from pointsam.data.converters.crops import crop_box, instance_crops
from pointsam.data.converters.report import ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError
from tests.conftest import require


@pytest.fixture(scope="module")
def scene(data_dir) -> LabelledCloud:
    return pointcept_scene(require(data_dir / "scannet" / "scene0025_00"))


def test_each_crop_holds_its_whole_instance_first_and_context_around_it(scene):
    report = ConversionReport()
    crops = instance_crops(scene, margins=(0.5,), report=report)
    centres = [k for k, n in enumerate(scene.names) if n not in ("wall", "floor")
               and len(scene.masks[k]) >= 100]
    skipped = {item for item, _ in report.skipped}
    assert len(crops) == len([k for k in centres if f"{scene.name}: {scene.names[k]}" not in skipped]) > 5
    for crop in crops:
        k = int(crop.name.split("_crop_")[1].split("_")[0])
        whole = scene.xyz[scene.masks[k]]
        # The centre instance is the first mask, complete, with the same coordinates.
        assert crop.names[0] == scene.names[k] and crop.names[0] not in ("wall", "floor")
        np.testing.assert_array_equal(np.sort(crop.xyz[crop.masks[0]], axis=0), np.sort(whole, axis=0))
        lo, hi = crop_box(whole, 0.5)
        assert (crop.xyz >= lo).all() and (crop.xyz <= hi).all()
        # Context: points that are not the instance.
        assert crop.num_points > len(crop.masks[0])
    # Context masks: most crops also see a neighbour (floor, wall, furniture), cut at the border.
    assert np.mean([c.num_masks > 1 for c in crops]) > 0.8
    assert any(name == "floor" for c in crops for name in c.names[1:])


def test_larger_margin_sees_more_and_relative_margin_grows_with_the_object(scene):
    small = instance_crops(scene, margins=(0.2,))
    big = instance_crops(scene, margins=(1.0,))
    assert [c.name.rsplit("_", 1)[0] for c in small] == [c.name.rsplit("_", 1)[0] for c in big]
    assert all(b.num_points >= s.num_points for s, b in zip(small, big, strict=True))
    assert sum(b.num_points for b in big) > 1.5 * sum(s.num_points for s in small)
    lo, hi = crop_box(np.array([[0.0, 0, 0], [2.0, 1, 0]]), margin=0.1, relative=0.5)
    np.testing.assert_allclose(lo, [-1.0, -0.5, -0.1])
    np.testing.assert_allclose(hi, [3.0, 1.5, 0.1])


def test_large_and_tiny_instances_are_reported_not_cropped(scene):
    report = ConversionReport()
    crops = instance_crops(scene, margins=(0.3,), max_extent=1.0, min_instance_points=2000, report=report)
    for crop in crops:
        pts = crop.xyz[crop.masks[0]]
        assert (pts.max(axis=0) - pts.min(axis=0) <= 1.0).all() and len(pts) >= 2000
    reasons = [r for _, r in report.skipped]
    assert any("extent" in r for r in reasons) and any("< 2000" in r for r in reasons)


def test_bad_margins_are_refused(scene):
    with pytest.raises(InputError, match="margins"):
        instance_crops(scene, margins=(-1.0,))
    with pytest.raises(InputError, match="margins"):
        instance_crops(scene, margins=())
