"""Exceptions raised for bad user input, with messages meant for people."""


class PointSAMError(ValueError):
    """Base class for every error pointsam raises on bad input."""


class InputError(PointSAMError):
    """A point cloud, prompt or array argument is malformed."""


class CheckpointError(PointSAMError):
    """A checkpoint file is missing, corrupt or of the wrong architecture."""


class FileFormatError(PointSAMError):
    """A data file is missing, truncated, corrupt or of an unsupported format."""
