"""Training data: the labelled-cloud dataset format and converters from public datasets."""

from pointsam.data.dataset import DatasetWriter, LabelledCloud, PointCloudDataset

__all__ = ["DatasetWriter", "LabelledCloud", "PointCloudDataset"]
