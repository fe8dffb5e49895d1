"""What the page draws of a cloud: every point, or for a big scan a level of detail (a voxel overview of
the whole scan plus full resolution around the work area), in one centred frame that never moves.

Labels always live on every point of the cloud; the display copy only chooses which points are drawn.
`focus` moves the full-resolution area (after a click elsewhere, or a click on the page's minimap);
`version` counts the changes, so the page knows when to fetch the arrays again.
"""

from __future__ import annotations

import numpy as np

from pointsam.errors import InputError
from pointsam.io import PointCloud
from pointsam.io.pointcloud import rgb_to_uint8
from pointsam.scene.lod import LevelOfDetail

DETAIL_SHARE = 0.3  # of the display budget: the full-resolution ball around the work area
UP_AXES = {"x": 0, "y": 1, "z": 2}


class DisplayCopy:
    """The drawn points of `cloud`: all of them when there are at most `display_points`, else a level of
    detail of at most `display_points` (`index`: a `SpatialIndex` of the cloud to reuse, if one exists)."""

    def __init__(self, cloud: PointCloud, display_points: int, *, up: str = "z", index=None) -> None:
        if isinstance(display_points, bool) or not isinstance(display_points, int) or display_points < 1:
            raise InputError(f"display_points must be a positive integer, got {display_points!r}")
        self.cloud = cloud
        self.total = int(len(cloud.xyz))
        self.up = up
        self.version = 0
        self.focus_center: np.ndarray | None = None  # cloud coordinates of the full-resolution area
        self.focus_radius = 0.0
        self.lod: LevelOfDetail | None = None
        if display_points < self.total:
            detail = max(1, int(display_points * DETAIL_SHARE))
            self.lod = LevelOfDetail(cloud.xyz, overview_points=display_points - detail, detail_points=detail,
                                     index=index)
            shown = self.lod.display()
        else:
            shown = np.arange(self.total)
        frame = np.asarray(cloud.xyz[shown], dtype=np.float64)
        self.center = frame.mean(axis=0)
        self.radius = float(np.sqrt(((frame - self.center) ** 2).sum(axis=1).max()))
        self._grey_range = None
        raw = cloud.extra.get("intensity")
        if raw is not None and len(raw) == self.total:  # the 1st..99th percentile of the first copy, kept
            values = np.asarray(raw, dtype=np.float64)[shown]
            self._grey_range = tuple(np.percentile(values, [1, 99])) if values.size else (0.0, 1.0)
        self._set(shown)

    @property
    def is_lod(self) -> bool:
        """Whether this is a level-of-detail subset (a big scan) rather than every point."""
        return self.lod is not None

    def _set(self, shown: np.ndarray) -> None:
        cloud = self.cloud
        self.index = np.asarray(shown).astype(np.uint32)
        xyz = np.asarray(cloud.xyz[shown], dtype=np.float64)
        self.positions = np.ascontiguousarray(xyz - self.center, dtype=np.float32)
        self.colors = None if cloud.rgb is None else np.ascontiguousarray(rgb_to_uint8(cloud.rgb[shown]))
        self.intensity = None
        if self._grey_range is not None:  # grey levels, the stretch fixed by the first copy
            lo, hi = self._grey_range
            values = np.asarray(cloud.extra["intensity"], dtype=np.float64)[shown]
            scaled = np.clip((values - lo) / ((hi - lo) or 1.0), 0, 1)
            self.intensity = np.ascontiguousarray(np.round(scaled * 255), dtype=np.uint8)

    def covers(self, point: np.ndarray) -> bool:
        """Whether `point` (cloud coordinates) is drawn at full resolution (always, without a level of
        detail); a point near the rim of the full-resolution area counts as outside."""
        if self.lod is None:
            return True
        if self.focus_center is None:
            return False
        distance = np.linalg.norm(np.asarray(point, np.float64) - self.focus_center)
        return bool(distance <= 0.8 * self.focus_radius)

    def focus(self, point: np.ndarray) -> bool:
        """Draw full resolution around `point` (cloud coordinates); False when there is no level of detail."""
        if self.lod is None:
            return False
        point = np.asarray(point, dtype=np.float64).reshape(3)
        if not np.isfinite(point).all():
            raise InputError("the focus point must be finite")
        shown, region = self.lod.display_with_detail(point)
        self.focus_center, self.focus_radius = point, float(region.radius)
        self._set(shown)
        self.version += 1
        return True

    def ground_point(self, page_xy: tuple[float, float]) -> np.ndarray:
        """The overview point nearest, seen from above, to `page_xy`: the page's (centred) coordinates
        along the two horizontal axes, in axis order (the minimap's click), as cloud coordinates."""
        axes = [a for a in range(3) if a != UP_AXES[self.up]]
        overview = self.lod.overview if self.lod is not None else np.arange(self.total)
        flat = np.asarray(self.cloud.xyz[overview][:, axes], np.float64) - self.center[axes]
        d = ((flat - np.asarray(page_xy, np.float64)) ** 2).sum(axis=1)
        return np.asarray(self.cloud.xyz[overview[int(np.argmin(d))]], np.float64)

    def state(self) -> dict:
        """What the page needs to know of the display copy (positions in the centred frame)."""
        focus = None
        if self.focus_center is not None:
            focus = {"center": [round(float(v), 6) for v in self.focus_center - self.center],
                     "radius": round(self.focus_radius, 6)}
        return {"count": int(self.index.size), "total": self.total, "has_color": self.colors is not None,
                "has_intensity": self.intensity is not None, "radius": self.radius, "up": self.up,
                "version": self.version, "lod": self.is_lod, "focus": focus}
