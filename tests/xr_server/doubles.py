"""Test doubles of the XR server tests, at the seams `create_app` takes."""

import cv2
import numpy as np

SECRET = "test-secret-0123456789abcdef"
TWIN = {"v": 1, "t": 0.0, "cell": "lab", "robot": None, "safety": None, "people": [], "cameras": []}


class FakeCameraViews:
    """One camera, `cam01`, with a grey JPEG."""

    def __init__(self):
        _ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
        self.frame = buf.tobytes()

    def ids(self):
        return ["cam01"]

    def jpeg(self, camera_id):
        return self.frame if camera_id == "cam01" else None


class FakeGate:
    """The command gate's counters."""

    def __init__(self, accepted=0, rejected=0):
        self.accepted = accepted
        self.rejected = rejected
