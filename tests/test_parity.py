"""Parity with the official Point-SAM code, on its recorded golden run and state-dict layouts."""

from __future__ import annotations

import pytest
import torch

from pointsam import PointSAMConfig, build_model
from pointsam.checkpoint import UNUSED_VIT_KEYS, load_state_dict_checked, official_state_dict
from pointsam.modeling.patch_embed import Patches, group_points
from pointsam.ops import farthest_point_sampling, knn, three_nn_interpolation_weights

from conftest import GOLDEN_CONFIG_KW, REFERENCE, require

GOLDEN_CONFIG = PointSAMConfig.large(**GOLDEN_CONFIG_KW)
EMB_TOL = dict(atol=1e-4, rtol=1e-4)
LOGIT_TOL = dict(atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def model(golden_model):
    return golden_model


@pytest.fixture(scope="module")
def golden_patches(golden):
    return Patches(golden["enc.fps_idx"], golden["enc.centers"], golden["enc.knn_idx"])


def _read_tsv(name: str) -> dict[str, list[int]]:
    rows = require(REFERENCE / name).read_text().splitlines()
    out = {}
    for row in rows:
        key, shape = row.split("\t")
        out[key] = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
    return out


@pytest.mark.parametrize(
    "preset,tsv", [("large", "official_large_state_dict.tsv"), ("giant", "official_giant_state_dict.tsv")]
)
def test_official_state_dict_layout(preset, tsv):
    """Saving writes exactly the official keys and shapes; the official key list loads strictly."""
    expected = _read_tsv(tsv)
    with torch.device("meta"):
        m = build_model(preset)
        official = {k: torch.empty(shape) for k, shape in expected.items()}
    got = {k: list(v.shape) for k, v in official_state_dict(m).items()}
    assert sorted(got) == sorted(expected)
    assert got == expected
    # The model holds only what it runs; the filter drops exactly the unused image-ViT keys.
    dropped = set(expected) - set(m.state_dict())
    assert dropped == set(UNUSED_VIT_KEYS)
    load_state_dict_checked(m, official)  # strict, on meta: no data needed


@pytest.mark.parametrize(
    "preset,keys,elements",
    [("large", 620, 311_042_732), ("giant", 684, 1_020_754_796), ("base", 392, 92_850_156)],
)
def test_official_sizes(preset, keys, elements):
    """Key and element counts of the official configs (base: from the notes, no TSV ships)."""
    with torch.device("meta"):
        state = official_state_dict(build_model(preset))
    assert len(state) == keys
    assert sum(v.numel() for v in state.values()) == elements


@pytest.mark.parametrize("method", ["auto", "reference"])
def test_fps_indices_exact(golden, method):
    idx = farthest_point_sampling(golden["input.coords"], 128, method=method)
    assert torch.equal(idx, golden["enc.fps_idx"])


@pytest.mark.parametrize("method", ["reference", "kdtree"])
def test_knn_sets(golden, method):
    _, idx = knn(golden["enc.centers"], golden["input.coords"], 32, method=method)
    assert torch.equal(idx.sort(-1).values, golden["enc.knn_idx_sorted"])


def test_grouping_matches(golden):
    p = group_points(golden["input.coords"], 128, 32)
    assert torch.equal(p.fps_idx, golden["enc.fps_idx"])
    torch.testing.assert_close(p.centers, golden["enc.centers"])
    assert torch.equal(p.knn_idx.sort(-1).values, golden["enc.knn_idx_sorted"])


def test_encoder_intermediates(model, golden, golden_patches):
    coords, feats = golden["input.coords"], golden["input.features"]
    enc = model.pc_encoder
    with torch.no_grad():
        emb = enc.patch_embed(coords, feats, golden_patches)
        torch.testing.assert_close(emb, golden["enc.patch_embeddings"], **EMB_TOL)
        tokens = enc.tokens(coords, feats, golden_patches)
        torch.testing.assert_close(tokens, golden["enc.vit_input"], **EMB_TOL)
        out = enc(coords, feats, golden_patches)
        torch.testing.assert_close(out, golden["enc.pc_embeddings"], **EMB_TOL)
        pe = model.point_encoder.pe_layer(golden["enc.centers"])
        torch.testing.assert_close(pe, golden["enc.pc_pe"], **EMB_TOL)


def test_full_encode_from_raw_input(model, golden):
    cloud = model.encode(golden["input.coords"], golden["input.features"], 128, 32)
    torch.testing.assert_close(cloud.embeddings, golden["enc.pc_embeddings"], **EMB_TOL)
    torch.testing.assert_close(cloud.pe, golden["enc.pc_pe"], **EMB_TOL)


@pytest.mark.parametrize("method", ["reference", "kdtree"])
def test_interpolation_weights(golden, method):
    idx, w = three_nn_interpolation_weights(golden["input.coords"], golden["enc.centers"], method)
    order = w.argsort(-1, descending=True)
    torch.testing.assert_close(w.gather(-1, order), golden["interp.weight_by_weight"], **EMB_TOL)
    assert torch.equal(idx.gather(-1, order), golden["interp.index_by_weight"])


CALLS = {
    "call1": ("prompt.coords_pos", "prompt.labels_pos", None, True),
    "call2": ("prompt.coords_posneg", "prompt.labels_posneg", "call2.prompt_masks", False),
    "call3": ("prompt.coords_posneg", "prompt.labels_posneg", None, True),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_predict_masks_calls(model, golden, call):
    coords_key, labels_key, mask_key, multimask = CALLS[call]
    cloud = model.encode(golden["input.coords"], golden["input.features"], 128, 32)
    pc, pl = golden[coords_key], golden[labels_key]
    pm = golden[mask_key] if mask_key else None
    with torch.no_grad():
        sparse = model.point_encoder(pc, pl)
        torch.testing.assert_close(sparse, golden[f"{call}.sparse_embeddings"], **EMB_TOL)
        if pm is not None:
            dense = model.mask_encoder(cloud.coords, cloud.patches, pm)
            torch.testing.assert_close(dense, golden[f"{call}.dense_embeddings"], **EMB_TOL)
        masks, iou = model.decode(cloud, pc, pl, pm, multimask_output=multimask)
    torch.testing.assert_close(masks, golden[f"{call}.masks"], **LOGIT_TOL)
    torch.testing.assert_close(iou, golden[f"{call}.iou_preds"], **LOGIT_TOL)
    # Thresholded masks agree except where the official logit is within tolerance of 0.
    ref = golden[f"{call}.masks"]
    decided = ref.abs() > 1e-3
    assert torch.equal((masks > 0)[decided], (ref > 0)[decided])


def test_official_predict_masks_signature(model, golden):
    masks, iou = model.predict_masks(
        golden["input.coords"], golden["input.features"], golden["prompt.coords_pos"],
        golden["prompt.labels_pos"],
    )
    torch.testing.assert_close(masks, golden["call1.masks"], **LOGIT_TOL)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_fast_inference_path_matches_official(model, golden, call):
    """The predictor's lean path (split PointNet, chunked upsampling) on the golden calls."""
    coords_key, labels_key, mask_key, multimask = CALLS[call]
    with torch.no_grad():
        cloud = model.encode(golden["input.coords"], golden["input.features"], 128, 32, lean=True)
    torch.testing.assert_close(cloud.embeddings, golden["enc.pc_embeddings"], **EMB_TOL)
    pm = golden[mask_key] if mask_key else None
    for chunk in (100, 16384):
        with torch.no_grad():
            masks, iou = model.decode(cloud, golden[coords_key], golden[labels_key], pm, multimask, chunk)
        torch.testing.assert_close(masks, golden[f"{call}.masks"], **LOGIT_TOL)
        torch.testing.assert_close(iou, golden[f"{call}.iou_preds"], **LOGIT_TOL)
