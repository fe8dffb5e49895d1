"""The paper's Table 3 (zero-shot point-prompted segmentation): its numbers, and our results in its layout."""

from __future__ import annotations

from collections.abc import Mapping

#: Clicks reported in Table 3.
TABLE3_KS = (1, 3, 5, 7, 10)
#: Table 3 of the paper, IoU@1/3/5/7/10 in % (None where the paper prints '-'), per dataset and method.
TABLE3: dict[str, dict[str, tuple[float | None, ...]]] = {
    "PartNet-Mobility": {"AGILE3D": (26.4, 40.8, 50.8, 57.4, 61.9), "MV-SAM": (29.3, 57.0, 69.7, 74.3, 76.9),
                         "Point-SAM (large)": (47.9, 67.7, 74.2, 77.0, 78.6),
                         "Point-SAM (giant)": (48.5, 68.2, 73.7, 76.8, 79.3)},
    "ScanObjectNN": {"AGILE3D": (34.8, 52.0, 61.6, 67.2, 72.3),
                     "Point-SAM (large)": (49.4, 75.3, 82.0, 84.8, 86.3),
                     "Point-SAM (giant)": (50.2, 76.8, 83.0, 85.9, 87.0)},
    "S3DIS": {"InterObject3D++": (32.7, 69.0, 80.8, None, 89.2), "AGILE3D": (58.7, 77.4, 83.6, 86.4, 88.5),
              "Point-SAM (large)": (47.6, 78.4, 86.2, 89.2, 90.4),
              "Point-SAM (giant)": (61.3, 81.5, 86.7, 88.7, 90.5)},
    "KITTI360": {"InterObject3D++": (3.4, 11.0, 19.9, None, 40.6), "AGILE3D": (34.8, 42.7, 44.4, 45.8, 49.6),
                 "Point-SAM (large)": (49.4, 74.4, 81.7, 84.3, 85.8),
                 "Point-SAM (giant)": (58.8, 74.1, 78.6, 80.5, 81.3)},
}


def table3_row(summary: Mapping, ks: tuple[int, ...] = TABLE3_KS) -> tuple[float | None, ...]:
    """IoU@k (in %, averaged over instances as the paper does) of an `evaluation.summarize` result."""
    mean = summary.get("per_object_mean") or {}
    return tuple(mean.get(f"IoU@{k}") for k in ks)


def table3_markdown(results: Mapping[str, Mapping[str, Mapping]], with_paper: bool = True) -> str:
    """Markdown table in Table 3's layout: results[dataset][method] = summary, after the paper's rows."""
    head = "| Dataset | Method | " + " | ".join(f"IoU@{k}" for k in TABLE3_KS) + " |"
    lines = [head, "|---|---|" + "---:|" * len(TABLE3_KS)]

    def cells(values: tuple[float | None, ...]) -> str:
        return " | ".join("-" if v is None else f"{v:.1f}" for v in values)

    for dataset in results:
        first = True
        rows = [(f"{m} (paper)", v) for m, v in TABLE3.get(dataset, {}).items()] if with_paper else []
        rows += [(f"**{m}** (this run)", table3_row(s)) for m, s in results.get(dataset, {}).items()]
        for method, values in rows:
            lines.append(f"| {dataset if first else ''} | {method} | {cells(values)} |")
            first = False
    return "\n".join(lines) + "\n"
