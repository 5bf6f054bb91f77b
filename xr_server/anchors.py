"""3D anchors of annotations: the ray through an annotated pixel of the worker's camera, cast
against a plane of the `cell` frame.

The worker's HMI reports the pose of its camera in the `cell` frame (``hmi_camera``: from a
marker or a manual alignment step; the server cannot know it otherwise) and its horizontal field
of view. A point of an annotation (normalised image coordinates, u right, v down) then gives a
ray from the camera centre, and the anchor is where that ray meets the plane. The only plane
today is the cell floor (z = 0): the twin's geometry and the tracked people are not ray-cast yet.
No camera pose, a ray parallel to the plane, or a plane behind the camera: no anchor (None), and
the annotation stays on the image only.

Frames (REP 103/105): the camera pose is that of its optical frame, x right, y down, z forward
(the ROS ``*_optical_frame`` convention); quaternions are ``(x, y, z, w)``. Pure functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xr_server.errors import SessionError

#: The plane annotations are anchored on: the cell floor, ``n . p = d`` with n = +z, d = 0 m.
FLOOR_NORMAL = (0.0, 0.0, 1.0)
FLOOR_OFFSET_M = 0.0


@dataclass(frozen=True)
class CameraPose:
    """The worker's camera, as its HMI reports it.

    Attributes:
        position_m: (3,) optical centre, metres, `cell` frame.
        orientation: (4,) unit quaternion (x, y, z, w) of the optical frame in the `cell` frame.
        hfov_deg: horizontal field of view, degrees (0, 180).
        aspect: image width / height.
    """

    position_m: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    hfov_deg: float
    aspect: float

    def __post_init__(self) -> None:
        norm = math.sqrt(sum(q * q for q in self.orientation))
        if abs(norm - 1.0) > 1e-3:
            raise SessionError("field 'orientation' must be a unit quaternion (x, y, z, w), "
                               f"its norm is {norm:.4f}")
        if not 1.0 <= self.hfov_deg <= 179.0:
            raise SessionError("field 'hfov_deg' must be from 1 to 179 degrees, "
                               f"got {self.hfov_deg:g}")
        if not 0.1 <= self.aspect <= 10.0:
            raise SessionError("field 'aspect' must be from 0.1 to 10 (width / height), "
                               f"got {self.aspect:g}")


def rotation_matrix(q: tuple[float, float, float, float]) -> np.ndarray:
    """The (3, 3) rotation matrix of quaternion `q` (x, y, z, w), normalised first."""
    x, y, z, w = (c / math.sqrt(sum(c * c for c in q)) for c in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def pixel_ray(camera: CameraPose, u: float, v: float) -> tuple[np.ndarray, np.ndarray]:
    """The ray through normalised image point (u, v): origin (3,) and unit direction (3,),
    `cell` frame."""
    tan_h = math.tan(math.radians(camera.hfov_deg) / 2.0)
    tan_v = tan_h / camera.aspect
    direction_optical = np.array([(2.0 * u - 1.0) * tan_h, (2.0 * v - 1.0) * tan_v, 1.0])
    direction = rotation_matrix(camera.orientation) @ direction_optical
    return np.array(camera.position_m, dtype=float), direction / np.linalg.norm(direction)


def anchor_on_plane(camera: CameraPose, u: float, v: float,
                    normal: tuple[float, float, float] = FLOOR_NORMAL,
                    offset_m: float = FLOOR_OFFSET_M) -> tuple[float, float, float] | None:
    """Where the ray through (u, v) meets the plane ``normal . p = offset_m`` (`cell` frame),
    metres, rounded to 0.1 mm; None when the ray is parallel to the plane or meets it behind the
    camera."""
    origin, direction = pixel_ray(camera, u, v)
    n = np.asarray(normal, dtype=float)
    along = float(n @ direction)
    if abs(along) < 1e-9:
        return None
    t = (offset_m - float(n @ origin)) / along
    if t <= 0.0:
        return None
    x, y, z = origin + t * direction
    return round(float(x), 4), round(float(y), 4), round(float(z), 4)
