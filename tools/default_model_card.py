"""MODEL_CARD.md of the bundled default model, written from the recipe, the run and the held-out report."""

from __future__ import annotations

import numpy as np
from default_model_eval import report_markdown
from default_model_recipe import (
    CROP_MARGINS,
    FINETUNE,
    FINETUNE_NUM_POINTS,
    MESH_DENSITIES,
    MIXTURE,
    NUM_POINTS,
    NUM_SYNTHETIC,
    REPO,
    TRAIN,
    TRAIN_SCENES,
    VAL_CATEGORIES,
)

from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

EXAMPLE = REPO / "src" / "pointsam" / "assets" / "example_table.ply"
BALL_CLICK = (-0.25, 0.91, 0.1)  # the README quick start's click
BALL_LABEL = 6  # tools/make_example_cloud.py: 0 top, 1-4 legs, 5 mug, 6 ball


def ball_click(model) -> dict:
    """The quick-start click on the example table: each candidate's IoU with the ball and its score."""
    cloud = read_point_cloud(EXAMPLE)
    ball = np.asarray(cloud.extra["label"]) == BALL_LABEL
    predictor = PointCloudPredictor(model)
    predictor.set_point_cloud(cloud.xyz, cloud.rgb)
    masks, scores, _ = predictor.predict([BALL_CLICK], [1])
    ious = [float((m & ball).sum() / max((m | ball).sum(), 1)) for m in masks]
    return {"iou": [round(v, 3) for v in ious], "predicted": [round(float(s), 3) for s in scores],
            "chosen": int(np.argmax(scores))}


FIRST_MODEL = """Fine-tuned from the first bundled model (4,000 steps of 4 clouds x 4,096 points on the
PartNet samples of StorageFurniture, Bottle and Table, 3,000 procedural shapes and the 3 ScanNet scenes;
2 h on 2 CPU cores): the same architecture, now trained on the data above. """


def scene_note(report: dict, finetuned: bool) -> str:
    """Whether the ScanNet scene of the report is held out."""
    scene = report["held_out_scene"]
    if not finetuned:
        return f" and the ScanNet scene **{scene}**"
    return (f". The ScanNet scene **{scene}** is left out of this training, but the first model, which this "
            "one is fine-tuned from, was trained on blocks of it: its figures below are **not held out**")


def comparison(report: dict, baseline: dict) -> str:
    """Markdown: the held-out figures of the shipped model next to those of `baseline` (same data)."""
    def part_of(r: dict, block: str) -> dict:
        mobility = r["mobility"].get("10000") or next(iter(r["mobility"].values()))  # the main size
        return r["partnet"] if block == "partnet" else mobility

    def cells(c: list[float]) -> str:
        return " | ".join(f"{c[k - 1]:.1f}" if k <= len(c) else "" for k in ks)

    ks = (1, 2, 3, 5, 10)
    head = ("| held-out data | model | " + " | ".join(f"IoU@{k}" for k in ks)
            + " | IoU head picks best | oracle IoU@1 |\n|---|---|" + "---:|" * (len(ks) + 2))
    rows = []
    blocks = (("partnet", "PartNet hierarchy, all masks"), ("mobility", "URDF links, all masks"))
    for block, name in blocks:
        for label, r in (("first model", baseline), ("this model", report)):
            part = part_of(r, block)
            rows.append(f"| {name} | {label} | " + cells(part["all"]["curve"])
                        + f" | {part['all']['selection_accuracy']:.0f}% | {part['all']['iou1_oracle']:.1f} |")
    for label, r in (("first model", baseline), ("this model", report)):
        if "scene" not in r:
            continue
        rows.append(f"| ScanNet {r['held_out_scene']} (see note) | {label} | " + cells(r["scene"]["curve"])
                    + f" | {r['scene']['selection_accuracy']:.0f}% | {r['scene']['iou1_oracle']:.1f} |")
    everything = ", ".join(
        f"{label}: recall@50 {r['everything']['AR@50']:.1f}% ({r['everything']['num_proposals']} segments, "
        f"settings {r['everything']['thresholds']})"
        for label, r in (("first model", baseline), ("this model", report)) if r.get("everything"))
    return head + "\n" + "\n".join(rows) + f"\n\n`pointsam everything` on the scene: {everything}.\n"


def views_section(report: dict, views_report: dict) -> str:
    """Markdown: the held-out click curves with one view and with `views_report`'s view ensembling."""
    k = views_report["views"]

    def overall(block: dict | None) -> dict | None:
        return None if block is None else block["all"]

    blocks = [("PartNet hierarchy", overall(report["partnet"]), overall(views_report.get("partnet")))]
    blocks += [(f"URDF links, {int(n):,} points", overall(report["mobility"].get(n)), overall(part))
               for n, part in views_report.get("mobility", {}).items()]
    blocks.append((f"ScanNet {report['held_out_scene']} (see note)", report.get("scene"),
                   views_report.get("scene")))
    rows = []
    for name, one, many in blocks:
        if one is None or many is None:
            continue
        for label, summary in (("1 view", one), (f"{k} views", many)):
            rows.append(f"| {name} ({summary['masks']} masks) | {label} | "
                        + " / ".join(f"{v:.1f}" for v in summary["curve"][:10]) + " |")
    return (f"## With view ensembling (`PointCloudPredictor(model, views={k})`, `--views {k}`)\n\n"
            f"Each cloud encoded at {k} turns about y, answers averaged (`pointsam.views`); same held-out "
            f"masks and protocol, {k}x the encode and decode work (timings: benchmarks/RESULTS.md).\n\n"
            "| held-out data | answers | IoU@1..10 (the scene: 1..5) |\n|---|---|---|\n" + "\n".join(rows)
            + "\n")


def model_card(model, report: dict, metrics: list[dict], size: int, ball: dict, hours: float,
               finetuned: bool = False, baseline: dict | None = None, views_report: dict | None = None
               ) -> str:
    """The card's Markdown (`finetuned`: the FINETUNE recipe from the first model; `baseline`: the first
    model's held-out report, shown beside this one; `views_report`: a (partial) report of the clicks with
    view ensembling)."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    mixture = ", ".join(f"{name} {w / sum(m[2] for m in MIXTURE):.0%}" for name, _, w, _ in MIXTURE)
    counts = ", ".join(f"{n:,}" for n in (FINETUNE_NUM_POINTS if finetuned else NUM_POINTS))
    recipe = FINETUNE if finetuned else TRAIN
    against = ("## Against the first bundled model (same held-out data, same protocol)\n\n"
               + comparison(report, baseline)) if baseline else ""
    chosen = ball["chosen"]
    quick = ("the ball" if ball["iou"][chosen] >= 0.5 else "not the ball alone") + (
        f" (candidates' IoU with the ball {', '.join(f'{v:.3f}' for v in ball['iou'])}, predicted IoUs "
        f"{', '.join(f'{v:.3f}' for v in ball['predicted'])}; candidate {chosen + 1} is chosen)")
    steps = metrics[-1]["step"] if metrics else 0
    return f"""# pointsam default model

The small model that `pointsam.load_model()` loads when no checkpoint is given, so that the package segments
something the minute it is installed. It is **much weaker than the official Point-SAM** (a 311M-parameter
model trained on large datasets for days on many GPUs): use the official `model.safetensors` for real work.

## Architecture
Point-SAM (paper Fig. 2) at a small size: EVA-02 ViT {cfg.vit_depth} blocks x {cfg.vit_width} wide
({cfg.vit_heads} heads), {cfg.num_patches} patches x {cfg.patch_size} points, PointNet widths
{list(cfg.pointnet_hidden)} -> {cfg.patch_embed_dim}, prompt/decoder width {cfg.embed_dim}, two-way
transformer depth {cfg.decoder_depth}. {params / 1e6:.2f}M parameters, stored in float16
({size / 1e6:.1f} MB), computed in float32. The config is in the file's metadata, and so are the
recommended `pointsam everything` thresholds (metadata key `pointsam_amg`, read by
`pointsam.amg_defaults`): {report['everything']['thresholds']}.

## Training data
Held out, never trained on: the PartNet-Mobility categories **{', '.join(VAL_CATEGORIES)}** (their PartNet
samples and their URDF meshes){scene_note(report, finetuned)}.
- PartNet point samples (10k points) of the shared PartNet-Mobility objects, every level of the part
  hierarchy as masks.
- Points sampled on the URDF link meshes placed by forward kinematics (`pointsam convert partnet-mobility`)
  at {', '.join(f'{n:,}' for n in MESH_DENSITIES)} points per object: whole-object, semantic-group, link
  (movable part) and link-part masks.
- {NUM_SYNTHETIC} procedural part-labelled shapes (`pointsam.data.synthetic`).
- ScanNet {', '.join(TRAIN_SCENES)}: whole scenes, 3 m x 3 m blocks, and crops around every instance with
  {' and '.join(f'{m:g} m' for m in CROP_MARGINS)} of surrounding context (`pointsam.data.converters.crops`).
- Mixture shares: {mixture}.
- Points per training cloud drawn from {counts} (at most the cloud's own size), grouped as the predictor
  groups a cloud of that size.

## Training
{FIRST_MODEL if finetuned else ""}`pointsam.train.Trainer` with the paper's click simulation
({recipe['prompt_iters']} iterations per mask,
refinement iterations, hindsight loss on the first click): {recipe['grad_accum']} clouds x
{recipe['masks_per_cloud']} masks per step, {steps} steps, AdamW lr {recipe['lr']} (warm-up
{recipe['warmup_steps']} steps, x{recipe['gamma']} at {recipe['milestones']}), weight decay
{recipe['weight_decay']}. Two changes to the official recipe fix the falling click curve
(tools/ISSUE10_ANALYSIS.md): every first-click candidate's predicted IoU is trained on its own IoU (the
official loss trains only the best one's, so the head never learns that a candidate is bad), and half of
the refinement rollouts feed the best first-click candidate back as the mask prompt, so the decoder learns
to trust the prompt.
About {hours:.1f} h on 2 CPU cores (torch 2.13 CPU){" for this fine-tuning" if finetuned else ""}.

## Held-out evaluation
The paper's click simulation (first click farthest from the mask boundary, then the farther of the
false-negative/false-positive regions; IoU@1 is the candidate with the highest predicted IoU, later clicks
feed the previous logits back as mask prompt), every mask of the held-out data.

{report_markdown(report)}
{against}
{views_section(report, views_report) if views_report else ""}
## Quick start
The README's click on the bundled example table, (-0.25, 0.91, 0.1), returns {quick}.

## Reproduce
```bash
python tools/train_default_model.py --work runs/default --prepare-only   # data, and its sizes
python tools/train_default_model.py --work runs/default --finetune       # training (+ --resume to continue)
python tools/train_default_model.py --work runs/default --baseline FIRST.safetensors  # the comparison
python tools/train_default_model.py --work runs/default --calibrate --evaluate --ship
```

## Licence of the data it was trained on
PartNet / PartNet-Mobility (SAPIEN terms) and ScanNet (ScanNet Terms of Use): non-commercial research and
education. The weights inherit those terms.
"""
