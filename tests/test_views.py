"""View ensembling (`pointsam.views`): the batched ensemble against separately encoded views, exact
invariance to a quarter turn with 4 views, the predictor/evaluation/CLI wiring and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam.checkpoint import default_model_path
from pointsam.cli import main
from pointsam.data.converters.partnet_mobility import mobility_object
from pointsam.errors import InputError
from pointsam.evaluation.interactive import evaluate_interactive
from pointsam.evaluation.rollout import iou_at_k, simulate_clicks
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor
from pointsam.views import ViewEnsemble, check_views, view_rotations

from conftest import DATA, require, tiny_model

QUARTER_TURN = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # exact: 90 degrees about y


@pytest.fixture(scope="module")
def safe():
    """A real object of a held-out category (URDF link masks), 3,000 points."""
    folder = sorted(p for p in (require(DATA / "partnet_mobility") / "Safe").iterdir()
                    if (p / "mobility.urdf").is_file())[0]
    return mobility_object(folder, points=3000, category="Safe")


def test_view_rotations_turn_about_y():
    rot = view_rotations(4)
    assert torch.allclose(rot[0], torch.eye(3))
    assert torch.allclose(rot[1].double(), torch.from_numpy(QUARTER_TURN), atol=1e-6)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-6)
    assert torch.allclose(rot[:, 1], torch.tensor([0.0, 1.0, 0.0]).expand(4, 3))  # y stays put


def test_ensemble_is_the_mean_of_separately_encoded_views(safe):
    model = tiny_model()
    pred = PointCloudPredictor(model)
    pred.set_point_cloud(safe.xyz, safe.rgb)
    cloud = pred.embedding
    feats = torch.zeros(1, safe.num_points, 3)  # no colours: the predictor encodes grey (0.5 -> 0)
    ens = ViewEnsemble(model, cloud, feats, 3)
    coords = cloud.coords[0, [10, 500, 2500]][:, None]
    labels = torch.ones(3, 1, dtype=torch.long)
    prev = torch.randn(3, safe.num_points)
    with torch.no_grad():
        logits, iou = ens.decode(cloud, coords, labels, prev, multimask_output=False, chunk_size=1024)
        ref_logits, ref_iou = [], []
        for rot in view_rotations(3):
            p = cloud.patches
            view = model.encode(cloud.coords @ rot.T, feats, patches=type(p)(p.fps_idx, p.centers @ rot.T,
                                                                               p.knn_idx))
            out = model.decode(view, coords @ rot.T, labels, prev, multimask_output=False)
            ref_logits.append(out[0])
            ref_iou.append(out[1])
    assert logits.shape == (3, 1, safe.num_points) and iou.shape == (3, 1)
    torch.testing.assert_close(logits, torch.stack(ref_logits).mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou, torch.stack(ref_iou).mean(0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits, ref_logits[0], atol=1e-3)  # the turned views do change the answer


def test_four_views_answer_a_quarter_turned_cloud_the_same(safe):
    model = tiny_model(1)
    answers = []
    for xyz in (safe.xyz, safe.xyz @ QUARTER_TURN.T):
        pred = PointCloudPredictor(model, views=4)
        pred.set_point_cloud(xyz, safe.rgb)
        answers.append(pred.predict(point_indices=[42, 1700], point_labels=[1, 0]))
    (m0, s0, l0), (m1, s1, l1) = answers
    np.testing.assert_allclose(l1, l0, atol=1e-4)
    np.testing.assert_allclose(s1, s0, atol=1e-5)
    single = []
    for xyz in (safe.xyz, safe.xyz @ QUARTER_TURN.T):  # one view is not invariant: the test can fail
        pred = PointCloudPredictor(model)
        pred.set_point_cloud(xyz, safe.rgb)
        single.append(pred.predict(point_indices=[42, 1700], point_labels=[1, 0])[2])
    assert np.abs(single[0] - single[1]).max() > 1e-2


def test_one_view_is_the_plain_model_and_evaluation_uses_the_ensemble(safe):
    model = tiny_model()
    plain = PointCloudPredictor(model)
    plain.set_point_cloud(safe.xyz, safe.rgb)
    assert plain.decoder is model
    pred = PointCloudPredictor(model, views=2)
    results = evaluate_interactive(pred, [safe], max_clicks=3)
    assert isinstance(pred.decoder, ViewEnsemble)
    gt = torch.from_numpy(safe.dense_masks()[:len(results)])
    by_hand = iou_at_k(simulate_clicks(pred.decoder, pred.embedding, gt, 3))  # [clicks, masks]
    np.testing.assert_allclose(np.array([r.ious for r in results]), by_hand.numpy().T, atol=1e-6)


@pytest.mark.parametrize("bad", [0, 17, -1, True, 2.5, "4", None])
def test_bad_numbers_of_views_are_refused(bad):
    with pytest.raises(InputError, match="views must be an integer from 1 to 16"):
        check_views(bad)
    with pytest.raises(InputError, match="views"):
        PointCloudPredictor(tiny_model(), views=bad)


def test_an_ensemble_decodes_only_its_own_single_cloud(safe):
    model = tiny_model()
    pred = PointCloudPredictor(model, views=2)
    pred.set_point_cloud(safe.xyz, safe.rgb)
    other = PointCloudPredictor(model)
    other.set_point_cloud(safe.xyz[::2], None)
    coords, labels = other.embedding.coords[0, :1][:, None], torch.ones(1, 1, dtype=torch.long)
    with pytest.raises(InputError, match="only the cloud it was built for"):
        pred.decoder.decode(other.embedding, coords, labels)
    two = model.encode(torch.cat([pred.embedding.coords] * 2), torch.zeros(2, safe.num_points, 3))
    with pytest.raises(InputError, match=r"one encoded cloud \(B = 1\)"):
        ViewEnsemble(model, two, torch.zeros(2, safe.num_points, 3), 2)


def test_cli_views(tmp_path, capsys):
    example = default_model_path().parent / "example_table.ply"
    out = tmp_path / "mask.ply"
    main(["segment", str(example), "--point", "-0.25", "0.91", "0.1", "--views", "2", "--out", str(out)])
    assert "mask:" in capsys.readouterr().out
    assert read_point_cloud(out).num_points == 10_800
    with pytest.raises(SystemExit) as exc:
        main(["segment", str(example), "--point", "0", "0", "0", "--views", "0", "--out", str(out)])
    assert exc.value.code == 2
    assert "the number of views must be an integer from 1 to 16" in capsys.readouterr().err


def test_tiled_everything_does_not_resume_tiles_made_with_other_views(tmp_path):
    from pointsam.automatic import AutomaticMaskGenerator
    from pointsam.scene.synthetic import separated_objects
    from pointsam.scene.tiles import segment_tiles

    xyz = separated_objects(2000, 2, spacing=3.0)[0]
    model = tiny_model()
    kwargs = dict(num_prompts=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    segment_tiles(AutomaticMaskGenerator(model, **kwargs), xyz, tile_size=3.0, overlap=1.0, out_dir=tmp_path)
    with pytest.raises(InputError, match="other settings"):
        segment_tiles(AutomaticMaskGenerator(PointCloudPredictor(model, views=2), **kwargs), xyz,
                      tile_size=3.0, overlap=1.0, out_dir=tmp_path)


def test_everything_and_eval_take_views(tmp_path, capsys):
    example = default_model_path().parent / "example_table.ply"
    out = tmp_path / "labels.npy"
    main(["everything", str(example), "--views", "2", "--num-prompts", "8", "--out", str(out)])
    labels = np.load(out)
    assert labels.shape == (10_800,) and labels.max() >= 0  # something was segmented
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tmp_path), "--out", str(tmp_path / "r"), "--views", "17"])
    assert exc.value.code == 2
    assert "from 1 to 16" in capsys.readouterr().err
