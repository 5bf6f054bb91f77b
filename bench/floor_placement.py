"""Single-view floor placement against 4-view triangulation on Pose2Sim Demo_SinglePerson.

For each camera alone, the person is tracked with `MultiPersonTracker` from that one view
(`placement: floor`) and compared, frame by frame, with the 4-camera triangulation of the same
frames: hip-midpoint and ankle errors (median, p95, metres), the track's sigma_m and the share
of frames in which sigma_m covers the hip error. Run twice: with the floor measured from the
triangulation (`floor_z_m`, see tests/safety/perception/test_floor_real.py) and with the
calibration's z = 0 taken as the floor. Also the torso prior alone (feet hidden).

    PYTHONPATH=$PWD .venv/bin/python bench/floor_placement.py [--model 2]

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:1] = [str(ROOT)]        # the repository first, not bench/

from content.calibration import read_qca  # noqa: E402
from safety.perception import MultiPersonTracker, Pose2D, View, triangulate  # noqa: E402
from safety.perception.floor import FOOT_HEIGHTS_M  # noqa: E402
from tests.safety.perception.footage import estimate_clip  # noqa: E402

CLIP = ROOT / "data" / "pose2sim" / "Demo_SinglePerson"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
HIPS, ANKLES = [23, 24], [27, 28]


def _stats(x: np.ndarray) -> dict:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"median": None, "p95": None}
    return {"median": round(float(np.median(x)), 3), "p95": round(float(np.percentile(x, 95)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=int, default=2)
    args = ap.parse_args()
    calib = {c: cal.scaled(0.5) for c, cal in read_qca(CLIP / "calibration" / "Calib.qca.txt").items()}
    per_time = estimate_clip(CLIP, CAMERAS, model_complexity=args.model, stride=2, resize=0.5)
    ref = []
    for _, people in per_time:
        if not all(len(people[c]) == 1 for c in CAMERAS):
            ref.append(None)
            continue
        kp = np.stack([people[c][0].keypoints_px for c in CAMERAS])
        vis = np.stack([people[c][0].visibility for c in CAMERAS])
        ref.append(triangulate([calib[c] for c in CAMERAS], kp, vis, min_confidence=0.3,
                               max_reprojection_error_px=5.0).points)
    lows = [min(r[i, 2] - FOOT_HEIGHTS_M[i] for i in (29, 30, 31, 32)) for r in ref if r is not None]
    floor_z = float(np.median(lows))
    out: dict = {"floor_z_m": round(floor_z, 3),
                 "reference_foot_z_m": {n: round(float(np.nanmedian([r[i, 2] for r in ref if r is not None])), 3)
                                        for n, i in (("toe", 31), ("heel", 29), ("ankle", 27))}}
    for label, fz, hide_feet in (("floor_measured", floor_z, False), ("floor_z0", 0.0, False),
                                 ("torso_prior", floor_z, True)):
        cams = {}
        for cam in CAMERAS:
            tracker = MultiPersonTracker(floor_z_m=fz)
            hip, ankle, sigma = [], [], []
            for (stamp, people), r in zip(per_time, ref):
                ps = people[cam]
                if hide_feet:
                    ps = tuple(Pose2D(p.keypoints_px, np.where(np.arange(33) >= 25, 0.0, p.visibility)) for p in ps)
                tracker.update([View(cam, calib[cam], stamp, ps)], stamp)
                tracks = [t for t in tracker.tracks() if t.newest_capture_ns == stamp and t.coast_s == 0.0]
                if r is None or len(tracks) != 1:
                    continue
                t = tracks[0]
                hip.append(np.linalg.norm(t.keypoints_cell[HIPS].mean(axis=0) - r[HIPS].mean(axis=0)))
                ankle.append(np.nanmean(np.linalg.norm(t.keypoints_cell[ANKLES] - r[ANKLES], axis=1))
                             if np.isfinite(t.keypoints_cell[ANKLES]).any() else np.nan)
                sigma.append(t.sigma_m)
            h, s = np.array(hip), np.array(sigma)
            cams[cam] = {"frames": len(h), "hip_m": _stats(h), "ankle_m": _stats(np.array(ankle)),
                         "sigma_m": _stats(s), "sigma_covers": round(float(np.mean(h <= s)), 2),
                         "tracks_started": tracker.tracks_started}
        out[label] = cams
    print(json.dumps(out))


if __name__ == "__main__":
    main()
