"""Hostile and careless inputs to the model, predictor and checkpoint loader (issue 13 #8/#9/#11/#12,
issue 16): each case gets a clear `PointSAMError` or a documented, sensible result."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pointsam import CheckpointError, InputError, PointSAMConfig, build_model
from pointsam.checkpoint import infer_config, load_model, save_model
from pointsam.errors import PointSAMError
from pointsam.predictor import MAX_PROMPT_POINTS, PointCloudPredictor

from conftest import TINY_CONFIG_KW, tiny_model

TINY = PointSAMConfig.base(**TINY_CONFIG_KW)
XYZ = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def predictor() -> PointCloudPredictor:
    p = PointCloudPredictor(tiny_model())
    p.set_point_cloud(XYZ)
    return p


# ------------------------------------------------------------------ predictor inputs


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30])
def test_mask_input_must_be_finite_logits(predictor, bad):
    mask = np.zeros(300, np.float32)
    mask[7] = bad
    with pytest.raises(InputError, match="mask_input must hold finite logits"):
        predictor.predict(XYZ[:1], [1], mask_input=mask, multimask_output=False)


def test_strings_are_input_errors(predictor):
    with pytest.raises(InputError, match="point_coords must hold numbers"):
        predictor.predict([["a", "b", "c"]], [1])
    with pytest.raises(InputError, match="mask_input must hold numbers"):
        predictor.predict(XYZ[:1], [1], mask_input=np.array(["x"] * 300))


def test_negative_only_click_selects_nothing(predictor):
    masks, scores, logits = predictor.predict(point_indices=[11], point_labels=[0])
    assert masks.shape == (3, 300) and not masks.any()
    assert (scores == 0).all() and (logits <= -1.0).all()
    # With a positive click the same negative click does not empty the result.
    masks, scores, _ = predictor.predict(point_indices=[11, 40], point_labels=[0, 1])
    assert (scores != 0).any()


@pytest.mark.parametrize("kw", [dict(num_patches=0), dict(patch_size=0), dict(num_patches=-3),
                                dict(patch_size=2.5), dict(num_patches=True)])
def test_zero_or_bad_grouping_is_an_error_not_auto(kw):
    p = PointCloudPredictor(tiny_model())
    name = next(iter(kw))
    with pytest.raises(InputError, match=f"{name} must be a positive integer"):
        p.set_point_cloud(XYZ, **kw)


def test_too_many_prompt_points_is_refused_before_any_allocation(predictor):
    many = np.repeat(XYZ[:1], 100_000, axis=0)
    with pytest.raises(InputError, match=f"at most {MAX_PROMPT_POINTS}"):
        predictor.predict(many, np.ones(100_000, int))
    with pytest.raises(InputError, match=f"at most {MAX_PROMPT_POINTS}"):
        predictor.predict_torch(torch.zeros(1, 100_000, 3), torch.ones(1, 100_000))


def test_many_prompt_sets_are_decoded_in_batches(predictor, monkeypatch):
    import pointsam.predictor as pred_mod

    calls = []
    real = predictor.model.decode
    monkeypatch.setattr(pred_mod, "PROMPT_BATCH", 16)
    monkeypatch.setattr(predictor.model, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    idx = torch.arange(40)
    coords = torch.from_numpy(XYZ)[idx][:, None]
    masks, scores, logits = predictor.predict_torch(coords, torch.ones(40, 1))
    assert masks.shape == (40, 3, 300) and scores.shape == (40, 3) and len(calls) == 3
    one = predictor.predict(XYZ[39:40], [1])[2]
    np.testing.assert_allclose(logits[39].numpy(), one, atol=1e-5)


def test_predict_torch_empty_and_non_tensor(predictor):
    with pytest.raises(InputError, match="at least one prompt set"):
        predictor.predict_torch(torch.zeros(0, 1, 3), torch.zeros(0, 1))
    with pytest.raises(InputError, match="at least one prompt set"):
        predictor.predict_torch(torch.zeros(2, 0, 3), torch.zeros(2, 0))
    with pytest.raises(InputError, match="must be a torch.Tensor"):
        predictor.predict_torch([[[0.0, 0.0, 0.0]]], torch.ones(1, 1))


def test_predict_before_set_point_cloud_is_a_clear_error():
    p = PointCloudPredictor(tiny_model())
    for call in (lambda: p.predict(XYZ[:1], [1]), lambda: p.get_point_features(),
                 lambda: p.predict_torch(torch.zeros(1, 1, 3), torch.ones(1, 1))):
        with pytest.raises(PointSAMError, match="call set_point_cloud"):
            call()


# ------------------------------------------------------------------ checkpoints


def _tiny_file(tmp_path, name="m.safetensors", metadata=None, transform=None):
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in build_model(TINY).state_dict().items()}
    if transform is not None:
        state = {k: transform(v) for k, v in state.items()}
    path = tmp_path / name
    save_file(state, str(path), metadata=metadata)
    return path


def test_all_nan_checkpoint_is_refused_at_load(tmp_path):
    path = _tiny_file(tmp_path, transform=lambda v: torch.full_like(v, float("nan")))
    with pytest.raises(CheckpointError, match="contain NaN or Inf"):
        load_model(path)


def test_int8_checkpoint_is_refused_and_float64_is_cast(tmp_path):
    path = _tiny_file(tmp_path, "q.safetensors", transform=lambda v: v.to(torch.int8))
    with pytest.raises(CheckpointError, match="not floating point.*int8"):
        load_model(path)
    path = _tiny_file(tmp_path, "d.safetensors", transform=lambda v: v.double())
    model = load_model(path, device="cpu")
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("meta", [
    '{"vit_depth": 10000000}',
    '{"vit_width": 1099511627776}',
    "not json {",
    "[1, 2, 3]",
    '{"vit_depth": 2, "rope": true}',
    '{"vit_depth": "2"}',
    '{"pointnet_hidden": [1, 2, 3]}',
    "[" * 100_000,
])
def test_hostile_metadata_falls_back_to_the_tensor_shapes(tmp_path, meta):
    path = _tiny_file(tmp_path, metadata={"pointsam_config": meta})
    with pytest.warns(UserWarning, match="ignoring the stored config because"):
        model = load_model(path, device="cpu")
    assert model.config.vit_depth == TINY.vit_depth and model.config.vit_width == TINY.vit_width


def test_explicit_config_contradicting_the_file_warns_and_uses_the_file(tmp_path):
    path = save_model(build_model(TINY), tmp_path / "m.safetensors")
    with pytest.warns(UserWarning, match="stores a custom architecture.*requested config is the 'large' "
                      "preset; using the file's own"):
        assert load_model(path, config="large").config == TINY
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default (None) uses the file's own config, silently
        assert load_model(path).config == TINY
        assert load_model(path, config="auto").config == TINY


def test_wrong_preset_for_a_file_without_config_names_what_the_tensors_are(tmp_path):
    """Issue 16: the hint names the tensors' architecture, not the preset the user passed."""
    path = _tiny_file(tmp_path)  # official layout: no stored config
    with pytest.raises(CheckpointError) as info:
        load_model(path, config="giant")
    text = str(info.value)
    assert "config='giant'" not in text and "e.g. config=" not in text
    assert f"vit_width={TINY.vit_width}" in text and "config=None" in text


def test_wrong_preset_for_the_bundled_model_is_named():
    with pytest.warns(UserWarning) as record:
        model = load_model(None, config="giant")
    text = str(record[0].message)
    assert "'giant' preset" in text and f"vit_width={model.config.vit_width}" in text


def test_unknown_preset_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="unknown config preset 'bogus'"):
        load_model(None, config="bogus")


def test_empty_pt_directory_and_unsafe_pickle_messages(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_model(empty)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_model(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError) as info:
        load_model(evil)
    text = str(info.value)
    assert "refused" in text and "weights_only=False" not in text and "Re-running" not in text
    trunc = tmp_path / "trunc.pt"
    torch.save(build_model(TINY).state_dict(), trunc)
    trunc.write_bytes(trunc.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_model(trunc)


def test_infer_config_of_garbage_shapes_is_a_checkpoint_error():
    state = {k: v for k, v in build_model(TINY).state_dict().items()}
    state["pc_encoder.patch_proj.weight"] = torch.zeros(0, 4)
    with warnings.catch_warnings(), pytest.raises(CheckpointError):
        infer_config(state)
    assert json.loads(json.dumps(TINY.to_dict()))  # sanity: the config itself serialises
