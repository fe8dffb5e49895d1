"""Checkpoint loading: safetensors round trip, config inference, clear errors, no unpickling."""

from __future__ import annotations

import pytest
import torch

from pointsam import CheckpointError, PointSAMConfig, build_model
from pointsam.checkpoint import infer_config, load_model, save_model

TINY = PointSAMConfig.large(vit_depth=2, vit_width=64, vit_heads=2, num_patches=32, patch_size=8)
TINY_EVA = PointSAMConfig.giant(vit_depth=1, vit_width=64, vit_heads=2, vit_mlp_dim=256)


def _official_file(tmp_path, cfg, name="model.safetensors"):
    """A file in the official layout: bare state dict, no metadata."""
    from safetensors.torch import save_file

    model = build_model(cfg)
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


@pytest.mark.parametrize("cfg", [TINY, TINY_EVA])
def test_roundtrip_official_layout_auto(tmp_path, cfg):
    model, path = _official_file(tmp_path, cfg)
    loaded = load_model(path, config="auto", device="cpu")
    assert loaded.config.vit_variant == cfg.vit_variant
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert not any(b.is_meta for b in loaded.buffers())


def test_explicit_config_and_metadata(tmp_path):
    model = build_model(TINY)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)  # config comes from the file's metadata
    assert loaded.config == TINY
    with pytest.raises(FileExistsError):
        save_model(model, path)


def test_wrong_architecture_is_named(tmp_path):
    _, path = _official_file(tmp_path, TINY)
    with pytest.raises(CheckpointError, match="shape mismatches.*tensors look like"):
        load_model(path, config=PointSAMConfig.large(vit_depth=2, vit_width=128, vit_heads=2))
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_model(path, config=PointSAMConfig.large(vit_depth=1, vit_width=64, vit_heads=2))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_model(path, config=PointSAMConfig.large(vit_depth=3, vit_width=64, vit_heads=2))


def test_missing_corrupt_truncated(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(bad)
    _, path = _official_file(tmp_path, TINY)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_model(cut, config="auto")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported checkpoint extension"):
        load_model(other)


def test_pth_is_loaded_without_unpickling_code(tmp_path):
    model = build_model(TINY)
    good = tmp_path / "m.pth"
    torch.save({"model": model.state_dict()}, good)
    loaded = load_model(good, config=TINY)
    assert torch.equal(loaded.mask_decoder.iou_token.weight, model.mask_decoder.iou_token.weight)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model(evil, config=TINY)


def test_not_a_pointsam_checkpoint(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"linear.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match="does not look like a Point-SAM"):
        load_model(path, config="auto")
    with pytest.raises(CheckpointError):
        infer_config({"x": torch.zeros(1)})


def test_missing_default_model_explains(monkeypatch, tmp_path):
    import pointsam.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "default_model_path", lambda: tmp_path / "default_model.safetensors")
    with pytest.raises(CheckpointError, match="bundled default model is missing"):
        load_model(None)


def test_save_layouts_both_load(tmp_path):
    from safetensors import safe_open

    from pointsam.checkpoint import UNUSED_VIT_KEYS

    model = build_model(TINY)
    official = save_model(model, tmp_path / "official.safetensors")
    compact = save_model(model, tmp_path / "compact.safetensors", official_layout=False)
    with safe_open(str(official), "pt") as f:
        assert set(UNUSED_VIT_KEYS) <= set(f.keys())
    with safe_open(str(compact), "pt") as f:
        assert not set(UNUSED_VIT_KEYS) & set(f.keys())
    for path in (official, compact):
        loaded = load_model(path, device="cpu")
        assert loaded.config == TINY
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
