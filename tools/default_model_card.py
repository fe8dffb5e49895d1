"""MODEL_CARD.md of the bundled default model, written from the recipe, the run and the held-out report."""

from __future__ import annotations

import numpy as np
from default_model_eval import report_markdown
from default_model_recipe import (
    CROP_MARGINS,
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


def model_card(model, report: dict, metrics: list[dict], size: int, ball: dict, hours: float) -> str:
    """The card's Markdown."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    mixture = ", ".join(f"{name} {w / sum(m[2] for m in MIXTURE):.0%}" for name, _, w, _ in MIXTURE)
    counts = ", ".join(f"{n:,}" for n in NUM_POINTS)
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
samples and their URDF meshes) and the ScanNet scene **{report['held_out_scene']}**.
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
`pointsam.train.Trainer` with the paper's click simulation ({TRAIN['prompt_iters']} iterations per mask,
refinement iterations, hindsight loss on the first click): {TRAIN['grad_accum']} clouds x
{TRAIN['masks_per_cloud']} masks per step, {steps} steps, AdamW lr {TRAIN['lr']} (warm-up
{TRAIN['warmup_steps']} steps, x{TRAIN['gamma']} at {TRAIN['milestones']}), weight decay
{TRAIN['weight_decay']}.
About {hours:.1f} h on 2 CPU cores (torch 2.13 CPU).

## Held-out evaluation
The paper's click simulation (first click farthest from the mask boundary, then the farther of the
false-negative/false-positive regions; IoU@1 is the candidate with the highest predicted IoU, later clicks
feed the previous logits back as mask prompt), every mask of the held-out data.

{report_markdown(report)}
## Quick start
The README's click on the bundled example table, (-0.25, 0.91, 0.1), returns {quick}.

## Reproduce
```bash
python tools/train_default_model.py --work runs/default --prepare-only   # data, and its sizes
python tools/train_default_model.py --work runs/default                  # training (resume: --resume)
python tools/train_default_model.py --work runs/default --calibrate --evaluate --ship
```

## Licence of the data it was trained on
PartNet / PartNet-Mobility (SAPIEN terms) and ScanNet (ScanNet Terms of Use): non-commercial research and
education. The weights inherit those terms.
"""
