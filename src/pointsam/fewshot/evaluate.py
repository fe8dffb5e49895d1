"""Few-shot part segmentation end to end: one head per category, trained on k shapes, tested on the rest."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from pointsam.fewshot.data import CategoryEpisode
from pointsam.fewshot.features import FeatureExtractor
from pointsam.fewshot.head import HeadConfig, predict_parts, train_head
from pointsam.fewshot.metrics import majority_baseline, shape_miou, summarize


def _round(x: float) -> float:
    return round(float(x), 6)


def evaluate_episodes(
    extractor: FeatureExtractor,
    episodes: Sequence[CategoryEpisode],
    config: HeadConfig | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train and test a head per category; returns the report (per-category and overall mIoU)."""
    say = progress or (lambda _msg: None)
    config = config or HeadConfig()
    device = extractor.predictor.device
    categories: dict[str, dict] = {}
    for ep in episodes:
        t0 = time.perf_counter()
        support = [(extractor(s.cloud.xyz, s.cloud.rgb).to(device), s.labels) for s in ep.support]
        say(f"{ep.category}: {len(ep.parts)} parts, training on {len(support)} shape(s) ...")
        head = train_head(support, len(ep.parts), config, seed)
        train_ious = [shape_miou(predict_parts(head, f), lab, len(ep.parts)) for f, lab in support]
        del support
        shapes = []
        for s in ep.test:
            pred = predict_parts(head, extractor(s.cloud.xyz, s.cloud.rgb).to(device))
            shapes.append({"file": s.file, "miou": _round(shape_miou(pred, s.labels, len(ep.parts)))})
        miou = float(np.mean([s["miou"] for s in shapes]))
        baseline = majority_baseline([s.labels for s in ep.support], [s.labels for s in ep.test],
                                     len(ep.parts))
        categories[ep.category] = {
            "parts": ep.parts, "support": [s.file for s in ep.support], "num_test": len(shapes),
            "miou": _round(miou), "train_miou": _round(np.mean(train_ious)),
            "majority_baseline_miou": _round(baseline), "seconds": round(time.perf_counter() - t0, 2),
            "shapes": shapes,
        }
        say(f"{ep.category}: test mIoU {100 * miou:.1f} on {len(shapes)} shape(s) "
            f"(train {100 * np.mean(train_ious):.1f}, majority baseline {100 * baseline:.1f})")
    summary = summarize({c: [s["miou"] for s in r["shapes"]] for c, r in categories.items()})
    baseline = float(np.mean([r["majority_baseline_miou"] for r in categories.values()]))
    return {"layers": extractor.layers, "head": config.__dict__, "seed": seed,
            **{k: _round(v) for k, v in summary.items()},
            "majority_baseline_class_miou": _round(baseline), "categories": categories}


def format_table(report: dict) -> str:
    """Plain-text table: one row per category, then the class and instance means (in %)."""
    rows = [("category", "parts", "test", "mIoU", "train", "baseline")]
    for cat, r in report["categories"].items():
        rows.append((cat, str(len(r["parts"])), str(r["num_test"]), f"{100 * r['miou']:.1f}",
                     f"{100 * r['train_miou']:.1f}", f"{100 * r['majority_baseline_miou']:.1f}"))
    rows.append(("class mIoU", "", "", f"{100 * report['class_miou']:.1f}", "",
                 f"{100 * report['majority_baseline_class_miou']:.1f}"))
    rows.append(("instance mIoU", "", "", f"{100 * report['instance_miou']:.1f}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 2, "-" * len(lines[0]))
    return "\n".join(lines)
