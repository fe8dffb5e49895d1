"""Old home of the input checks; they now live in `pointsam.preprocessing` (names kept importable)."""

from pointsam.preprocessing import as_numpy, check_labels, check_xyz, colors_to_unit

__all__ = ["as_numpy", "check_labels", "check_xyz", "colors_to_unit"]
