"""The interactive annotation app (`pointsam annotate`): session model, web server, bundled front end."""

from pointsam.app.session import AnnotationSession, LabelledObject, OverlapError

__all__ = ["AnnotationSession", "LabelledObject", "OverlapError"]
