"""Parity with the official code from the committed fixture (tests/fixtures/golden_small.safetensors,
a ~140 KB subset of the official golden run): runs in a plain clone, without ../shared.

Covers exact FPS picks, kNN and 3-NN sets/weights, the centres' Fourier PE, prompt (sparse) and
no-mask (dense) embeddings. The network outputs need the run's 30 MB of weights and stay in
tests/test_parity.py (full golden file)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pointsam.modeling.patch_embed import group_points
from pointsam.modeling.prompt_encoder import MaskEncoder, PointEncoder
from pointsam.ops import (
    farthest_point_sampling,
    farthest_point_sampling_reference,
    knn,
    knn_reference,
    three_nn_interpolation_weights,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden_small.safetensors"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def g() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE))


def test_fixture_is_small():
    assert FIXTURE.stat().st_size < 300_000


@pytest.mark.parametrize("fps", [farthest_point_sampling, farthest_point_sampling_reference])
def test_fps_picks_exact(g, fps):
    assert torch.equal(fps(g["input.coords"], 128), g["enc.fps_idx"])


@pytest.mark.parametrize("find", [knn, knn_reference])
def test_knn_sets_exact(g, find):
    _, idx = find(g["enc.centers"], g["input.coords"], 32)
    assert torch.equal(idx.sort(-1).values, g["enc.knn_idx_sorted"].long())


def test_grouping(g):
    p = group_points(g["input.coords"], 128, 32)
    assert torch.equal(p.fps_idx, g["enc.fps_idx"])
    torch.testing.assert_close(p.centers, g["enc.centers"])
    assert torch.equal(p.knn_idx.sort(-1).values, g["enc.knn_idx_sorted"].long())


@pytest.mark.parametrize("method", ["auto", "reference"])
def test_three_nn_weights(g, method):
    idx, w = three_nn_interpolation_weights(g["input.coords"], g["enc.centers"], method)
    order = w.argsort(-1, descending=True)
    torch.testing.assert_close(w.gather(-1, order), g["interp.weight_by_weight"], **TOL)
    assert torch.equal(idx.gather(-1, order), g["interp.index_by_weight"].long())


@pytest.fixture(scope="module")
def prompt_encoders(g):
    pe = PointEncoder(256)
    me = MaskEncoder(256)
    sd = {k[len("state_dict."):]: v for k, v in g.items() if k.startswith("state_dict.")}
    pe.load_state_dict({k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith("point_encoder.")})
    me.no_mask_embed.load_state_dict({"weight": sd["mask_encoder.no_mask_embed.weight"]})
    return pe, me


def test_centre_positional_encoding(g, prompt_encoders):
    pe, _ = prompt_encoders
    rows = g["enc.pc_pe_head"].shape[1]
    with torch.no_grad():
        torch.testing.assert_close(pe.pe_layer(g["enc.centers"][:, :rows]), g["enc.pc_pe_head"], **TOL)


@pytest.mark.parametrize("call,coords,labels", [("call1", "pos", "pos"), ("call2", "posneg", "posneg"),
                                                ("call3", "posneg", "posneg")])
def test_sparse_prompt_embeddings(g, prompt_encoders, call, coords, labels):
    pe, _ = prompt_encoders
    with torch.no_grad():
        out = pe(g[f"prompt.coords_{coords}"], g[f"prompt.labels_{labels}"])
    torch.testing.assert_close(out, g[f"{call}.sparse_embeddings"], **TOL)


def test_no_mask_dense_embedding(g, prompt_encoders):
    _, me = prompt_encoders
    with torch.no_grad():
        dense = me.no_mask(1, 128)
    assert dense.shape == (1, 128, 256)
    torch.testing.assert_close(dense[:, 0], g["call1.dense_embeddings_row0"], **TOL)
