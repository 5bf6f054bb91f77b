"""`xrcell track` on real footage (Pose2Sim Demo_SinglePerson): JSON lines, 2D mode, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safety.errors import PerceptionError
from xr_server.cli import main
from xr_server.track import parse_cam_map, run_track

CLIP = Path(__file__).resolve().parents[2] / "data" / "pose2sim" / "Demo_SinglePerson"
CALIB = CLIP / "calibration" / "Calib.qca.txt"
VIDEOS = [CLIP / "videos" / f"cam0{i}.mp4" for i in (1, 2, 3, 4)]


@pytest.fixture(autouse=True)
def _data():
    if not VIDEOS[0].is_file():
        pytest.fail(f"test data missing: {CLIP}; run `make test` (it fetches the Pose2Sim demo data)")


def test_track_writes_one_json_line_per_frame_time(tmp_path, capsys):
    out, show = tmp_path / "tracks.jsonl", tmp_path / "show.mp4"
    code = main(["track", *map(str, VIDEOS), "--calib", str(CALIB), "--out", str(out), "--show", str(show),
                 "--duration", "2", "--rate", "10"])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 17                                   # the clip is 100 frames at 60 fps: 1.67 s at 10 Hz
    assert [round(d["t"], 3) for d in lines[:3]] == [0.0, 0.1, 0.2]
    ids = set()
    for d in lines:
        assert set(d) == {"t", "people"} and len(d["people"]) == 1
        for p in d["people"]:
            assert set(p) == {"id", "keypoints_cell", "keypoints_2d", "velocity_mps", "sigma_m", "placement"}
            assert p["placement"] == "triangulated"
            ids.add(p["id"])
            assert len(p["keypoints_cell"]) == 33 and all(len(k) == 4 for k in p["keypoints_cell"])
            hips_z = [p["keypoints_cell"][i][2] for i in (23, 24)]
            assert all(0.7 < z < 1.1 for z in hips_z)
            assert len(p["keypoints_2d"]) >= 2 and set(p["keypoints_2d"]) <= {"cam01", "cam02", "cam03", "cam04"}
            for kps in p["keypoints_2d"].values():
                assert len(kps) == 33 and all(len(k) == 3 for k in kps)
                assert 0 <= kps[0][0] <= 1088 and 0 <= kps[0][1] <= 1920      # pixels of the original video
            assert len(p["velocity_mps"]) == 3 and 0.02 <= p["sigma_m"] < 0.5
    assert ids == {"p1"}
    assert show.stat().st_size > 10_000
    err = capsys.readouterr().err
    assert "xrcell track: 4 video(s), 17 frame times (100 frames at 60 fps, every 6), 3D" in err
    assert "xrcell track: done:" in err


def test_track_one_video_without_calibration_is_2d(tmp_path):
    out = tmp_path / "t.jsonl"
    assert main(["track", str(VIDEOS[0]), "--out", str(out), "--duration", "0.5", "--rate", "10"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5
    for d in lines:
        (p,) = d["people"]
        assert p["id"] == "p1" and p["keypoints_cell"] is None and p["velocity_mps"] is None and p["sigma_m"] is None
        assert p["placement"] is None
        assert list(p["keypoints_2d"]) == ["cam01"] and len(p["keypoints_2d"]["cam01"]) == 33


def test_track_one_calibrated_video_places_the_person_on_the_floor(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    # the floor of the Pose2Sim calibration is about 6 cm above its z = 0 (test_floor_real.py)
    assert main(["track", str(VIDEOS[0]), "--calib", str(CALIB), "--floor-z", "0.06", "--out", str(out),
                 "--duration", "0.8", "--rate", "10"]) == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8
    # a track born on the floor (one view) is published from its third update
    assert [d["people"] for d in lines[:2]] == [[], []]
    for d in lines[2:]:
        (p,) = d["people"]
        assert p["id"] == "p1" and p["placement"] == "floor" and list(p["keypoints_2d"]) == ["cam01"]
        hips = [p["keypoints_cell"][i] for i in (23, 24)]
        assert all(0.6 < k[2] < 1.2 for k in hips)
        # the person walks from about (-1.43, 0.0) (demo.yaml): placed within half a metre of it
        assert all(-2.0 < k[0] < -0.9 and -0.5 < k[1] < 0.5 for k in hips)
        assert 0.2 < p["sigma_m"] < 1.5


def test_track_errors(tmp_path, capsys):
    with pytest.raises(PerceptionError, match=r"missing\.mp4: video file not found"):
        run_track([tmp_path / "missing.mp4"])
    with pytest.raises(PerceptionError, match=r"Calib\.qca\.txt: no camera 'front' for video .*cam01\.mp4 "
                                              r"\(has cam01, cam02, cam03, cam04\); use --cam-map cam01=CAMERA"):
        run_track(VIDEOS[:2], calib=CALIB, cam_map={"cam01": "front"})
    with pytest.raises(PerceptionError, match=r"2 videos need --calib \(one calibration entry per camera\)"):
        run_track(VIDEOS[:2])
    with pytest.raises(PerceptionError, match=r"two videos map to the same camera: \['cam02', 'cam02'\]"):
        run_track(VIDEOS[:2], calib=CALIB, cam_map={"cam01": "cam02"})
    with pytest.raises(PerceptionError, match=r"--cam-map: expected STEM=CAMERA, got 'cam01'"):
        parse_cam_map(["cam01"])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(PerceptionError, match=r"junk\.mp4: cannot open video"):
        run_track([junk, VIDEOS[1]], calib=CALIB)
    assert main(["track", str(tmp_path / "missing.mp4")]) == 2
    assert "xrcell: error: " in capsys.readouterr().err
    # The calibration: missing or unreadable, the message names the file (exit code 2).
    assert main(["track", *map(str, VIDEOS[:2]), "--calib", str(tmp_path / "none.qca.txt")]) == 2
    assert f"xrcell: error: {tmp_path / 'none.qca.txt'}: calibration file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.qca.txt"
    bad.write_text("not xml")
    assert main(["track", *map(str, VIDEOS[:2]), "--calib", str(bad)]) == 2
    assert f"xrcell: error: {bad}: not a Qualisys calibration" in capsys.readouterr().err
