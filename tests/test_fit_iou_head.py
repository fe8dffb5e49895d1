"""tools/fit_iou_head.py: refitting the IoU head on frozen features picks better candidates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
fit_iou_head = pytest.importorskip("fit_iou_head")

from pointsam.modeling.mask_decoder import MLP  # noqa: E402


def _features(n: int, seed: int) -> dict:
    """Token outputs whose first 3 dims say each candidate's IoU, for n first clicks and 2n later ones."""
    g = torch.Generator().manual_seed(seed)
    iou = torch.rand(n, 3, generator=g)
    h = torch.randn(n, 16, generator=g) * 0.1
    h[:, :3] += iou
    later_iou = torch.rand(2 * n, generator=g)
    later_h = torch.randn(2 * n, 16, generator=g) * 0.1
    later_h[:, 3] += later_iou
    draw = torch.arange(n) // 4
    return dict(first_h=h, first_iou=iou, draw=draw, later_h=later_h, later_iou=later_iou,
                later_draw=draw.repeat(2))


def test_selection_counts_best_picks_and_oracle():
    iou = torch.tensor([[0.2, 0.9, 0.1], [0.5, 0.4, 0.3]])
    got = fit_iou_head.selection(torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), iou)
    assert got["accuracy"] == pytest.approx(0.5) and got["iou_at_1"] == pytest.approx(0.65)
    assert got["oracle"] == pytest.approx(0.7)


def test_fit_learns_to_pick_the_best_candidate_and_keeps_the_best_epoch():
    data = _features(800, 0)
    rows = torch.arange(800)
    val, train = rows[data["draw"] % 5 == 0], rows[data["draw"] % 5 != 0]
    torch.manual_seed(0)
    head = MLP(16, 32, 4, 3)
    state, log = fit_iou_head.fit(head, data, train, val, epochs=30, rank_weight=0.1, temperature=0.05,
                                  lr=3e-3, seed=0)
    assert log[0]["accuracy"] < 0.6 and max(r["accuracy"] for r in log) > 0.85
    head.load_state_dict(state)
    with torch.no_grad():
        best = fit_iou_head.selection(head(data["first_h"][val])[:, 1:], data["first_iou"][val])
    assert best["iou_at_1"] == pytest.approx(max(r["iou_at_1"] for r in log))
    # a refit of the last layer only leaves the others as they were
    frozen = MLP(16, 32, 4, 3)
    first, last = frozen.layers[0].weight.detach().clone(), frozen.layers[2].weight.detach().clone()
    fit_iou_head.fit(frozen, data, train, val, epochs=2, rank_weight=0.0, temperature=0.05, lr=3e-3, seed=0,
                     layers=1)
    assert torch.equal(frozen.layers[0].weight, first) and not torch.equal(frozen.layers[2].weight, last)
