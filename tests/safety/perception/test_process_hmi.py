"""HMI frames into the tracking process: `PerceptionProcess.push_frame` hands posed frames to the
child, whose pipeline runs pose estimation on them next to a fixed camera (real MediaPipe, real
footage); the HMI camera is optional in the snapshot, the fixed one is not."""

import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from content.calibration import read_qca
from content.cell import parse_cell
from safety.errors import PerceptionError
from safety.perception.process import CameraSpec, PerceptionProcess

CLIP = Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson"


def glasses_frames(calibration, count: int = 10) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(CLIP / "videos" / "cam01.mp4"))
    frames = []
    w, h = calibration.image_size
    while len(frames) < count:
        ok, image = capture.read()
        assert ok
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        frames.append(cv2.undistort(small, calibration.K, calibration.dist))
    capture.release()
    return frames


def test_pushed_hmi_frames_are_tracked_in_the_child():
    calib = read_qca(CLIP / "calibration" / "Calib.qca.txt")
    glasses = calib["cam01"].scaled(0.25)
    pinhole = replace(glasses, dist=np.zeros(5))
    frames = glasses_frames(glasses)
    process = PerceptionProcess([CameraSpec("cam02", CLIP / "videos" / "cam02.mp4", calib["cam02"].scaled(0.25),
                                            resize=0.25)], process_rate_hz=5.0, hmi_cameras=["glasses"])
    assert process.camera_ids() == ["cam02", "glasses"]
    with pytest.raises(PerceptionError, match=r"'helmet' is not an HMI camera of worker tracking \(has glasses\)"):
        process.push_frame("helmet", frames[0], time.monotonic_ns(), pinhole)
    process.start(timeout_s=120)
    try:
        deadline = time.monotonic() + 60
        status = None
        k = 0
        while time.monotonic() < deadline:
            process.push_frame("glasses", frames[k % len(frames)], time.monotonic_ns(), pinhole)
            k += 1
            time.sleep(0.1)
            snap = process.snapshot()
            if snap is not None:
                status = {c.camera_id: c for c in snap.cameras}
                if status["glasses"].frames_with_person >= 3:
                    break
        assert status is not None
        assert status["glasses"].optional and not status["cam02"].optional
        assert status["glasses"].frames_with_person >= 3, status["glasses"]
        assert process.hmi_frames_sent >= 3 and process.hmi_frames_sent + process.hmi_frames_replaced == k
    finally:
        process.stop(2.0)


def test_a_cell_with_an_hmi_camera_tracks_from_it(tmp_path):
    from xr_server.compose import _tracking

    cell = parse_cell({"name": "lab", "cameras": [
        {"id": "cam02", "video": str(CLIP / "videos" / "cam02.mp4"),
         "calibration": {"file": str(CLIP / "calibration" / "Calib.qca.txt"), "camera": "cam02"}},
        {"id": "glasses", "kind": "hmi", "device": "hl2-0042"}]})
    assert _tracking(cell).camera_ids() == ["cam02", "glasses"]
    only_glasses = parse_cell({"name": "lab", "cameras": [{"id": "glasses", "kind": "hmi", "user": "wendy"}]})
    assert _tracking(only_glasses).camera_ids() == ["glasses"]
