"""Shared test fixtures: locations of the shared reference files and data, the tiny model; and
under CI=true, a missing ../shared or test dependency fails the tests that need it instead of skipping."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"

torch.set_num_threads(2)

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
# Skip reasons that mean "this environment lacks something CI must have": the shared data/reference
# files (every such skip names them) or a package of the [test] extra (pytest.importorskip).
_CI_REQUIRED = re.compile(r"shared|could not import", re.IGNORECASE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true, turn a skip for missing shared files or test packages into a failure."""
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if _CI_REQUIRED.search(reason):
            report.outcome = "failed"
            report.longrepr = f"CI=true, so this may not skip: {reason}"


# A tiny random Point-SAM (about 0.24M parameters) for tests that need a real model but not real weights.
TINY_CONFIG_KW = dict(
    vit_width=64, vit_depth=2, vit_heads=2, embed_dim=32, decoder_heads=2, decoder_mlp_dim=64,
    vit_img_size=1, vit_patch_size=1, vit_num_classes=1, patch_embed_dim=64, pointnet_hidden=(16, 32),
    num_patches=32, patch_size=16,
)


def tiny_model(seed: int = 0):
    """The tiny random Point-SAM built from `seed`, in eval mode."""
    from pointsam.modeling.config import PointSAMConfig
    from pointsam.modeling.point_sam import build_model

    torch.manual_seed(seed)
    return build_model(PointSAMConfig.base(**TINY_CONFIG_KW)).eval()


def require(path: Path) -> Path:
    """Skip the test with a clear message when a shared file is absent (a failure under CI=true)."""
    if not path.exists():
        pytest.skip(f"shared file not found: {path} (the tests expect ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def golden() -> dict[str, torch.Tensor]:
    """Tensors of the official golden run (random weights, preset A)."""
    from safetensors.torch import load_file

    return load_file(str(require(REFERENCE / "official_golden_a.safetensors")))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared folder of real labelled point clouds."""
    return require(DATA)


GOLDEN_CONFIG_KW = dict(num_patches=128, patch_size=32, vit_depth=2, vit_width=256, vit_heads=4)


@pytest.fixture(scope="session")
def golden_model(golden):
    """The golden run's model (preset A), its official state dict loaded strictly, in eval mode."""
    from pointsam import PointSAMConfig, build_model

    state = {k[len("state_dict."):]: v for k, v in golden.items() if k.startswith("state_dict.")}
    model = build_model(PointSAMConfig.large(**GOLDEN_CONFIG_KW)).eval()
    model.load_state_dict(state, strict=True)
    return model
