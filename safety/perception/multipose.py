"""Several people in one camera: a person detector finds them, one pose tracker follows each.

MediaPipe's `solutions.pose` follows ONE person (its detector keeps the best detection and
its tracking mode stays on that person's region). `MultiPersonEstimator` keeps one
single-person estimator per person in view (a "slot"); each slot sees the frame with the
other people's regions painted out, so it stays on its own person. A person detector
(`PersonDetector`) runs on the frame with the tracked people painted out, at once when
nobody is tracked and then every `detect_period_s` (or when the caller asks: the pipeline
shares one detection schedule among its cameras), and each new person it finds gets a
slot. A slot whose estimator loses its person is freed and its estimator reused.

With one person in view the cost is that of the single-person estimator (the frame is
passed unchanged) plus one detector run per `detect_period_s`.

Pure logic over the `Estimator`/`Detector` protocols; the MediaPipe adapters live in
`safety.perception.pose`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from safety.errors import PerceptionError
from safety.perception.pose import PersonBox, Pose2D
from safety.perception.types import POSE_LIMBS

#: Grey used to paint out the other people (BGR).
_MASK_VALUE = 128
#: Width of a painted-out limb as a fraction of the person's size in the image.
_LIMB_WIDTH_FRACTION = 0.12
#: A detection whose hip centre is within this fraction of its body radius of a tracked
#: person's hip centre is that person.
_SAME_PERSON_FRACTION = 0.5
#: Keypoints below this visibility do not extend a person's region.
_BOX_MIN_VISIBILITY = 0.3
#: Two slots whose regions overlap more than this (intersection over the smaller region) and whose
#: keypoints lie within `_DUPLICATE_KEYPOINT_FRACTION` of the region size follow the same person.
_DUPLICATE_OVERLAP = 0.7
_DUPLICATE_KEYPOINT_FRACTION = 0.1


class Estimator(Protocol):
    """A single-person 2D pose estimator with tracking state (e.g. `PoseEstimator`)."""

    def estimate(self, frame_bgr: np.ndarray) -> Pose2D | None: ...


class Detector(Protocol):
    """A person detector (e.g. `PersonDetector`)."""

    def detect(self, frame_bgr: np.ndarray) -> list[PersonBox]: ...


def keypoint_box(pose: Pose2D, *, pad: float = 0.15) -> np.ndarray:
    """The region of a person's visible keypoints, padded.

    Args:
        pose: the person.
        pad: padding as a fraction of the larger side of the keypoints' extent.

    Returns:
        (4,) float64 (u_min, v_min, u_max, v_max), pixels; all keypoints when none is visible.
    """
    kp = pose.keypoints_px
    ok = np.isfinite(kp).all(axis=1) & (pose.visibility >= _BOX_MIN_VISIBILITY)
    if ok.sum() < 2:
        ok = np.isfinite(kp).all(axis=1)
    lo, hi = kp[ok].min(axis=0), kp[ok].max(axis=0)
    margin = pad * float(max(hi - lo))
    return np.concatenate([lo - margin, hi + margin])


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    area = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / max(area, 1e-9))


def silhouette(pose: Pose2D, shape: tuple[int, int]) -> np.ndarray:
    """A mask covering a person's body: thick limbs, the filled torso and the head.

    Args:
        pose: the person.
        shape: (H, W) of the image.

    Returns:
        (H, W) bool mask, True on the body.
    """
    mask = np.zeros(shape, np.uint8)
    kp = pose.keypoints_px
    ok = np.isfinite(kp).all(axis=1)
    box = keypoint_box(pose, pad=0.0)
    size = float(max(box[2:] - box[:2]))
    thick = max(4, int(_LIMB_WIDTH_FRACTION * size))
    pts = np.round(np.where(ok[:, None], kp, 0)).astype(np.int32)
    torso = [11, 12, 24, 23]
    if ok[torso].all():
        cv2.fillConvexPoly(mask, pts[torso], 1)
    for a, b in POSE_LIMBS:
        if ok[a] and ok[b]:
            cv2.line(mask, tuple(int(x) for x in pts[a]), tuple(int(x) for x in pts[b]), 1, thick)
    head = [i for i in range(11) if ok[i]]
    if head:
        c = kp[head].mean(axis=0)
        r = max(thick, int(np.linalg.norm(kp[head] - c, axis=1).max() + thick))
        cv2.circle(mask, (int(round(c[0])), int(round(c[1]))), r, 1, -1)
    return mask.astype(bool)


def _hip_centre(pose: Pose2D) -> np.ndarray:
    return 0.5 * (pose.keypoints_px[23] + pose.keypoints_px[24])


@dataclass
class _Slot:
    estimator: Estimator
    pose: Pose2D
    _box: np.ndarray | None = None

    @property
    def box(self) -> np.ndarray:
        """Region of the person in the last frame, pixels (`keypoint_box`; computed when asked:
        with one person in view nothing asks)."""
        if self._box is None:
            self._box = keypoint_box(self.pose)
        return self._box


class MultiPersonEstimator:
    """2D poses of every person in ONE camera's frame sequence.

    Not thread-safe: one thread calls `estimate` (the camera's worker). Each slot's
    estimator keeps tracking state, so an instance belongs to one camera.

    Args:
        estimator_factory: creates a single-person estimator (one per slot, reused).
        detector: person detector; None follows only the one person the single-person
            estimator finds (the behaviour before several people were supported).
        max_people: most people followed at once in this camera.
        detect_period_s: how often the detector looks for new people while someone is
            tracked (it runs on every frame while nobody is).
        spares: the pool of idle single-person estimators, shared by the estimators of
            several cameras when they run on one thread (a spare is re-aimed by the masked
            image it is given); None: this camera's own pool.

    Raises:
        PerceptionError: `max_people` < 1 or `detect_period_s` < 0.
    """

    def __init__(self, estimator_factory: Callable[[], Estimator], detector: Detector | None = None, *,
                 max_people: int = 4, detect_period_s: float = 0.5, spares: list[Estimator] | None = None) -> None:
        if max_people < 1:
            raise PerceptionError(f"max_people must be at least 1, got {max_people!r}")
        if not detect_period_s >= 0:
            raise PerceptionError(f"detect_period_s must be >= 0, got {detect_period_s!r}")
        self._factory = estimator_factory
        self._detector = detector
        self._max_people = max_people if detector is not None else 1
        self._detect_period_ns = int(detect_period_s * 1e9)
        self._slots: list[_Slot] = []
        self._spare: list[Estimator] = spares if spares is not None else []
        self._next_detect_ns: int | None = None
        self.detector_runs = 0
        #: People found by the detector run of the last `estimate` call (0 when it did not run).
        self.new_people = 0

    def estimate(self, frame_bgr: np.ndarray, capture_ns: int, *, detect: bool | None = None) -> list[Pose2D]:
        """Follow the tracked people into this frame and look for new ones when due.

        Args:
            frame_bgr: (H, W, 3) uint8 BGR image (not modified).
            capture_ns: the frame's capture time, ns (paces the detector).
            detect: run the person detector on this frame (True) or not (False), as the
                caller schedules it; None: every `detect_period_s` of capture time. While
                nobody is followed the detector runs on every frame whatever `detect` says.

        Returns:
            One `Pose2D` per person found, pixels of `frame_bgr`, in slot order (a slot's
            position is NOT an identity across frames: identities are the tracker's).
            `new_people` says how many of them were found by this call's detector run.
        """
        shape = frame_bgr.shape[:2]
        masks = [silhouette(s.pose, shape) for s in self._slots] if len(self._slots) > 1 else []
        kept: list[_Slot] = []
        for i, slot in enumerate(self._slots):
            image = frame_bgr
            if masks:
                others = np.logical_or.reduce([m for j, m in enumerate(masks) if j != i]) & ~masks[i]
                image = frame_bgr.copy()
                image[others] = _MASK_VALUE
            pose = slot.estimator.estimate(image)
            if pose is None:
                self._spare.append(slot.estimator)
                continue
            slot.pose, slot._box = pose, None
            kept.append(slot)
        self._slots = self._drop_duplicates(kept)
        before = len(self._slots)
        if self._detector is None:
            if not self._slots:
                self._try_new(frame_bgr, None)
        else:
            due = detect if detect is not None else (
                self._next_detect_ns is None or capture_ns >= self._next_detect_ns)
            if len(self._slots) < self._max_people and (not self._slots or due):
                self._discover(frame_bgr)
                self._next_detect_ns = capture_ns + self._detect_period_ns
        self.new_people = len(self._slots) - before
        return [s.pose for s in self._slots]

    def warm_up(self, frame_bgr: np.ndarray) -> list[Pose2D]:
        """Build and run every model this camera needs before tracking starts.

        MediaPipe builds a graph when an estimator is created and initialises its
        inference delegate on the first run (together 0.1 to 0.5 s, seconds on a loaded
        machine). Done during tracking, that stalls the camera's step past the safety
        monitor's staleness limits. This estimates `frame_bgr` with a detector run (which
        builds and runs an estimator for each person found) and, with a detector, leaves
        one spare estimator, built and run, in the pool for the next newcomer or a
        detection that turns out to be nobody. Call it once, before the first `estimate`.

        Args:
            frame_bgr: (H, W, 3) uint8 BGR image, e.g. the camera's first frame.

        Returns:
            The people found in `frame_bgr` (as `estimate`).
        """
        people = self.estimate(frame_bgr, 0, detect=True)
        if self._detector is not None and not self._spare:
            est = self._factory()
            est.estimate(frame_bgr)
            self._spare.append(est)
        return people

    def close(self) -> None:
        """Close every estimator."""
        for est in [s.estimator for s in self._slots] + self._spare:
            close = getattr(est, "close", None)     # test doubles may have none
            if close is not None:
                close()
        self._slots, self._spare = [], []

    # ------------------------------------------------------------------ internals
    def _tracked_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        if not self._slots:
            return None
        return np.logical_or.reduce([silhouette(s.pose, shape) for s in self._slots])

    def _discover(self, frame_bgr: np.ndarray) -> None:
        image = frame_bgr
        tracked = self._tracked_mask(frame_bgr.shape[:2])
        if tracked is not None:
            image = frame_bgr.copy()
            image[tracked] = _MASK_VALUE
        self.detector_runs += 1
        for person in self._detector.detect(image):                       # type: ignore[union-attr]
            if len(self._slots) >= self._max_people:
                break
            if any(np.linalg.norm(_hip_centre(s.pose) - person.center_px) < _SAME_PERSON_FRACTION * person.radius_px
                   for s in self._slots):
                continue
            self._try_new(frame_bgr, person.box_px)

    def _try_new(self, frame_bgr: np.ndarray, region: np.ndarray | None) -> None:
        """Start a slot on the person inside `region` (everything else painted out), or anywhere."""
        image = frame_bgr
        if region is not None or self._slots:
            image = frame_bgr.copy()
            if region is not None:
                h, w = image.shape[:2]
                outside = np.ones((h, w), bool)
                u0, v0, u1, v1 = (int(np.clip(round(x), 0, lim)) for x, lim in zip(region, (w, h, w, h)))
                outside[v0:v1, u0:u1] = False
                image[outside] = _MASK_VALUE
            tracked = self._tracked_mask(frame_bgr.shape[:2])
            if tracked is not None:
                image[tracked] = _MASK_VALUE
        est = self._spare.pop() if self._spare else self._factory()
        pose = est.estimate(image)
        if pose is None:
            self._spare.append(est)
            return
        box = keypoint_box(pose)
        if region is not None and _overlap(box, region) < 0.3:
            self._spare.append(est)            # the estimator found something else than the detection
            return
        self._slots.append(_Slot(est, pose, box))

    def _drop_duplicates(self, slots: list[_Slot]) -> list[_Slot]:
        """Free the later of two slots that follow the same person."""
        kept: list[_Slot] = []
        for slot in slots:
            dup = False
            for other in kept:
                if _overlap(slot.box, other.box) < _DUPLICATE_OVERLAP:
                    continue
                size = float(max(other.box[2:] - other.box[:2]))
                d = np.nanmedian(np.linalg.norm(slot.pose.keypoints_px - other.pose.keypoints_px, axis=1))
                if d < _DUPLICATE_KEYPOINT_FRACTION * size:
                    dup = True
                    break
            if dup:
                self._spare.append(slot.estimator)
            else:
                kept.append(slot)
        return kept
