"""Writing evaluation results: JSON, a Markdown table and an IoU-vs-clicks plot."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pointsam.evaluation.interactive import ObjectResult, results_to_json
from pointsam.utils.files import atomic_output


def markdown_table(summary: dict, title: str = "") -> str:
    """Per-class and overall IoU@k / NoC table in Markdown; the "masks" column counts gt masks."""
    if not summary.get("num_masks"):
        return f"{title}\n\nNo masks evaluated.\n"
    keys = [k for k in summary["per_object_mean"] if k != "num_masks"]
    lines = [title, "", "| | masks | " + " | ".join(keys) + " |",
             "|---|---:|" + "---:|" * len(keys)]
    rows = [(c, v) for c, v in summary["per_class"].items()]
    rows += [("**mean over masks**", summary["per_object_mean"]),
             ("**mean over classes**", {**summary["per_class_mean"], "num_masks": summary["num_masks"]})]
    for name, v in rows:
        cells = " | ".join(f"{v[k]:.1f}" if k.startswith("IoU") else f"{v[k]:.2f}" for k in keys)
        lines.append(f"| {name or '(none)'} | {v['num_masks']} | {cells} |")
    return "\n".join(lines) + "\n"


PLOT_MISSING = ("iou_vs_clicks.png not written: plotting needs matplotlib "
                '(pip install "pointsam[plot]" or pip install matplotlib)')


def plot_iou_curve(results: list[ObjectResult], path: Path, label: str = "") -> bool:
    """Mean IoU against number of clicks as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ious = np.array([r.ious for r in results]) * 100
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(np.arange(1, ious.shape[1] + 1), ious.mean(axis=0), marker="o", label=label or None)
    ax.set_xticks(np.arange(1, ious.shape[1] + 1, max(1, ious.shape[1] // 10)))
    ax.set_xlabel("number of clicks")
    ax.set_ylabel("mean IoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if label:
        ax.legend()
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Raise FileExistsError naming every existing path, unless `overwrite`."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist; pass overwrite=True (--overwrite) to replace")


def write_report(results: list[ObjectResult], summary: dict, out_dir: Path, title: str = "",
                 overwrite: bool = False, note: Callable[[str], None] | None = None) -> list[Path]:
    """Write results.json, report.md and iou_vs_clicks.png into `out_dir`; return what was written.

    Without matplotlib the plot is skipped: report.md says so, and so does `note` (a warning if None).
    """
    json_path, md_path, png = (out_dir / n for n in ("results.json", "report.md", "iou_vs_clicks.png"))
    refuse_existing([json_path, md_path, png], overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(json_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(results_to_json(results, summary), indent=1))
    written = [json_path]
    table = markdown_table(summary, title)
    if results:
        if plot_iou_curve(results, png, title):
            written.append(png)
        else:
            table += f"\n_{PLOT_MISSING}._\n"
            if note is None:
                warnings.warn(PLOT_MISSING, stacklevel=2)
            else:
                note(PLOT_MISSING)
    with atomic_output(md_path, overwrite=True) as tmp:
        tmp.write_text(table)
    written.insert(1, md_path)
    return written
