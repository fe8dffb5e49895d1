"""Training data: the labelled-cloud dataset format and converters from public datasets."""

from typing import TYPE_CHECKING

from pointsam.utils.lazy import lazy_exports

_EXPORTS = {
    "DatasetWriter": "dataset",
    "LabelledCloud": "dataset",
    "PointCloudDataset": "dataset",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from pointsam.data.dataset import DatasetWriter, LabelledCloud, PointCloudDataset  # noqa: F401
