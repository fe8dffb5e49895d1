"""The interactive annotation app (`pointsam annotate`): session model, web server, bundled front end."""

from typing import TYPE_CHECKING

from pointsam.utils.lazy import lazy_exports

_EXPORTS = {
    "AnnotationSession": "session",
    "LabelledObject": "session",
    "OverlapError": "session",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from pointsam.app.session import AnnotationSession, LabelledObject, OverlapError  # noqa: F401
