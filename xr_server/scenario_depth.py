"""The scenario runner's simulated depth camera: the occupancy channel fed from rendered depth images.

Every frame, the scripted people's ground-truth body capsules, the robot's link capsules (so the
occupancy channel's self-filter has something to remove) and the floor are ray-cast with Open3D's
`RaycastingScene` into a depth image with Gaussian noise; the image goes through
`safety.perception.depth.points_from_depth` and `safety.occupancy.OccupancyChannel`, exactly as a
real RGB-D frame would, and the measurement is published after the camera's latency on the
scenario's simulated clock. People marked `visible_to_pose: false` are in the depth image but not
in the skeleton tracker's output (a person the pose estimator misses).

A part the robot released lies in the rendered cell where it was let go: the payload's capsule at
its last carried pose, if the simulated workpiece was in the gripper, until the payload is
carried again over it (the ground truth of a place; an empty gripper closing or opening leaves
nothing; the scenario cell's payload geometry stands for the part, PyBullet's cube only gives
the grasp its physics). The occupancy channel gets the robot state's `placed_objects` with the
frame, so it can mask the part (`safety.placed_mask`) as a real cell's depth input does.

Thread: single-threaded; the scenario loop calls `advance()` before the monitor's cycle.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from robot_bridge.payload import PAYLOAD_LINK
from robot_bridge.types import RobotState
from safety.occupancy import OccupancyChannel, OccupancyMeasurement, point_capsule_distances
from safety.perception.depth import DepthCamera, points_from_depth

_SEC = 1_000_000_000
#: Half edge of the floor quad the camera sees at z = 0, metres.
_FLOOR_HALF_M = 10.0


def _unit_meshes(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A unit sphere and an open unit cylinder (radius 1, z from 0 to 1) as numpy arrays:
    (sphere vertices, sphere triangles, cylinder vertices, cylinder triangles)."""
    import open3d as o3d

    sphere = o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=resolution)
    cylinder = o3d.geometry.TriangleMesh.create_cylinder(1.0, 1.0, resolution=2 * resolution, split=1)
    cv = np.asarray(cylinder.vertices).copy()
    cv[:, 2] += 0.5
    return (np.asarray(sphere.vertices), np.asarray(sphere.triangles), cv, np.asarray(cylinder.triangles))


def _frames(axes: np.ndarray) -> np.ndarray:
    """(K, 3, 3) rotations whose third columns are the (K, 3) unit vectors `axes`."""
    z = axes
    helper = np.where((np.abs(z[:, 0]) < 0.9)[:, None], np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    x = np.stack([helper[:, 1] * z[:, 2] - helper[:, 2] * z[:, 1], helper[:, 2] * z[:, 0] - helper[:, 0] * z[:, 2],
                  helper[:, 0] * z[:, 1] - helper[:, 1] * z[:, 0]], axis=1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.stack([z[:, 1] * x[:, 2] - z[:, 2] * x[:, 1], z[:, 2] * x[:, 0] - z[:, 0] * x[:, 2],
                  z[:, 0] * x[:, 1] - z[:, 1] * x[:, 0]], axis=1)
    return np.stack([x, y, z], axis=2)


Part = tuple[np.ndarray, float]
"""A released part: its capsule's axis (2, 3), metres, `cell` frame, and radius, metres."""


def _away_from(parts: list[Part], segment: np.ndarray, reach_m: float) -> list[Part]:
    """The parts whose centre lies farther than `reach_m` from the (2, 3) `segment`."""
    if not parts:
        return parts
    centres = np.array([seg.mean(axis=0) for seg, _ in parts])
    d = point_capsule_distances(centres, segment[None], np.zeros(1))[:, 0]
    return [part for part, dist in zip(parts, d) if dist > reach_m]


class CapsuleMesher:
    """Triangle meshes of capsules (two spheres and a cylinder each), for ray casting."""

    def __init__(self, resolution: int = 8) -> None:
        self._sv, self._st, self._cv, self._ct = _unit_meshes(resolution)

    def mesh(self, segments: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vertices (V, 3) float32, triangles (T, 3) uint32) of capsules (K, 2, 3) with radii (K,).

        Every capsule gets its cylinder, also a degenerate one (zero length: a flat disc inside
        its spheres), so that the mesh has the same layout for every K.
        """
        k = segments.shape[0]
        if k == 0:
            return np.empty((0, 3), np.float32), np.empty((0, 3), np.uint32)
        a, b = segments[:, 0, :], segments[:, 1, :]
        axis = b - a
        length = np.linalg.norm(axis, axis=1)
        unit = np.where((length > 1e-9)[:, None], axis / np.maximum(length, 1e-9)[:, None], np.array([0.0, 0.0, 1.0]))
        rot = _frames(unit)
        r = radii[:, None, None]
        spheres = np.concatenate([self._sv[None] * r + a[:, None, :], self._sv[None] * r + b[:, None, :]])
        scaled = self._cv[None] * np.stack([radii, radii, length], axis=1)[:, None, :]
        cylinders = np.einsum("kij,kvj->kvi", rot, scaled) + a[:, None, :]
        ns, nc = len(self._sv), len(self._cv)
        sphere_tris = self._st[None] + (np.arange(2 * k) * ns)[:, None, None]
        cyl_tris = self._ct[None] + (2 * k * ns + np.arange(k) * nc)[:, None, None]
        vertices = np.concatenate([spheres.reshape(-1, 3), cylinders.reshape(-1, 3)]).astype(np.float32)
        triangles = np.concatenate([sphere_tris.reshape(-1, 3), cyl_tris.reshape(-1, 3)]).astype(np.uint32)
        return vertices, triangles


class SimulatedDepthCamera:
    """Renders depth images of capsules and the floor with Open3D's `RaycastingScene`.

    Args:
        camera: the camera (`DepthCamera.look_at`).
        noise_m: standard deviation of the Gaussian noise added to every depth reading, metres.
        rng: the scenario's random generator.
    """

    def __init__(self, camera: DepthCamera, noise_m: float, rng: np.random.Generator) -> None:
        import open3d as o3d

        self._o3d = o3d
        self.camera = camera
        self._noise = noise_m
        self._rng = rng
        self._mesher = CapsuleMesher()
        # Directions R^T K^-1 (u, v, 1): their optical z is 1, so the hit distance is the depth.
        self._rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
            o3d.core.Tensor(camera.intrinsic), o3d.core.Tensor(camera.camera_from_cell),
            camera.width_px, camera.height_px)
        h = _FLOOR_HALF_M
        self._floor_v = np.array([[-h, -h, 0.0], [h, -h, 0.0], [h, h, 0.0], [-h, h, 0.0]], np.float32)
        self._floor_t = np.array([[0, 1, 2], [0, 2, 3]], np.uint32)

    def render(self, capsules: Sequence[tuple[np.ndarray, np.ndarray]],
               boxes: Sequence[tuple[Sequence[float], Sequence[float]]] = ()) -> np.ndarray:
        """A depth image of the floor, `capsules` [(segments (K, 2, 3), radii (K,))] and
        axis-aligned `boxes` [(min (3,), max (3,))] (fixtures: tables, fences), metres, `cell`
        frame.

        Returns:
            (H, W) float32 depth along the optical axis, metres; 0 where no return.
        """
        o3d = self._o3d
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(self._floor_v), o3d.core.Tensor(self._floor_t))
        for lo, hi in boxes:
            size = np.asarray(hi, float) - np.asarray(lo, float)
            box = o3d.geometry.TriangleMesh.create_box(*size)
            box.translate(np.asarray(lo, float))
            scene.add_triangles(o3d.core.Tensor(np.asarray(box.vertices, np.float32)),
                                o3d.core.Tensor(np.asarray(box.triangles, np.uint32)))
        if capsules:
            v, t = self._mesher.mesh(np.concatenate([np.reshape(c[0], (-1, 2, 3)) for c in capsules]),
                                     np.concatenate([np.reshape(c[1], (-1,)) for c in capsules]))
            if len(t):
                scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(t))
        depth = scene.cast_rays(self._rays, nthreads=1)["t_hit"].numpy()
        if self._noise > 0:
            depth = depth + self._rng.normal(0.0, self._noise, depth.shape).astype(np.float32)
        depth[~np.isfinite(depth) | (depth > self.camera.max_depth_m)] = 0.0
        return depth.astype(np.float32)


class ScriptedDepth:
    """The depth camera and occupancy channel of a scenario, on the simulated clock.

    Args:
        camera: renders the frames.
        channel: the occupancy channel (its background is learned by `learn_background`).
        rate_hz: frames per second.
        latency_s: capture to publication of a measurement.
        people: returns the ground-truth body capsules [(segments, radii)] at a run time, s.
        frozen: returns True while the camera delivers no frames at a run time (a fault).
        offset_ns: the simulated monotonic clock at run time 0.
    """

    def __init__(self, camera: SimulatedDepthCamera, channel: OccupancyChannel, rate_hz: float, latency_s: float,
                 people: Callable[[float], list[tuple[np.ndarray, np.ndarray]]],
                 frozen: Callable[[float], bool], offset_ns: int) -> None:
        self._camera = camera
        self._channel = channel
        self._period = 1.0 / rate_hz
        self._latency = latency_s
        self._people = people
        self._frozen = frozen
        self._offset_ns = offset_ns
        self._next = 0.0
        self._pending: list[tuple[float, OccupancyMeasurement]] = []
        self._latest: OccupancyMeasurement | None = None
        self._robot: RobotState | None = None
        self._held: Part | None = None
        self._holding = False  # the workpiece was in the gripper while carried
        self._released: list[Part] = []
        self.frames = 0

    def latest(self) -> OccupancyMeasurement | None:
        """The newest published measurement (the monitor's occupancy source)."""
        return self._latest

    def learn_background(self, robot: RobotState) -> None:
        """Capture the empty cell (nobody in it) as background.

        A real cell learns its background over a run of the robot's program, so that the floor
        under every link is seen at some point (one frame would leave the floor under the arm
        unlearned, and that floor would show as occupancy next to the robot once the arm moves
        on). The accumulation converges to the cell without the robot, which is what this
        renders; the robot's capsules still go through the self-filter as in a real capture.
        """
        depth = self._camera.render([])
        self._channel.learn_background(points_from_depth(depth, self._camera.camera),
                                       robot.link_segments, robot.link_radii_m)

    @property
    def released_parts(self) -> int:
        """Parts lying in the rendered cell where the robot released them."""
        return len(self._released)

    def _follow_payload(self, robot: RobotState) -> None:
        """Ground truth of released parts: the payload lies where it was let go, if the simulated
        workpiece was in the gripper (within the payload capsule's radius + 5 cm of its axis)
        while it was carried, until it is carried again. An empty gripper is carried while its
        goal is under way (the attach rule's fail-safe side) and leaves nothing behind."""
        if robot is self._robot:
            return
        self._robot = robot
        carried = robot.payload_carried and PAYLOAD_LINK in robot.link_names
        if carried:
            k = robot.link_names.index(PAYLOAD_LINK)
            segment, radius = np.array(robot.link_segments[k]), float(robot.link_radii_m[k])
            if self._held is None:  # picked up: the parts in the carried capsule are payload again
                self._released = _away_from(self._released, segment, radius + 0.02)
                self._holding = False
            self._held = (segment, radius)
            workpiece = robot.extras.get("workpiece_position")
            if workpiece is not None and not _away_from([(np.array([workpiece] * 2), 0.0)],
                                                        segment, radius + 0.05):
                self._holding = True
        elif self._held is not None:  # released: it lies there (replacing a part on the same spot)
            held = self._held
            if self._holding:
                self._released = _away_from(self._released, held[0], held[1]) + [held]
            self._held = None

    def advance(self, t: float, robot: RobotState | None) -> None:
        """Capture frames due by run time t (robot in its newest state) and publish those whose
        latency has passed."""
        if robot is not None:
            self._follow_payload(robot)
        if robot is not None and self._next <= t:
            self._next = math.floor(t / self._period + 1.0) * self._period
            if not self._frozen(t):
                capture_ns = int(t * _SEC) + self._offset_ns
                parts = [(seg[None], np.array([r])) for seg, r in self._released]
                robot_capsules = (robot.link_segments, robot.link_radii_m)
                depth = self._camera.render(self._people(t) + parts + [robot_capsules])
                points = points_from_depth(depth, self._camera.camera)
                m = self._channel.measure(points, robot.link_segments, robot.link_radii_m, robot.link_names,
                                          capture_ns, capture_ns + int(self._latency * _SEC),
                                          robot.placed_objects, robot.stamp_ns)
                self._pending.append((t + self._latency, m))
                self.frames += 1
        while self._pending and self._pending[0][0] <= t:
            self._latest = self._pending.pop(0)[1]
