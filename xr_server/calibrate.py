"""`xrcell calibrate`: a camera's intrinsics from images of a chessboard or ChArUco board, its
extrinsics from one image of a board placed at a known pose in the cell; writes an OpenCV
calibration file and the cell file's camera block.

Board frame (both kinds): origin at the outer corner of the board's first square (the
top-left corner of the image `cv2.aruco.CharucoBoard.generateImage` draws, the top-left
square being black on a chessboard), x along the first row of squares, y down the columns,
z = x × y into the board (out of its back). Object points are the inner corners: a
chessboard's at ((i + 1) s, (j + 1) s, 0), as `CharucoBoard.getChessboardCorners` gives them.
For example a board lying face up on the floor with its first row along cell +x has the
orientation rpy (pi, 0, 0) (its y points along cell -y, its z down).

Formulas: intrinsics by Zhang's method (`cv2.calibrateCamera`); the board's pose in the
camera by `cv2.solvePnP` (IPPE for planar targets, then Levenberg-Marquardt refinement);
with the board's pose in the cell (R_cb, p_cb) and its pose in the camera (R_pnp, t_pnp) the
camera's extrinsics are R = R_pnp R_cbᵀ and t = t_pnp - R p_cb.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from content.calibration import CameraCalibration, extrinsics_from_pose, write_opencv
from content.errors import CalibrationError

#: Fewest images with a board that `calibrate_intrinsics` accepts.
MIN_INTRINSIC_VIEWS = 3
#: Fewest ChArUco corners in one view for it to count as found.
MIN_CHARUCO_CORNERS = 6

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Board:
    """A calibration target.

    Attributes:
        kind: "chessboard" or "charuco".
        squares: (columns, rows) of squares (a chessboard of 10 x 7 squares has 9 x 6 inner corners).
        square_size_m: side of a square, metres.
        marker_size_m: ChArUco marker side, metres (< square_size_m); unused for a chessboard.
        dictionary: ChArUco ArUco dictionary, a `cv2.aruco` name such as "DICT_5X5_100".
    """

    kind: Literal["chessboard", "charuco"]
    squares: tuple[int, int]
    square_size_m: float
    marker_size_m: float = 0.0
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.kind not in ("chessboard", "charuco"):
            raise CalibrationError(f"board: unknown kind {self.kind!r} (known: chessboard, charuco)")
        if min(self.squares) < 2 or max(self.squares) < 3:
            raise CalibrationError(f"board: {self.squares[0]}x{self.squares[1]} squares is too small "
                                   "(at least 3x2)")
        if not self.square_size_m > 0:
            raise CalibrationError(f"board: square size must be > 0 m, got {self.square_size_m}")
        if self.kind == "charuco":
            import cv2

            if not 0 < self.marker_size_m < self.square_size_m:
                raise CalibrationError(f"board: ChArUco marker size must be > 0 and below the square size "
                                       f"{self.square_size_m} m, got {self.marker_size_m}")
            if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
                raise CalibrationError(f"board: unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100)")

    def describe(self) -> str:
        c, r = self.squares
        return f"{self.kind} {c}x{r} squares of {self.square_size_m * 1000:g} mm"

    def charuco_board(self):
        """The `cv2.aruco.CharucoBoard` (ChArUco only)."""
        import cv2

        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(self.squares, self.square_size_m, self.marker_size_m, dictionary)

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The board's inner corners in one image.

        Args:
            gray: (H, W) uint8 image.

        Returns:
            (object_points (N, 3) float32 metres, board frame; image_points (N, 2) float32
            pixels), or None when the board is not found.
        """
        import cv2

        if self.kind == "charuco":
            board = self.charuco_board()
            corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(gray)
            if ids is None or len(ids) < MIN_CHARUCO_CORNERS:
                return None
            obj, img = board.matchImagePoints(corners, ids)
            return obj.reshape(-1, 3).astype(np.float32), img.reshape(-1, 2).astype(np.float32)
        cols, rows = self.squares[0] - 1, self.squares[1] - 1
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        found, corners = cv2.findChessboardCorners(gray, (cols, rows), flags=flags)
        if not found:
            return None
        spacing = np.linalg.norm(np.diff(corners.reshape(rows, cols, 2), axis=1), axis=2).min()
        half = int(np.clip(spacing / 4, 2, 11))
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
        corners = cv2.cornerSubPix(gray, corners, (half, half), (-1, -1), criteria)
        grid = np.mgrid[1:cols + 1, 1:rows + 1].T.reshape(-1, 2) * self.square_size_m
        obj = np.column_stack([grid, np.zeros(len(grid))]).astype(np.float32)
        return obj, corners.reshape(-1, 2).astype(np.float32)


def _read_gray(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CalibrationError(f"{path}: cannot read image")
    return image


@dataclass(frozen=True)
class Intrinsics:
    """Result of `calibrate_intrinsics`.

    Attributes:
        K: (3, 3) camera matrix, pixels.
        dist: (5,) OpenCV distortion (k1, k2, p1, p2, k3).
        image_size: (width, height), pixels.
        rms_px: RMS reprojection error over all corners, pixels.
        views: number of images used.
    """

    K: np.ndarray
    dist: np.ndarray
    image_size: tuple[int, int]
    rms_px: float
    views: int


def calibrate_intrinsics(board: Board, images: Sequence[Path], *, log: Log = _stderr) -> Intrinsics:
    """Intrinsics from images of `board` (Zhang's method, `cv2.calibrateCamera`).

    Args:
        board: the target.
        images: image files, all of one camera at one resolution; progress goes to `log`.

    Raises:
        CalibrationError: an image cannot be read, has another size, or shows no board (the
            message names the file), or fewer than `MIN_INTRINSIC_VIEWS` images are given.
    """
    import cv2

    if len(images) < MIN_INTRINSIC_VIEWS:
        raise CalibrationError(f"intrinsics need at least {MIN_INTRINSIC_VIEWS} images of the board, got {len(images)}")
    object_points, image_points, size = [], [], None
    for i, path in enumerate(images, 1):
        gray = _read_gray(Path(path))
        shape = (gray.shape[1], gray.shape[0])
        if size is None:
            size = shape
        elif shape != size:
            raise CalibrationError(f"{path}: image is {shape[0]}x{shape[1]}, the first image is "
                                   f"{size[0]}x{size[1]}; all images must have the camera's resolution")
        found = board.detect(gray)
        if found is None:
            raise CalibrationError(f"{path}: board not found ({board.describe()})")
        object_points.append(found[0])
        image_points.append(found[1])
        log(f"xrcell calibrate: [{i}/{len(images)}] {Path(path).name}: {len(found[0])} corners")
    rms, K, dist, _, _ = cv2.calibrateCamera(object_points, image_points, size, None, None)
    return Intrinsics(K, dist.ravel(), size, float(rms), len(images))


def locate_camera(board: Board, image: Path, K: np.ndarray, dist: np.ndarray, board_rotation: np.ndarray,
                  board_position_m: np.ndarray, *, log: Log = _stderr) -> tuple[np.ndarray, np.ndarray, float]:
    """The camera's extrinsics from one image of `board` at a known pose in the cell.

    Args:
        image: image file, at the resolution `K` refers to.
        K, dist: the camera's intrinsics.
        board_rotation: (3, 3) rotation board -> `cell` (columns: the board's axes in `cell`).
        board_position_m: (3,) board origin in `cell`, metres.

    Returns:
        (R (3, 3), t (3,), rms_px): `cell` -> camera optical frame, metres; RMS reprojection
        error of the board's corners, pixels.

    Raises:
        CalibrationError: the image cannot be read or shows no board, or a chessboard that looks
            the same after a half turn is used.
    """
    import cv2

    c, r = board.squares
    if board.kind == "chessboard" and (c + r) % 2 == 0:
        raise CalibrationError(f"board: a chessboard of {c}x{r} squares looks the same after a half turn, so its "
                               "pose is ambiguous; for extrinsics use one with an odd and an even number of "
                               "squares, or a ChArUco board")
    found = board.detect(_read_gray(Path(image)))
    if found is None:
        raise CalibrationError(f"{image}: board not found ({board.describe()})")
    obj, img = found
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError(f"{image}: solvePnP found no pose of the board")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, dist, rvec, tvec)
    projected, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
    rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - img) ** 2, axis=1))))
    log(f"xrcell calibrate: {Path(image).name}: board located from {len(obj)} corners, RMS {rms:.3f} px")
    R_pnp = cv2.Rodrigues(rvec)[0]
    R = R_pnp @ board_rotation.T
    return R, tvec.ravel() - R @ board_position_m, rms


def camera_block(camera: str, video: str, calibration_file: Path, cell_dir: Path) -> dict:
    """The cell file's camera entry for an OpenCV calibration file, checked by the cell model.

    Raises:
        CalibrationError: the camera id or video is not valid in a cell file.
    """
    from pydantic import ValidationError

    from content.cell import Camera

    rel = os.path.relpath(Path(calibration_file).resolve(), Path(cell_dir).resolve())
    block = {"id": camera, "video": video, "calibration": {"format": "opencv", "file": rel, "camera": camera}}
    try:
        Camera.model_validate(block)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CalibrationError(f"camera block: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return block


def calibrate(board: Board, images: Sequence[Path], extrinsic_image: Path, board_position_m: Sequence[float], *,
              board_quaternion_xyzw: Sequence[float] | None = None, board_rpy: Sequence[float] | None = None,
              camera: str, video: str, out: Path, block_out: Path | None = None, cell_dir: Path = Path("."),
              log: Log = _stderr) -> CameraCalibration:
    """Run the whole calibration and write the files.

    Args:
        board: the target (the same board for both steps).
        images: intrinsic images.
        extrinsic_image: one image of the board at the given pose.
        board_position_m, board_quaternion_xyzw | board_rpy: the board frame's pose in `cell`
            (metres; quaternion (x, y, z, w) or roll, pitch, yaw in radians, as the cell file's
            camera pose).
        camera: camera id in the cell file and name in the calibration file.
        video: the camera's video source as the cell file names it.
        out: OpenCV calibration file to write (`.yaml`, `.yml`, `.xml`).
        block_out: file for the cell file's camera block (YAML list of one camera); None prints
            it on stdout.
        cell_dir: folder of the cell file; the block's calibration path is relative to it.

    Returns:
        The calibration written.

    Raises:
        CalibrationError: see `calibrate_intrinsics`, `locate_camera`, `camera_block`; a bad
            board pose; a file that cannot be written.
    """
    import yaml

    block = camera_block(camera, video, out, cell_dir)
    try:
        R_inv, _ = extrinsics_from_pose(board_position_m, quaternion_xyzw=board_quaternion_xyzw, rpy=board_rpy)
    except ValueError as exc:
        raise CalibrationError(f"board pose: {exc}") from None
    intr = calibrate_intrinsics(board, images, log=log)
    log(f"xrcell calibrate: intrinsics from {intr.views} images: fx {intr.K[0, 0]:.2f} px, fy {intr.K[1, 1]:.2f} px, "
        f"RMS {intr.rms_px:.3f} px")
    extr_size = _read_gray(Path(extrinsic_image)).shape[::-1]
    if tuple(extr_size) != intr.image_size:
        raise CalibrationError(f"{extrinsic_image}: image is {extr_size[0]}x{extr_size[1]}, the intrinsic images are "
                               f"{intr.image_size[0]}x{intr.image_size[1]}")
    R, t, rms = locate_camera(board, extrinsic_image, intr.K, intr.dist, R_inv.T,
                              np.asarray(board_position_m, dtype=np.float64), log=log)
    calibration = CameraCalibration(camera, intr.image_size, intr.K, intr.dist, R, t)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_opencv(out, calibration, comments=(
        f"xrcell calibrate: {board.describe()}; intrinsics from {intr.views} images, RMS {intr.rms_px:.3f} px;",
        f"extrinsics (cell -> camera, metres) from {Path(extrinsic_image).name}, RMS {rms:.3f} px",
    ))
    position = calibration.center_world
    log(f"xrcell calibrate: camera {camera} at ({position[0]:.3f}, {position[1]:.3f}, {position[2]:.3f}) m in cell; "
        f"wrote {out}")
    text = ("# xrcell calibrate: paste under `cameras:` of the cell file\n"
            + yaml.safe_dump([block], sort_keys=False, default_flow_style=None))
    if block_out is None:
        print(text, end="")
    else:
        try:
            Path(block_out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CalibrationError(f"{block_out}: cannot write the camera block: {exc.strerror}") from None
    return calibration


def _squares(value: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS such as 10x7, got {value!r}") from None
    return cols, rows


def _metres(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 m, got {value}")
    return number


def add_parser(sub) -> None:
    """Add the `calibrate` subcommand to the `xrcell` subparsers."""
    p = sub.add_parser("calibrate", help="camera intrinsics from board images, extrinsics from one image of a board "
                                         "at a known pose in the cell; writes an OpenCV file and the camera block")
    p.add_argument("--camera", required=True, help="camera id in the cell file and name in the calibration file")
    p.add_argument("--board", choices=["chessboard", "charuco"], required=True)
    p.add_argument("--squares", type=_squares, required=True, metavar="COLSxROWS", help="squares across and down")
    p.add_argument("--square-size", type=_metres, required=True, metavar="M", help="side of a square, metres")
    p.add_argument("--marker-size", type=_metres, default=0.0, metavar="M", help="ChArUco marker side, metres")
    p.add_argument("--dictionary", default="DICT_5X5_100", help="ChArUco dictionary (default: %(default)s)")
    p.add_argument("--images", type=Path, nargs="+", required=True, metavar="IMG", help="intrinsic images")
    p.add_argument("--extrinsic-image", type=Path, required=True, metavar="IMG",
                   help="one image of the board at the pose given by --board-position and orientation")
    p.add_argument("--board-position", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"),
                   help="board origin in the cell frame, metres")
    orientation = p.add_mutually_exclusive_group(required=True)
    orientation.add_argument("--board-quaternion", type=float, nargs=4, metavar=("X", "Y", "Z", "W"))
    orientation.add_argument("--board-rpy", type=float, nargs=3, metavar=("ROLL", "PITCH", "YAW"), help="radians")
    p.add_argument("--video", required=True, help="the camera's video source as the cell file names it")
    p.add_argument("--out", type=Path, required=True, help="OpenCV calibration file to write (.yaml or .xml)")
    p.add_argument("--block", type=Path, default=None, help="write the camera block here (default: stdout)")
    p.add_argument("--cell-dir", type=Path, default=Path("."),
                   help="folder of the cell file; the block's paths are relative to it (default: .)")


def run(args: argparse.Namespace) -> int:
    """Run `xrcell calibrate` from parsed arguments; returns the exit code."""
    board = Board(args.board, args.squares, args.square_size, args.marker_size, args.dictionary)
    calibrate(board, args.images, args.extrinsic_image, args.board_position,
              board_quaternion_xyzw=args.board_quaternion, board_rpy=args.board_rpy, camera=args.camera,
              video=args.video, out=args.out, block_out=args.block, cell_dir=args.cell_dir)
    return 0
