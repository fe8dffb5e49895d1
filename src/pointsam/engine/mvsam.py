"""Deprecated location: the MV-SAM baseline is an evaluation, now in :mod:`pointsam.evaluation.mvsam`."""

import warnings

from pointsam.evaluation.mvsam import (  # noqa: F401  (re-exported for old imports)
    MVSAM_IMAGE_SIZE,
    MVSAM_VIEWS,
    MultiViewCloud,
    evaluate_cloud_mvsam,
    evaluate_mvsam,
    run_mvsam_eval,
    splat_points,
    splat_radius,
    view_rollout,
)

warnings.warn("pointsam.engine.mvsam moved to pointsam.evaluation.mvsam; import it from there",
              DeprecationWarning, stacklevel=2)
