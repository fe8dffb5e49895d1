"""Why does the second click make the mask worse?  Click-rollout diagnostics of a model on a dataset.

    python tools/diagnose_clicks.py DATASET [DATASET ...] --clicks 10 [--checkpoint W] [--limit N]

For every mask it runs the paper's protocol (`pointsam.evaluation.rollout.simulate_clicks`) and, at
click 1 and 2, a few alternatives that isolate one suspect each:

- click 1: IoU of each of the 3 candidates, whether the IoU head's argmax is the best one
  (selection accuracy), IoU@1 (argmax) vs the best-of-3 oracle;
- click 2, all with the two protocol clicks:
  `protocol`      single-output token, the argmax candidate's logits as mask prompt (the paper's protocol);
  `single_nomask` single-output token, no mask prompt;
  `multi_argmax`  3 multimask outputs with the mask prompt, the IoU head's argmax;
  `multi_oracle`  3 multimask outputs with the mask prompt, the best one;
  `multi_nomask`  3 multimask outputs, no mask prompt, the IoU head's argmax;
  `oracle_prompt` single-output token fed the best click-1 candidate's logits (clicks re-simulated
                  from that candidate, so the second click is where the oracle mask was wrong).
Prints a JSON summary (means in %) and writes it to --out when given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from pointsam.checkpoint import load_model
from pointsam.data.clicks import first_click, next_click
from pointsam.data.dataset import PointCloudDataset
from pointsam.evaluation.rollout import iou_at_k, simulate_clicks
from pointsam.predictor import PointCloudPredictor
from pointsam.utils.masks import mask_iou

MASKS_PER_BATCH = 16


def _decode(model, cloud, coords, idx, labels, prompt, multimask):
    pc = coords[idx]
    return model.decode(cloud, pc, labels, prompt, multimask_output=multimask)


CLICK2_VARIANTS = ("protocol", "single_nomask", "multi_argmax", "multi_oracle", "multi_nomask",
                   "oracle_prompt")


def diagnose_batch(model, cloud, gt: torch.Tensor, clicks: int, variants: bool = True
                   ) -> dict[str, np.ndarray]:
    """Per-mask diagnostics for gt [P, N] on one encoded cloud (see the module docstring)."""
    steps = simulate_clicks(model, cloud, gt, clicks)
    out: dict[str, np.ndarray] = {"curve": iou_at_k(steps).numpy().T}  # [P, clicks]
    p = gt.shape[0]
    rows = torch.arange(p)
    s1 = steps[0]
    cand = torch.stack([mask_iou(s1.masks[:, c] > 0, gt.bool()) for c in range(s1.masks.shape[1])],
                       dim=1)  # [P, 3]
    out["cand_iou"] = cand.numpy()
    out["cand_pred"] = s1.iou_preds.numpy()
    out["chosen"] = s1.chosen.numpy()
    out["best"] = cand.argmax(dim=1).numpy()
    if clicks < 2 or not variants:
        return out
    coords = cloud.coords[0]
    xyz = coords.cpu()
    s2 = steps[1]
    idx, lab = s2.prompt_indices, s2.prompt_labels
    with torch.no_grad():
        variants = {
            "protocol": (s1.prompt_masks, False),
            "single_nomask": (None, False),
            "multi_argmax": (s1.prompt_masks, True),
            "multi_oracle": (s1.prompt_masks, True),
            "multi_nomask": (None, True),
        }
        for name, (prompt, multi) in variants.items():
            logits, preds = _decode(model, cloud, coords, idx, lab, prompt, multi)
            if name == "multi_oracle":
                ious = torch.stack([mask_iou(logits[:, c] > 0, gt.bool()) for c in range(logits.shape[1])], 1)
                out[name] = ious.max(dim=1).values.numpy()
            else:
                pick = preds.argmax(dim=1)
                out[name] = mask_iou(logits[rows, pick] > 0, gt.bool()).numpy()
        # The oracle candidate fed forward: the second click comes from its errors.
        best = torch.from_numpy(out["best"])
        prev = s1.masks[rows, best]
        second = [next_click(xyz, g, m) for g, m in zip(gt, (prev > 0), strict=True)]
        idx2 = torch.cat([s1.prompt_indices, torch.tensor([[c.index] for c in second])], dim=1)
        lab2 = torch.cat([s1.prompt_labels, torch.tensor([[c.positive] for c in second])], dim=1)
        logits, _ = _decode(model, cloud, coords, idx2, lab2, prev, False)
        out["oracle_prompt"] = mask_iou(logits[:, 0] > 0, gt.bool()).numpy()
        # Sanity: the first click is deterministic, so re-simulating click 1 gives the same candidates.
        assert all(c.index == int(i) for c, i in zip([first_click(xyz, g) for g in gt[:1]],
                                                     s1.prompt_indices[:1, 0], strict=True))
    return out


def collect(model, clouds, clicks: int, limit: int = 0, variants: bool = True,
            max_masks: int = 0, batch: int = MASKS_PER_BATCH, views: int = 1, **grouping
            ) -> dict[str, np.ndarray]:
    """`diagnose_batch` over every non-empty mask of `clouds`; arrays per mask, plus its "category".

    limit: clouds (0: all); max_masks: masks per cloud (0: all); batch: masks decoded together (fewer
    for big clouds: memory grows with masks x points); views: `PointCloudPredictor(views=...)`;
    grouping: num_patches / patch_size.
    """
    predictor = PointCloudPredictor(model, views=views)
    acc: dict[str, list[np.ndarray]] = {}
    for i, cloud in enumerate(clouds):
        if limit and i >= limit:
            break
        print(f"  {cloud.category} {cloud.name}: {cloud.num_masks} masks", file=sys.stderr, flush=True)
        predictor.set_point_cloud(cloud.xyz, cloud.rgb, **grouping)
        dense = torch.from_numpy(cloud.dense_masks())
        keep = dense.any(dim=1)
        dense = dense[keep][: max_masks or None]
        for start in range(0, dense.shape[0], batch):
            gt = dense[start:start + batch]
            res = diagnose_batch(predictor.decoder, predictor.embedding, gt, clicks, variants)
            res["category"] = np.array([cloud.category] * gt.shape[0])
            for k, v in res.items():
                acc.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in acc.items()}


def by_category(r: dict[str, np.ndarray]) -> dict:
    """`summarize` of all masks, of each category, and the mean curve over categories."""
    cats = sorted(set(r["category"].tolist())) if len(r.get("category", [])) else []
    per = {c: summarize({k: v[r["category"] == c] for k, v in r.items()}) for c in cats}
    out = {"all": summarize(r) if cats else {"masks": 0}, "per_category": per}
    if cats:
        out["class_mean_curve"] = [round(float(v), 1) for v in np.mean([per[c]["curve"] for c in cats], 0)]
    return out


def diagnose(model, datasets: list[Path], clicks: int, limit: int, split: str | None) -> dict:
    """Summaries per dataset (and per category inside it) of the masks of `datasets`."""
    out = {}
    arrays = []
    for root in datasets:
        r = collect(model, PointCloudDataset(root, split=split), clicks, limit)
        arrays.append(r)
        out[Path(root).name] = by_category(r)
    out["all"] = summarize({k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]})
    return out


def number_of_clicks(curve: np.ndarray, threshold: float) -> np.ndarray:
    """NoC per mask: clicks to reach `threshold` (in %), the number of clicks when never reached."""
    reached = curve >= threshold
    return np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, curve.shape[1])


def summarize(r: dict[str, np.ndarray]) -> dict:
    """Means in % of the per-mask diagnostics."""
    curve = r["curve"] * 100
    n = curve.shape[0]
    rows = np.arange(n)
    mean_curve = curve.mean(axis=0)
    out = {
        "masks": int(n),
        "curve": [round(float(v), 1) for v in mean_curve],
        "NoC@80": round(float(number_of_clicks(curve, 80).mean()), 2),
        "NoC@90": round(float(number_of_clicks(curve, 90).mean()), 2),
        "selection_accuracy": round(float((r["chosen"] == r["best"]).mean() * 100), 1),
        "iou1_argmax": round(float(r["cand_iou"][rows, r["chosen"]].mean() * 100), 1),
        "iou1_oracle": round(float(r["cand_iou"].max(axis=1).mean() * 100), 1),
        "candidate_iou_mean": [round(float(v), 1) for v in r["cand_iou"].mean(axis=0) * 100],
        "candidate_pred_mean": [round(float(v), 1) for v in r["cand_pred"].mean(axis=0) * 100],
        "chosen_share": [round(float((r["chosen"] == c).mean() * 100), 1) for c in range(3)],
        "best_share": [round(float((r["best"] == c).mean() * 100), 1) for c in range(3)],
    }
    if curve.shape[1] > 1:
        drops = np.diff(curve, axis=1)
        out["non_decreasing"] = bool((np.diff(mean_curve) >= 0).all())
        out["share_drop_gt5_any_click"] = round(float((drops < -5).any(axis=1).mean() * 100), 1)
        out["share_drop_gt5_click2"] = round(float((drops[:, 0] < -5).mean() * 100), 1)
        if "protocol" in r:
            out["click2"] = {k: round(float(r[k].mean() * 100), 1) for k in CLICK2_VARIANTS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--checkpoint", type=Path, default=None, help="weights (default: the bundled model)")
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0, help="clouds per dataset (0: all)")
    ap.add_argument("--split", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    model = load_model(args.checkpoint).eval()
    result = diagnose(model, args.datasets, args.clicks, args.limit, args.split)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
