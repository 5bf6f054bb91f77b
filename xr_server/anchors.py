"""3D anchors of annotations: the ray through an annotated pixel of the worker's camera, cast
against a plane of the `cell` frame.

The worker's HMI reports the pose of its camera in the `cell` frame (``hmi_camera``: from a
marker or a manual alignment step; the server cannot know it otherwise) and its horizontal field
of view. A point of an annotation (normalised image coordinates, u right, v down) then gives a
ray from the camera centre, and the anchor is the first thing that ray meets
(`anchor_in_scene`): the twin's geometry (the robot's link capsules in its current joint state)
and the tracked people (their body capsules), ray-cast with Open3D's `RaycastingScene`; where it
meets none of them, the cell floor (z = 0). No camera pose, or a ray that meets nothing in front
of the camera: no anchor (None), and the annotation stays on the image only.

Frames (REP 103/105): the camera pose is that of its optical frame, x right, y down, z forward
(the ROS ``*_optical_frame`` convention); quaternions are ``(x, y, z, w)``. Pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xr_server.errors import SessionError

#: Sides of the polygonal capsule meshes ray-cast for anchors: the mesh lies inside the capsule by
#: at most r (1 - cos(pi / 16)), 2 % of its radius (1 mm on a 6 cm robot link).
CAPSULE_MESH_RESOLUTION = 16

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


@dataclass(frozen=True)
class SceneCapsule:
    """One capsule of what an annotation can be anchored on.

    Attributes:
        name: what it is, as the anchor's ``on`` reports it: ``robot:<link>`` or
            ``person:<track id>:<body part>``.
        a, b: (3,) segment end points, metres, `cell` frame.
        radius_m: capsule radius, metres (> 0).
    """

    name: str
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius_m: float


@dataclass(frozen=True)
class Anchor:
    """Where an annotation's point lies in 3D.

    Attributes:
        position_m: (x, y, z) metres, `cell` frame, rounded to 0.1 mm.
        on: what the ray met: a `SceneCapsule.name`, or ``floor``.
    """

    position_m: tuple[float, float, float]
    on: str


def _capsule_mesh(capsule: SceneCapsule):
    """A closed triangle mesh (Open3D legacy) of `capsule`: a cylinder and two end spheres."""
    import open3d as o3d

    a, b = np.asarray(capsule.a, dtype=float), np.asarray(capsule.b, dtype=float)
    r = float(capsule.radius_m)
    axis = b - a
    length = float(np.linalg.norm(axis))
    mesh = o3d.geometry.TriangleMesh.create_sphere(r, resolution=CAPSULE_MESH_RESOLUTION // 2)
    mesh.translate(a)
    end = o3d.geometry.TriangleMesh.create_sphere(r, resolution=CAPSULE_MESH_RESOLUTION // 2)
    end.translate(b)
    mesh += end
    if length > 1e-9:
        body = o3d.geometry.TriangleMesh.create_cylinder(r, length, resolution=CAPSULE_MESH_RESOLUTION)
        z = axis / length               # the cylinder is made along +z about the origin
        helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x = np.cross(helper, z)
        x /= np.linalg.norm(x)
        body.rotate(np.column_stack([x, np.cross(z, x), z]), center=np.zeros(3))
        body.translate((a + b) / 2.0)
        mesh += body
    return mesh


def anchor_in_scene(camera: CameraPose, u: float, v: float,
                    capsules: Sequence[SceneCapsule] = ()) -> Anchor | None:
    """The first surface the ray through (u, v) meets: a capsule of `capsules` (Open3D
    `RaycastingScene` over their meshes, `CAPSULE_MESH_RESOLUTION`) or, behind all of them or
    without any, the cell floor (`anchor_on_plane`). None when the ray meets nothing in front
    of the camera.

    Args:
        camera: the worker's camera.
        u, v: normalised image point (u right, v down, 0 to 1).
        capsules: the robot's links and the tracked people, `cell` frame.
    """
    floor = anchor_on_plane(camera, u, v)
    if capsules:
        import open3d as o3d

        origin, direction = pixel_ray(camera, u, v)
        scene = o3d.t.geometry.RaycastingScene()
        ids = {}
        for capsule in capsules:
            mesh = o3d.t.geometry.TriangleMesh.from_legacy(_capsule_mesh(capsule))
            ids[scene.add_triangles(mesh)] = capsule.name
        ray = o3d.core.Tensor(np.concatenate([origin, direction])[None, :].astype(np.float32))
        hit = scene.cast_rays(ray)
        t_hit = float(hit["t_hit"].numpy()[0])
        floor_t = math.inf if floor is None else float(np.linalg.norm(np.asarray(floor) - origin))
        if math.isfinite(t_hit) and t_hit < floor_t:
            x, y, z = origin + t_hit * direction
            name = ids.get(int(hit["geometry_ids"].numpy()[0]), "unknown")
            return Anchor((round(float(x), 4), round(float(y), 4), round(float(z), 4)), name)
    return None if floor is None else Anchor(floor, "floor")


def scene_capsules(robot: object | None, perception: object | None) -> list[SceneCapsule]:
    """What annotations can be anchored on now: the robot's link capsules in its newest state
    (`robot_bridge.types.RobotState`: link_segments (L, 2, 3), link_radii_m (L,), link_names)
    and the tracked people's body capsules (`safety.perception.PerceptionSnapshot` tracks,
    `safety.distance.human_capsules`); limbs measured at one end only (the safety monitor's
    grown spheres, `UNTRACKED_REACH_M`) are left out: an anchor lies on the measured body.
    `cell` frame, metres. Non-finite capsules are skipped."""
    out: list[SceneCapsule] = []
    if robot is not None and getattr(robot, "link_segments", None) is not None:
        for (a, b), r, name in zip(robot.link_segments, robot.link_radii_m, robot.link_names):
            if np.isfinite(a).all() and np.isfinite(b).all() and r > 0:
                out.append(SceneCapsule(f"robot:{name}", tuple(map(float, a)), tuple(map(float, b)), float(r)))
    if perception is not None:
        from safety.distance import human_capsules

        for track in getattr(perception, "tracks", ()):
            segments, radii, names = human_capsules(track.keypoints_cell, track.confidence)
            for (a, b), r, name in zip(segments, radii, names):
                if np.isfinite(a).all() and np.isfinite(b).all() and r > 0 and not np.allclose(a, b):
                    out.append(SceneCapsule(f"person:{track.track_id}:{name}", tuple(map(float, a)),
                                            tuple(map(float, b)), float(r)))
    return out
