"""Accuracy of the marker registration (`xr_server.marker_alignment`) against known truth, by the
camera's distance from the marker: synthetic frames of marker 7 (15 cm, DICT_4X4_50) rendered at
640x480, 70 degrees across, noise sigma 3 grey levels (tests/xr_server/marker_rig.py), the true
WebXR view pose; 10 frames per registration, 5 viewpoints per distance around the marker. The
registrations are computed by the pure core (`combine`), whatever the marker's size; the server
refuses markers smaller than `MIN_MARKER_SIDE_PX` (``server_accepts_size``).

Prints one JSON object on its last line: ``{"results": [{"distance_m", "side_px", "server_accepts_size", "registrations",
"refused", "origin_error_mm": {"median", "max"}, "yaw_error_deg": {"median", "max"},
"spread_mm": median, "detect_ms": median}]}``.

Run: ``.venv/bin/python bench/marker_alignment.py``
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's packages and tests

from safety.perception.hmi import HmiPose, calibration_from_pose  # noqa: E402
from tests.xr_server.marker_rig import (MARKER, ORIGIN_XR, YAW_RAD, camera_looking_at,  # noqa: E402
                                        render, view_pose_xr)
from xr_server.marker_alignment import (MIN_MARKER_SIDE_PX, MarkerAlignmentError, combine,  # noqa: E402
                                        detect_markers, frame_estimate)

W, H, HFOV_DEG = 640, 480, 70.0
DISTANCES_M = (0.5, 0.7, 1.0, 1.5, 2.0)
VIEWPOINTS = 5
FRAMES = 10


def registration(position, seed: int) -> tuple[object, float, list[float]]:
    rotation = camera_looking_at(MARKER.pose.position, position)
    p, q = view_pose_xr(position, rotation)
    optical = (Rotation.from_quat(q) * Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))).as_quat()
    calibration = calibration_from_pose("hmi", HmiPose(0, tuple(p), tuple(optical), HFOV_DEG, W / H), W, H)
    estimates, sides, detect_ms = [], [], []
    for k in range(FRAMES):
        gray = cv2.cvtColor(render(position, rotation, W, H, HFOV_DEG, seed=seed * 100 + k), cv2.COLOR_BGR2GRAY)
        t0 = time.perf_counter()
        found = detect_markers(gray, [MARKER])
        detect_ms.append((time.perf_counter() - t0) * 1e3)
        if found:
            sides.append(found[0].side_px)
            estimates.append(frame_estimate(found[0], calibration.K, calibration.R, calibration.t))
    try:
        return combine(estimates, FRAMES), float(np.median(sides)) if sides else 0.0, detect_ms
    except MarkerAlignmentError as exc:
        return str(exc), float(np.median(sides)) if sides else 0.0, detect_ms


def main() -> None:
    results = []
    marker = np.array(MARKER.pose.position)
    for distance in DISTANCES_M:
        origin_mm, yaw_deg, spread, sides, detect, refused = [], [], [], [], [], 0
        for v in range(VIEWPOINTS):
            # on a cone 50 degrees from the marker's normal (up), around it
            azimuth = 2 * math.pi * v / VIEWPOINTS
            elevation = math.radians(50)
            position = marker + distance * np.array([math.sin(elevation) * math.cos(azimuth),
                                                     math.sin(elevation) * math.sin(azimuth), math.cos(elevation)])
            outcome, side, ms = registration(position, v)
            sides.append(side)
            detect.extend(ms)
            if isinstance(outcome, str):
                refused += 1
                print(f"{distance} m, viewpoint {v}: refused: {outcome}")
                continue
            origin_mm.append(float(np.linalg.norm(np.array(outcome.origin) - ORIGIN_XR)) * 1e3)
            yaw_deg.append(abs(math.degrees(math.atan2(math.sin(outcome.yaw_rad - YAW_RAD),
                                                       math.cos(outcome.yaw_rad - YAW_RAD)))))
            spread.append(outcome.spread_mm)
        row = {"distance_m": distance, "side_px": round(float(np.median(sides)), 1),
               "server_accepts_size": bool(np.median(sides) >= MIN_MARKER_SIDE_PX),
               "registrations": VIEWPOINTS, "refused": refused,
               "origin_error_mm": {"median": round(float(np.median(origin_mm)), 2),
                                   "max": round(float(np.max(origin_mm)), 2)} if origin_mm else None,
               "yaw_error_deg": {"median": round(float(np.median(yaw_deg)), 3),
                                 "max": round(float(np.max(yaw_deg)), 3)} if yaw_deg else None,
               "spread_mm": round(float(np.median(spread)), 2) if spread else None,
               "detect_ms": round(float(np.median(detect)), 2)}
        print(row)
        results.append(row)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
