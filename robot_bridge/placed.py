"""Placed objects: the parts the robot released, where they lie, as the robot side knows them.

A part the robot releases (placed by the program, or dropped) lies in the cell next to the robot.
The occupancy channel (`safety.occupancy`) would see its voxels as occupancy that no skeleton
explains; learning it away over time would also learn away a person standing still. Instead the
robot side, which knows where it let go of the part, reports it: `RobotState.placed_objects`, a
list of `PlacedObject`s (moveit_msgs/CollisionObject semantics: an id, a shape_msgs/SolidPrimitive
and its pose in the `cell` frame), and the occupancy channel removes the points within a small
margin of each object's surface, as it removes the robot's own points (`safety.placed_mask`).

`PlacedObjectTracker` keeps that list from the attach rule (`robot_bridge.payload`): when the
carried payload is released, the payload's geometry at its last carried pose becomes a placed
object; when the payload is carried again where a placed object lies, that object leaves the list
(it is payload again, and the robot's self-filter covers it). Pure, no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: shape_msgs/SolidPrimitive types a placed object may have, with the number of `dimensions`:
#: BOX (x, y, z) edge lengths; CYLINDER (height, radius), the axis along the object's z.
PLACED_PRIMITIVES: dict[str, int] = {"box": 3, "cylinder": 2}


@dataclass(frozen=True)
class PlacedObject:
    """One released part lying in the cell (moveit_msgs/CollisionObject semantics).

    The record is what a peer sends; it is not checked here: the occupancy channel validates every
    list it gets (`safety.placed_mask.validate_placed_objects`) and masks nothing for a bad one.

    Attributes:
        id: the object's identifier (unique within a list).
        primitive: "box" or "cylinder" (`PLACED_PRIMITIVES`, shape_msgs/SolidPrimitive types).
        dimensions: metres; box (x, y, z) edge lengths, cylinder (height, radius): the
            shape_msgs/SolidPrimitive order.
        position: (x, y, z) of the primitive's centre, metres, `frame_id` frame.
        orientation: quaternion (x, y, z, w) of the primitive's axes in `frame_id`.
        placed_ns: monotonic time the robot released it, ns (the robot state's clock).
        frame_id: the frame of the pose; only `cell` is accepted.
    """

    id: str
    primitive: str
    dimensions: tuple[float, ...]
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    placed_ns: int
    frame_id: str = "cell"


def quaternion_z_to(axis: np.ndarray) -> tuple[float, float, float, float]:
    """The shortest rotation (x, y, z, w) taking +z onto `axis` ((3,), any length > 0)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    w = 1.0 + float(a[2])
    if w < 1e-9:  # axis is -z: half a turn about x
        return (1.0, 0.0, 0.0, 0.0)
    q = np.array([-a[1], a[0], 0.0, w])  # z x a, 1 + z.a
    q /= np.linalg.norm(q)
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))


def cylinder_of_capsule(object_id: str, segment: np.ndarray, radius_m: float,
                        placed_ns: int) -> PlacedObject:
    """The cylinder that covers a capsule (axis `segment` (2, 3), metres, `cell` frame): same axis
    and radius, its height the axis length plus both end spheres' radii.

    Args:
        object_id: the object's id (moveit_msgs/CollisionObject `id`).
        segment: (2, 3) the capsule's axis end points, metres, `cell` frame.
        radius_m: the capsule's radius, metres.
        placed_ns: when it was placed, monotonic clock, ns.

    Returns:
        A `PlacedObject` "cylinder" with dimensions (height, radius), metres, centred on the
        axis midpoint, its z axis along the capsule's axis (identity for a point capsule).
    """
    a, b = np.asarray(segment, dtype=np.float64)
    axis = b - a
    length = float(np.linalg.norm(axis))
    centre = (a + b) / 2.0
    orientation = quaternion_z_to(axis) if length > 1e-9 else (0.0, 0.0, 0.0, 1.0)
    position = (float(centre[0]), float(centre[1]), float(centre[2]))
    return PlacedObject(object_id, "cylinder", (length + 2.0 * radius_m, float(radius_m)), position,
                        orientation, int(placed_ns))


def _centre_distances(objects: tuple[PlacedObject, ...], segment: np.ndarray) -> np.ndarray:
    """(K,) distance of each object's centre to the segment (2, 3), metres.

    The point-segment distance of `safety.distance.segment_closest_points` (a point is a
    segment of length 0); `robot_bridge` may not import `safety` (DESIGN.md: the arrows point
    one way), so it is computed here, and `tests/robot_bridge/test_placed.py` checks it against
    that function.
    """
    if not objects:
        return np.empty(0)
    centres = np.array([o.position for o in objects], dtype=np.float64)
    a, b = segment
    ab = b - a
    denom = float(ab @ ab)
    t = np.zeros(len(objects)) if denom < 1e-12 else np.clip((centres - a) @ ab / denom, 0.0, 1.0)
    return np.linalg.norm(centres - (a + t[:, None] * ab), axis=1)


class PlacedObjectTracker:
    """The placed-objects list of one robot, kept from its payload's attach state.

    Rules, per robot state (`observe`):
    - Held: after a pick was seen (not carried, then carried), a state in which the payload is
      carried with no gripper goal under way (the fingers at rest within the grasp widths) and
      the backend has evidence of an object between the fingers (`object_evidence`: the
      simulation's contact points on both fingers; on the wire, the closing goal stalled short
      of its target). Carried only while a gripper goal is under way is the attach rule's
      fail-safe side (larger geometry), not evidence of a part: an empty gripper closing on
      nothing or opening is never held; nor is an empty gripper told to stop within the grasp
      widths (at rest there, but touching nothing), nor a grasp without evidence either way.
    - Released: carried in the previous state, not now, after it was held. The payload's
      capsule at its last carried pose becomes a placed object (`cylinder_of_capsule`, id
      `payload/<n>`), stamped with the state's time. A placed object whose centre lies inside
      the new one's capsule is replaced (the same spot placed again). The part is assumed to
      lie where it was released: a part dropped from a height lies elsewhere, shows as
      occupancy and stops the robot (the fail-safe side). A release without a hold (an empty
      gripper's goal ending, a part held since start-up, a grasp without evidence of an object)
      places nothing: a part there shows as occupancy (a false stop), and no volume is masked
      where no part was seen in the gripper.
    - Picked up again: not carried before, carried now. Every placed object whose centre lies
      inside the payload's capsule (plus `pick_tolerance_m`) leaves the list: the part is
      payload again and the self-filter covers it.
    - At most `max_objects` are kept; beyond, the oldest leaves the list (it then shows as
      occupancy: a false stop, never a missed person).

    `observe` runs on every robot state, not only when the carried or gripper state changes:
    a release places the part at the payload's last carried pose, which moves with the robot
    every state while it carries. A state that is not carried after one that was not returns
    at once (measured here: 0.15 us; a carried state about 2 us, 0.04 % of a core at 200 Hz).

    Thread: not thread-safe; the backend's state publisher owns it.

    Args:
        max_objects: the list's bound (the occupancy channel rejects longer lists).
        pick_tolerance_m: how far outside the carried capsule a placed object's centre may lie
            and still count as picked up, metres.
    """

    def __init__(self, max_objects: int = 16, pick_tolerance_m: float = 0.02) -> None:
        self.max_objects = int(max_objects)
        self.pick_tolerance_m = float(pick_tolerance_m)
        self._objects: tuple[PlacedObject, ...] = ()
        self._carried: bool | None = None
        self._last_segment: np.ndarray | None = None
        self._last_radius = 0.0
        self._count = 0
        self._picked = False  # a pick (not carried -> carried) was seen in this carried span
        self._held = False  # the part was held at rest in this carried span, after a pick

    @property
    def objects(self) -> tuple[PlacedObject, ...]:
        """The placed objects now, oldest first."""
        return self._objects

    def observe(self, stamp_ns: int, carried: bool, payload_segment: np.ndarray | None,
                payload_radius_m: float, *, gripper_moving: bool,
                object_evidence: bool | None = None) -> tuple[PlacedObject, ...]:
        """Take one robot state.

        Args:
            stamp_ns: the state's monotonic time, ns.
            carried: `RobotState.payload_carried` of the state.
            payload_segment: (2, 3) float64 axis of the payload's capsule at the state's joint
                positions (whether carried or not), metres, `cell` frame; None without a payload.
            payload_radius_m: its radius, metres.
            gripper_moving: a gripper goal is under way (commanded and not finished), as the
                attach rule (`robot_bridge.payload.payload_carried`) takes it.
            object_evidence: the backend's evidence of an object between the fingers in this
                state: True (seen), False (the fingers touch nothing), None (it cannot tell:
                no hold, the fail-safe side).

        Returns:
            The placed objects after this state, oldest first.
        """
        if payload_segment is None or (not carried and self._carried is False):
            return self._objects  # not carried before nor now: nothing to do (the common state)
        segment = np.asarray(payload_segment, dtype=np.float64).reshape(2, 3)
        if self._carried is True and not carried and self._last_segment is not None:
            if self._held:
                self._count += 1
                last, radius = self._last_segment, self._last_radius
                placed = cylinder_of_capsule(f"payload/{self._count}", last, radius, stamp_ns)
                far = _centre_distances(self._objects, last) > radius
                kept = tuple(o for o, keep in zip(self._objects, far) if keep)
                self._objects = (kept + (placed,))[-self.max_objects:]
        elif self._carried is False and carried:
            reach = payload_radius_m + self.pick_tolerance_m
            far = _centre_distances(self._objects, segment) > reach
            self._objects = tuple(o for o, keep in zip(self._objects, far) if keep)
            self._picked = True
        if carried:
            self._last_segment, self._last_radius = segment.copy(), float(payload_radius_m)
            self._held = self._held or (self._picked and not gripper_moving
                                        and object_evidence is True)
        else:
            self._picked = self._held = False
        self._carried = bool(carried)
        return self._objects
