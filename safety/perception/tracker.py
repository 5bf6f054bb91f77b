"""Multi-person 3D tracking: views -> people -> tracks with identity, velocity and uncertainty.

`MultiPersonTracker.update` takes the latest 2D people of every camera (captured close
together), and

1. groups the detections across views into people (`association.group_detections`),
2. triangulates each person seen by two or more views (`triangulate`, after undoing
   left/right swaps of the detector; anatomically impossible keypoints are dropped),
3. assigns the people to the existing tracks with `scipy.optimize.linear_sum_assignment`
   on the 3D distance of the body keypoints to each track's prediction, within a gate of
   what a person can move since the track was last seen (`gate_m` + `max_speed_mps` x
   elapsed time, at most `max_gate_m`). A person nobody claims starts a new track ("p1",
   "p2", ...): a real person cannot teleport, so a whole body that jumped beyond the gate
   (a clip that loops back to its start, another person) gets a new id, and the track it
   left, measured no more, ends by time-out: reported lost when it ends inside the cell.
   Giving the jumped body the old id instead would drop the old position unseen, which
   is the one thing a safety tracker must not do when two people are in fact there,
4. filters every keypoint of each track with a constant-velocity Kalman filter
   (`KeypointKalmanFilter`): filtered positions, the body centre's velocity and the
   position uncertainty in metres.

Within one round of camera frames the measurement of a person is refined as more views
arrive (two, then three, then four views of the same frames): an update that shares a
camera frame with the track's previous update REPLACES that update (the filter rolls back
one step) instead of counting the same frames twice.

A track not measured for `coast_after_s` COASTS (`coast_track`): its last filtered posture
moves on with the body centre's velocity (constant-velocity prediction; the velocity is the
slope of the measured centres over the last 0.5 s, steadier than the filter's) and its
position sigma grows with the time t since its last measurement,

    sigma(t) = sigma_0 + |v| t + a_c t^2 / 2

(sigma_0 the filtered sigma at the measurement, |v| the body speed, a_c `coast_accel_mps2`):
the |v| t term covers a person who stopped instead of moving on as predicted, the t^2 term a
change of speed or direction. The sigma only grows until the next measurement, and it is Z_d
of the monitor's S_p, so a coasting person makes the monitor more conservative, never less
(the monitor also grows T_r by the age of the track's frames). A measurement within the
assignment gate re-associates the track (same id). The track ends when its sigma exceeds
`coast_sigma_limit_m` (hold bound `coast_hold_s`: 0.98 s for a person standing still, 0.55 s
for one walking at 1.2 m/s with the defaults), not after a fixed time: inside `cell_bounds` (at
its last measured or its predicted position) it is then reported lost for `lost_hold_s` (a
fault for the safety monitor) unless a person is re-acquired near it meanwhile; outside it is
not reported (the person left the cell area). For `lost_hold_s` either kind keeps its id for a
person measured again within the gate of where it ended. Without a sigma limit
(`coast_sigma_limit_m=None`) nothing coasts and a track ends `track_timeout_s` after its
last measurement.

Single view: a person found in one view only (no match in another view of the update) is placed on
the floor of the cell (`safety.perception.floor.place_on_floor`; `placement` "floor" instead of
"triangulated" in the `HumanTrack`), unless it is, in the same camera, the person of a track
triangulated within `coast_after_s` (the placement would be discarded, see below: not computed). A new person seen by one view gets a track, tentative (not
published, never reported lost) until `CONFIRM_FLOOR_UPDATES` updates measured it or a
triangulation did, so that a detector's ghost in one view does not become a lost person (a fault)
when it vanishes; a triangulated track that drops to one view continues with floor placements
(same id) instead of coasting, as soon as coasting would be less certain than the floor placement
(the coasting sigma has grown past the placement's; and never within `coast_after_s` of its last
triangulation, while the other views of the same round are on their way); when two views see it
again it returns to triangulation. Triangulated and floor measurements are never blended in one
filter (they disagree by the floor placement's bias): a floor episode starts a filter of its own,
and the return to triangulation resumes the filter of the last triangulated update (its velocity
kept for keypoints measured within `MAX_HOLD_NS`). The published sigma of a floor-placed keypoint
never falls below the placement's own error (a bias the next frame repeats, which the filter must
not average down), so Z_d grows and the monitor only gets stricter. The assignment gate widens by
twice the standing-position sigma of floor placements (of the measurement, and of the track's
update it is compared with: a triangulation refining an update that followed a floor placement
of the same round is compared with that placement, so with its slack).

Views arriving one by one (a loaded machine: the round's first view alone, then two, three, four)
keep one id: a one-view placement of a confirmed track's person (claimed by another measurement
of the same update within `gate_m` plus the placements' slack, or a track triangulated lately
within its gate) neither starts a track nor feeds a tentative one, and a tentative track never
takes a person whom a confirmed track's gate admits (`TENTATIVE_COST_M`). A second group of one
person (an association that split) is recognised by the measurement the track just took as well
as by its filtered centre. None of these "same person" rules applies to a track whose
measurement came from the image `m` comes from (another detection of one image is another
person, however near): a second person whom only one camera sees next to a triangulated one gets
his own track (`tests/safety/perception/test_one_image_two_people.py`). Every assignment, start and end is logged at debug level (views, age
of the newest view, cost and gate per track, coasting time) to diagnose an id switch.

Pure logic: the caller passes the clock. Not thread-safe: one owner (the pipeline's worker).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy.optimize import linear_sum_assignment

from content.calibration import CameraCalibration
from safety.errors import PerceptionError
from safety.perception.association import epipolar_cost, fundamental_matrix, group_detections
from safety.perception.floor import Placement, place_on_floor
from safety.perception.kalman import KeypointFilterState, KeypointKalmanFilter
from safety.perception.plausibility import MIRROR, implausible_keypoints, resolve_left_right_swaps
from safety.perception.pose import Pose2D
from safety.perception.triangulation import triangulate, undistort_points
from safety.perception.types import HumanTrack

_log = logging.getLogger(__name__)

#: Landmarks that must be triangulated for a person to count as seen (shoulders, elbows,
#: wrists, hips, knees, ankles); at least `MIN_BODY_POINTS` of them.
BODY_POINTS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
MIN_BODY_POINTS = 8
_BODY_INDEX = np.array(BODY_POINTS)
_LEFT_HIP, _RIGHT_HIP = 23, 24
#: A keypoint without an accepted measurement for longer than this is no longer published
#: (NaN, confidence 0) and restarts at its next measurement.
MAX_HOLD_NS = 300_000_000
#: Consecutive gate rejections of a keypoint's measurement after which its filter restarts.
REJECT_RESTART = 2
#: A track born from a floor placement (one view) is tentative until this many updates measured
#: it (or a triangulation did): a detector's ghost in one view must not become a track whose end
#: inside the cell is a fault. Tentative tracks are not published and never reported lost.
CONFIRM_FLOOR_UPDATES = 3
#: Added to a tentative track's assignment cost, metres: more than any gate, so that a tentative
#: track takes only a person whom no confirmed track's gate admits.
TENTATIVE_COST_M = 100.0
#: Smallest measurement noise of a triangulated keypoint, metres (1 sigma).
_MIN_MEASUREMENT_SIGMA_M = 0.015
#: Smallest published position uncertainty, metres.
_MIN_SIGMA_M = 0.02
#: A one-view detection whose keypoints lie within this fraction of the region of a freshly
#: triangulated track's detection in the same camera (median distance) is that track's person.
_SAME_DETECTION_FRACTION = 0.1
#: A coasting track moves on with the slope of its measured body centres over this window...
COAST_VELOCITY_WINDOW_NS = 500_000_000
#: ...when they span at least this long (else it holds its posture).
COAST_VELOCITY_MIN_SPAN_NS = 200_000_000


@dataclass(frozen=True)
class View:
    """The people one camera saw in one frame.

    Attributes:
        camera_id: the camera's id.
        calibration: the camera, at the resolution of the processed frames.
        capture_ns: monotonic capture time of the frame.
        people: the 2D people found in it (pixels of the processed frame).
    """

    camera_id: str
    calibration: CameraCalibration
    capture_ns: int
    people: tuple[Pose2D, ...]


@dataclass(frozen=True)
class Measurement:
    """One person triangulated from one set of views (cell frame).

    Attributes:
        keypoints_cell: (33, 3) float64, metres; NaN where not triangulated or implausible.
        confidence: (33,) float64 in [0, 1].
        variance_m2: (33,) float64, measurement variance per axis, m^2.
        stamp_ns: mean capture time of the contributing views.
        capture_ns, newest_capture_ns: oldest and newest contributing capture times.
        views: contributing camera ids.
        frames: (camera_id, capture_ns) of the contributing frames.
        keypoints_px: (camera_id, (33, 3) u, v, visibility) per contributing view.
        reprojection_error_px: median RMS reprojection error (NaN for a floor placement).
        placement: TRIANGULATED, or FLOOR for a person seen by one view (`place_on_floor`).
        sigma_floor_m: (33,) float64, metres, for a FLOOR placement: the placement's own error
            per keypoint, below which the published sigma never falls (a bias that persists
            from frame to frame, which the filter must not average down); None when triangulated.
    """

    keypoints_cell: np.ndarray
    confidence: np.ndarray
    variance_m2: np.ndarray
    stamp_ns: int
    capture_ns: int
    newest_capture_ns: int
    views: tuple[str, ...]
    frames: frozenset[tuple[str, int]]
    keypoints_px: tuple[tuple[str, np.ndarray], ...]
    reprojection_error_px: float
    placement: Placement = Placement.TRIANGULATED
    sigma_floor_m: np.ndarray | None = None


@dataclass
class _Track:
    track_id: str
    kf: KeypointKalmanFilter
    prior: KeypointFilterState         # filter state before the last update (for refinement)
    prior_measured_ns: np.ndarray      # `measured_ns` before the last update
    frames: frozenset[tuple[str, int]]
    seen_ns: int                       # clock time of the last update
    measured_ns: np.ndarray            # (33,) capture stamp of each keypoint's last accepted measurement
    confidence: np.ndarray
    human: HumanTrack | None = None
    measured: HumanTrack | None = None  # the track as its last measurement left it (coasting starts here)
    # (stamp ns, (3,) body centre) of the recent measurements: the coasting velocity's window.
    centre_history: deque = field(default_factory=lambda: deque(maxlen=32))
    centre_cell: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    # Body centre of the last accepted measurement and its stamp (ns); and before the last update.
    seen_centre: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    seen_stamp_ns: int = 0
    prior_seen_centre: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    prior_seen_stamp_ns: int = 0
    # (33,) consecutive updates whose measurement of the keypoint the filter's gate rejected; before the last update.
    rejected: np.ndarray = field(default_factory=lambda: np.zeros(33, np.int64))
    prior_rejected: np.ndarray = field(default_factory=lambda: np.zeros(33, np.int64))
    # placement of the last update and before it; stamp (ns) of the last triangulated measurement
    placement: Placement = Placement.TRIANGULATED
    prior_placement: Placement = Placement.TRIANGULATED
    triangulated_ns: int | None = None
    # standing-position sigma of the last floor measurement (widens the gate), metres; and that of
    # the update before the last one when it was a floor placement (0 when triangulated)
    floor_sigma_m: float = 0.0
    prior_floor_sigma_m: float = 0.0
    # the filter after the last triangulated update (resumed when triangulation returns)
    tri_state: KeypointFilterState | None = None
    tri_measured_ns: np.ndarray | None = None
    # updates so far while tentative (born from a floor placement); confirmed: published
    updates: int = 0
    confirmed: bool = True


def coast_sigma_m(sigma_0_m: float | np.ndarray, speed_mps: float, elapsed_s: float,
                  accel_mps2: float) -> float | np.ndarray:
    """Position sigma of a coasting track `elapsed_s` after its last measurement, metres:
    sigma_0 + |v| t + a t^2 / 2 (never below sigma_0, non-decreasing in t)."""
    t = max(elapsed_s, 0.0)
    return sigma_0_m + abs(speed_mps) * t + 0.5 * accel_mps2 * t * t


def coast_hold_s(sigma_0_m: float, speed_mps: float, sigma_limit_m: float, accel_mps2: float) -> float:
    """How long a track with `sigma_0_m` moving at `speed_mps` coasts before its sigma
    (`coast_sigma_m`) exceeds `sigma_limit_m`, seconds (0 when it already does)."""
    room = sigma_limit_m - sigma_0_m
    if room <= 0:
        return 0.0
    v = abs(speed_mps)
    if accel_mps2 <= 0:
        return float("inf") if v == 0 else room / v
    return (-v + float(np.sqrt(v * v + 2.0 * accel_mps2 * room))) / accel_mps2


def _centre_sigma(sigma_m: np.ndarray) -> float:
    """1-sigma error of the body centre of a floor placement, metres: its hips' (else its
    smallest finite keypoint sigma)."""
    hips = sigma_m[[_LEFT_HIP, _RIGHT_HIP]]
    if np.isfinite(hips).any():
        return float(np.nanmean(hips))
    return float(np.nanmin(sigma_m)) if np.isfinite(sigma_m).any() else 0.0


def _norm_or_inf(v: np.ndarray) -> float:
    d = float(np.sqrt(v @ v))
    return d if np.isfinite(d) else float("inf")


def _centre(points: np.ndarray) -> np.ndarray:
    hips = points[_LEFT_HIP:_RIGHT_HIP + 1]           # (the two hips are adjacent landmarks)
    if np.isfinite(hips).all():
        return 0.5 * (hips[0] + hips[1])
    body = points[_BODY_INDEX]
    body = body[np.isfinite(body).all(axis=1)]
    return body.mean(axis=0) if len(body) else np.full(3, np.nan)


class MultiPersonTracker:
    """Tracks of every person seen by two or more calibrated views.

    Args:
        world_to_cell: (4, 4) transform from the calibrations' world frame to `cell`.
        cell_bounds: ((3,) min, (3,) max) box in `cell`, metres; a track that ends inside
            it is reported lost. None: tracks are never reported lost.
        track_timeout_s: without coasting (`coast_sigma_limit_m` None), a track not measured
            for this long ends; with coasting it is not used.
        lost_hold_s: how long an ended track stays in `lost_ids`.
        max_reprojection_error_px: view rejection threshold of `triangulate`.
        min_confidence: minimum keypoint visibility used.
        max_epipolar_px: gate of the cross-view association, pixels (None: 3 % of the
            image diagonal of each group's first view).
        gate_m: 3D assignment gate at zero elapsed time (triangulation noise), metres.
        max_speed_mps: fastest plausible body movement, widening the gate with elapsed time.
        max_gate_m: the first-pass gate never exceeds this (a track lost for seconds does not
            claim a person anywhere in the cell), metres.
        accel_sigma_mps2: white-noise acceleration of the keypoint filters.
        coast_after_s: a track not measured for this long coasts (see the module docstring).
        coast_sigma_limit_m: a coasting track whose sigma exceeds this ends (lost inside the
            cell bounds), metres; None: no coasting, `track_timeout_s` ends tracks.
        coast_accel_mps2: a_c, the change of velocity a coasting person may make, m/s^2.
        floor_z_m: height of the cell's floor in `cell`, metres: a person seen by one view only
            is placed on it (`safety.perception.floor`, module docstring "Single view"); None:
            one view places nobody (such a track coasts).

    Raises:
        PerceptionError: `world_to_cell` is not a (4, 4) homogeneous transform.
    """

    def __init__(self, *, world_to_cell: np.ndarray | None = None,
                 cell_bounds: tuple[np.ndarray, np.ndarray] | None = None, track_timeout_s: float = 0.5,
                 lost_hold_s: float = 5.0, max_reprojection_error_px: float = 5.0, min_confidence: float = 0.3,
                 max_epipolar_px: float | None = None, gate_m: float = 0.3, max_speed_mps: float = 3.0,
                 max_gate_m: float = 1.5, accel_sigma_mps2: float = 6.0, coast_after_s: float = 0.15,
                 coast_sigma_limit_m: float | None = 1.0, coast_accel_mps2: float = 2.0,
                 floor_z_m: float | None = 0.0) -> None:
        T = np.eye(4) if world_to_cell is None else np.asarray(world_to_cell, dtype=np.float64)
        if T.shape != (4, 4) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise PerceptionError(f"world_to_cell must be a (4, 4) homogeneous transform, got shape {T.shape}")
        self._T = T
        self._T_identity = bool(np.array_equal(T, np.eye(4)))
        if cell_bounds is not None:
            lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in cell_bounds)
            cell_bounds = (lo, hi)
        self._bounds = cell_bounds
        self._timeout_ns = int(track_timeout_s * 1e9)
        self._lost_hold_ns = int(lost_hold_s * 1e9)
        self._max_err_px = max_reprojection_error_px
        self._min_conf = min_confidence
        self._max_epi_px = max_epipolar_px
        self._gate_m = gate_m
        self._max_speed = max_speed_mps
        self._max_gate_m = max_gate_m
        self._accel_sigma = accel_sigma_mps2
        if coast_sigma_limit_m is not None and not (coast_sigma_limit_m > 0 and coast_accel_mps2 >= 0
                                                    and coast_after_s >= 0):
            raise PerceptionError(f"coasting: coast_sigma_limit_m must be > 0, coast_accel_mps2 and coast_after_s "
                                  f">= 0, got {coast_sigma_limit_m}, {coast_accel_mps2}, {coast_after_s}")
        self._coast_after_ns = int(coast_after_s * 1e9)
        self._coast_limit_m = coast_sigma_limit_m
        self._coast_accel = coast_accel_mps2
        self._floor_z_m = floor_z_m
        self._tracks: list[_Track] = []
        # per camera pair: (calibration a, calibration b, F)
        self._fundamental: dict[tuple[str, str], tuple[CameraCalibration, CameraCalibration, np.ndarray]] = {}
        # id(person) -> (person, calibration, (33, 2) undistorted px): a camera's people of one
        # frame take part in several updates (one per camera frame of the round); undistorted once
        self._undistorted: dict[int, tuple[Pose2D, CameraCalibration, np.ndarray]] = {}
        # (id(person a), id(person b)) -> (person a, person b, F, epipolar cost) of those people
        self._pair_costs: dict[tuple[int, int], tuple[Pose2D, Pose2D, np.ndarray, float]] = {}
        # camera id -> (calibration, (3, 4) projection)
        self._projection: dict[str, tuple[CameraCalibration, np.ndarray]] = {}
        self._lost: dict[str, tuple[int, _Track]] = {}      # id -> (clock time lost, last state)
        self._ended: dict[str, tuple[int, _Track]] = {}     # ended outside the bounds (not a fault)
        self._next_id = 1
        # figures for `PerceptionPipeline.report`
        self.triangulations = 0
        self.floor_placements = 0
        self.implausible = 0
        self.mirrored_views = 0
        self.tracks_started = 0
        self.reprojection_px: deque[float] = deque(maxlen=2000)

    # ------------------------------------------------------------------ queries
    def tracks(self) -> tuple[HumanTrack, ...]:
        """The current tracks, ordered by id number."""
        out = [t.human for t in self._tracks if t.human is not None and t.confirmed]
        return tuple(sorted(out, key=lambda h: int(h.track_id[1:])))

    def lost_ids(self) -> tuple[str, ...]:
        """Ids of tracks that ended inside the cell bounds within `lost_hold_s`."""
        return tuple(sorted(self._lost, key=lambda i: int(i[1:])))

    # ------------------------------------------------------------------ update
    def update(self, views: Sequence[View], now_ns: int) -> list[Measurement]:
        """Triangulate the people of `views`, update the tracks, end the timed-out ones.

        Args:
            views: the freshest 2D result of each camera (captured close together).
            now_ns: the clock (same clock as the capture stamps).

        Returns:
            The people triangulated from `views` (for figures and tests).
        """
        meas = self.measure(views)
        self._assign(meas, now_ns)
        self.expire(now_ns)
        return meas

    def measure(self, views: Sequence[View]) -> list[Measurement]:
        """Group the 2D people of `views` across views and triangulate each group; place a
        person found in one view only on the floor (unless `floor_z_m` is None)."""
        views = [v for v in views if v.people]
        if len(views) < 2:
            return [m for v in views for p in v.people if (m := self._place(v, p)) is not None]
        cals = [v.calibration for v in views]
        # a camera's people of one frame take part in several updates (one per camera frame of
        # the round): their undistorted pixels and the epipolar cost of each pair of them are
        # kept while they do
        und = [[self._undistort(v.calibration, p) for p in v.people] for v in views]
        self._undistorted = {id(p): (p, v.calibration, und[k][i])
                             for k, v in enumerate(views) for i, p in enumerate(v.people)}
        costs = {key: hit for key, hit in self._pair_costs.items()
                 if key[0] in self._undistorted and key[1] in self._undistorted}
        self._pair_costs = costs
        gate = self._max_epi_px
        if gate is None:
            gate = 0.03 * float(np.hypot(*views[0].calibration.image_size))

        def pair_cost(w: int, j: int, v: int, i: int) -> float:
            pa, pb = views[w].people[j], views[v].people[i]
            F = self._fundamental_matrix(views[w], views[v])
            hit = costs.get((id(pa), id(pb)))
            if hit is None or hit[0] is not pa or hit[1] is not pb or hit[2] is not F:
                hit = (pa, pb, F, epipolar_cost(F, und[w][j], pa.visibility, und[v][i], pb.visibility,
                                                self._min_conf))
                costs[(id(pa), id(pb))] = hit
            return hit[3]

        out = []
        singles = []
        conf = [[p.visibility for p in v.people] for v in views]
        for group in group_detections(cals, und, conf, max_cost_px=gate, min_confidence=self._min_conf,
                                      pair_cost=pair_cost):
            if len(group) < 2:
                singles.extend(group)
                continue
            m = self._triangulate([views[v] for v, _ in group], [views[v].people[i] for v, i in group],
                                  np.stack([und[v][i] for v, i in group]))
            if m is not None:
                out.append(m)
        for v, i in singles:
            m = self._place(views[v], views[v].people[i])
            if m is not None:
                out.append(m)
        return out

    def _fundamental_matrix(self, va: View, vb: View) -> np.ndarray:
        """F from view a to view b (`fundamental_matrix`), kept per camera pair while both
        calibrations are the same objects (an HMI camera brings a new one with every frame)."""
        key = (va.camera_id, vb.camera_id)
        cached = self._fundamental.get(key)
        if cached is None or cached[0] is not va.calibration or cached[1] is not vb.calibration:
            cached = (va.calibration, vb.calibration, fundamental_matrix(va.calibration, vb.calibration))
            self._fundamental[key] = cached
        return cached[2]

    def _projections(self, views: Sequence[View]) -> np.ndarray:
        """(V, 3, 4) the `projection` of each view's calibration, kept per camera while its
        calibration is the same object."""
        out = []
        for v in views:
            cached = self._projection.get(v.camera_id)
            if cached is None or cached[0] is not v.calibration:
                cached = (v.calibration, v.calibration.projection)
                self._projection[v.camera_id] = cached
            out.append(cached[1])
        return np.stack(out)

    def _undistort(self, calibration: CameraCalibration, person: Pose2D) -> np.ndarray:
        """(33, 2) undistorted pixels of `person`, from the last update when it took part in it."""
        hit = self._undistorted.get(id(person))
        if hit is not None and hit[0] is person and hit[1] is calibration:
            return hit[2]
        return undistort_points(calibration, person.keypoints_px)

    def _covered(self, view: View, person: Pose2D) -> bool:
        """Whether `person`, seen by `view` alone, is the person of a track triangulated within
        `coast_after_s` before the view and detected in the same camera then (median keypoint
        distance below `_SAME_DETECTION_FRACTION` of his region there): `_assign` would not use
        his floor placement (`_triangulated_lately`: the other views of the round are on their
        way), so it is not computed (2 ms). Any doubt (another camera, a person who moved more)
        leaves the decision to `_assign`."""
        kp = person.keypoints_px
        for track in self._tracks:
            last = track.measured
            if (last is None or track.placement is not Placement.TRIANGULATED or track.triangulated_ns is None
                    or view.capture_ns - track.triangulated_ns > self._coast_after_ns):
                continue
            seen = next((px[:, :2] for cam, px in last.keypoints_px if cam == view.camera_id), None)
            if seen is None:
                continue
            both = np.isfinite(seen).all(axis=1) & np.isfinite(kp).all(axis=1)
            if both.sum() < MIN_BODY_POINTS:
                continue
            size = float(np.max(seen[both].max(axis=0) - seen[both].min(axis=0)))
            if float(np.median(np.linalg.norm(seen[both] - kp[both], axis=1))) < _SAME_DETECTION_FRACTION * size:
                return True
        return False

    def _place(self, view: View, person: Pose2D) -> Measurement | None:
        """A person seen by `view` alone, placed on the floor (None: no placement possible,
        or fewer than `MIN_BODY_POINTS` body keypoints placed)."""
        if self._floor_z_m is None or self._covered(view, person):
            return None
        fp = place_on_floor(view.calibration, person.keypoints_px, person.visibility, world_to_cell=self._T,
                            floor_z_m=self._floor_z_m, min_confidence=self._min_conf)
        if fp is None or np.isfinite(fp.keypoints_cell[_BODY_INDEX]).all(axis=1).sum() < MIN_BODY_POINTS:
            return None
        self.floor_placements += 1
        placed = np.isfinite(fp.keypoints_cell).all(axis=1)
        conf = np.where(placed, np.clip(person.visibility, 0.0, 1.0), 0.0)
        sigma = np.where(placed, fp.sigma_m, np.nan)
        px = ((view.camera_id, np.column_stack([person.keypoints_px, person.visibility])),)
        return Measurement(keypoints_cell=fp.keypoints_cell, confidence=conf,
                           variance_m2=np.nan_to_num(sigma, nan=1.0) ** 2, stamp_ns=view.capture_ns,
                           capture_ns=view.capture_ns, newest_capture_ns=view.capture_ns, views=(view.camera_id,),
                           frames=frozenset({(view.camera_id, view.capture_ns)}), keypoints_px=px,
                           reprojection_error_px=float("nan"), placement=Placement.FLOOR, sigma_floor_m=sigma)

    def _triangulate(self, views: list[View], people: list[Pose2D], und: np.ndarray) -> Measurement | None:
        """One person from his detections `people` in `views` (`und`: (V, 33, 2) their
        undistorted pixels). The swap search and the final triangulation share its solve
        without view rejection (`SwapResolution.unrejected`)."""
        cals = [v.calibration for v in views]
        P = self._projections(views)
        kp = np.stack([p.keypoints_px for p in people])
        swaps = resolve_left_right_swaps(cals, und, np.stack([p.visibility for p in people]),
                                         partial(triangulate, undistorted=True, min_confidence=self._min_conf,
                                                 projections=P))
        vis = swaps.visibility
        for k in swaps.mirrored:
            kp[k] = kp[k][MIRROR]
        self.mirrored_views += len(swaps.mirrored)
        tri = triangulate(cals, swaps.keypoints_px, vis, undistorted=True, min_confidence=self._min_conf,
                          max_reprojection_error_px=self._max_err_px, first_pass=swaps.unrejected, projections=P)
        if np.isfinite(tri.points[_BODY_INDEX]).all(axis=1).sum() < MIN_BODY_POINTS:
            return None
        self.triangulations += 1
        used = tri.views_used                                              # (33, V)
        pts = tri.points if self._T_identity else np.einsum("ij,nj->ni", self._T[:3, :3], tri.points) + self._T[:3, 3]
        with np.errstate(invalid="ignore"):
            c = np.where(used.any(axis=1), (vis.T * used).sum(axis=1) / np.maximum(used.sum(axis=1), 1), 0.0)
        c = np.where(np.isfinite(tri.points).all(axis=1), np.clip(c, 0.0, 1.0), 0.0)
        bad = implausible_keypoints(pts)
        if bad.any():
            self.implausible += int(bad.sum())
            pts = pts.copy()
            pts[bad] = np.nan
            c = np.where(bad, 0.0, c)
        err = tri.reprojection_error_px
        nan = np.isnan(err)
        finite = np.sort(err[~nan])            # np.nanmedian goes through np.median's wrapper (50 us)
        n = len(finite)
        med_err = float(finite[n // 2] if n % 2 else (finite[n // 2 - 1] + finite[n // 2]) / 2) if n else np.nan
        self.reprojection_px.append(med_err)
        # Pixel error -> metres at the person's depth, shrinking with the number of views.
        centre_w = _centre(tri.points)
        depth = sum(float(np.sqrt(d @ d)) for d in (cal.R @ centre_w + cal.t for cal in cals)) / len(cals)
        focal = sum(float(cal.K[0, 0]) for cal in cals) / len(cals)
        nv = np.maximum(used.sum(axis=1), 1)
        sigma = np.maximum(np.where(nan, med_err, err) * depth / focal, _MIN_MEASUREMENT_SIGMA_M) / np.sqrt(nv)
        contributing = [v for k, v in enumerate(views) if used[:, k].any()]
        stamps = [v.capture_ns for v in contributing]
        kpv = np.concatenate([kp, vis[:, :, None]], axis=2)                 # (V, 33, 3) u, v, visibility
        px = tuple((views[k].camera_id, kpv[k]) for k in range(len(views)))
        return Measurement(keypoints_cell=pts, confidence=c, variance_m2=sigma ** 2, stamp_ns=int(np.mean(stamps)),
                           capture_ns=min(stamps), newest_capture_ns=max(stamps),
                           views=tuple(v.camera_id for v in contributing),
                           frames=frozenset((v.camera_id, v.capture_ns) for v in contributing),
                           keypoints_px=px, reprojection_error_px=med_err)

    # ------------------------------------------------------------------ assignment
    @staticmethod
    def _last_seen(track: _Track, m: Measurement) -> tuple[np.ndarray, int, float]:
        """Where and when the track's person was last measured before `m`, and the
        standing-position sigma of that measurement when it was a floor placement (0 when
        triangulated): a measurement that shares a camera frame with the track's last update
        refines that update, so it is compared with the update before, and with that update's
        floor bias (a triangulation refining a triangulation that followed a floor placement in
        the same round is compared with the floor placement)."""
        if m.frames & track.frames and np.isfinite(track.prior_seen_centre).all():
            return track.prior_seen_centre, track.prior_seen_stamp_ns, track.prior_floor_sigma_m
        floor_sigma_m = track.floor_sigma_m if track.placement is Placement.FLOOR else 0.0
        return track.seen_centre, track.seen_stamp_ns, floor_sigma_m

    def _distance(self, track: _Track, m: Measurement) -> float:
        """Distance of the measured body centre from where the track's person was last
        measured, metres (inf when either is unknown).

        The body centre, not the keypoints: a left/right label swap or a raised arm is not a
        whole-body move. And the last measured position, not the filter's prediction: the
        gate bounds how far a person CAN have moved, which a velocity estimate, noisy for
        a moment after a bad update, must not shift.
        """
        centre, _, _ = self._last_seen(track, m)
        d = float(np.linalg.norm(centre - _centre(m.keypoints_cell)))
        return d if np.isfinite(d) else float("inf")

    def _gate(self, track: _Track, m: Measurement) -> float:
        """How far a person can move between the track's last measurement and `m`, metres,
        plus how far either may be off (twice the standing-position sigma of each that is a
        floor placement)."""
        _, seen_stamp_ns, seen_floor_sigma_m = self._last_seen(track, m)
        dt = max(m.stamp_ns - seen_stamp_ns, 0) * 1e-9
        return (min(self._gate_m + self._max_speed * dt, self._max_gate_m) + 2.0 * seen_floor_sigma_m
                + self._placement_slack(None, m))

    def _placement_slack(self, track: _Track | None, m: Measurement) -> float:
        """How far a floor placement may be off, metres: twice the standing-position sigma of the
        measurement and of the track's last floor placement (0 when both are triangulated)."""
        slack = 0.0
        if m.placement is Placement.FLOOR and m.sigma_floor_m is not None:
            slack += 2.0 * _centre_sigma(m.sigma_floor_m)
        if track is not None and track.placement is Placement.FLOOR:
            slack += 2.0 * track.floor_sigma_m
        return slack

    def _triangulated_lately(self, track: _Track, m: Measurement) -> bool:
        """Whether a floor placement `m` must not replace the triangulation of `track`: its last
        measurement was triangulated, and either within `coast_after_s` before `m` (the other
        views of the round are on their way) or coasting from it would still be more certain
        than the floor placement (coasting sigma at `m` below the placement's body sigma)."""
        if track.triangulated_ns is None or track.placement is not Placement.TRIANGULATED:
            return False
        if m.stamp_ns - track.triangulated_ns <= self._coast_after_ns:
            return True
        last = track.measured
        if last is None or self._coast_limit_m is None or m.sigma_floor_m is None:
            return False
        elapsed_s = max(m.stamp_ns - track.seen_stamp_ns, 0) * 1e-9
        speed = float(np.linalg.norm(self._coast_velocity(track)))
        coasting = float(coast_sigma_m(last.sigma_m, speed, elapsed_s, self._coast_accel))
        body = m.sigma_floor_m[_BODY_INDEX]
        floor = float(np.nanmax(body)) if np.isfinite(body).any() else float("inf")
        return coasting < floor

    def _confirmed_person(self, m: Measurement, done: list[tuple[_Track, Measurement]]) -> bool:
        """Whether the floor placement `m` is the person of a confirmed track: one that another
        measurement of this update claimed within `gate_m` of `m` (plus twice the standing-position
        sigma of each that is a floor placement), or a track triangulated lately
        (`_triangulated_lately`) within its gate."""
        c = _centre(m.keypoints_cell)
        # A track that took (in this update) or last took another detection of the image `m`
        # comes from is another person's, however near: one image never shows a person twice.
        others = {id(t) for t, d in done if m.frames & d.frames}
        for t, d in done:
            if id(t) in others:
                continue
            near = self._gate_m + self._placement_slack(None, m) + self._placement_slack(None, d)
            if t.confirmed and _norm_or_inf(_centre(d.keypoints_cell) - c) < near:
                return True
        return any(id(t) not in others and not (m.frames & t.frames) and self._triangulated_lately(t, m)
                   and self._distance(t, m) <= self._gate(t, m) for t in self._tracks)

    def _assign(self, meas: list[Measurement], now_ns: int) -> None:
        # Ended tracks stay candidates for `lost_hold_s`: a person seen again within reach of
        # where his track ended (a short gap in the measurements) keeps his id.
        candidates = (list(self._tracks) + [t for _, t in self._lost.values()]
                      + [t for _, t in self._ended.values()])
        free_m = list(range(len(meas)))
        done: list[tuple[_Track, Measurement]] = []
        # Triangulated people first, then floor placements for the tracks left: a one-view
        # placement never takes a track from a triangulation of the same update.
        for kind in (Placement.TRIANGULATED, Placement.FLOOR):
            free_t = [t for t in candidates if all(t is not d for d, _ in done)]
            kind_m = [j for j in free_m if meas[j].placement is kind]
            if not free_t or not kind_m:
                continue
            # One gate, what a person can move: a whole body that jumped farther (a looped clip,
            # another person) is NOT the track's person. It starts a new track; the old one,
            # measured no more, ends by time-out and, inside the cell, is reported lost.
            cost = np.array([[self._distance(t, meas[j]) for j in kind_m] for t in free_t])
            gate = np.array([[self._gate(t, meas[j]) for j in kind_m] for t in free_t])
            if kind is Placement.FLOOR and not all(t.confirmed for t in free_t):
                # A one-view placement of the person of a confirmed track (who is not a new
                # person either, below) must not confirm a tentative track, which, born from the
                # same camera's placements, shares their bias and is nearer.
                for c, j in enumerate(kind_m):
                    if self._confirmed_person(meas[j], done):
                        cost[[r for r, t in enumerate(free_t) if not t.confirmed], c] = np.inf
            big = 1e6
            if cost.shape == (1, 1):            # one track, one person: nothing to solve
                rows, cols = [0], [0]
            else:
                # A tentative track (maybe a ghost of one view) never takes a person a confirmed
                # track's gate admits, however much nearer: its cost is raised past any gate.
                tentative = np.array([0.0 if t.confirmed else TENTATIVE_COST_M for t in free_t])
                rows, cols = linear_sum_assignment(np.where(np.isfinite(cost) & (cost <= gate),
                                                            cost + tentative[:, None], big))
            taken_m = set()
            for r, c in zip(rows, cols):
                if np.isfinite(cost[r, c]) and cost[r, c] <= gate[r, c]:
                    done.append((free_t[r], meas[kind_m[c]]))
                    taken_m.add(kind_m[c])
            if _log.isEnabledFor(logging.DEBUG):
                self._log_costs(meas, kind_m, free_t, cost, gate, done, now_ns)
            free_m = [j for j in free_m if j not in taken_m]
        applied = []
        for track, m in done:
            if m.placement is Placement.FLOOR and self._triangulated_lately(track, m):
                _log.debug("track %s: floor measurement from %s not used (triangulated lately)",
                           track.track_id, ",".join(m.views))
                continue                        # the track is triangulated; one view ran ahead
            applied.append(track)
            if track.track_id in self._lost or track.track_id in self._ended:
                _log.info("track %s re-acquired", track.track_id)
                self._lost.pop(track.track_id, None)
                self._ended.pop(track.track_id, None)
                self._tracks.append(track)
            self._apply(track, m, now_ns, restart=False)
        updated = applied
        for j in free_m:
            m = meas[j]
            c = _centre(m.keypoints_cell)
            # A second group of one person (an association that split) is not a new person; nor is
            # a floor placement near a track being triangulated. Near: the measurement the track
            # just took, or its filtered centre (which lags a turning person by tenths of a metre).
            # A track whose measurement of this update came from an image `m` also came from
            # took another detection of that image: another person, however near.
            if any(not (m.frames & t.frames)
                   and min(_norm_or_inf(t.seen_centre - c), _norm_or_inf(t.centre_cell - c))
                   < self._gate_m + self._placement_slack(t, m) for t in updated):
                _log.debug("%s measurement from %s next to a track just updated: not a new person",
                           m.placement.value, ",".join(m.views))
                continue
            if m.placement is Placement.FLOOR and (self._confirmed_person(m, done) or any(
                    not (m.frames & t.frames) and self._triangulated_lately(t, m)
                    and np.linalg.norm(t.centre_cell - c) < self._gate(t, m) for t in self._tracks)):
                _log.debug("floor measurement from %s next to a track triangulated lately: not a new person",
                           ",".join(m.views))
                continue
            track = self._new_track()
            track.confirmed = m.placement is Placement.TRIANGULATED
            if candidates:
                near = min(candidates, key=lambda t: self._distance(t, m))
                _log.info("track %s started at %s (%s from %s); nearest track %s at %.2f m (gate %.2f m, "
                          "%.0f ms after its last measurement)", track.track_id, np.round(c, 2),
                          m.placement.value, ",".join(m.views), near.track_id, self._distance(near, m),
                          self._gate(near, m), (m.stamp_ns - self._last_seen(near, m)[1]) * 1e-6)
            else:
                _log.info("track %s started at %s (%s from %s); no other track", track.track_id,
                          np.round(c, 2), m.placement.value, ",".join(m.views))
            self._apply(track, m, now_ns, restart=True)
            updated.append(track)

    @staticmethod
    def _log_costs(meas: list[Measurement], kind_m: list[int], free_t: list[_Track], cost: np.ndarray,
                   gate: np.ndarray, done: list[tuple[_Track, Measurement]], now_ns: int) -> None:
        """Debug log of one assignment pass: each measurement, its views and the age of the
        newest one, its distance from each candidate track and that track's gate."""
        for j, mj in enumerate(kind_m):
            m = meas[mj]
            claims = []
            for i, t in enumerate(free_t):
                taken = any(d is t and dm is m for d, dm in done)
                claims.append(f"{t.track_id}{' (taken)' if taken else ''} {cost[i, j]:.2f} m, gate {gate[i, j]:.2f} m")
            _log.debug("%s measurement at %s from %s (newest view %.0f ms old, span %.0f ms): %s",
                       m.placement.value, np.round(_centre(m.keypoints_cell), 2), ",".join(m.views),
                       (now_ns - m.newest_capture_ns) * 1e-6, (m.newest_capture_ns - m.capture_ns) * 1e-6,
                       "; ".join(claims))

    def _new_track(self) -> _Track:
        tid = f"p{self._next_id}"
        self._next_id += 1
        self.tracks_started += 1
        kf = KeypointKalmanFilter(33, accel_sigma_mps2=self._accel_sigma)
        track = _Track(tid, kf, kf.state.copy(), np.zeros(33, np.int64), frozenset(), 0, np.zeros(33, np.int64),
                       np.zeros(33))
        self._tracks.append(track)
        return track

    def _apply(self, track: _Track, m: Measurement, now_ns: int, *, restart: bool) -> None:
        if m.frames & track.frames:                                    # refine this round's update
            track.kf.state = track.prior.copy()
            track.measured_ns = track.prior_measured_ns.copy()
            track.rejected = track.prior_rejected.copy()
            restart = restart or not np.isfinite(track.prior.position_m).any()
        else:
            track.prior = track.kf.state.copy()
            track.prior_measured_ns = track.measured_ns.copy()
            track.prior_rejected = track.rejected.copy()
            track.prior_seen_centre, track.prior_seen_stamp_ns = track.seen_centre, track.seen_stamp_ns
            track.prior_placement = track.placement
            track.prior_floor_sigma_m = track.floor_sigma_m if track.placement is Placement.FLOOR else 0.0
            if track.placement is Placement.TRIANGULATED:
                track.tri_state, track.tri_measured_ns = track.kf.state.copy(), track.measured_ns.copy()
        if track.prior_placement is not m.placement:
            # triangulated <-> floor: the two disagree by the placement's bias, so they are not
            # blended: the floor starts a filter of its own; triangulation resumes the filter of
            # the last triangulated update (keypoints older than MAX_HOLD_NS restart below)
            if m.placement is Placement.TRIANGULATED and track.tri_state is not None and not restart:
                track.kf.state = track.tri_state.copy()
                track.measured_ns = track.tri_measured_ns.copy()
                track.rejected = np.zeros(33, np.int64)
            else:
                restart = True
        track.placement = m.placement
        if not (m.frames & track.frames):
            track.updates += 1
        if m.placement is Placement.TRIANGULATED or track.updates >= CONFIRM_FLOOR_UPDATES:
            track.confirmed = True
        if m.placement is Placement.TRIANGULATED:
            track.triangulated_ns = m.stamp_ns
        elif m.sigma_floor_m is not None:
            track.floor_sigma_m = _centre_sigma(m.sigma_floor_m)
        track.seen_centre, track.seen_stamp_ns = _centre(m.keypoints_cell), m.stamp_ns
        if m.frames & track.frames and track.centre_history:
            track.centre_history.pop()                                 # a refinement replaces its update
        if np.isfinite(track.seen_centre).all():
            track.centre_history.append((m.stamp_ns, track.seen_centre))
        if restart:
            track.kf = KeypointKalmanFilter(33, accel_sigma_mps2=self._accel_sigma)
            track.measured_ns = np.zeros(33, np.int64)
            track.prior = track.kf.state.copy()
            track.prior_measured_ns = track.measured_ns.copy()
        stale = (m.stamp_ns - track.measured_ns) > MAX_HOLD_NS
        used = track.kf.update(m.stamp_ns, m.keypoints_cell, m.variance_m2, force=stale)
        body = _BODY_INDEX
        measured_body = np.isfinite(m.keypoints_cell[body]).all(axis=1)
        if not restart and used[body].sum() < 0.5 * measured_body.sum():
            # The whole body moved farther than the filter allows (a looped clip, a late
            # re-acquisition): restart the filter at the measurement rather than hold old keypoints.
            _log.info("track %s: filter restarted (%d of %d body keypoints rejected)", track.track_id,
                      int(measured_body.sum() - used[body].sum()), int(measured_body.sum()))
            track.kf = KeypointKalmanFilter(33, accel_sigma_mps2=self._accel_sigma)
            track.measured_ns = np.zeros(33, np.int64)
            used = track.kf.update(m.stamp_ns, m.keypoints_cell, m.variance_m2)
        # A keypoint whose measurements the gate rejected REJECT_RESTART times in a row: the filter
        # diverged (a velocity learnt from one jittery measurement carries the prediction away),
        # not the measurements, which passed triangulation and the plausibility checks and agree
        # with each other. Restart it at the measurement instead of publishing the drifting prediction.
        rejected = np.isfinite(m.keypoints_cell).all(axis=1) & ~used
        track.rejected = np.where(rejected, track.rejected + 1, 0)
        diverged = track.rejected >= REJECT_RESTART
        if diverged.any():
            track.kf.restart(diverged, m.keypoints_cell, m.variance_m2)
            used = used | diverged
            track.rejected[diverged] = 0
        track.measured_ns = np.where(used, m.stamp_ns, track.measured_ns)
        track.confidence = np.where(used, m.confidence, track.confidence)
        track.frames = m.frames
        track.seen_ns = now_ns
        state = track.kf.state
        fresh = (m.stamp_ns - track.measured_ns <= MAX_HOLD_NS) & np.isfinite(state.position_m).all(axis=1)
        pts = np.where(fresh[:, None], state.position_m, np.nan)
        conf = np.where(fresh, track.confidence, 0.0)
        sig = state.position_sigma_m
        if m.sigma_floor_m is not None:
            # a floor placement's error is a bias, the same in the next frame: never below it
            sig = np.fmax(sig, m.sigma_floor_m)
        body = [i for i in BODY_POINTS if fresh[i]]
        sigma_m = max(_MIN_SIGMA_M, float(sig[body].max()) if body else _MIN_SIGMA_M)
        vel_rows = [i for i in (_LEFT_HIP, _RIGHT_HIP) if fresh[i]] or body
        velocity = state.velocity_mps[vel_rows].sum(axis=0) / len(vel_rows) if vel_rows else np.zeros(3)
        held = fresh & (track.measured_ns < m.capture_ns)
        keypoint_ns = None
        if held.any():
            keypoint_ns = np.where(held, track.measured_ns, m.capture_ns).astype(np.int64)
        track.centre_cell = _centre(pts)
        track.human = track.measured = HumanTrack(
                                 track_id=track.track_id, keypoints_cell=pts, confidence=conf, velocity_mps=velocity,
                                 sigma_m=sigma_m, capture_ns=m.capture_ns, newest_capture_ns=m.newest_capture_ns,
                                 views=m.views, keypoint_capture_ns=keypoint_ns,
                                 keypoint_sigma_m=np.where(fresh, sig, np.nan), keypoints_px=m.keypoints_px,
                                 placement=m.placement.value)

    def _inside(self, c: np.ndarray) -> bool:
        return (self._bounds is not None and bool(np.isfinite(c).all())
                and bool(np.all(c >= self._bounds[0]) and np.all(c <= self._bounds[1])))

    def coast_track(self, track: _Track, now_ns: int) -> HumanTrack | None:
        """The coasting state of `track` at `now_ns` (module docstring), or None when its sigma
        exceeds `coast_sigma_limit_m` (the track ends).

        The keypoints are the last measured posture moved by the body velocity times the time
        since the measurement; capture stamps, views and velocity stay those of the measurement.
        """
        last = track.measured
        if last is None or self._coast_limit_m is None:
            return None
        elapsed_s = max(now_ns - track.seen_stamp_ns, 0) * 1e-9
        velocity = self._coast_velocity(track)
        speed = float(np.linalg.norm(velocity))
        sigma = float(coast_sigma_m(last.sigma_m, speed, elapsed_s, self._coast_accel))
        if sigma > self._coast_limit_m:
            return None
        keypoint_sigma = None if last.keypoint_sigma_m is None else \
            coast_sigma_m(last.keypoint_sigma_m, speed, elapsed_s, self._coast_accel)
        return HumanTrack(track_id=last.track_id, keypoints_cell=last.keypoints_cell + velocity * elapsed_s,
                          confidence=last.confidence, velocity_mps=last.velocity_mps, sigma_m=sigma,
                          capture_ns=last.capture_ns, newest_capture_ns=last.newest_capture_ns, views=last.views,
                          keypoint_capture_ns=last.keypoint_capture_ns, keypoint_sigma_m=keypoint_sigma,
                          keypoints_px=(), coast_s=elapsed_s, placement=last.placement)

    @staticmethod
    def _coast_velocity(track: _Track) -> np.ndarray:
        """The body centre's velocity a coasting track moves on with, (3,) m/s: the least-squares
        slope of its measured centres over the last `COAST_VELOCITY_WINDOW_NS` (the filter's
        velocity of the last update jitters by tenths of a metre per second on real footage);
        zero with less than `COAST_VELOCITY_MIN_SPAN_NS` of measurements (the posture is held)."""
        if not track.centre_history:
            return np.zeros(3)
        newest = track.centre_history[-1][0]
        recent = [(t, c) for t, c in track.centre_history if newest - t <= COAST_VELOCITY_WINDOW_NS]
        t = np.array([r[0] for r in recent], dtype=np.float64) * 1e-9
        if t[-1] - t[0] < COAST_VELOCITY_MIN_SPAN_NS * 1e-9:
            return np.zeros(3)
        c = np.stack([r[1] for r in recent])
        dt = t - t.mean()
        return (dt[:, None] * (c - c.mean(axis=0))).sum(axis=0) / float((dt * dt).sum())

    def expire(self, now_ns: int) -> None:
        """Coast the tracks not measured for `coast_after_s`, end those whose sigma exceeds the
        limit (or, without coasting, those not measured for `track_timeout_s`); forget old lost ids."""
        ending = []
        for track in self._tracks:
            if self._coast_limit_m is None:
                if now_ns - track.seen_ns > self._timeout_ns:
                    ending.append(track)
                continue
            if now_ns - track.seen_ns <= self._coast_after_ns:
                continue
            coasting = self.coast_track(track, now_ns)
            if coasting is None:
                ending.append(track)
            else:
                track.human = coasting
        for track in ending:
            self._tracks.remove(track)
            c = track.centre_cell
            if _log.isEnabledFor(logging.DEBUG) and track.measured is not None:
                last = track.measured
                _log.debug("track %s ends: last measured %s from %s, %.0f ms ago (newest view %.0f ms old), "
                           "sigma then %.2f m, coasting %.2f s", track.track_id, last.placement,
                           ",".join(last.views), (now_ns - track.seen_ns) * 1e-6,
                           (now_ns - last.newest_capture_ns) * 1e-6, last.sigma_m,
                           (now_ns - track.seen_stamp_ns) * 1e-9)
            predicted = None if track.human is None else _centre(track.human.keypoints_cell)
            inside = self._inside(c) or (predicted is not None and self._inside(predicted))
            if not track.confirmed:
                _log.info("tentative track %s ended (one view, %d updates)", track.track_id, track.updates)
                self._ended[track.track_id] = (now_ns, track)
            elif inside:
                self._lost[track.track_id] = (now_ns, track)
                _log.warning("track %s lost inside the cell bounds at %s", track.track_id, np.round(c, 2))
            else:
                self._ended[track.track_id] = (now_ns, track)
                _log.info("track %s ended (left the cell area or not seen)", track.track_id)
        for table in (self._lost, self._ended):
            for tid, (t_end, _) in list(table.items()):
                if now_ns - t_end > self._lost_hold_ns:
                    del table[tid]
