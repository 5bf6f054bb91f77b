"""The occupancy channel's mask of placed objects: parts the robot released are not people.

A part the robot placed (or dropped) lies next to the robot; to the occupancy channel its points
are occupancy that no skeleton explains: a channel disagreement and a false stop. Learning it away
over time is not an option, since whatever learns a still part away also learns away a person
standing still. Instead the robot side reports where it released each part
(`RobotState.placed_objects`, `robot_bridge.placed`) and this mask removes the points within
`margin_m` of each part's surface (`on_placed_surfaces`), outside or inside: all a depth camera
can measure of a part lying there.

Safety argument:
- Only a shell of `margin_m` about the part's surface is masked. A hand reaching onto the part is
  seen everywhere outside it (the arm it belongs to, the fingers above the part), and by the
  skeleton channel, which knows nothing of placed objects. A part hides everything behind its
  surface, so a point deeper inside its volume than the margin is something else where the part
  is said to lie (someone carried the part away and reaches in there): it is seen.
- A list from a peer is validated first (`validate_placed_objects`): finite values, a known
  primitive, each object no larger than `max_extent_m` (a part, never a region the size of a
  person), at most `max_objects`, every centre inside the cell. A bad list is rejected whole,
  with a reason naming the field, and nothing is masked.
- Unknown (None) or stale (the robot state carrying it older than `max_age_s` at the depth
  capture) is nothing masked; an object placed after the capture is not masked in that frame.
  Every failure is on the side of seeing too much: a false stop, never a missed person.

The margin, 0.05 m by default, is argued as the background's one-voxel dilation is
(`safety.occupancy.BackgroundModel`): the part's surface is measured with the same depth noise as
the floor's, and one 5 cm voxel keeps that noise (a few millimetres to about 2 % of the range of
stereo depth cameras at 2 m) inside the mask; the few points that still fall outside are isolated
and fail the channel's `min_points_per_voxel`. The price, as for the floor: something within the
margin of the part's surface is not seen by this channel (the skeleton channel still sees it).

Pure numpy; no clock, no I/O. Coordinates metres in the `cell` frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Sequence

import numpy as np

from robot_bridge.placed import PLACED_PRIMITIVES, PlacedObject
from safety.errors import OccupancyError

#: Longest id a placed object may have, characters.
MAX_ID_LENGTH = 64


def _finite_reals(value: Any, n: int) -> tuple[float, ...] | None:
    """`value` as n finite floats, or None when it is not n real numbers or one is not finite."""
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != n:
        return None
    if not all(isinstance(v, (Real, np.floating, np.integer)) and not isinstance(v, bool)
               for v in value):
        return None
    out = tuple(float(v) for v in value)
    return out if all(math.isfinite(v) for v in out) else None


def extent_m(obj: PlacedObject) -> float:
    """The diagonal of a (valid) placed object's bounding box, metres: its largest size."""
    if obj.primitive == "box":
        return float(math.hypot(*obj.dimensions))
    return float(math.hypot(obj.dimensions[0], 2.0 * obj.dimensions[1]))


def validate_placed_objects(objects: Any, bounds: tuple[np.ndarray, np.ndarray],
                            max_objects: int = 16,
                            max_extent_m: float = 0.5) -> tuple[PlacedObject, ...]:
    """Check a placed-objects list from a peer (`RobotState.placed_objects`).

    Args:
        objects: the list (a tuple or list of `PlacedObject`).
        bounds: (min (3,), max (3,)) of the cell, metres, `cell` frame: every centre lies inside.
        max_objects: the most objects a list may hold.
        max_extent_m: the largest object, metres (the diagonal of its bounding box).

    Returns:
        The objects, as a tuple.

    Raises:
        OccupancyError: the first problem found, naming the field (`placed_objects[i].dimensions`).
    """
    if not isinstance(objects, (tuple, list)):
        raise OccupancyError(f"placed_objects: expected a list of PlacedObject, "
                             f"got {type(objects).__name__}")
    if len(objects) > max_objects:
        raise OccupancyError(f"placed_objects: {len(objects)} objects, at most {max_objects}")
    lo, hi = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    ids: set[str] = set()
    for i, obj in enumerate(objects):
        at = f"placed_objects[{i}]"
        if not isinstance(obj, PlacedObject):
            raise OccupancyError(f"{at}: expected a PlacedObject, got {type(obj).__name__}")
        if not isinstance(obj.id, str) or not 0 < len(obj.id) <= MAX_ID_LENGTH:
            raise OccupancyError(f"{at}.id: expected 1 to {MAX_ID_LENGTH} characters, "
                                 f"got {obj.id!r}")
        if obj.id in ids:
            raise OccupancyError(f"{at}.id: {obj.id!r} repeats an earlier object's id")
        ids.add(obj.id)
        if obj.frame_id != "cell":
            raise OccupancyError(f"{at}.frame_id: expected 'cell', got {obj.frame_id!r}")
        if not isinstance(obj.primitive, str) or obj.primitive not in PLACED_PRIMITIVES:
            raise OccupancyError(f"{at}.primitive: expected one of {', '.join(PLACED_PRIMITIVES)}, "
                                 f"got {obj.primitive!r}")
        n = PLACED_PRIMITIVES[obj.primitive]
        dims = _finite_reals(obj.dimensions, n)
        if dims is None or min(dims) <= 0.0:
            what = "(x, y, z)" if obj.primitive == "box" else "(height, radius)"
            raise OccupancyError(f"{at}.dimensions: a {obj.primitive} needs {n} finite positive "
                                 f"values {what} in metres, got {obj.dimensions!r}")
        position = _finite_reals(obj.position, 3)
        if position is None:
            raise OccupancyError(f"{at}.position: expected 3 finite values (x, y, z) in metres, "
                                 f"got {obj.position!r}")
        orientation = _finite_reals(obj.orientation, 4)
        if orientation is None or abs(math.sqrt(sum(v * v for v in orientation)) - 1.0) > 1e-3:
            raise OccupancyError(f"{at}.orientation: expected a unit quaternion (x, y, z, w), "
                                 f"got {obj.orientation!r}")
        if not isinstance(obj.placed_ns, Integral) or isinstance(obj.placed_ns, bool):
            raise OccupancyError(f"{at}.placed_ns: expected integer nanoseconds, "
                                 f"got {obj.placed_ns!r}")
        size = extent_m(PlacedObject(obj.id, obj.primitive, dims, position, orientation, 0))
        if size > max_extent_m:
            raise OccupancyError(f"{at}.dimensions: {size:.3f} m across, larger than the largest "
                                 f"part allowed ({max_extent_m:g} m)")
        if np.any(np.asarray(position) < lo) or np.any(np.asarray(position) > hi):
            raise OccupancyError(f"{at}.position: {np.round(position, 3).tolist()} m lies outside "
                                 f"the cell {np.round(lo, 3).tolist()} .. "
                                 f"{np.round(hi, 3).tolist()} m")
    return tuple(objects)


def _rotation(q: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _signed_distances(points: np.ndarray, obj: PlacedObject) -> np.ndarray:
    """Signed distance of each point (N, 3) to a placed object's surface, metres: positive
    outside the solid, negative inside."""
    local = (points - np.asarray(obj.position, dtype=np.float64)) @ _rotation(obj.orientation)
    if obj.primitive == "box":  # R^T (p - c), row-wise, against the half edges
        q = np.abs(local) - np.asarray(obj.dimensions, dtype=np.float64) / 2.0
    else:
        height, radius = obj.dimensions
        q = np.stack([np.hypot(local[:, 0], local[:, 1]) - radius,
                      np.abs(local[:, 2]) - height / 2.0], axis=1)
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


def _near(points: np.ndarray, objects: Sequence[PlacedObject], margin_m: float,
          depth_m: float) -> np.ndarray:
    """(N,) bool: points at most `margin_m` outside and at most `depth_m` inside an object."""
    hit = np.zeros(points.shape[0], dtype=bool)
    for obj in objects:
        reach = extent_m(obj) / 2.0 + margin_m
        offset = points - np.asarray(obj.position, dtype=np.float64)
        near = np.flatnonzero(np.einsum("ij,ij->i", offset, offset) <= reach * reach)
        if near.size:
            d = _signed_distances(points[near], obj)
            hit[near[(d <= margin_m) & (d >= -depth_m)]] = True
    return hit


def inside_placed_objects(points: np.ndarray, objects: Sequence[PlacedObject],
                          margin_m: float) -> np.ndarray:
    """Which points lie within `margin_m` of a placed object's solid (its volume grown by it).

    Args:
        points: (N, 3) float64, metres, `cell` frame.
        objects: validated placed objects (`validate_placed_objects`).
        margin_m: metres, >= 0.

    Returns:
        (N,) bool.
    """
    return _near(points, objects, margin_m, math.inf)


def on_placed_surfaces(points: np.ndarray, objects: Sequence[PlacedObject],
                       margin_m: float) -> np.ndarray:
    """Which points lie within `margin_m` of a placed object's surface, outside or inside: what
    a depth camera can measure of a part lying there. A part hides everything behind its surface,
    so a point deeper inside its volume than the margin is something else where the part is said
    to lie (the part was carried away, and a hand is there): it is not masked. Arguments and
    result as `inside_placed_objects`.
    """
    return _near(points, objects, margin_m, margin_m)


def rejection_cause(rejected: str | None) -> str | None:
    """What a `PlacedMaskResult.rejected` reason is about, without its figures: the field it
    names (``placed_objects[1].position``, ``placed_objects`` for the list itself), or
    ``placed_objects: stale``; None for None. The audit log records a refusal when this changes,
    not every frame (a stale list's age changes every frame; a bad field stays the same)."""
    if rejected is None:
        return None
    field, _, rest = rejected.partition(": ")
    return f"{field}: stale" if rest.startswith("stale") else field


@dataclass(frozen=True)
class PlacedMaskResult:
    """What the mask did to one frame.

    Attributes:
        keep: (N,) bool, the points outside every masked object's surface shell.
        masked_objects: the objects whose surface shell was masked.
        rejected: why nothing was masked (a bad list, a stale one), or None.
    """

    keep: np.ndarray
    masked_objects: int
    rejected: str | None


#: Largest `PlacedObjectMask.margin_m`, metres: two 5 cm voxels (the cell file's bound too,
#: `content.cell.MAX_PLACED_MARGIN_M`). Everything within the margin of a
#: placed part's surface is blind to this channel (the skeleton channel still sees it); depth noise
#: needs one voxel, and a wider shell would hide a forearm lying along the part, not only a hand.
MAX_MARGIN_M = 0.1


@dataclass(frozen=True)
class PlacedObjectMask:
    """The occupancy channel's placed-object mask settings (see the module docstring).

    Attributes:
        margin_m: points within this distance of a placed object's surface (outside or inside)
            are the object's, metres (0.05: one voxel of depth noise, as the background's
            dilation; at most `MAX_MARGIN_M`).
        max_objects: the longest list accepted.
        max_extent_m: the largest object accepted (bounding-box diagonal), metres.
        max_age_s: a list carried by a robot state older than this at the depth capture is
            stale: nothing is masked, seconds.
        cell_bounds: (min (3,), max (3,)) of the cell, metres, `cell` frame, where objects may lie;
            None: within the channel's `range_m` of the robot's capsules (their bounding box,
            grown by the range).
    """

    margin_m: float = 0.05
    max_objects: int = 16
    max_extent_m: float = 0.5
    max_age_s: float = 0.5
    cell_bounds: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.margin_m <= MAX_MARGIN_M and self.max_objects >= 0
                and 0.0 < self.max_extent_m <= 5.0 and self.max_age_s > 0.0):
            raise OccupancyError(f"placed-object mask: need 0 <= margin_m <= {MAX_MARGIN_M:g}, "
                                 f"max_objects >= 0, 0 < max_extent_m <= 5 and max_age_s > 0, "
                                 f"got {self.margin_m}, "
                                 f"{self.max_objects}, {self.max_extent_m}, {self.max_age_s}")

    def apply(self, points: np.ndarray, objects: Any, stamp_ns: int | None, capture_ns: int,
              segments: np.ndarray, radii: np.ndarray, range_m: float) -> PlacedMaskResult:
        """Mask one frame's points.

        Args:
            points: (N, 3) float64, metres, `cell` frame.
            objects: `RobotState.placed_objects` of the robot state used for the frame (None:
                unknown).
            stamp_ns: that robot state's stamp (None: unknown, nothing masked).
            capture_ns: the frame's capture time, monotonic clock, ns.
            segments, radii: the robot's link capsules (the default cell bounds).
            range_m: the channel's range (the default cell bounds).

        Returns:
            The points to keep, and why nothing was masked if so. Never raises.
        """
        keep = np.ones(points.shape[0], dtype=bool)
        if objects is None:
            return PlacedMaskResult(keep, 0, None)
        if stamp_ns is None or capture_ns - stamp_ns > self.max_age_s * 1e9:
            age = "unknown" if stamp_ns is None else f"{(capture_ns - stamp_ns) / 1e6:.0f} ms"
            return PlacedMaskResult(keep, 0, f"placed_objects: stale ({age} old at the depth "
                                             f"capture, limit {self.max_age_s * 1e3:.0f} ms); "
                                             "nothing masked")
        if self.cell_bounds is not None:
            bounds = (np.asarray(self.cell_bounds[0], np.float64),
                      np.asarray(self.cell_bounds[1], np.float64))
        elif segments.shape[0]:
            ends = segments.reshape(-1, 3)
            grow = range_m + float(radii.max())
            bounds = (ends.min(axis=0) - grow, ends.max(axis=0) + grow)
        else:
            bounds = (np.full(3, np.inf), np.full(3, -np.inf))
        try:
            valid = validate_placed_objects(objects, bounds, self.max_objects, self.max_extent_m)
        except OccupancyError as exc:
            return PlacedMaskResult(keep, 0, f"{exc}; nothing masked")
        due = [o for o in valid if o.placed_ns <= capture_ns]
        if due and points.shape[0]:
            keep = ~on_placed_surfaces(points, due, self.margin_m)
        return PlacedMaskResult(keep, len(due), None)
