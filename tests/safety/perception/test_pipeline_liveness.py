"""The camera liveness a `PerceptionPipeline` snapshot carries is the cameras' own, at publication.

On a loaded machine one pose-estimation step of the tracking process can take hundreds of ms
while its camera threads keep publishing. The safety monitor's camera watchdog reads
`CameraStatus.last_frame_ns`; if it held the newest frame as of the step's START, a slow step
would show every camera stale at once (the failure of the demo on a loaded CI machine: "camera
cam01..cam04 stale: 503 ms" while the cameras were live) and name the wrong input. A slow
tracker is the tracker watchdog's business (the snapshot's own age); a frozen camera must still
show stale. A fake clock and fake sources, the real calibration of the demo's cameras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from content.calibration import read_qca
from safety.perception import PerceptionPipeline

CLIP = Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson"
MS = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000 * MS

    def __call__(self) -> int:
        return self.ns


class LiveCamera:
    """A camera publishing a new frame every 33 ms of the fake clock (a frozen one never again)."""

    def __init__(self, clock: Clock, shape: tuple[int, int]) -> None:
        self.clock, self.frozen_at = clock, None
        self.frame = np.zeros((*shape, 3), np.uint8)
        self.start_ns = clock.ns

    def latest(self):
        now = self.clock.ns if self.frozen_at is None else self.frozen_at
        k = (now - self.start_ns) // (33 * MS)
        return self.frame, self.start_ns + k * 33 * MS, int(k) + 1

    def start(self) -> None: ...
    def stop(self, timeout_s: float = 0.5) -> None: ...


class SlowEstimator:
    """Pose estimation that takes `step_ns` of the fake clock and finds nobody."""

    def __init__(self, clock: Clock, step_ns: int) -> None:
        self.clock, self.step_ns = clock, step_ns

    def estimate(self, image: np.ndarray):
        self.clock.ns += self.step_ns
        return None


def make(step_ns: int):
    if not (CLIP / "calibration" / "Calib.qca.txt").is_file():
        pytest.fail(f"test data missing: {CLIP}; run `make test` (it fetches the Pose2Sim data)")
    calib = read_qca(CLIP / "calibration" / "Calib.qca.txt")
    clock = Clock()
    cams = {}
    for name in ("cam01", "cam02"):
        cal = calib[name].scaled(0.2)
        cams[name] = (LiveCamera(clock, (cal.image_size[1], cal.image_size[0])), cal)
    published: list = []
    pipeline = PerceptionPipeline([(n, src, cal) for n, (src, cal) in cams.items()],
                                  process_rate_hz=8.0, clock=clock, on_publish=published.append,
                                  estimator_factory=lambda: SlowEstimator(clock, step_ns))
    return pipeline, clock, {n: src for n, (src, _) in cams.items()}, published


def test_a_slow_step_publishes_the_cameras_newest_frames_not_those_of_its_start():
    pipeline, clock, cams, published = make(step_ns=450 * MS)
    assert pipeline.step()                  # one frame estimated, 450 ms of the clock
    snap = published[-1]
    assert snap.stamp_ns == clock.ns
    for status in snap.cameras:
        # the camera published every 33 ms during the step: its newest frame is < 33 ms old
        assert 0 <= snap.stamp_ns - status.last_frame_ns < 33 * MS, status
        assert status.frames == cams[status.camera_id].latest()[2]
    # the processed frame is the one taken at the step's start (its data is 450 ms old)
    processed = [s for s in snap.cameras if s.frames_processed == 1]
    assert len(processed) == 1 and snap.stamp_ns - processed[0].last_processed_ns >= 450 * MS


def test_a_frozen_camera_still_shows_stale_at_publication():
    pipeline, clock, cams, published = make(step_ns=20 * MS)
    pipeline.step()
    cams["cam02"].frozen_at = clock.ns      # cam02's stream stops
    for _ in range(40):
        clock.ns += 10 * MS
        pipeline.step()
    snap = published[-1]
    age = {s.camera_id: snap.stamp_ns - s.last_frame_ns for s in snap.cameras}
    assert age["cam01"] < 33 * MS
    assert age["cam02"] >= 400 * MS
