"""Tracking rules of `PerceptionPipeline` that the safety chain relies on, at the estimator seam.

Real calibrations (Pose2Sim Demo_SinglePerson, 4 cameras) and a synthetic body projected into
them; fake estimators and a fake person detector stand in for MediaPipe, and a fake clock drives
the pipeline step by step:

- every published snapshot has its own, strictly increasing stamp;
- a whole body that jumps farther than a person can move is a new person, and the track it
  left is reported lost inside the cell (a fault for the monitor); a jump a person can make
  keeps the id and the filter follows at once (no old keypoints held);
- the person detector runs on ONE camera per `detect_period_s`, round-robin, and a newcomer
  found by one camera makes every other camera look for him at its next frame.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from content.calibration import CameraCalibration, read_qca
from safety.perception import PerceptionPipeline, PersonBox, Pose2D, project_points

CLIP = Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
SCALE = 0.2                        # small fake frames: 217 x 384 pixels or so
PAINTED = 128                      # `multipose` paints other people out with this grey
BOUNDS = (np.array([-3.0, -3.0, -0.5]), np.array([3.0, 3.0, 3.0]))


def body_at(x: float, y: float) -> np.ndarray:
    """(33, 3) a standing 'stick' person whose feet are at (x, y, 0), metres, cell frame."""
    body = np.column_stack([np.full(33, x), np.full(33, y), np.linspace(1.7, 0.0, 33)])
    body[[17, 19, 21]] = body[15] + [0.0, 0.0, -0.05]   # fingers next to the wrists (plausible body)
    body[[18, 20, 22]] = body[16] + [0.0, 0.0, -0.05]
    return body


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


class Source:
    """A camera whose newest frame is new whenever it is looked at (blank image)."""

    def __init__(self, clock: Clock, cal: CameraCalibration) -> None:
        self.clock, self.seq = clock, 0
        w, h = cal.image_size
        self.frame = np.zeros((h, w, 3), np.uint8)

    def latest(self):
        self.seq += 1
        return self.frame, self.clock.ns, self.seq

    def start(self) -> None: ...
    def stop(self, timeout_s: float = 0.5) -> None: ...


class Scene:
    """The people in the cell (name -> (33, 3) body) and what each camera's fakes see of them.

    Each camera's frames have their own size (its calibration scaled by its own factor), so a
    fake estimator or detector knows its camera from the image it is given.
    """

    def __init__(self, cals: dict[str, CameraCalibration]) -> None:
        self.cals = cals
        self.by_shape = {(c.image_size[1], c.image_size[0]): name for name, c in cals.items()}
        self.bodies: dict[str, np.ndarray] = {}
        self.detector_runs: list[str] = []

    def camera(self, image: np.ndarray) -> str:
        return self.by_shape[image.shape[:2]]

    def visible(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(name, (33, 2) px) of the bodies whose hip centre is not painted out in `image`."""
        cam = self.camera(image)
        h, w = image.shape[:2]
        out = []
        for name, body in self.bodies.items():
            px = project_points(self.cals[cam], body)
            u, v = np.round(0.5 * (px[23] + px[24])).astype(int)
            if 0 <= u < w and 0 <= v < h and image[v, u, 0] != PAINTED:
                out.append((name, px))
        return out


class FakeEstimator:
    """A single-person estimator: the first person not painted out of the image."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene

    def estimate(self, image: np.ndarray) -> Pose2D | None:
        seen = self.scene.visible(image)
        return Pose2D(seen[0][1], np.ones(33)) if seen else None


class FakeDetector:
    """A person detector: every person not painted out, with MediaPipe's square body region."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        self.scene.detector_runs.append(self.scene.camera(image))
        boxes = []
        for _, px in self.scene.visible(image):
            centre = 0.5 * (px[23] + px[24])
            boxes.append(PersonBox(centre, 1.25 * float(np.max(np.linalg.norm(px - centre, axis=1))), 0.9))
        return boxes


def make_pipeline(cameras=CAMERAS, detector: bool = False, **kwargs):
    """A pipeline over fake cameras; returns (pipeline, scene, clock, published snapshots)."""
    if not (CLIP / "calibration" / "Calib.qca.txt").is_file():
        pytest.fail(f"test data missing: {CLIP}; run `make test` (it fetches the Pose2Sim demo data)")
    calib = read_qca(CLIP / "calibration" / "Calib.qca.txt")
    cals = {c: calib[c].scaled(SCALE + 0.01 * k) for k, c in enumerate(cameras)}
    scene, clock = Scene(cals), Clock()
    published: list = []
    pipeline = PerceptionPipeline([(c, Source(clock, cals[c]), cals[c]) for c in cameras], process_rate_hz=8.0,
                                  estimator_factory=lambda: FakeEstimator(scene),
                                  detector_factory=(lambda: FakeDetector(scene)) if detector else None,
                                  clock=clock, cell_bounds=BOUNDS, on_publish=published.append, **kwargs)
    return pipeline, scene, clock, published


def run(pipeline: PerceptionPipeline, clock: Clock, seconds: float, step_ns: int = 10_000_000) -> None:
    """Step the pipeline for `seconds` of the fake clock."""
    end = clock.ns + int(seconds * 1e9)
    while clock.ns < end:
        pipeline.step()
        clock.ns += step_ns


# ---------------------------------------------------------------------------- snapshots


def test_every_snapshot_has_its_own_increasing_stamp_even_when_the_clock_stands_still():
    pipeline, scene, clock, published = make_pipeline(cameras=CAMERAS[:2])
    scene.bodies["a"] = body_at(-1.0, 0.0)
    for _ in range(40):
        pipeline.step()                     # the clock does not move between these steps
    clock.ns += 200_000_000
    for _ in range(40):
        pipeline.step()
    stamps = [s.stamp_ns for s in published]
    # Two frames estimated at each of the two clock readings (one per camera); the steps in
    # between estimated nothing and published nothing new.
    assert len(stamps) == 4
    assert all(b > a for a, b in zip(stamps, stamps[1:])), stamps
    assert pipeline.snapshot() is published[-1]
    assert [t.track_id for t in published[-1].tracks] == ["p1"]


# ---------------------------------------------------------------------------- identities


def test_a_whole_body_jump_no_person_can_make_is_a_new_person_and_the_old_track_is_lost():
    pipeline, scene, clock, _ = make_pipeline(cameras=CAMERAS[:2], track_timeout_s=0.5, lost_hold_s=2.0)
    scene.bodies["a"] = body_at(-1.0, 0.0)
    run(pipeline, clock, 1.0)
    assert [t.track_id for t in pipeline.snapshot().tracks] == ["p1"]
    scene.bodies["a"] = body_at(0.0, -0.6)    # 1.17 m in one camera period (a clip looping back)
    run(pipeline, clock, 0.3)
    snap = pipeline.snapshot()
    assert [t.track_id for t in snap.tracks] == ["p1", "p2"] and snap.lost_track_ids == ()
    p2 = snap.tracks[1]
    np.testing.assert_allclose(p2.keypoints_cell, body_at(0.0, -0.6), atol=0.01)
    run(pipeline, clock, 0.5)                  # p1 is measured no more: it coasts, its sigma growing
    p1 = pipeline.snapshot().tracks[0]
    assert p1.track_id == "p1" and p1.coast_s > 0.5 and p1.sigma_m > 0.3
    run(pipeline, clock, 0.5)                  # beyond its sigma limit (1 m, ~0.98 s): lost inside the cell
    snap = pipeline.snapshot()
    assert [t.track_id for t in snap.tracks] == ["p2"] and snap.lost_track_ids == ("p1",)


def test_a_jump_a_person_can_make_keeps_the_id_and_the_filter_follows_at_once():
    pipeline, scene, clock, _ = make_pipeline(cameras=CAMERAS[:2])
    scene.bodies["a"] = body_at(-1.0, 0.0)
    run(pipeline, clock, 1.0)
    scene.bodies["a"] = body_at(-0.6, 0.0)    # 0.4 m: within 0.3 m + 3 m/s x 0.125 s
    run(pipeline, clock, 0.13)
    (track,) = pipeline.snapshot().tracks
    assert track.track_id == "p1"
    # The filter restarted at the measurement (no keypoint held at the old place, no velocity spike).
    np.testing.assert_allclose(track.keypoints_cell, body_at(-0.6, 0.0), atol=0.01)
    assert track.keypoint_capture_ns is None
    assert pipeline.snapshot().lost_track_ids == () and pipeline.report()["tracks_started"] == 1


# ---------------------------------------------------------------------------- person detector schedule


def test_the_detector_runs_on_one_camera_per_period_and_a_newcomer_alerts_every_camera():
    pipeline, scene, clock, _ = make_pipeline(detector=True, detect_period_s=1.0)
    scene.bodies["a"] = body_at(-1.0, 0.0)
    pipeline.warm_up()                         # no frame yet: models are built at the first frames
    run(pipeline, clock, 0.5)
    assert [t.track_id for t in pipeline.snapshot().tracks] == ["p1"]
    scene.detector_runs.clear()
    run(pipeline, clock, 4.0)
    # One run per second for the whole rig, each camera in turn (not one per camera per second).
    assert 3 <= len(scene.detector_runs) <= 5, scene.detector_runs
    assert set(scene.detector_runs) == set(CAMERAS) and len(set(scene.detector_runs[:4])) == 4
    scene.detector_runs.clear()
    scene.bodies["b"] = body_at(0.0, -0.6)    # a second worker walks in
    run(pipeline, clock, 1.4)
    assert [t.track_id for t in pipeline.snapshot().tracks] == ["p1", "p2"]
    # The camera whose turn it was found him; each other camera looked at its next frame.
    assert set(scene.detector_runs) == set(CAMERAS) and len(scene.detector_runs) <= 6, scene.detector_runs
    for cam in pipeline.snapshot().cameras:
        assert cam.frames_with_person == cam.frames_processed
    assert pipeline.report()["tracks_started"] == 2



# ---------------------------------------------------------------------------- garbage collector


def test_warm_up_moves_the_long_lived_objects_out_of_the_collector():
    pipeline, scene, clock, _ = make_pipeline()
    scene.bodies["a"] = body_at(-1.0, 0.0)
    gc.unfreeze()                              # (another test may have frozen them already)
    assert gc.get_freeze_count() == 0
    try:
        pipeline.warm_up()
        # A full collection during tracking no longer walks the modules, models and calibrations.
        assert gc.get_freeze_count() > 1000
        run(pipeline, clock, 0.5)
        assert [t.track_id for t in pipeline.snapshot().tracks] == ["p1"]
    finally:
        gc.unfreeze()
