"""OpenCV FileStorage, Pose2Sim TOML and ROS camera_info calibrations: round trips compared by
their projections, the Pose2Sim reader against the Qualisys reader on the real footage's file,
the camera pose of the cell file, and every error message."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from content.calibration import (
    CameraCalibration,
    extrinsics_from_pose,
    load_calibration,
    load_camera_calibration,
    pose_from_extrinsics,
    read_camera_info,
    read_opencv,
    read_pose2sim_toml,
    read_qca,
    write_opencv,
)
from content.cell import parse_cell
from content.errors import CalibrationError, CellDescriptionError

QCA = Path(__file__).resolve().parents[2] / "data" / "pose2sim" / "Demo_SinglePerson" / "calibration" / "Calib.qca.txt"


def project(cam: CameraCalibration, points: np.ndarray) -> np.ndarray:
    """(N, 2) pixels of (N, 3) `cell` points, with distortion (cv2.projectPoints)."""
    px, _ = cv2.projectPoints(points.reshape(-1, 1, 3), cv2.Rodrigues(cam.R)[0], cam.t, cam.K, cam.dist)
    return px.reshape(-1, 2)


def points_in_front(cam: CameraCalibration, n: int = 60, seed: int = 3) -> np.ndarray:
    """(n, 3) `cell` points 1.5-4 m in front of the camera, spread over its image."""
    rng = np.random.default_rng(seed)
    w, h = cam.image_size
    uv = rng.uniform([0.05 * w, 0.05 * h], [0.95 * w, 0.95 * h], (n, 2))
    rays = np.linalg.solve(cam.K, np.column_stack([uv, np.ones(n)]).T).T
    x_cam = rays * rng.uniform(1.5, 4.0, (n, 1))
    return (x_cam - cam.t) @ cam.R            # R^T (x_cam - t), row-wise


@pytest.fixture()
def truth() -> CameraCalibration:
    """A camera 2.5 m up, looking down at the cell origin, with real-looking distortion."""
    R, t = extrinsics_from_pose([2.0, -1.5, 2.5], rpy=[-2.2, 0.1, 2.4])
    K = np.array([[1412.5, 0.0, 955.25], [0.0, 1409.75, 541.5], [0.0, 0.0, 1.0]])
    return CameraCalibration("cam07", (1920, 1080), K, np.array([-0.21, 0.09, 0.0012, -0.0007, -0.015]), R, t)


def assert_same_projections(a: CameraCalibration, b: CameraCalibration, tol_px: float = 1e-6) -> None:
    pts = points_in_front(b)
    assert a.image_size == b.image_size
    assert np.abs(project(a, pts) - project(b, pts)).max() < tol_px


# -- Pose2Sim TOML equals Qualisys on the real footage's calibration --------------------------------

def _pose2sim_toml_from_qca(qca: Path, camera: str) -> str:
    """One camera of a .qca.txt as Pose2Sim writes it (Pose2Sim.calibration.calib_qca_fun and
    toml_write: r11..r33 read by column, world_to_camera_persp, rotate_cam(ang_x=pi),
    Rodrigues), computed here from the XML attributes, independently of `read_qca`. The
    distortion coefficients are written as the .qca.txt gives them (Pose2Sim's converter also
    divides them by 64, which `read_qca`'s docstring explains it does not do)."""
    cam = next(c for c in ET.parse(qca).getroot().findall("cameras/camera") if c.get("serial") == camera)
    fov, intr, tr = cam.find("fov_video"), cam.find("intrinsic"), cam.find("transform")
    f = lambda el, a: float(el.get(a))
    w, h = f(fov, "right") - f(fov, "left") + 1, f(fov, "bottom") - f(fov, "top") + 1
    fu, fv = f(intr, "focalLengthU") / 64, f(intr, "focalLengthV") / 64
    cu, cv = f(intr, "centerPointU") / 64 - f(fov, "left"), f(intr, "centerPointV") / 64 - f(fov, "top")
    dist = [f(intr, "radialDistortion1"), f(intr, "radialDistortion2"),
            f(intr, "tangentalDistortion1"), f(intr, "tangentalDistortion2")]
    r = np.array([f(tr, f"r{i}{j}") for i in (1, 2, 3) for j in (1, 2, 3)]).reshape(3, 3).T
    T = np.array([f(tr, a) for a in ("x", "y", "z")]) / 1000
    r, T = r.T, -r.T @ T                                  # world_to_camera_persp
    rx = np.array([[1, 0, 0], [0, np.cos(np.pi), -np.sin(np.pi)], [0, np.sin(np.pi), np.cos(np.pi)]])
    r, T = rx @ r, rx @ T                                 # rotate_cam(ang_x=pi)
    rod = cv2.Rodrigues(r)[0].ravel()
    return (f'[{camera}]\nname = "{camera}"\nsize = [ {w}, {h}]\n'
            f"matrix = [ [ {fu}, 0.0, {cu}], [ 0.0, {fv}, {cv}], [ 0.0, 0.0, 1.0]]\n"
            f"distortions = [ {dist[0]}, {dist[1]}, {dist[2]}, {dist[3]}]\n"
            f"rotation = [ {rod[0]}, {rod[1]}, {rod[2]}]\ntranslation = [ {T[0]}, {T[1]}, {T[2]}]\n"
            "fisheye = false\n\n[metadata]\nadjusted = false\nerror = 0.0\n")


def test_pose2sim_toml_of_the_real_calibration_projects_like_the_qca_reader(tmp_path):
    if not QCA.is_file():
        pytest.fail(f"test data missing: {QCA}; run `make test` (it fetches the Pose2Sim demo data)")
    path = tmp_path / "Calib.toml"
    path.write_text(_pose2sim_toml_from_qca(QCA, "cam02"))
    from_toml = read_pose2sim_toml(path)
    assert tuple(from_toml) == ("cam02",)
    qca = read_qca(QCA)["cam02"]
    pts = np.stack(np.meshgrid(np.linspace(-2, 1, 7), np.linspace(-1, 1, 5), np.linspace(0, 1.8, 4)), -1).reshape(-1, 3)
    diff = np.linalg.norm(project(from_toml["cam02"], pts) - project(qca, pts), axis=1)
    assert diff.max() < 0.5
    assert from_toml["cam02"].image_size == qca.image_size == (1088, 1920)
    assert tuple(load_calibration(path, "pose2sim")) == ("cam02",)


def test_pose2sim_round_trip_skips_non_camera_tables(tmp_path, truth):
    rod = cv2.Rodrigues(truth.R)[0].ravel().tolist()
    path = tmp_path / "Calib_scene.toml"
    path.write_text(f'[checkerboard]\ncorners_nb = [4, 7]\n\n[int_cam07_img]\nname = "cam07"\nsize = [ 1920.0, 1080.0]\n'
                    f"matrix = {truth.K.tolist()}\ndistortions = {truth.dist.tolist()}\nrotation = {rod}\n"
                    f"translation = {truth.t.tolist()}\nfisheye = false\n\n[metadata]\nadjusted = false\n")
    cams = read_pose2sim_toml(path)
    assert tuple(cams) == ("cam07",)
    assert_same_projections(cams["cam07"], truth)


# -- OpenCV FileStorage -----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".yaml", ".xml", ".json"])
@pytest.mark.parametrize("keys", [
    {"K": "camera_matrix", "D": "distortion_coefficients", "rot": "rvec", "trans": "tvec", "size": "wh"},
    {"K": "K", "D": "D", "rot": "R", "trans": "T", "size": "wh"},
    {"K": "cameraMatrix", "D": "dist_coeffs", "rot": "rvec", "trans": "T", "size": "cameraResolution"},
])
def test_opencv_filestorage_round_trip(tmp_path, truth, suffix, keys):
    path = tmp_path / f"cam07{suffix}"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.write(keys["K"], truth.K)
    fs.write(keys["D"], truth.dist.reshape(-1, 1))
    if keys["size"] == "wh":
        fs.write("image_width", 1920)
        fs.write("image_height", 1080)
    else:
        fs.write("cameraResolution", np.array([[1920, 1080]], np.int32))
    fs.write(keys["rot"], cv2.Rodrigues(truth.R)[0] if keys["rot"] == "rvec" else truth.R)
    fs.write(keys["trans"], truth.t.reshape(3, 1))
    fs.release()
    cams = read_opencv(path)
    assert tuple(cams) == ("cam07",)                      # no camera_name: the file name
    assert_same_projections(cams["cam07"], truth)


@pytest.mark.parametrize("suffix", [".yaml", ".xml"])
def test_write_opencv_round_trip_with_eight_coefficients(tmp_path, truth, suffix):
    cam = CameraCalibration("left", truth.image_size, truth.K, np.r_[truth.dist, 0.01, -0.002, 0.0005],
                            truth.R, truth.t)
    path = tmp_path / f"calib{suffix}"
    write_opencv(path, cam, comments=("written by a test",))
    back = load_calibration(path, "opencv")["left"]
    assert back.dist.shape == (8,)
    assert_same_projections(back, cam)


def test_opencv_plain_sequences_and_pose_from_the_cell_file(tmp_path, truth):
    path = tmp_path / "intrinsics.yaml"
    path.write_text("%YAML:1.0\n---\ncamera_name: cam07\nimage_width: 1920\nimage_height: 1080\n"
                    f"K: {truth.K.ravel().tolist()}\nD: {truth.dist[:4].tolist()}\n")
    position, quat = pose_from_extrinsics(truth.R, truth.t)
    cam = read_opencv(path, extrinsics=extrinsics_from_pose(position, quaternion_xyzw=quat))["cam07"]
    assert cam.dist.tolist() == truth.dist[:4].tolist() + [0.0]
    no_k3 = CameraCalibration("cam07", truth.image_size, truth.K, np.r_[truth.dist[:4], 0.0], truth.R, truth.t)
    assert_same_projections(cam, no_k3)


# -- ROS camera_info and the cell file's camera pose ------------------------------------------------

def _camera_info(truth: CameraCalibration, **changes) -> dict:
    info = {"image_width": truth.image_size[0], "image_height": truth.image_size[1], "camera_name": "cam07",
            "camera_matrix": {"rows": 3, "cols": 3, "data": truth.K.ravel().tolist()},
            "distortion_model": "plumb_bob",
            "distortion_coefficients": {"rows": 1, "cols": 5, "data": truth.dist.tolist()},
            "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).ravel().tolist()},
            "projection_matrix": {"rows": 3, "cols": 4, "data": np.hstack([truth.K, np.zeros((3, 1))]).ravel().tolist()}}
    info.update(changes)
    return info


def test_camera_info_round_trip_through_the_cell_file_pose(tmp_path, truth):
    (tmp_path / "cam07.yaml").write_text(yaml.safe_dump(_camera_info(truth)))
    position, quat = pose_from_extrinsics(truth.R, truth.t)
    for orientation in ({"quaternion": quat.tolist()}, {"rpy": [-2.2, 0.1, 2.4]}):
        cell = parse_cell({"name": "lab", "cameras": [{
            "id": "cam07", "video": "cam07.mp4",
            "calibration": {"format": "camera_info", "file": "cam07.yaml", "camera": "cam07",
                            "pose": {"position": position.tolist(), **orientation}}}]}, base_dir=tmp_path)
        assert_same_projections(load_camera_calibration(cell.cameras[0].calibration), truth, tol_px=1e-6)


def test_camera_pose_is_the_rep103_optical_frame(tmp_path, truth):
    """Camera 2 m up at the origin, optical axis along cell +x, image upright: a point ahead is at
    the principal point, a point to the cell's left (+y) is left in the image, a point above (+z)
    is up in the image."""
    R, t = extrinsics_from_pose([0.0, 0.0, 2.0], quaternion_xyzw=[-0.5, 0.5, -0.5, 0.5])
    np.testing.assert_allclose(R, extrinsics_from_pose([0, 0, 2], rpy=[-np.pi / 2, 0, -np.pi / 2])[0], atol=1e-12)
    cam = CameraCalibration("c", (1920, 1080), truth.K, np.zeros(5), R, t)
    ahead, left, above = project(cam, np.array([[3.0, 0.0, 2.0], [3.0, 0.5, 2.0], [3.0, 0.0, 2.5]]))
    np.testing.assert_allclose(ahead, truth.K[:2, 2], atol=1e-9)
    assert left[0] < ahead[0] - 100 and abs(left[1] - ahead[1]) < 1e-6
    assert above[1] < ahead[1] - 100 and abs(above[0] - ahead[0]) < 1e-6


def test_camera_info_rational_polynomial(tmp_path, truth):
    eight = np.r_[truth.dist, 0.01, -0.002, 0.0005]
    info = _camera_info(truth, distortion_model="rational_polynomial",
                        distortion_coefficients={"rows": 1, "cols": 8, "data": eight.tolist()})
    del info["camera_name"]
    path = tmp_path / "head_camera.yaml"
    path.write_text(yaml.safe_dump(info))
    cam = read_camera_info(path, extrinsics=(truth.R, truth.t))["head_camera"]
    assert_same_projections(cam, CameraCalibration("x", truth.image_size, truth.K, eight, truth.R, truth.t))


# -- error messages ---------------------------------------------------------------------------------

def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _fs(tmp_path: Path, name: str, **values) -> Path:
    path = tmp_path / name
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    for key, value in values.items():
        fs.write(key, value)
    fs.release()
    return path


GOOD_FS = {"camera_name": "cam07", "image_width": 640, "image_height": 480,
           "camera_matrix": np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), "D": np.zeros((1, 5)),
           "rvec": np.zeros((3, 1)), "tvec": np.zeros((3, 1))}


@pytest.mark.parametrize("change, message", [
    ({"camera_matrix": None}, "camera 'cam07': no camera matrix (one of camera_matrix, cameraMatrix, K)"),
    ({"K": np.eye(3)}, "camera 'cam07': both 'camera_matrix' and 'K' are given; keep one"),
    ({"D": None}, ("camera 'cam07': no distortion coefficients (one of distortion_coefficients, dist_coeffs, "
                  "distCoeffs, D)")),
    ({"D": np.zeros((1, 6))}, "camera 'cam07': D must have 4 or 5 or 8 or 12 or 14 numbers, got 6"),
    ({"image_height": None}, "camera 'cam07': no image_height (or cameraResolution)"),
    ({"image_width": -640}, ("camera 'cam07': image_width/image_height must be whole numbers of pixels > 0, "
                            "got [-640.0, 480.0]")),
    ({"tvec": None}, "camera 'cam07': rvec is given without tvec or T"),
    ({"rvec": None, "R": np.full((3, 3), 0.5)}, "camera 'cam07': R is not a rotation matrix"),
    ({"camera_matrix": np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 2]])},
     "camera 'cam07': camera_matrix is not a camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0"),
    ({"tvec": np.array([[0.0], [np.inf], [0.0]])}, "camera 'cam07': tvec has a value that is not finite"),
    ({"rvec": None, "tvec": None}, ("camera 'cam07': no extrinsics: the file has no rvec/tvec or R/T; give the "
                                   "camera's pose in the cell file (cameras[].calibration.pose)")),
    ({"camera_matrix": "fx"}, "camera 'cam07': camera_matrix must be numbers, got 'fx'"),
])
def test_opencv_errors_name_file_camera_and_key(tmp_path, change, message):
    values = {k: v for k, v in {**GOOD_FS, **change}.items() if v is not None}
    path = _fs(tmp_path, "bad.yaml", **values)
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: {message}")):
        read_opencv(path)


def test_opencv_file_errors(tmp_path):
    with pytest.raises(CalibrationError, match=r"nope\.yaml: calibration file not found"):
        read_opencv(tmp_path / "nope.yaml")
    with pytest.raises(CalibrationError, match=r"junk\.yaml: not an OpenCV FileStorage file \(YAML, XML or JSON\): "
                                               r"\(-5:Bad argument\) Input file is invalid in function 'open'$"):
        read_opencv(_write(tmp_path, "junk.yaml", "garbage: ["))
    with pytest.raises(CalibrationError, match=r"words\.txt: not an OpenCV FileStorage file \(YAML, XML or JSON\)"):
        read_opencv(_write(tmp_path, "words.txt", "hello world"))
    path = _write(tmp_path, "map.yaml", "%YAML:1.0\n---\nK: {fx: 500}\n")
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: camera 'map': K is a map but not an opencv-matrix")):
        read_opencv(path)
    path = _fs(tmp_path, "both.yaml", **GOOD_FS)
    with pytest.raises(CalibrationError, match=re.escape(
            f"{path}: camera 'cam07': extrinsics given twice, by the file (rvec/tvec or R/T) and by the cell "
            "file's calibration.pose; keep one")):
        read_opencv(path, extrinsics=(np.eye(3), np.zeros(3)))


CAMERA_TOML = ('[cam01]\nname = "cam01"\nsize = [ 640.0, 480.0]\nmatrix = [ [ 500.0, 0.0, 320.0], '
               "[ 0.0, 500.0, 240.0], [ 0.0, 0.0, 1.0]]\ndistortions = [ 0.0, 0.0, 0.0, 0.0]\n"
               "rotation = [ 0.0, 0.0, 0.0]\ntranslation = [ 0.0, 0.0, 3.0]\nfisheye = false\n")


@pytest.mark.parametrize("old, new, message", [
    ("translation = [ 0.0, 0.0, 3.0]\n", "", "camera 'cam01': missing field 'translation'"),
    ("fisheye = false", "fisheye = true", ("camera 'cam01': fisheye = true: the fisheye model is not supported; "
                                          "calibrate this camera with the pinhole model")),
    ("fisheye = false", 'fisheye = "no"', "camera 'cam01': fisheye must be true or false, got 'no'"),
    ('name = "cam01"', "name = 7", "camera 'cam01': name must be a non-empty string, got 7"),
    ("size = [ 640.0, 480.0]", "size = [ 640.5, 480.0]", "camera 'cam01': size must be whole numbers of pixels > 0"),
    ("rotation = [ 0.0, 0.0, 0.0]", "rotation = [ 0.0, 0.0]", "camera 'cam01': rotation must have 3 numbers, got 2"),
    ("[ 0.0, 500.0, 240.0]", '[ 0.0, "x", 240.0]', "camera 'cam01': matrix must be numbers"),
])
def test_pose2sim_errors_name_file_camera_and_field(tmp_path, old, new, message):
    path = _write(tmp_path, "Calib.toml", CAMERA_TOML.replace(old, new, 1))
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: {message}")):
        read_pose2sim_toml(path)


def test_pose2sim_file_errors(tmp_path):
    with pytest.raises(CalibrationError, match=r"nope\.toml: calibration file not found"):
        read_pose2sim_toml(tmp_path / "nope.toml")
    with pytest.raises(CalibrationError, match=r"bad\.toml: not a Pose2Sim calibration \(TOML error: "):
        read_pose2sim_toml(_write(tmp_path, "bad.toml", "[cam01\n"))
    with pytest.raises(CalibrationError, match=r"meta\.toml: no camera table \(a \[name\] table with size, matrix"):
        read_pose2sim_toml(_write(tmp_path, "meta.toml", "[metadata]\nadjusted = false\n"))
    path = _write(tmp_path, "twice.toml", CAMERA_TOML + CAMERA_TOML.replace("[cam01]", "[cam01_bis]"))
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: camera 'cam01' appears twice")):
        read_pose2sim_toml(path)
    path = _write(tmp_path, "ok.toml", CAMERA_TOML)
    with pytest.raises(CalibrationError, match=r"ok\.toml: camera 'cam01': extrinsics given twice, by the file "
                                               r"\(rotation/translation\)"):
        read_pose2sim_toml(path, extrinsics=(np.eye(3), np.zeros(3)))


@pytest.mark.parametrize("change, message", [
    ({"image_width": None}, "camera 'cam07': missing field 'image_width'"),
    ({"camera_matrix": None}, "camera 'cam07': missing field 'camera_matrix'"),
    ({"camera_matrix": [500, 0, 320]}, "camera 'cam07': camera_matrix must be a mapping with rows, cols and data"),
    ({"camera_matrix": {"rows": 3, "cols": 4, "data": [0] * 12}},
     "camera 'cam07': camera_matrix must be 3 x 3, got rows 3, cols 4"),
    ({"camera_matrix": {"rows": 3, "cols": 3, "data": [500, 0, 320]}},
     "camera 'cam07': camera_matrix.data must have 9 numbers, got 3"),
    ({"distortion_model": "equidistant"},
     "camera 'cam07': distortion_model 'equidistant' is not supported (known: plumb_bob, rational_polynomial)"),
    ({"distortion_coefficients": {"rows": 1, "cols": 8, "data": [0] * 8}},
     "camera 'cam07': distortion_coefficients must be 1 x 5, got rows 1, cols 8"),
    ({"camera_name": ["a"]}, "camera_name must be a string, got ['a']"),
])
def test_camera_info_errors_name_file_camera_and_field(tmp_path, truth, change, message):
    info = {k: v for k, v in _camera_info(truth, **change).items() if v is not None}
    path = _write(tmp_path, "cam07.yaml", yaml.safe_dump(info))
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: {message}")):
        read_camera_info(path, extrinsics=(truth.R, truth.t))


def test_camera_info_file_errors_and_missing_extrinsics(tmp_path, truth):
    with pytest.raises(CalibrationError, match=r"nope\.yaml: calibration file not found"):
        read_camera_info(tmp_path / "nope.yaml")
    with pytest.raises(CalibrationError, match=r"bad\.yaml: not a camera_info YAML \(YAML error: "):
        read_camera_info(_write(tmp_path, "bad.yaml", "a: [\n"))
    with pytest.raises(CalibrationError, match=r"list\.yaml: not a camera_info YAML: expected a mapping, got list"):
        read_camera_info(_write(tmp_path, "list.yaml", "- 1\n"))
    path = _write(tmp_path, "cam07.yaml", yaml.safe_dump(_camera_info(truth)))
    with pytest.raises(CalibrationError, match=re.escape(
            f"{path}: camera 'cam07': no extrinsics: the file has no extrinsics (camera_info holds intrinsics "
            "only); give the camera's pose in the cell file (cameras[].calibration.pose)")):
        load_calibration(path, "camera_info")


def test_load_errors(tmp_path, truth):
    with pytest.raises(CalibrationError, match=r"x\.ini: unknown calibration format 'ini' \(known: qca, opencv, "
                                               r"pose2sim, camera_info\)"):
        load_calibration(tmp_path / "x.ini", "ini")
    with pytest.raises(CalibrationError, match=r"Calib\.qca\.txt: extrinsics given twice, by the file \(<transform>\)"):
        load_calibration(QCA, "qca", extrinsics=(truth.R, truth.t))
    path = _write(tmp_path, "cam07.yaml", yaml.safe_dump(_camera_info(truth)))
    cell = parse_cell({"name": "lab", "cameras": [{
        "id": "c", "video": "c.mp4", "calibration": {"format": "camera_info", "file": "cam07.yaml", "camera": "cam08",
                                                     "pose": {"position": [0, 0, 2], "rpy": [0, 0, 0]}}}]},
        base_dir=tmp_path)
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: no camera 'cam08' (cameras: cam07)")):
        load_camera_calibration(cell.cameras[0].calibration)


@pytest.mark.parametrize("calibration, message", [
    ({"format": "camera_info"}, ("cameras[0].calibration: Value error, format camera_info holds intrinsics only: "
                                "give the camera's pose")),
    ({"format": "qca", "pose": {"position": [0, 0, 2], "rpy": [0, 0, 0]}},
     "cameras[0].calibration: Value error, format qca gives the extrinsics: remove pose"),
    ({"format": "opencv", "pose": {"position": [0, 0, 2]}},
     "cameras[0].calibration.pose: Value error, give exactly one of quaternion (x, y, z, w) or rpy (radians)"),
    ({"format": "opencv", "pose": {"position": [0, 0, 2], "quaternion": [0, 0, 0, 0]}},
     "cameras[0].calibration.pose: Value error, quaternion must not be zero"),
    ({"format": "kalibr"}, "cameras[0].calibration.format: Input should be 'qca', 'opencv', 'pose2sim' or 'camera_info'"),
])
def test_cell_file_calibration_block_errors(calibration, message):
    data = {"name": "lab", "cameras": [{"id": "c", "video": "c.mp4",
                                        "calibration": {"file": "c.yaml", "camera": "c", **calibration}}]}
    with pytest.raises(CellDescriptionError, match=re.escape(f"cell.yaml: {message}")):
        parse_cell(data, source="cell.yaml")
