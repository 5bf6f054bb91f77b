"""Marker registration of an HMI: the WebXR room of a worker's glasses in the `cell` frame, from a
fiducial marker of the cell file seen in the HMI's own video.

The manual alignment step of /hmi (web/alignment.js) gives the transform local-floor <- cell as
``{origin, yaw_rad}``; this module computes the same quantity on the server, so that it works
with any glasses that send their camera and their WebXR viewer pose (no WebXR image tracking
needed), and the page applies it exactly as a manual one.

Frames:
- WebXR ``local-floor`` reference space: y up, origin on the floor (W3C WebXR Device API).
- The HMI camera's optical frame (x right, y down, z forward): the first XRView of the viewer
  pose turned by 180 degrees about its x axis (the view looks along its -z, y up), as for
  ``hmi_camera`` (the camera the HMI films with is taken to be that view).
- The marker frame of the cell file (`content.cell.MarkerPose`): centre, x along the top edge,
  y down, z into the marker; OpenCV's square-marker frame (x right, y up, z out of the marker,
  the frame `cv2.SOLVEPNP_IPPE_SQUARE` wants) is it turned by 180 degrees about x.

Per frame: `cv2.aruco` finds the marker's corners; `cv2.solvePnP` (IPPE_SQUARE) then
`cv2.solvePnPRefineLM` give the marker in the optical frame (T_opt_marker) and the RMS
reprojection error; with the viewer pose at the frame's capture time (T_lf_opt) and the
marker's pose in the cell (T_cell_marker):

    T_lf_cell = T_lf_opt · T_opt_marker · T_cell_marker⁻¹

Several frames (`FRAMES_WANTED` within `WINDOW_S`) are combined robustly (`combine`): the
estimates farther than `OUTLIER_FACTOR` times the bounds from a first mean are dropped, the rest
averaged (positions: mean; rotations: `scipy.spatial.transform.Rotation.mean`). The spread of
the kept estimates around that mean (RMS, mm and degrees) and the tilt of the cell's z from the
room's up are reported, and bound the answer: a registration is refused with its reason when the
marker is not seen, is too small, the estimates disagree (a moving head with a late pose, a
bad intrinsic) or the cell's floor is not level in the room (a wrong marker pose in the cell
file). The result is projected onto the manual alignment's model, a turn about the room's up:
``yaw_rad`` is the least-squares turn, ``origin`` the cell origin in local-floor.

`detect_markers`, `frame_estimate` and `combine` are pure; `MarkerAligner` is the I/O shell fed by
the session's video frames and ``xr_viewer_pose`` events.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from content.calibration.model import extrinsics_from_pose
from content.cell import FiducialMarker
from safety.errors import PerceptionError
from safety.perception.hmi import CaptureClock, HmiPose, PoseHistory, calibration_from_pose
from xr_server.errors import XrServerError

log = logging.getLogger(__name__)

#: Frames with an estimate a registration waits for, and the longest it waits for them, s.
FRAMES_WANTED = 10
WINDOW_S = 2.0
#: Fewest frames with an estimate that a registration accepts.
MIN_FRAMES = 5
#: Smallest side of the marker in the image, pixels: below it the pose is too uncertain
#: (bench/marker_alignment.py: the cell origin 1 cm off at 46 px, 2 to 3 cm at 31 px, up to
#: 10 cm at 24 px).
MIN_MARKER_SIDE_PX = 40.0
#: Largest RMS reprojection error of one frame's marker pose, pixels.
MAX_REPROJECTION_PX = 2.0
#: Largest spread (RMS about the mean) of the kept per-frame estimates: position of the cell
#: origin, mm, and orientation, degrees.
MAX_SPREAD_MM = 20.0
MAX_SPREAD_DEG = 1.5
#: Estimates farther from the first mean than this many times the spread bounds are outliers.
OUTLIER_FACTOR = 2.0
#: Largest angle between the cell's z axis and the room's up (local-floor +y), degrees.
MAX_TILT_DEG = 5.0
#: Largest gap between a frame's capture time and the viewer pose used for it, s.
MAX_POSE_GAP_S = 0.1

# OpenCV's square-marker frame -> the cell file's marker frame (180 degrees about x), and a WebXR
# view -> the optical frame (the same turn).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


class MarkerAlignmentError(XrServerError):
    """A registration refused, with the reason in words (what to do about it)."""


@dataclass(frozen=True)
class Detection:
    """One declared marker found in one image.

    Attributes:
        marker: the marker of the cell file.
        corners_px: (4, 2) float64 image corners, top-left, top-right, bottom-right, bottom-left
            (as `cv2.aruco` returns them).
    """

    marker: FiducialMarker
    corners_px: np.ndarray

    @property
    def side_px(self) -> float:
        """The shortest side of the marker in the image, pixels."""
        c = self.corners_px
        return float(min(np.linalg.norm(c[i] - c[(i + 1) % 4]) for i in range(4)))


@dataclass(frozen=True)
class FrameEstimate:
    """The registration from one frame.

    Attributes:
        marker_id: the marker seen.
        rotation: (3, 3) local-floor <- cell.
        origin_m: (3,) the cell origin in local-floor, metres.
        reprojection_px: RMS reprojection error of the marker corners, pixels.
        side_px: the marker's shortest side in the image, pixels.
    """

    marker_id: int
    rotation: np.ndarray
    origin_m: np.ndarray
    reprojection_px: float
    side_px: float


@dataclass(frozen=True)
class MarkerAlignment:
    """The registration of the cell in an HMI's WebXR local-floor space, and its residuals.

    Attributes:
        origin: (3,) the cell origin in local-floor, metres (web/alignment.js `origin`).
        yaw_rad: the turn about local-floor +y taking local-floor +x onto the cell's +x
            (web/alignment.js `yaw_rad`).
        marker_id: the marker it was computed from.
        frames_used: per-frame estimates averaged.
        frames_seen: frames examined (with or without the marker).
        reprojection_px: mean RMS reprojection error of the used frames, pixels.
        spread_mm: RMS distance of the used frames' cell origins from the mean, mm.
        spread_deg: RMS angle of the used frames' orientations from the mean, degrees.
        tilt_deg: angle between the cell's z axis and the room's up, degrees (dropped by the
            projection onto a turn about up).
    """

    origin: tuple[float, float, float]
    yaw_rad: float
    marker_id: int
    frames_used: int
    frames_seen: int
    reprojection_px: float
    spread_mm: float
    spread_deg: float
    tilt_deg: float

    def as_dict(self) -> dict:
        return {"origin": [round(v, 5) for v in self.origin], "yaw_rad": round(self.yaw_rad, 6),
                "marker": self.marker_id, "frames_used": self.frames_used,
                "frames_seen": self.frames_seen,
                "reprojection_px": round(self.reprojection_px, 3),
                "spread_mm": round(self.spread_mm, 2), "spread_deg": round(self.spread_deg, 3),
                "tilt_deg": round(self.tilt_deg, 3)}


# ------------------------------------------------------------------------------ the pure core
def _detector(dictionary: str) -> Any:
    """A new `cv2.aruco.ArucoDetector` (one per call: registrations of several sessions may run
    at once, in their own threads), sub-pixel corner refinement."""
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    vocabulary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary))
    return cv2.aruco.ArucoDetector(vocabulary, params)


def detect_markers(gray: np.ndarray, markers: Sequence[FiducialMarker]) -> list[Detection]:
    """The declared `markers` found in `gray` ((H, W) uint8), sub-pixel corners.

    A marker id found more than once in the image is ambiguous and left out.
    """
    found: list[Detection] = []
    for dictionary in sorted({m.dictionary for m in markers}):
        corners, ids, _ = _detector(dictionary).detectMarkers(gray)
        if ids is None:
            continue
        counts = Counter(int(i) for i in ids.ravel())
        wanted = {m.id: m for m in markers if m.dictionary == dictionary}
        for c, i in zip(corners, ids.ravel()):
            if int(i) in wanted and counts[int(i)] == 1:
                found.append(Detection(wanted[int(i)], np.asarray(c, np.float64).reshape(4, 2)))
    return found


def marker_in_cell(marker: FiducialMarker) -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), p (3,)): the marker frame's pose in the `cell` frame (cell <- marker)."""
    R, t = extrinsics_from_pose(marker.pose.position, quaternion_xyzw=marker.pose.quaternion,
                                rpy=marker.pose.rpy)   # cell -> marker
    return R.T, -R.T @ t


def frame_estimate(detection: Detection, K: np.ndarray, R_opt_lf: np.ndarray,
                   t_opt_lf: np.ndarray) -> FrameEstimate:
    """The registration from one detection.

    Args:
        detection: the marker's corners in the frame.
        K: (3, 3) the frame's camera matrix (pinhole, no distortion).
        R_opt_lf, t_opt_lf: (3, 3), (3,) local-floor -> optical frame at the frame's capture
            time (x_opt = R x_lf + t), metres.

    Raises:
        MarkerAlignmentError: solvePnP found no pose.
    """
    s = detection.marker.size_m / 2.0
    object_points = np.array([[-s, s, 0.0], [s, s, 0.0], [s, -s, 0.0], [-s, -s, 0.0]])
    image_points = detection.corners_px.reshape(4, 1, 2)
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, K, None,
                                  flags=cv2.SOLVEPNP_IPPE_SQUARE)
    if not ok:
        raise MarkerAlignmentError(f"marker {detection.marker.id}: no pose fits its corners")
    rvec, tvec = cv2.solvePnPRefineLM(object_points, image_points, K, None, rvec, tvec)
    projected, _ = cv2.projectPoints(object_points, rvec, tvec, K, None)
    errors = projected.reshape(4, 2) - detection.corners_px
    residual = float(np.sqrt(np.mean(np.sum(errors ** 2, axis=1))))
    R_opt_cv = cv2.Rodrigues(rvec)[0]
    R_opt_marker, p_opt_marker = R_opt_cv @ _FLIP_YZ, tvec.reshape(3)
    R_cell_marker, p_cell_marker = marker_in_cell(detection.marker)
    R_lf_opt, p_lf_opt = R_opt_lf.T, -R_opt_lf.T @ t_opt_lf
    R_lf_marker = R_lf_opt @ R_opt_marker
    p_lf_marker = R_lf_opt @ p_opt_marker + p_lf_opt
    R_lf_cell = R_lf_marker @ R_cell_marker.T
    p_lf_cell = p_lf_marker - R_lf_cell @ p_cell_marker
    return FrameEstimate(detection.marker.id, R_lf_cell, p_lf_cell, residual, detection.side_px)


def _angles_deg(rotations: Rotation, mean: Rotation) -> np.ndarray:
    return np.degrees((mean.inv() * rotations).magnitude())


def combine(estimates: Sequence[FrameEstimate], frames_seen: int) -> MarkerAlignment:
    """The robust mean of per-frame estimates of one marker (see the module docstring).

    Raises:
        MarkerAlignmentError: fewer than `MIN_FRAMES` estimates, or fewer kept after outlier
            rejection, a spread above `MAX_SPREAD_MM` / `MAX_SPREAD_DEG`, or a tilt above
            `MAX_TILT_DEG`; the message gives the figures.
    """
    if len(estimates) < MIN_FRAMES:
        raise MarkerAlignmentError(f"the marker was measured in {len(estimates)} of {frames_seen} "
                                   f"frames, {MIN_FRAMES} needed: hold it in view, closer")
    origins = np.stack([e.origin_m for e in estimates])
    rotations = Rotation.from_matrix(np.stack([e.rotation for e in estimates]))
    mean_p, mean_r = np.median(origins, axis=0), rotations.mean()
    keep = ((np.linalg.norm(origins - mean_p, axis=1) * 1e3 <= OUTLIER_FACTOR * MAX_SPREAD_MM)
            & (_angles_deg(rotations, mean_r) <= OUTLIER_FACTOR * MAX_SPREAD_DEG))
    if keep.sum() < MIN_FRAMES:
        raise MarkerAlignmentError(
            f"the estimates disagree: {int(keep.sum())} of {len(estimates)} frames agree within "
            f"{OUTLIER_FACTOR * MAX_SPREAD_MM:.0f} mm and {OUTLIER_FACTOR * MAX_SPREAD_DEG:.1f}°, "
            f"{MIN_FRAMES} needed: hold still while the marker is measured")
    kept = [e for e, k in zip(estimates, keep) if k]
    origins, rotations = origins[keep], rotations[keep]
    mean_p, mean_r = origins.mean(axis=0), rotations.mean()
    spread_mm = float(np.sqrt(np.mean(np.sum((origins - mean_p) ** 2, axis=1)))) * 1e3
    spread_deg = float(np.sqrt(np.mean(_angles_deg(rotations, mean_r) ** 2)))
    if spread_mm > MAX_SPREAD_MM or spread_deg > MAX_SPREAD_DEG:
        raise MarkerAlignmentError(
            f"the estimates disagree: spread {spread_mm:.1f} mm, {spread_deg:.2f}° over "
            f"{len(kept)} frames (at most {MAX_SPREAD_MM:.0f} mm, {MAX_SPREAD_DEG}°): hold still "
            "while the marker is measured")
    R = mean_r.as_matrix()
    tilt_deg = math.degrees(math.acos(max(-1.0, min(1.0, float(R[1, 2])))))
    if tilt_deg > MAX_TILT_DEG:
        raise MarkerAlignmentError(
            f"the cell's z axis is {tilt_deg:.1f}° from the room's up (at most {MAX_TILT_DEG}°): "
            f"check the pose of marker {kept[0].marker_id} in the cell file")
    # least-squares turn about local-floor +y: R ≈ Ry(yaw) · Rx(-pi/2)
    Rp = R @ Rotation.from_euler("x", math.pi / 2).as_matrix()
    yaw = math.atan2(float(Rp[0, 2] - Rp[2, 0]), float(Rp[0, 0] + Rp[2, 2]))
    return MarkerAlignment((float(mean_p[0]), float(mean_p[1]), float(mean_p[2])), yaw,
                           kept[0].marker_id, len(kept), frames_seen,
                           float(np.mean([e.reprojection_px for e in kept])), spread_mm, spread_deg,
                           tilt_deg)


# ------------------------------------------------------------------------------ the I/O shell
@dataclass
class _Request:
    """One registration being collected: the frames the media loop hands over (newest two)."""

    frames: deque = field(default_factory=lambda: deque(maxlen=2))
    ready: threading.Condition = field(default_factory=threading.Condition)


class MarkerAligner:
    """Marker registrations of the HMIs of one cell.

    Feed it every decoded frame of each worker video (`frame`, on the WebRTC loop: it only stamps
    the frame and, while a registration of that session runs, hands its grey image over) and the
    viewer poses of ``xr_viewer_pose`` (`viewer_pose`); `align` runs one registration in the
    calling thread (a Socket.IO handler thread), for up to `WINDOW_S` plus the time to examine
    the frames.

    Args:
        markers: the cell file's markers.
        clock: monotonic clock, ns.

    Threads: `frame` and `video_ended` on the gateway's loop, `viewer_pose` and `align` in
    handler threads; one lock guards the clocks, poses and requests.
    """

    def __init__(self, markers: Sequence[FiducialMarker],
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.markers = tuple(markers)
        self._clock = clock
        self._lock = threading.Lock()
        self._clocks: dict[str, CaptureClock] = {}
        self._poses: dict[str, PoseHistory] = {}
        self._requests: dict[str, _Request] = {}

    def viewer_pose(self, session_id: str, position: Sequence[float], orientation: Sequence[float],
                    hfov_deg: float, aspect: float,
                    principal_point: Sequence[float] = (0.5, 0.5)) -> None:
        """Keep a WebXR view pose of the session's HMI, stamped now: `position` (3,) metres and
        `orientation` (x, y, z, w) of the XRView in local-floor (looking along its -z)."""
        # kept as an `HmiPose` of the optical frame, here in local-floor rather than `cell`
        q = Rotation.from_quat(np.asarray(orientation, np.float64))
        optical = (q * Rotation.from_matrix(_FLIP_YZ)).as_quat()
        pose = HmiPose(self._clock(), (float(position[0]), float(position[1]), float(position[2])),
                       (float(optical[0]), float(optical[1]), float(optical[2]), float(optical[3])),
                       float(hfov_deg), float(aspect),
                       (float(principal_point[0]), float(principal_point[1])))
        with self._lock:
            self._poses.setdefault(session_id, PoseHistory()).add(pose)

    def frame(self, session_id: str, frame: Any) -> None:
        """A decoded frame (`av.VideoFrame`) of the session's worker video. Never raises."""
        receipt_ns = self._clock()
        with self._lock:
            clock = self._clocks.setdefault(session_id, CaptureClock())
            capture_ns = (receipt_ns if frame.time is None
                          else clock.capture_ns(frame.time, receipt_ns))
            request = self._requests.get(session_id)
        if request is None:
            return
        try:
            gray = frame.to_ndarray(format="gray")
        except Exception:  # noqa: BLE001 - a frame that does not convert is not used
            log.exception("session %s: a video frame does not convert to grey", session_id)
            return
        with request.ready:
            request.frames.append((gray, capture_ns))
            request.ready.notify()

    def video_ended(self, session_id: str) -> None:
        """The session's video ended (a new one has a new media clock)."""
        with self._lock:
            self._clocks.pop(session_id, None)

    def session_ended(self, session_id: str) -> None:
        """Forget the session's poses and clock."""
        with self._lock:
            self._clocks.pop(session_id, None)
            self._poses.pop(session_id, None)

    def align(self, session_id: str, window_s: float = WINDOW_S,
              frames_wanted: int = FRAMES_WANTED) -> MarkerAlignment:
        """Register the session's HMI from the next frames of its video (at most `window_s`).

        Raises:
            MarkerAlignmentError: the cell has no markers, a registration of the session is
                already running, no frame came, the marker was not seen, too small, without a
                viewer pose, or the estimates disagree (see `combine`); the message says why.
        """
        if not self.markers:
            raise MarkerAlignmentError("the cell file declares no markers (markers: in the cell "
                                       "file)")
        request = _Request()
        with self._lock:
            if session_id in self._requests:
                raise MarkerAlignmentError(f"a marker registration of session {session_id} is "
                                           "already running")
            self._requests[session_id] = request
        try:
            return self._collect(session_id, request, window_s, frames_wanted)
        finally:
            with self._lock:
                self._requests.pop(session_id, None)

    def _collect(self, session_id: str, request: _Request, window_s: float,
                 frames_wanted: int) -> MarkerAlignment:
        deadline = time.monotonic() + window_s
        seen = unseen = no_pose = bad_pose = 0
        small: list[float] = []
        bad_fit: list[float] = []
        estimates: dict[int, list[FrameEstimate]] = {}
        def most() -> int:
            return max(map(len, estimates.values()), default=0)

        while time.monotonic() < deadline and most() < frames_wanted:
            with request.ready:
                if not request.frames:
                    request.ready.wait(max(0.0, deadline - time.monotonic()))
                if not request.frames:
                    continue
                gray, capture_ns = request.frames.popleft()
            seen += 1
            detections = detect_markers(gray, self.markers)
            if not detections:
                unseen += 1
                continue
            with self._lock:
                history = self._poses.get(session_id)
                pose = (None if history is None
                        else history.at(capture_ns, int(MAX_POSE_GAP_S * 1e9)))
            if pose is None:
                no_pose += 1
                continue
            h, w = gray.shape[:2]
            try:
                calibration = calibration_from_pose("hmi", pose, w, h)
            except PerceptionError as exc:
                bad_pose += 1
                log.debug("session %s: %s", session_id, exc)
                continue
            for detection in detections:
                if detection.side_px < MIN_MARKER_SIDE_PX:
                    small.append(detection.side_px)
                    continue
                estimate = frame_estimate(detection, calibration.K, calibration.R, calibration.t)
                if estimate.reprojection_px > MAX_REPROJECTION_PX:
                    bad_fit.append(estimate.reprojection_px)
                    continue
                estimates.setdefault(estimate.marker_id, []).append(estimate)
        if not estimates:
            raise MarkerAlignmentError(_no_estimate_reason(self.markers, window_s, seen, no_pose,
                                                           bad_pose, small, bad_fit))
        best = max(estimates.values(), key=len)
        if len(best) < MIN_FRAMES:
            raise MarkerAlignmentError(
                f"the marker was measured in {len(best)} of {seen} frames, {MIN_FRAMES} needed "
                f"(not found in {unseen}, no viewer pose for {no_pose}, too small in "
                f"{len(small)}, a poor fit in {len(bad_fit)}): hold it in view, closer")
        return combine(best, seen)


def _no_estimate_reason(markers: Sequence[FiducialMarker], window_s: float, seen: int,
                        no_pose: int, bad_pose: int, small: list[float],
                        bad_fit: list[float]) -> str:
    names = ", ".join(f"{m.id} ({m.dictionary})" for m in markers)
    if seen == 0:
        return f"no video frame came within {window_s:g} s: is the camera sending?"
    if no_pose:
        return (f"the marker was seen in {no_pose} of {seen} frames but no WebXR viewer pose was "
                f"within {MAX_POSE_GAP_S:g} s of them: send xr_viewer_pose while the marker is "
                "measured (enter AR)")
    if bad_pose:
        return (f"the viewer pose's aspect ratio does not fit the video in {bad_pose} of {seen} "
                "frames: report the view of the camera that films")
    if small:
        return (f"the marker is too small in the image ({max(small):.0f} px across, at least "
                f"{MIN_MARKER_SIDE_PX:.0f} px): come closer")
    if bad_fit:
        return (f"the marker's corners do not fit a square seen by this camera "
                f"({min(bad_fit):.1f} px reprojection error, at most {MAX_REPROJECTION_PX:g} px): "
                "check the field of view the HMI reports")
    return f"marker not seen in {seen} frames (looking for {names}): look at the marker"
