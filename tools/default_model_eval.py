"""Held-out evaluation of a default-model candidate, segment-everything calibration and the model card.

`evaluate` measures, on data never trained on (see default_model_recipe.py): the full IoU@1..20 curve,
NoC@80/90, the IoU head's selection accuracy and the best-of-3 oracle IoU@1 per held-out category,
separately for PartNet-hierarchy masks and URDF link masks (and the URDF masks at other point counts);
the held-out ScanNet scene's instances at 5 clicks; `pointsam everything` recall@25/50 on that scene
at its default settings with the checkpoint's recommended thresholds; and the time of one click.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from default_model_recipe import (
    EVAL_CLICKS,
    EVAL_DENSITIES,
    EVAL_SCENE,
    EVAL_STRIDE,
    SCENE_CLICKS,
    SMOKE_CLICKS,
    SMOKE_EVAL_DENSITIES,
    VAL_CATEGORIES,
)
from diagnose_clicks import by_category, collect, summarize

from pointsam.amg_defaults import amg_defaults
from pointsam.automatic import AutomaticMaskGenerator
from pointsam.checkpoint import load_model
from pointsam.data.dataset import PointCloudDataset
from pointsam.evaluation.proposals import evaluate_proposals
from pointsam.predictor import PointCloudPredictor, choose_grouping

# `pointsam everything` defaults other than what a checkpoint recommends (see pointsam.command)
EVERYTHING = dict(num_prompts=256, points_per_batch=64, nms_iou_thresh=0.7, min_mask_points=20)
SMOKE_EVERYTHING = dict(EVERYTHING, num_prompts=16)
CALIBRATION_GRID = [(p, s) for p in (0.1, 0.2, 0.3, 0.45, 0.6, 0.7)
                    for s in (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.85)]
SMOKE_GRID = [(0.3, 0.6), (0.7, 0.85)]
# Working-cloud size and grouping tried by the calibration: the generic default (100k points, the
# predictor's grouping), and the model's training size with 4x its patches (a whole room in 16k points:
# finer masks than 128 patches give).
# Each also with 1 view or 4 (pointsam.views: 4x the decoding).
CALIBRATION_SIZES = [{"max_points": 100_000, "views": 1},
                     {"max_points": 16_384, "num_patches": 512, "patch_size": 32, "views": 1},
                     {"max_points": 16_384, "num_patches": 512, "patch_size": 32, "views": 4}]
SMOKE_SIZES = [{"max_points": 20_000, "views": 1}]


def _val(folder: Path) -> PointCloudDataset:
    return PointCloudDataset(folder, split="val")


def click_time_ms(model, num_points: int = 10_000, repeats: int = 20) -> dict[str, float]:
    """Median time (ms) of a first click and of a refining click (2 clicks + the previous mask as prompt),
    decode only (the cloud encoded once), on a random cloud of `num_points` points."""
    rng = np.random.default_rng(0)
    predictor = PointCloudPredictor(model)
    predictor.set_point_cloud(rng.normal(size=(num_points, 3)).astype(np.float32))
    first, refine = [], []
    for i in range(repeats + 2):
        start = time.perf_counter()
        _, scores, logits = predictor.predict(point_indices=[i], point_labels=[1])
        first.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.predict(point_indices=[i, i + 1], point_labels=[1, 0], mask_input=logits[scores.argmax()],
                          multimask_output=False)
        refine.append(time.perf_counter() - start)
    return {"first": round(float(np.median(first[2:]) * 1000), 1),
            "refine": round(float(np.median(refine[2:]) * 1000), 1)}


class SweepGenerator(AutomaticMaskGenerator):
    """`AutomaticMaskGenerator` that decodes each cloud's prompts once, at the loosest thresholds of a
    sweep, and filters the cached candidates for the thresholds currently set (same masks as a fresh run
    at those thresholds: the filters act on each candidate alone, NMS runs after them)."""

    def __init__(self, model, loosest: dict, **kwargs) -> None:
        super().__init__(model, **{**kwargs, **loosest})
        self.loosest = loosest
        self._cache: dict = {}

    def _candidates(self, coords, rows, weights):
        key = (coords.shape[1], rows.tobytes(), float(coords.sum()))
        if key not in self._cache:
            current = (self.pred_iou_thresh, self.stability_score_thresh)
            self.pred_iou_thresh = self.loosest["pred_iou_thresh"]
            self.stability_score_thresh = self.loosest["stability_score_thresh"]
            self._cache[key] = super()._candidates(coords, rows, weights)
            self.pred_iou_thresh, self.stability_score_thresh = current
        masks, ious, stabs, prompts, cands = self._cache[key]
        keep = [i for i in range(len(masks))
                if ious[i] >= self.pred_iou_thresh and stabs[i] >= self.stability_score_thresh]
        return ([masks[i] for i in keep], [ious[i] for i in keep], [stabs[i] for i in keep],
                [prompts[i] for i in keep], [cands[i] for i in keep])


def everything_recall(model, clouds, thresholds: dict, smoke: bool = False, generator=None) -> dict:
    """Pooled AR / AR@25 / AR@50 (%) of `pointsam everything`'s defaults with `thresholds` (the two
    thresholds, and optionally max_points / num_patches / patch_size); `generator`: a SweepGenerator
    to reuse (made with the same size and grouping), its thresholds set to these."""
    if generator is None:
        base = SMOKE_EVERYTHING if smoke else EVERYTHING
        generator = AutomaticMaskGenerator(model, **{**base, **thresholds})
    else:
        generator.pred_iou_thresh = thresholds["pred_iou_thresh"]
        generator.stability_score_thresh = thresholds["stability_score_thresh"]
    start = time.perf_counter()
    rows, pooled = evaluate_proposals(generator, clouds)
    return {**{k: round(v, 1) for k, v in pooled.items()}, "thresholds": thresholds,
            "num_proposals": sum(r["num_proposals"] for r in rows), "num_gt": sum(r["num_gt"] for r in rows),
            "seconds": round(time.perf_counter() - start, 1)}


def calibrate(work: Path, checkpoint: Path, smoke: bool = False) -> dict:
    """Pick `pointsam everything` thresholds by AR@50 on the training scenes; write WORK/amg.json."""
    model = load_model(checkpoint, device="cpu")
    scenes = list(PointCloudDataset(work / "data" / ("scannet_crops" if smoke else "scannet_scenes")))
    grid = []
    points = SMOKE_GRID if smoke else CALIBRATION_GRID
    loosest = {"pred_iou_thresh": min(p for p, _ in points),
               "stability_score_thresh": min(s for _, s in points)}
    for size in SMOKE_SIZES if smoke else CALIBRATION_SIZES:
        sweep = SweepGenerator(model, loosest, **(SMOKE_EVERYTHING if smoke else EVERYTHING), **size)
        for pred, stab in points:
            thresholds = {"pred_iou_thresh": pred, "stability_score_thresh": stab, **size}
            grid.append(everything_recall(model, scenes[:1] if smoke else scenes, thresholds, smoke, sweep))
            print(f"calibrate {thresholds}: AR@50 {grid[-1]['AR@50']:.1f} AR@25 {grid[-1]['AR@25']:.1f} "
                  f"({grid[-1]['num_proposals']} proposals)", flush=True)
    best = max(grid, key=lambda g: (g["AR@50"], g["AR@25"], g["thresholds"]["pred_iou_thresh"],
                                    g["thresholds"]["stability_score_thresh"]))
    result = {"thresholds": best["thresholds"], "grid": grid, "calibrated_on": "training scenes"}
    (work / "amg.json").write_text(json.dumps(result, indent=1))
    return result


class Sections:
    """Report sections computed once per checkpoint and kept as JSON files, so that an interrupted
    evaluation resumes, and several processes (`only`: the sections this one computes) share the work."""

    def __init__(self, folder: Path, checkpoint: Path, only: tuple[str, ...] | None) -> None:
        self.folder, self.only, self.missing = folder, only, []
        stat = Path(checkpoint).stat()
        self.key = f"{Path(checkpoint).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, name: str, compute):
        path = self.folder / f"{name}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("checkpoint") == self.key:
                return saved["value"]
        if self.only is not None and name not in self.only:
            self.missing.append(name)
            return None
        start = time.perf_counter()
        value = compute()
        path.write_text(json.dumps({"checkpoint": self.key, "value": value}))
        print(f"evaluated {name} ({time.perf_counter() - start:.0f} s)", flush=True)
        return value


def evaluate(work: Path, checkpoint: Path, smoke: bool = False, out_name: str = "eval",
             thresholds: dict | None = None, densities: tuple[int, ...] | None = None,
             only: tuple[str, ...] | None = None, views: int = 1) -> dict:
    """The held-out report (see the module docstring); also written to WORK/<out_name>/report.json.

    `thresholds`: the everything settings to use (default: WORK/amg.json, else the checkpoint's);
    `densities`: the URDF point counts to evaluate (default: the recipe's); `only`: compute just these
    sections (partnet, mobility_N, scene, everything, click_ms) and leave the report to a later run;
    `views`: the clicks are answered by `PointCloudPredictor(views=...)` (everything uses `thresholds`,
    whose views are the calibrated ones)."""
    data = work / "data"
    model = load_model(checkpoint, device="cpu")
    clicks = SMOKE_CLICKS if smoke else EVAL_CLICKS
    report: dict = {"checkpoint": str(checkpoint), "held_out_categories": list(VAL_CATEGORIES),
                    "held_out_scene": EVAL_SCENE, "clicks": clicks, "views": views}
    start = time.perf_counter()
    cache = Sections(work / out_name / "sections", checkpoint, only)

    def partnet() -> dict:
        return by_category(collect(model, _val(data / "partnet"), clicks, views=views))

    def mobility(n: int) -> dict:
        # 10k points: the main table (every click); other sizes: the first 10 clicks
        k = clicks if n == 10_000 or smoke else min(clicks, 10)
        stride = 1 if smoke else EVAL_STRIDE.get(n, 1)
        clouds = [c for i, c in enumerate(_val(data / f"mobility_{n}")) if i % stride == 0]
        return {**by_category(collect(model, clouds, k, views=views)), "clouds": len(clouds)}

    # --smoke: a crop instead of the 200k-point scene, whose large-cloud grouping takes minutes
    scene = list(PointCloudDataset(data / ("scannet_crops" if smoke else "scannet_eval")))[:1]

    def scene_clicks() -> dict:  # collect encodes the scene with the predictor's own grouping
        n, cfg = scene[0].num_points, model.config
        grouping = choose_grouping(n, n, cfg.num_patches, cfg.patch_size)
        arrays = collect(model, scene, SCENE_CLICKS, max_masks=4 if smoke else 0, batch=2, views=views)
        return {"grouping": list(grouping), **summarize(arrays)}

    amg_file = work / "amg.json"
    if thresholds is None:
        thresholds = (json.loads(amg_file.read_text())["thresholds"] if amg_file.is_file()
                      else {k: v for k, v in amg_defaults(checkpoint).items() if k != "nms_iou_thresh"})
    report["partnet"] = cache.get("partnet", partnet)
    report["mobility"] = {}
    for n in SMOKE_EVAL_DENSITIES if smoke else densities or EVAL_DENSITIES:
        report["mobility"][str(n)] = cache.get(f"mobility_{n}", lambda n=n: mobility(n))
    scene_block = cache.get("scene", scene_clicks)
    report["everything"] = cache.get("everything", lambda: everything_recall(model, scene, thresholds, smoke))
    report["click_ms_10k"] = cache.get("click_ms", lambda: click_time_ms(model, repeats=3 if smoke else 20))
    missing = cache.missing
    if missing:  # a partial report (no Markdown): what this run and earlier ones computed
        print(f"sections left for another run: {', '.join(missing)}", flush=True)
        partial = {k: v for k, v in report.items() if v is not None}
        partial["mobility"] = {n: v for n, v in report["mobility"].items() if v is not None}
        if scene_block is not None:
            partial["scene"] = {k: v for k, v in scene_block.items() if k != "grouping"}
        (work / out_name / "report.json").write_text(json.dumps({**partial, "partial": missing}, indent=1))
        return {**partial, "partial": missing}
    report["scene_grouping"] = scene_block.pop("grouping")
    report["scene"] = scene_block
    report["seconds"] = round(time.perf_counter() - start, 1)
    out = work / out_name
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(report_markdown(report))
    return report


def reevaluate_everything(work: Path, checkpoint: Path, smoke: bool = False, out_name: str = "eval") -> dict:
    """Recompute only the `pointsam everything` recall of an existing report (after a new calibration)."""
    path = work / out_name / "report.json"
    report = json.loads(path.read_text())
    model = load_model(checkpoint, device="cpu")
    scene = list(PointCloudDataset(work / "data" / ("scannet_crops" if smoke else "scannet_eval")))[:1]
    thresholds = json.loads((work / "amg.json").read_text())["thresholds"]
    report["everything"] = everything_recall(model, scene, thresholds, smoke)
    path.write_text(json.dumps(report, indent=1))
    (work / out_name / "report.md").write_text(report_markdown(report))
    return report


def _row(name: str, s: dict, ks: list[int]) -> str:
    curve = s["curve"]
    cells = " | ".join(f"{curve[k - 1]:.1f}" if k <= len(curve) else "" for k in ks)
    return (f"| {name} | {s['masks']} | {cells} | {s['NoC@80']:.1f} | {s['NoC@90']:.1f} | "
            f"{s['selection_accuracy']:.0f}% | {s['iou1_oracle']:.1f} | "
            f"{s.get('share_drop_gt5_any_click', 0):.0f}% |")


def category_table(block: dict, ks: list[int]) -> str:
    """Markdown: one row per held-out category, then all masks and the mean curve over categories."""
    head = ("| | masks | " + " | ".join(f"IoU@{k}" for k in ks)
            + " | NoC@80 | NoC@90 | IoU head picks best | oracle IoU@1 | masks dropping >5 at a click |\n"
            + "|---|---:|" + "---:|" * (len(ks) + 5))
    if not block["per_category"]:
        return head + "\n| (no held-out masks) | 0 |" + " |" * (len(ks) + 5)
    rows = [_row(c, s, ks) for c, s in block["per_category"].items()]
    rows.append(_row("**all masks**", block["all"], ks))
    mean = block["class_mean_curve"]
    rows.append("| mean of categories | | " + " | ".join(f"{mean[k - 1]:.1f}" if k <= len(mean) else ""
                                                       for k in ks) + " | | | | | |")
    return head + "\n" + "\n".join(rows)


def report_markdown(report: dict) -> str:
    """The report as Markdown tables (also the evaluation section of the model card)."""
    ks = [k for k in range(1, 11)] + ([20] if report["clicks"] >= 20 else [])
    parts = [f"**PartNet 10k-point samples, every level of the part hierarchy** (held out: "
             f"{', '.join(report['held_out_categories'])})", "", category_table(report["partnet"], ks), ""]
    for n, block in report["mobility"].items():
        parts += [f"**URDF link meshes sampled at {int(n):,} points: object, semantic-group, link and "
                  f"link-part masks** ({block.get('clouds', '')} held-out objects)", "",
                  category_table(block, ks), ""]
    s, e = report.get("scene"), report.get("everything")
    if s is None:
        parts += [f"**ScanNet {report['held_out_scene']}**: not measured in this run (see `partial`).", ""]
    else:
        parts += [f"**ScanNet {report['held_out_scene']}, every instance, {len(s['curve'])} clicks** "
                  f"(grouping {report['scene_grouping'][0]} x {report['scene_grouping'][1]}): "
                  + ", ".join(f"IoU@{k + 1} {v:.1f}" for k, v in enumerate(s["curve"]))
                  + f"; IoU head picks best {s['selection_accuracy']:.0f}%, "
                  f"oracle IoU@1 {s['iou1_oracle']:.1f}.", ""]
    if e is not None:
        parts += [f"**`pointsam everything` on {report['held_out_scene']}** (default settings, i.e. the "
                  f"checkpoint's recommendation {e['thresholds']}): recall@25 {e['AR@25']:.1f}%, recall@50 "
                  f"{e['AR@50']:.1f}%, AR {e['AR']:.1f}% ({e['num_proposals']} segments for {e['num_gt']} "
                  "instances, floor left out).", ""]
    if report.get("click_ms_10k"):
        parts += ["One click at 10k points (decode only, the cloud encoded once, this machine's CPU): "
                  f"first click {report['click_ms_10k']['first']} ms, "
                  f"refining click {report['click_ms_10k']['refine']} ms."]
    return "\n".join(parts) + "\n"
