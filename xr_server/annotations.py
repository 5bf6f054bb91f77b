"""Annotations of XR sessions: the checks of their geometry and their form on the wire.

Geometry is in normalised image coordinates of the worker's video (u right, v down, 0 to 1),
see `content.storage.Annotation`. The 3D anchor (`xr_server.anchors`) is the point of the
annotation that matters on the object: an arrow's head, a circle's centre, a label's anchor, a
freehand stroke's centroid.
"""

from __future__ import annotations

from collections.abc import Sequence

from content.storage import Annotation
from xr_server.errors import SessionError

#: Most points of a freehand stroke (the expert page thins a longer one out before sending it).
MAX_STROKE_POINTS = 256

#: Points each kind needs: (fewest, most).
POINTS_PER_KIND = {"arrow": (2, 2), "circle": (1, 1), "label": (1, 1), "stroke": (2, MAX_STROKE_POINTS)}


def check_geometry(kind: str, points: Sequence[Sequence[float]] | None, radius: float | None,
                   text: str | None) -> None:
    """Raise `SessionError` naming the field unless the geometry fits `kind`.

    Args:
        kind: ``arrow``, ``circle``, ``label`` or ``stroke`` (freehand, 2 to `MAX_STROKE_POINTS`).
        points: ``[[u, v], ...]`` or None (an update that keeps them).
        radius: fraction of the image width, or None.
        text: the text, or None (an update that keeps it).
    """
    if points is not None:
        fewest, most = POINTS_PER_KIND[kind]
        if not fewest <= len(points) <= most:
            need = str(fewest) if fewest == most else f"{fewest} to {most}"
            plural = "s" if most > 1 else ""
            raise SessionError(f"field 'points': a {kind} needs {need} point{plural}, "
                               f"got {len(points)}")
        for i, point in enumerate(points):
            if len(point) != 2:
                raise SessionError(f"field 'points.{i}' must be [u, v], got {len(point)} numbers")
            if not all(0.0 <= c <= 1.0 for c in point):
                raise SessionError(f"field 'points.{i}' must lie in the image: u and v from 0 to 1")
    if kind == "circle" and radius is None and points is not None:
        raise SessionError("field 'radius' is required for a circle")
    if kind != "circle" and radius is not None:
        raise SessionError(f"field 'radius' is for circles only, not a {kind}")
    if kind == "label" and text is not None and not text.strip():
        raise SessionError("field 'text' must not be empty for a label")


def anchor_point(kind: str, points: Sequence[Sequence[float]]) -> tuple[float, float]:
    """The image point (u, v) of an annotation that is anchored in 3D: an arrow's head, a
    stroke's centroid (what a freehand ring or scribble marks), else its one point."""
    if kind == "stroke":
        return (float(sum(p[0] for p in points) / len(points)),
                float(sum(p[1] for p in points) / len(points)))
    u, v = points[1] if kind == "arrow" else points[0]
    return float(u), float(v)


def annotation_dict(annotation: Annotation) -> dict:
    """`annotation` as sent in the ``annotation`` and ``session_joined`` events."""
    return {"id": annotation.annotation_id, "session": annotation.session_id,
            "cell": annotation.cell,
            "author": annotation.author, "kind": annotation.kind,
            "points": [list(p) for p in annotation.points], "radius": annotation.radius,
            "text": annotation.text, "color": annotation.color,
            "anchor": None if annotation.anchor_m is None else {
                "frame": "cell", "position_m": list(annotation.anchor_m),
                "on": annotation.anchor_on or "floor"},
            "created_at": round(annotation.created_at, 3),
            "updated_at": round(annotation.updated_at, 3)}
