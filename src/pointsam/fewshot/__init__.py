"""Few-shot part segmentation (paper Sec. 5.3): a trained head on frozen Point-SAM features."""

from typing import TYPE_CHECKING

from pointsam.utils.lazy import lazy_exports

_EXPORTS = {
    "CategoryEpisode": "data",
    "CloudFeatures": "features",
    "DEFAULT_LAYERS": "features",
    "FeatureExtractor": "features",
    "HeadConfig": "head",
    "PartSegHead": "head",
    "evaluate_episodes": "evaluate",
    "format_table": "evaluate",
    "majority_baseline": "metrics",
    "part_labels": "data",
    "predict_parts": "head",
    "resolve_layers": "features",
    "shape_miou": "metrics",
    "split_categories": "data",
    "summarize": "metrics",
    "train_head": "head",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from pointsam.fewshot.data import CategoryEpisode, part_labels, split_categories  # noqa: F401
    from pointsam.fewshot.evaluate import evaluate_episodes, format_table  # noqa: F401
    from pointsam.fewshot.features import DEFAULT_LAYERS, CloudFeatures, FeatureExtractor, resolve_layers  # noqa: F401
    from pointsam.fewshot.head import HeadConfig, PartSegHead, predict_parts, train_head  # noqa: F401
    from pointsam.fewshot.metrics import majority_baseline, shape_miou, summarize  # noqa: F401
