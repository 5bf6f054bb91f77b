"""The occupancy channel: a voxelised point cloud near the robot, the second, diverse measure of
the human-robot distance.

The skeleton channel (`safety.distance.human_capsules` from pose estimation) knows who is where
and how fast, but only sees what the pose estimator recognises as a person. This channel knows
nothing about people: it takes the points a depth camera measured in the `cell` frame, removes
the robot's own points (inside its link capsules plus a margin, in the joint state of the
frame's capture), the static background (voxels learned from a capture of the empty cell) and
the parts the robot released where the robot side reports them (`safety.placed_mask`: each
points within a margin of each part's surface, never learned), voxelises the rest and measures the distance
from the occupied voxels to the robot's link capsules. Anything there (a person the tracker
missed, an arm the pose estimator lost, a cart) counts. `safety.cross_check` compares the two
channels; `safety.decision` stops when they disagree or when this channel sees anything inside
S_p.

Pure numpy; no clock, no I/O, no Open3D (the depth inputs, `safety.perception.depth`, use it).
Voxels are hashed in numpy (`voxel_keys`): at 160x120 depth pixels it is several times faster
than building an Open3D `VoxelGrid` and reading its voxels back (`bench/occupancy.py` measures
both). All coordinates metres in the `cell` frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safety.errors import OccupancyError
from safety.placed_mask import PlacedObjectMask

#: Voxel indices are offset by this before packing, so that +-2^20 voxels fit 21 bits per axis.
_OFFSET = 1 << 20
_MASK = (1 << 21) - 1


@dataclass(frozen=True)
class OccupancyMeasurement:
    """One depth frame's verdict: what is near the robot, and how near.

    Attributes:
        capture_ns: monotonic capture time of the depth frame (the robot's self-filter used the
            joint state of this time).
        stamp_ns: monotonic time the measurement was published (capture + processing).
        separation_m: smallest distance from an occupied voxel to a robot link capsule's surface,
            metres: the voxel centre's distance minus the voxel's half diagonal, so a lower bound
            for every point in the voxel. None when no voxel is occupied near the robot.
        closest_link: the robot capsule of that distance (None with `separation_m`).
        closest_point: (3,) float64, centre of the closest voxel, metres, `cell` frame, or None.
        voxel_count: occupied voxels after self-filtering and background removal.
        voxel_size_m: edge of a voxel, metres; also the channel's position uncertainty.
        voxels: (M, 3) float64 centres of the occupied voxels within `keep_band_m` of the closest
            one's distance, metres, `cell` frame (the monitor measures them against the robot's
            current joint state every cycle).
        points: points received; `robot_points`, `background_points` and `placed_points` of
            them were removed.
        placed_objects: the placed objects (`RobotState.placed_objects`) whose surface was masked.
        placed_rejected: why no placed object was masked although the robot state carried a list
            (a malformed list, naming the field, or a stale one), else None.
    """

    capture_ns: int
    stamp_ns: int
    separation_m: float | None
    closest_link: str | None
    closest_point: np.ndarray | None
    voxel_count: int
    voxel_size_m: float
    voxels: np.ndarray
    points: int = 0
    robot_points: int = 0
    background_points: int = 0
    placed_points: int = 0
    placed_objects: int = 0
    placed_rejected: str | None = None

    @property
    def uncertainty_m(self) -> float:
        """Position uncertainty of the channel (Z_d of its S_p), metres: one voxel edge."""
        return self.voxel_size_m


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise OccupancyError(f"points: expected an (N, 3) array, got shape {points.shape}")
    return points[np.isfinite(points).all(axis=1)]


def voxel_indices(points: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """Integer voxel indices of points: floor(p / voxel_size_m).

    Args:
        points: (N, 3) float64, metres, `cell` frame.
        voxel_size_m: voxel edge, metres.

    Returns:
        (N, 3) int64.
    """
    return np.floor(points / voxel_size_m).astype(np.int64)


def voxel_keys(indices: np.ndarray) -> np.ndarray:
    """Pack (N, 3) int64 voxel indices (each within +-2^20) into (N,) int64 hash keys."""
    shifted = indices + _OFFSET
    return (shifted[:, 0] << 42) | (shifted[:, 1] << 21) | shifted[:, 2]


def key_indices(keys: np.ndarray) -> np.ndarray:
    """Unpack (N,) int64 keys of `voxel_keys` into (N, 3) int64 voxel indices."""
    return np.stack([(keys >> 42) & _MASK, (keys >> 21) & _MASK, keys & _MASK], axis=1) - _OFFSET


def point_capsule_distances(points: np.ndarray, segments: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Distance from each point to each capsule's surface (negative inside).

    Args:
        points: (N, 3) float64, metres, `cell` frame.
        segments: (K, 2, 3) float64 capsule axes, metres, `cell` frame.
        radii: (K,) float64, metres.

    Returns:
        (N, K) float64, metres.
    """
    a = segments[None, :, 0, :]
    ab = segments[None, :, 1, :] - a
    ap = points[:, None, :] - a
    denom = np.einsum("...i,...i->...", ab, ab)
    t = np.clip(np.einsum("...i,...i->...", ap, ab) / np.where(denom > 1e-12, denom, 1.0), 0.0, 1.0)
    return np.linalg.norm(ap - ab * t[..., None], axis=-1) - radii[None, :]


def _robot_check(segments: np.ndarray, radii: np.ndarray, names: tuple[str, ...]) -> None:
    if segments.ndim != 3 or segments.shape[1:] != (2, 3) or radii.shape != (segments.shape[0],) \
            or len(names) != segments.shape[0]:
        raise OccupancyError(f"robot capsules: expected (K, 2, 3) segments with K radii and K names, got "
                             f"{segments.shape}, {radii.shape} and {len(names)} names")


class BackgroundModel:
    """The static background of the cell: the voxels occupied in a capture of the empty cell.

    Learned once (`learn`), then read-only; safe to share between threads after learning.

    Args:
        voxel_size_m: voxel edge, metres (the channel's).
        dilation_voxels: every learned voxel also marks its neighbours up to this many voxels
            away (Chebyshev distance), so depth noise around a background surface (the floor, a
            table) does not show as occupancy; 1 by default. The price: something within that
            distance of the background (a foot on the floor) is background too.
    """

    def __init__(self, voxel_size_m: float, dilation_voxels: int = 1) -> None:
        if not voxel_size_m > 0:
            raise OccupancyError(f"voxel_size_m must be positive, got {voxel_size_m}")
        if dilation_voxels < 0:
            raise OccupancyError(f"dilation_voxels must be >= 0, got {dilation_voxels}")
        self.voxel_size_m = float(voxel_size_m)
        self.dilation_voxels = int(dilation_voxels)
        self._keys = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._keys.size)

    def learn(self, points: np.ndarray) -> None:
        """Add the points of an empty-cell capture (the robot's own points already removed).

        Args:
            points: (N, 3) float64, metres, `cell` frame; non-finite rows are ignored.
        """
        idx = np.unique(voxel_indices(_check_points(points), self.voxel_size_m), axis=0)
        r = self.dilation_voxels
        steps = np.arange(-r, r + 1)
        offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
        grown = (idx[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        self._keys = np.union1d(self._keys, voxel_keys(grown))

    @property
    def keys(self) -> np.ndarray:
        """(M,) int64 sorted keys (`voxel_keys`) of the background voxels, dilation included."""
        return self._keys.copy()

    @classmethod
    def from_keys(cls, voxel_size_m: float, dilation_voxels: int, keys: np.ndarray) -> "BackgroundModel":
        """A model of stored voxel keys (`keys` of a learned model, dilation already applied).

        Raises:
            OccupancyError: keys not a 1-D integer array, or a bad voxel size or dilation.
        """
        keys = np.asarray(keys)
        if keys.ndim != 1 or not np.issubdtype(keys.dtype, np.integer):
            raise OccupancyError(f"background keys: expected a 1-D integer array, got {keys.dtype} {keys.shape}")
        model = cls(voxel_size_m, dilation_voxels)
        model._keys = np.unique(keys.astype(np.int64))
        return model

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """(N,) bool: which of the (N,) int64 voxel keys are background."""
        if self._keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        pos = np.clip(np.searchsorted(self._keys, keys), 0, self._keys.size - 1)
        return self._keys[pos] == keys


class BackgroundLearner:
    """Learns the static background over a run of the robot's program, frame by frame.

    One empty-cell capture leaves the floor under the arm unlearned: the arm hides it, and once
    the arm moves on that floor shows as occupancy next to the robot. Over a run every part of
    the floor the camera can see is uncovered at some point. Each frame is self-filtered in the
    joint state of its capture (points within `self_margin_m` of a link capsule are the robot's)
    and its occupied voxels are counted; a voxel occupied in at least `min_frames` frames is
    background (fewer: depth speckle, or something that passed through). The parts the robot
    placed during the run are masked as in `OccupancyChannel.measure` (given their list): a part
    lying at the place position for many frames is not learned as background.

    Not thread-safe: one owner.

    Args:
        voxel_size_m: voxel edge, metres (the channel's).
        self_margin_m: the channel's self-filter margin, metres.
        min_frames: frames a voxel must be occupied in to count as background.
        dilation_voxels: see `BackgroundModel`.
        placed_mask: the channel's placed-object mask (the cell's `perception.depth.placed_mask`);
            None: placed objects are not masked.
    """

    def __init__(self, voxel_size_m: float = 0.05, self_margin_m: float = 0.05, min_frames: int = 2,
                 dilation_voxels: int = 1,
                 placed_mask: PlacedObjectMask | None = PlacedObjectMask()) -> None:
        if min_frames < 1:
            raise OccupancyError(f"min_frames must be >= 1, got {min_frames}")
        self._channel = OccupancyChannel(voxel_size_m=voxel_size_m, self_margin_m=self_margin_m,
                                         placed_mask=placed_mask)
        self.min_frames = int(min_frames)
        self.dilation_voxels = int(dilation_voxels)
        self._frame_keys: list[np.ndarray] = []

    @property
    def frames(self) -> int:
        """Frames added so far."""
        return len(self._frame_keys)

    def add(self, points: np.ndarray, segments: np.ndarray, radii: np.ndarray,
            placed_objects: object = None, placed_stamp_ns: int | None = None) -> int:
        """Add one frame of the empty cell.

        Args:
            points: (N, 3) float64, metres, `cell` frame.
            segments, radii: the robot's link capsules at the frame's capture, (K, 2, 3) and (K,).
            placed_objects, placed_stamp_ns: `RobotState.placed_objects` and `stamp_ns` of that
                robot state (None: nothing masked).

        Returns:
            The number of voxels the frame occupies after the self-filter.
        """
        segments, radii = np.asarray(segments, np.float64), np.asarray(radii, np.float64)
        kept = self._channel.without_robot(points, segments, radii)
        mask = self._channel.placed_mask
        if mask is not None and placed_objects is not None and placed_stamp_ns is not None:
            kept = kept[mask.apply(kept, placed_objects, placed_stamp_ns, placed_stamp_ns, segments,
                                   radii, self._channel.range_m).keep]
        keys = np.unique(voxel_keys(voxel_indices(kept, self._channel.voxel_size_m)))
        self._frame_keys.append(keys)
        return int(keys.size)

    def model(self) -> BackgroundModel:
        """The background learned so far (voxels occupied in >= `min_frames` frames, dilated).

        Raises:
            OccupancyError: no frame was added.
        """
        if not self._frame_keys:
            raise OccupancyError("background learning: no frames added")
        keys, counts = np.unique(np.concatenate(self._frame_keys), return_counts=True)
        model = BackgroundModel(self._channel.voxel_size_m, self.dilation_voxels)
        model.learn((key_indices(keys[counts >= self.min_frames]).astype(np.float64) + 0.5)
                    * self._channel.voxel_size_m)
        return model


class OccupancyChannel:
    """Turns depth points into `OccupancyMeasurement`s.

    Thread: not thread-safe; one depth pipeline owns it. `measure` holds no state between frames
    except the background model.

    Args:
        voxel_size_m: voxel edge, metres (also the channel's uncertainty).
        self_margin_m: points within this distance of a robot link capsule are the robot's own
            (covers the link meshes' deviation from their capsules and the robot's motion during
            the exposure). The channel cannot see anything closer to the robot than this; the
            skeleton channel and the certified chain cover that band.
        range_m: only points within this distance of a robot capsule are kept ("near the robot").
        min_points_per_voxel: a voxel is occupied when at least this many points fall into it
            (isolated depth speckle is not occupancy).
        background: the empty cell's voxels (None: nothing is background).
        keep_band_m: the measurement keeps the voxels whose distance is within this much of the
            smallest (`OccupancyMeasurement.voxels`). The monitor measures them against the
            robot's current joint state; that is exact while the robot has moved less than half
            the band since the capture (0.5 m by default: more than a 1 m/s robot moves within
            the depth watchdog's default 0.5 s).
        placed_mask: removes the points of the parts the robot released
            (`safety.placed_mask.PlacedObjectMask`: within 0.05 m of their surface by default); None:
            placed objects are not masked.
    """

    def __init__(self, voxel_size_m: float = 0.05, self_margin_m: float = 0.05, range_m: float = 2.5,
                 min_points_per_voxel: int = 2, background: BackgroundModel | None = None,
                 keep_band_m: float = 1.0,
                 placed_mask: PlacedObjectMask | None = PlacedObjectMask()) -> None:
        if not voxel_size_m > 0:
            raise OccupancyError(f"voxel_size_m must be positive, got {voxel_size_m}")
        if self_margin_m < 0 or not range_m > 0 or min_points_per_voxel < 1 or not keep_band_m > 0:
            raise OccupancyError(f"self_margin_m must be >= 0, range_m > 0, min_points_per_voxel >= 1 and "
                                 f"keep_band_m > 0, got {keep_band_m}, "
                                 f"{self_margin_m}, {range_m}, {min_points_per_voxel}")
        if background is not None and background.voxel_size_m != voxel_size_m:
            raise OccupancyError(f"background voxel size {background.voxel_size_m} m differs from the channel's "
                                 f"{voxel_size_m} m")
        self.voxel_size_m = float(voxel_size_m)
        self.self_margin_m = float(self_margin_m)
        self.range_m = float(range_m)
        self.min_points_per_voxel = int(min_points_per_voxel)
        self.background = background
        self.keep_band_m = float(keep_band_m)
        self.placed_mask = placed_mask

    def without_robot(self, points: np.ndarray, segments: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """The points farther than `self_margin_m` from every robot capsule: (M, 3) float64."""
        points = _check_points(points)
        if points.shape[0] == 0 or segments.shape[0] == 0:
            return points
        return points[point_capsule_distances(points, segments, radii).min(axis=1) > self.self_margin_m]

    def learn_background(self, points: np.ndarray, segments: np.ndarray, radii: np.ndarray,
                         dilation_voxels: int = 1) -> BackgroundModel:
        """Learn (or extend) the background from a capture of the empty cell.

        Args:
            points: (N, 3) float64, metres, `cell` frame.
            segments, radii: the robot's link capsules at the capture (its points are not background).
            dilation_voxels: see `BackgroundModel`.

        Returns:
            The channel's background model (also kept by the channel).
        """
        if self.background is None:
            self.background = BackgroundModel(self.voxel_size_m, dilation_voxels)
        self.background.learn(self.without_robot(points, segments, radii))
        return self.background

    def measure(self, points: np.ndarray, segments: np.ndarray, radii: np.ndarray, names: tuple[str, ...],
                capture_ns: int, stamp_ns: int | None = None, placed_objects: object = None,
                placed_stamp_ns: int | None = None) -> OccupancyMeasurement:
        """Measure one frame.

        Args:
            points: (N, 3) float64, metres, `cell` frame; non-finite rows (no depth) are ignored.
            segments: (K, 2, 3) float64 robot link capsule axes at `capture_ns`, metres, `cell` frame.
            radii: (K,) float64, metres.
            names: (K,) link capsule names.
            capture_ns: monotonic capture time of the frame.
            stamp_ns: publication time (default `capture_ns`).
            placed_objects: `RobotState.placed_objects` of the robot state the capsules come from
                (None: unknown, nothing masked); validated here, a bad or stale list masks nothing
                (`OccupancyMeasurement.placed_rejected` says why).
            placed_stamp_ns: that robot state's `stamp_ns`.

        Raises:
            OccupancyError: points not (N, 3), or robot capsules of mismatched shapes.
        """
        segments = np.asarray(segments, dtype=np.float64)
        radii = np.asarray(radii, dtype=np.float64)
        _robot_check(segments, radii, names)
        points = _check_points(points)
        received = int(points.shape[0])
        idx = voxel_indices(points, self.voxel_size_m)
        keys = voxel_keys(idx)
        background = 0
        if self.background is not None and len(self.background):
            fg = ~self.background.contains(keys)
            background = received - int(fg.sum())
            points, keys = points[fg], keys[fg]
        placed, placed_count, rejected = 0, 0, None
        if self.placed_mask is not None:
            mask = self.placed_mask.apply(points, placed_objects, placed_stamp_ns, capture_ns,
                                          segments, radii, self.range_m)
            placed_count, rejected = mask.masked_objects, mask.rejected
            if not mask.keep.all():
                placed = int(mask.keep.size - mask.keep.sum())
                points, keys = points[mask.keep], keys[mask.keep]
        robot = 0
        if points.shape[0] and segments.shape[0]:
            nearest = point_capsule_distances(points, segments, radii).min(axis=1)
            robot = int((nearest <= self.self_margin_m).sum())
            keep = (nearest > self.self_margin_m) & (nearest <= self.range_m)
            keys = keys[keep]
        occupied, counts = np.unique(keys, return_counts=True)
        occupied = occupied[counts >= self.min_points_per_voxel]
        centres = (key_indices(occupied).astype(np.float64) + 0.5) * self.voxel_size_m
        stamp = capture_ns if stamp_ns is None else stamp_ns
        separation, link, point = None, None, None
        count = int(centres.shape[0])
        if count and segments.shape[0]:
            d = point_capsule_distances(centres, segments, radii).min(axis=1) - self.voxel_size_m * math.sqrt(3.0) / 2.0
            separation, link, point = voxel_separation(centres, self.voxel_size_m, segments, radii, names)
            centres = centres[d <= float(d.min()) + self.keep_band_m]
        return OccupancyMeasurement(capture_ns, stamp, separation, link, point, count,
                                    self.voxel_size_m, centres, received, robot, background,
                                    placed, placed_count, rejected)


def voxel_separation(centres: np.ndarray, voxel_size_m: float, segments: np.ndarray, radii: np.ndarray,
                     names: tuple[str, ...]) -> tuple[float | None, str | None, np.ndarray | None]:
    """Smallest distance from any point of the voxels to the robot capsules' surfaces.

    Args:
        centres: (M, 3) float64 voxel centres, metres, `cell` frame.
        voxel_size_m: voxel edge, metres; the centre distance is lowered by the half diagonal.
        segments, radii, names: (K, 2, 3), (K,), (K,) robot link capsules.

    Returns:
        (separation m, closest capsule name, (3,) closest voxel centre), or (None, None, None)
        without voxels or capsules.
    """
    if centres.shape[0] == 0 or segments.shape[0] == 0:
        return None, None, None
    d = point_capsule_distances(centres, segments, radii) - voxel_size_m * math.sqrt(3.0) / 2.0
    v, k = np.unravel_index(int(np.argmin(d)), d.shape)
    return float(d[v, k]), names[k], centres[v].copy()
