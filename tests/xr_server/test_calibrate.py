"""`xrcell calibrate` on synthetic but honest images: boards drawn by OpenCV (ChArUco by
`CharucoBoard.generateImage`), seen by a known camera through the homography K [r1 r2 t]
(`cv2.warpPerspective`, bilinear), slightly blurred and noisy; the recovered focal length and
camera position are compared with the truth."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from content.calibration import extrinsics_from_pose, load_camera_calibration, read_opencv
from content.cell import parse_cell
from content.errors import CalibrationError
from xr_server import cli
from xr_server.calibrate import Board, calibrate, calibrate_intrinsics, locate_camera

SIZE = (1280, 960)
K_TRUE = np.array([[1052.0, 0.0, 651.5], [0.0, 1047.0, 468.25], [0.0, 0.0, 1.0]])
PX_PER_SQUARE = 80
MARGIN_SQUARES = 0.5                    # white paper around the pattern

CHARUCO = Board("charuco", (7, 5), 0.06, 0.045, "DICT_5X5_100")
CHESSBOARD = Board("chessboard", (10, 7), 0.04)

# The camera in the cell and the board lying face up on the floor in front of it.
CAMERA_POSITION = np.array([1.3, -0.9, 1.25])
BOARD_POSITION = np.array([0.45, 0.05, 0.0])
BOARD_RPY = (np.pi, 0.0, 0.35)          # face up: board z points down, first row along ~cell +x


def board_image(board: Board) -> tuple[np.ndarray, float]:
    """(image with white margin, pixels per metre) of the board as printed."""
    cols, rows = board.squares
    w, h = cols * PX_PER_SQUARE, rows * PX_PER_SQUARE
    if board.kind == "charuco":
        pattern = board.charuco_board().generateImage((w, h), marginSize=0)
    else:
        ii, jj = np.meshgrid(np.arange(w) // PX_PER_SQUARE, np.arange(h) // PX_PER_SQUARE)
        pattern = np.where((ii + jj) % 2 == 0, 0, 255).astype(np.uint8)    # top-left square black
    m = int(MARGIN_SQUARES * PX_PER_SQUARE)
    return cv2.copyMakeBorder(pattern, m, m, m, m, cv2.BORDER_CONSTANT, value=255), PX_PER_SQUARE / board.square_size_m


def render(board: Board, R_board_to_cam: np.ndarray, t_board_in_cam: np.ndarray, seed: int) -> np.ndarray:
    """The camera's (H, W) uint8 view of the board at the given pose (board frame -> camera)."""
    image, ppm = board_image(board)
    m = MARGIN_SQUARES * PX_PER_SQUARE
    # Board image pixel centre (u, v) -> board-plane point ((u + 0.5 - m) / ppm, (v + 0.5 - m) / ppm).
    to_board = np.array([[1 / ppm, 0, (0.5 - m) / ppm], [0, 1 / ppm, (0.5 - m) / ppm], [0, 0, 1]])
    H = K_TRUE @ np.column_stack([R_board_to_cam[:, 0], R_board_to_cam[:, 1], t_board_in_cam]) @ to_board
    view = cv2.warpPerspective(image, H, SIZE, flags=cv2.INTER_LINEAR, borderValue=90).astype(np.float64)
    view = cv2.GaussianBlur(view, (0, 0), 0.6)
    view += np.random.default_rng(seed).normal(0.0, 2.0, view.shape)
    return np.clip(view, 0, 255).astype(np.uint8)


def look_at(position: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) `cell` -> optical frame of a camera at `position` looking at `target`, image upright."""
    z = (target - position) / np.linalg.norm(target - position)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    R = np.column_stack([x, np.cross(z, x), z]).T
    return R, -R @ position


def intrinsic_views(board: Board, n: int = 9) -> list[tuple[np.ndarray, np.ndarray]]:
    """n board poses in the camera frame: tilted up to 35 degrees, the whole board in view."""
    rng = np.random.default_rng(11)
    cols, rows = board.squares
    s = board.square_size_m
    centre = np.array([cols * s / 2, rows * s / 2, 0.0])
    outline = np.array([[0, 0, 0], [cols * s, 0, 0], [0, rows * s, 0], [cols * s, rows * s, 0]])
    views = []
    while len(views) < n:
        tilt = np.deg2rad(rng.uniform(-35, 35, 2))
        R = cv2.Rodrigues(np.array([tilt[0], tilt[1], rng.uniform(-0.4, 0.4)]))[0]
        depth = rng.uniform(0.75, 1.1)
        t = np.array([rng.uniform(-0.12, 0.12), rng.uniform(-0.08, 0.08), depth]) - R @ centre
        px = (K_TRUE @ (outline @ R.T + t).T).T
        px = px[:, :2] / px[:, 2:]
        if np.all((px > 40) & (px < np.array(SIZE) - 40)):
            views.append((R, t))
    return views


def write_images(tmp_path: Path, board: Board) -> tuple[list[Path], Path]:
    paths = []
    for i, (R, t) in enumerate(intrinsic_views(board), 1):
        path = tmp_path / f"view{i:02d}.png"
        cv2.imwrite(str(path), render(board, R, t, seed=i))
        paths.append(path)
    R_cam, t_cam = look_at(CAMERA_POSITION, BOARD_POSITION + np.array([0.15, -0.1, 0.0]))
    R_cb = extrinsics_from_pose(BOARD_POSITION, rpy=BOARD_RPY)[0].T        # board -> cell
    extrinsic = tmp_path / "on_the_floor.png"
    cv2.imwrite(str(extrinsic), render(board, R_cam @ R_cb, R_cam @ BOARD_POSITION + t_cam, seed=99))
    return paths, extrinsic


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    return float(np.rad2deg(np.linalg.norm(cv2.Rodrigues(Ra @ Rb.T)[0])))


def test_charuco_through_the_cli_recovers_focal_length_and_camera_position(tmp_path, capsys):
    images, extrinsic = write_images(tmp_path, CHARUCO)
    cell_dir = tmp_path / "cells"
    cell_dir.mkdir()
    code = cli.main(["calibrate", "--camera", "cam05", "--board", "charuco", "--squares", "7x5",
                     "--square-size", "0.06", "--marker-size", "0.045", "--dictionary", "DICT_5X5_100",
                     "--images", *map(str, images), "--extrinsic-image", str(extrinsic),
                     "--board-position", *map(str, BOARD_POSITION), "--board-rpy", *map(str, BOARD_RPY),
                     "--video", "rtsp://10.0.0.5/stream1", "--out", str(tmp_path / "calib" / "cam05.yaml"),
                     "--block", str(cell_dir / "cam05_block.yaml"), "--cell-dir", str(cell_dir)])
    err = capsys.readouterr().err
    assert code == 0, err
    for i, path in enumerate(images, 1):
        assert re.search(rf"\[{i}/{len(images)}\] {path.name}: \d+ corners", err)

    cam = read_opencv(tmp_path / "calib" / "cam05.yaml")["cam05"]
    assert cam.image_size == SIZE
    assert abs(cam.K[0, 0] / K_TRUE[0, 0] - 1) < 0.01 and abs(cam.K[1, 1] / K_TRUE[1, 1] - 1) < 0.01
    assert np.linalg.norm(cam.center_world - CAMERA_POSITION) < 0.01

    block = yaml.safe_load((cell_dir / "cam05_block.yaml").read_text())
    assert block[0]["calibration"] == {"format": "opencv", "file": "../calib/cam05.yaml", "camera": "cam05"}
    cell = parse_cell({"name": "lab", "cameras": block}, base_dir=cell_dir)
    assert cell.cameras[0].video == "rtsp://10.0.0.5/stream1"       # a stream, not a file path
    from_cell = load_camera_calibration(cell.cameras[0].calibration)
    assert np.linalg.norm(from_cell.center_world - CAMERA_POSITION) < 0.01
    R_true, _ = look_at(CAMERA_POSITION, BOARD_POSITION + np.array([0.15, -0.1, 0.0]))
    assert rotation_angle_deg(from_cell.R, R_true) < 0.5


def test_chessboard_recovers_focal_length_and_camera_position(tmp_path):
    images, extrinsic = write_images(tmp_path, CHESSBOARD)
    logged: list[str] = []
    cam = calibrate(CHESSBOARD, images, extrinsic, BOARD_POSITION, board_rpy=BOARD_RPY, camera="cam06",
                    video="videos/cam06.mp4", out=tmp_path / "cam06.xml", block_out=tmp_path / "block.yaml",
                    cell_dir=tmp_path, log=logged.append)
    assert abs(cam.K[0, 0] / K_TRUE[0, 0] - 1) < 0.01 and abs(cam.K[1, 1] / K_TRUE[1, 1] - 1) < 0.01
    assert np.linalg.norm(cam.center_world - CAMERA_POSITION) < 0.01
    assert [line.split("] ")[1].split(":")[0] for line in logged if "] " in line] == [p.name for p in images]
    back = read_opencv(tmp_path / "cam06.xml")["cam06"]
    np.testing.assert_allclose(back.center_world, cam.center_world, atol=1e-9)


def test_a_missing_board_names_the_image(tmp_path):
    images, _ = write_images(tmp_path, CHARUCO)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full(SIZE[::-1], 128, np.uint8))
    with pytest.raises(CalibrationError, match=re.escape(f"{blank}: board not found (charuco 7x5 squares of 60 mm)")):
        calibrate_intrinsics(CHARUCO, [*images[:3], blank], log=lambda _: None)
    with pytest.raises(CalibrationError, match=re.escape(f"{blank}: board not found (chessboard 10x7 squares of 40 mm)")):
        locate_camera(CHESSBOARD, blank, K_TRUE, np.zeros(5), np.eye(3), np.zeros(3), log=lambda _: None)


def test_cli_reports_a_missing_board_and_exits_2(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640), 128, np.uint8))
    code = cli.main(["calibrate", "--camera", "cam01", "--board", "chessboard", "--squares", "10x7",
                     "--square-size", "0.04", "--images", str(blank), str(blank), str(blank),
                     "--extrinsic-image", str(blank), "--board-position", "0", "0", "0",
                     "--board-quaternion", "0", "0", "0", "1", "--video", "v.mp4", "--out", str(tmp_path / "c.yaml")])
    assert code == 2
    assert f"xrcell: error: {blank}: board not found (chessboard 10x7 squares of 40 mm)" in capsys.readouterr().err


def test_input_errors(tmp_path):
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.full((480, 640), 128, np.uint8))
    big = tmp_path / "big.png"
    quiet = {"log": lambda _: None}
    with pytest.raises(CalibrationError, match=r"^intrinsics need at least 3 images of the board, got 2$"):
        calibrate_intrinsics(CHARUCO, [small, small], **quiet)
    cv2.imwrite(str(big), render(CHARUCO, *intrinsic_views(CHARUCO, 1)[0], seed=1))
    with pytest.raises(CalibrationError, match=re.escape(f"{small}: image is 640x480, the first image is 1280x960; "
                                                         "all images must have the camera's resolution")):
        calibrate_intrinsics(CHARUCO, [big, small, big], **quiet)
    with pytest.raises(CalibrationError, match=re.escape(f"{tmp_path / 'nope.png'}: cannot read image")):
        calibrate_intrinsics(CHARUCO, [tmp_path / "nope.png"] * 3, **quiet)
    with pytest.raises(CalibrationError, match=r"^board: a chessboard of 9x7 squares looks the same after a half turn"):
        locate_camera(Board("chessboard", (9, 7), 0.04), small, K_TRUE, np.zeros(5), np.eye(3), np.zeros(3), **quiet)
    with pytest.raises(CalibrationError, match=r"^board pose: quaternion must not be zero$"):
        calibrate(CHARUCO, [small] * 3, small, [0, 0, 0], board_quaternion_xyzw=[0, 0, 0, 0], camera="c",
                  video="v.mp4", out=tmp_path / "c.yaml", **quiet)
    with pytest.raises(CalibrationError, match=r"^camera block: id: String should match pattern"):
        calibrate(CHARUCO, [small] * 3, small, [0, 0, 0], board_rpy=[0, 0, 0], camera="cam 1",
                  video="v.mp4", out=tmp_path / "c.yaml", **quiet)


@pytest.mark.parametrize("args, message", [
    (("charuco", (7, 5), 0.06, 0.06), "board: ChArUco marker size must be > 0 and below the square size 0.06 m, got 0.06"),
    (("charuco", (7, 5), 0.06, 0.04, "DICT_9X9"), "board: unknown ArUco dictionary 'DICT_9X9' (e.g. DICT_5X5_100)"),
    (("chessboard", (2, 2), 0.04), "board: 2x2 squares is too small (at least 3x2)"),
    (("chessboard", (10, 7), 0.0), "board: square size must be > 0 m, got 0.0"),
    (("dots", (10, 7), 0.04), "board: unknown kind 'dots' (known: chessboard, charuco)"),
])
def test_board_errors(args, message):
    with pytest.raises(CalibrationError, match=re.escape(message)):
        Board(*args)
