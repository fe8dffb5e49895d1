"""Few-shot part segmentation (paper Sec. 5.3): a trained head on frozen Point-SAM features."""

from pointsam.fewshot.data import CategoryEpisode, part_labels, split_categories
from pointsam.fewshot.evaluate import evaluate_episodes, format_table
from pointsam.fewshot.features import DEFAULT_LAYERS, CloudFeatures, FeatureExtractor, resolve_layers
from pointsam.fewshot.head import HeadConfig, PartSegHead, predict_parts, train_head
from pointsam.fewshot.metrics import majority_baseline, shape_miou, summarize

__all__ = [
    "DEFAULT_LAYERS",
    "CategoryEpisode",
    "CloudFeatures",
    "FeatureExtractor",
    "HeadConfig",
    "PartSegHead",
    "evaluate_episodes",
    "format_table",
    "majority_baseline",
    "part_labels",
    "predict_parts",
    "resolve_layers",
    "shape_miou",
    "split_categories",
    "summarize",
    "train_head",
]
