"""Reading Qualisys calibrations, and the projection / triangulation round trip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from content.calibration import CameraCalibration, load_calibration, read_qca
from content.errors import CalibrationError
from safety.perception.triangulation import project_points, triangulate

DATA = Path(__file__).resolve().parents[2] / "data" / "pose2sim"
QCA = DATA / "Demo_SinglePerson" / "calibration" / "Calib.qca.txt"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")


@pytest.fixture(scope="module")
def calibrations() -> dict[str, CameraCalibration]:
    if not QCA.is_file():
        pytest.fail(f"test data missing: {QCA}; run `make test` (it fetches the Pose2Sim demo data)")
    return read_qca(QCA)


def test_reads_all_cameras_in_metres_and_pixels(calibrations):
    assert tuple(calibrations) == CAMERAS
    cam = calibrations["cam01"]
    assert cam.image_size == (1088, 1920)
    np.testing.assert_allclose(cam.K[0, 0], 107599.671875 / 64)
    np.testing.assert_allclose(cam.K[:2, 2], [34110.316406 / 64, 60680.792969 / 64])
    np.testing.assert_allclose(cam.center_world, [1.4602323709, -1.9091590482, 1.8965058524], atol=1e-9)
    np.testing.assert_allclose(cam.dist, [-0.046183, 0.139983, 0.000608, 0.00069, 0.0])


def test_cameras_look_at_the_capture_volume_upright(calibrations):
    for cam in calibrations.values():
        np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(cam.R) == pytest.approx(1.0)
        to_origin = -cam.center_world / np.linalg.norm(cam.center_world)
        assert cam.R[2] @ to_origin > 0.9          # optical axis towards the volume
        assert cam.R[1] @ np.array([0.0, 0.0, 1.0]) < -0.8   # image "down" is world -z (z up)
        assert 1.5 < cam.center_world[2] < 2.5      # mounted above the floor


def test_load_calibration_dispatches_and_rejects_unknown_format(calibrations):
    assert tuple(load_calibration(QCA, "qca")) == CAMERAS
    with pytest.raises(CalibrationError, match=r"Calib\.qca\.txt: unknown calibration format 'toml'"):
        load_calibration(QCA, "toml")


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = QCA.read_text()
    assert old in text
    path = tmp_path / "broken.qca.txt"
    path.write_text(text.replace(old, new, 1))
    return path


def test_missing_attribute_names_file_camera_and_attribute(calibrations, tmp_path):
    path = _broken(tmp_path, 'focalLengthU="107599.671875"', "")
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: camera 'cam01': <intrinsic> has no attribute 'focalLengthU'")):
        read_qca(path)


def test_bad_number_names_attribute(calibrations, tmp_path):
    path = _broken(tmp_path, 'r22="0.05946489349975602"', 'r22="abc"')
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: camera 'cam01': <transform> attribute 'r22' is not a number: 'abc'")):
        read_qca(path)


def test_missing_element_and_bad_rotation(calibrations, tmp_path):
    path = _broken(tmp_path, '<fov_video bottom="1919" left="0" right="1087" top="0"/>', "")
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: camera 'cam01': missing <fov_video> element")):
        read_qca(path)
    path = _broken(tmp_path, 'r11="0.5536380477336265"', 'r11="2.0"')
    with pytest.raises(CalibrationError, match=r"camera 'cam01': <transform> r11\.\.r33 is not a rotation matrix"):
        read_qca(path)


def test_missing_and_non_xml_files(tmp_path):
    with pytest.raises(CalibrationError, match=r"nope\.qca\.txt: calibration file not found"):
        read_qca(tmp_path / "nope.qca.txt")
    junk = tmp_path / "junk.qca.txt"
    junk.write_text("not xml")
    with pytest.raises(CalibrationError, match=r"junk\.qca\.txt: not a Qualisys calibration \(XML error"):
        read_qca(junk)
    empty = tmp_path / "empty.qca.txt"
    empty.write_text("<calibration><cameras/></calibration>")
    with pytest.raises(CalibrationError, match=r"empty\.qca\.txt: no <cameras>/<camera> element"):
        read_qca(empty)


def _skeleton(offset_xy: tuple[float, float]) -> np.ndarray:
    """(33, 3) standing person, metres, feet on z = 0."""
    rng = np.random.default_rng(7)
    pts = np.column_stack([rng.uniform(-0.25, 0.25, 33), rng.uniform(-0.2, 0.2, 33), np.linspace(1.75, 0.0, 33)])
    pts[:, :2] += offset_xy
    return pts


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_projection_triangulation_round_trip(calibrations, scale):
    cams = [calibrations[c].scaled(scale) for c in CAMERAS]
    truth = _skeleton((-1.0, 0.0))
    rng = np.random.default_rng(1)
    observed = np.stack([project_points(c, truth) for c in cams])
    observed += rng.normal(0.0, 1.0 * scale, observed.shape)     # 1 px (full resolution) detector noise
    tri = triangulate(cams, observed, np.ones(observed.shape[:2]))
    assert tri.views_used.all()
    assert np.linalg.norm(tri.points - truth, axis=1).max() < 0.02
    assert np.nanmedian(tri.reprojection_error_px) < 2.0 * scale
