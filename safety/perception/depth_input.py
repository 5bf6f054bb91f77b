"""The live depth input of a cell: depth frames from files or a RealSense camera, measured by the
occupancy channel in a thread of their own; the safety monitor reads the newest measurement.

Sources (`DepthSource`, chosen by `content.cell.DepthInput.source`):

- `PointCloudSequence`: a directory of `.ply`/`.pcd` clouds in name order (Open3D);
- `DepthImageSequence`: a directory of depth images (`.npy` float metres or uint16, 16-bit
  `.png`) back-projected with `points_from_depth`;
- `RealSenseDepth`: an Intel RealSense camera through `pyrealsense2` (imported on `open`; not a
  dependency of xrcell).

`OccupancyInput` owns the thread: it reads a frame, self-filters the robot in its newest joint
state and publishes the `OccupancyMeasurement`. A failing frame is counted and logged, never
ends the thread; a source that stops delivering leaves the measurement to age, and the
monitor's depth watchdog (`safety.cross_check.occupancy_faults`) stops the robot.

Background files (`save_background`, `load_background`) are `.npz` archives of the background
voxel keys with their voxel size and dilation.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from robot_bridge.types import RobotState
from safety.errors import OccupancyError, PerceptionError
from safety.occupancy import BackgroundModel, OccupancyChannel, OccupancyMeasurement
from safety.perception.depth import DepthCamera, points_from_depth, read_point_cloud
from safety.placed_mask import rejection_cause

_log = logging.getLogger(__name__)

#: Depth image files `DepthImageSequence` reads.
DEPTH_IMAGE_SUFFIXES = (".npy", ".png")
#: Version of the background `.npz` layout.
_BACKGROUND_FORMAT = 1
#: `OccupancyInput`'s placed-objects audit records: at most this many in a burst, then one per
#: `PLACED_AUDIT_PERIOD_S` (a token bucket). A cause that flaps every frame (an object at the edge
#: of the cell's bounds) writes at most one record a second, never one a frame; each record counts
#: the changes of cause since the one before (``changes``), so none goes unrecorded.
PLACED_AUDIT_BURST = 8
PLACED_AUDIT_PERIOD_S = 1.0


class DepthSource(Protocol):
    """Where depth frames come from. Owned by one thread (the `OccupancyInput`'s)."""

    def open(self) -> None:
        """Prepare the source (open the device, list the files).

        Raises:
            PerceptionError: the source cannot be used; the message names it.
        """

    def read(self) -> np.ndarray | None:
        """The next frame as points: (N, 3) float64, metres, `cell` frame; None when the source
        has no more frames (a file sequence without loop)."""

    def close(self) -> None:
        """Release the source."""


def _listing(directory: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    if not directory.is_dir():
        raise PerceptionError(f"{directory}: not a directory of {what}")
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in suffixes)
    if not paths:
        raise PerceptionError(f"{directory}: no {' or '.join(suffixes)} files")
    return paths


class _FileSequence(abc.ABC):
    """Frames of a directory in name order, optionally looping; subclasses read one file."""

    suffixes: tuple[str, ...] = ()
    what = "frames"

    def __init__(self, directory: Path, loop: bool) -> None:
        self.directory = Path(directory)
        self.loop = loop
        self._paths: list[Path] = []
        self._next = 0

    def open(self) -> None:
        self._paths = _listing(self.directory, self.suffixes, self.what)
        self._next = 0

    def __len__(self) -> int:
        return len(self._paths)

    def read(self) -> np.ndarray | None:
        if not self._paths:
            raise PerceptionError(f"{self.directory}: depth source read before open()")
        if self._next >= len(self._paths):
            if not self.loop:
                return None
            self._next = 0
        path = self._paths[self._next]
        self._next += 1
        return self._load(path)

    @abc.abstractmethod
    def _load(self, path: Path) -> np.ndarray:
        """One frame read from `path` (the subclass's file format)."""

    def close(self) -> None:
        self._paths = []


class PointCloudSequence(_FileSequence):
    """`.ply`/`.pcd` point clouds of a directory, in name order.

    Args:
        directory: the clouds.
        cell_from_sensor: (4, 4) pose of the clouds' frame in `cell` (None: already in `cell`).
        loop: start again after the last cloud.
    """

    suffixes = (".ply", ".pcd")
    what = "point clouds"

    def __init__(self, directory: Path, cell_from_sensor: np.ndarray | None = None, loop: bool = True) -> None:
        super().__init__(directory, loop)
        self._pose = cell_from_sensor

    def _load(self, path: Path) -> np.ndarray:
        return read_point_cloud(path, self._pose)


def read_depth_image(path: Path) -> np.ndarray:
    """Read one depth image: `.npy` (float32/float64 metres or uint16 raw units) or a 16-bit `.png`.

    Returns:
        (H, W) float32 or uint16.

    Raises:
        PerceptionError: missing or unreadable file, an image that is not single-channel
            16-bit (`.png`) or not 2-D (`.npy`).
    """
    path = Path(path)
    if not path.is_file():
        raise PerceptionError(f"{path}: no such depth image")
    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise PerceptionError(f"{path}: not a readable .npy depth image ({exc})") from None
        if depth.ndim != 2:
            raise PerceptionError(f"{path}: a depth image must be 2-D, got shape {depth.shape}")
        return depth.astype(np.float32) if depth.dtype == np.float64 else depth
    if path.suffix.lower() == ".png":
        import cv2

        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise PerceptionError(f"{path}: not a readable .png depth image")
        if depth.ndim != 2 or depth.dtype != np.uint16:
            raise PerceptionError(f"{path}: a .png depth image must be single-channel 16-bit, got "
                                  f"{depth.dtype} {depth.shape}")
        return depth
    raise PerceptionError(f"{path}: a depth image must be {' or '.join(DEPTH_IMAGE_SUFFIXES)}")


class DepthImageSequence(_FileSequence):
    """Depth images of a directory (`read_depth_image`), in name order, back-projected into `cell`.

    Args:
        directory: the images.
        camera: the depth camera that took them (intrinsics and pose in `cell`).
        depth_scale: raw units per metre of uint16 images (float images are metres).
        loop: start again after the last image.
    """

    suffixes = DEPTH_IMAGE_SUFFIXES
    what = "depth images"

    def __init__(self, directory: Path, camera: DepthCamera, depth_scale: float = 1000.0, loop: bool = True) -> None:
        super().__init__(directory, loop)
        self.camera = camera
        self.depth_scale = depth_scale

    def _load(self, path: Path) -> np.ndarray:
        depth = read_depth_image(path)
        scale = self.depth_scale if depth.dtype == np.uint16 else 1.0
        try:
            return points_from_depth(depth, self.camera, scale)
        except PerceptionError as exc:
            raise PerceptionError(f"{path}: {exc}") from None


class RealSenseDepth:
    """An Intel RealSense depth camera through `pyrealsense2` (the librealsense SDK's Python wrapper).

    Intrinsics and the depth unit come from the device; the pose in `cell` from the cell file.

    Args:
        cell_from_camera: (4, 4) pose of the depth optical frame in `cell`.
        width_px, height_px, fps: the depth stream to enable (z16).
        serial: device serial number (None: the first device).
        max_depth_m: readings beyond this are no return.
        timeout_s: `wait_for_frames` timeout.
        sdk: the `pyrealsense2` module (None: imported on `open`); tests pass a stand-in here.
    """

    def __init__(self, cell_from_camera: np.ndarray, *, width_px: int = 640, height_px: int = 480, fps: int = 15,
                 serial: str | None = None, max_depth_m: float = 6.0, timeout_s: float = 1.0,
                 sdk: ModuleType | None = None) -> None:
        self._pose = np.asarray(cell_from_camera, dtype=np.float64)
        self._size = (int(width_px), int(height_px))
        self._fps = int(fps)
        self._serial = serial
        self._max_depth_m = max_depth_m
        self._timeout_ms = int(timeout_s * 1000)
        self._rs = sdk
        self._pipeline = None
        self.camera: DepthCamera | None = None
        self.depth_scale = 1000.0

    def open(self) -> None:
        """Start the depth stream.

        Raises:
            PerceptionError: `pyrealsense2` is not installed, or the device cannot be started.
        """
        if self._rs is None:
            try:
                import pyrealsense2
            except ImportError:
                raise PerceptionError("depth source realsense needs the package pyrealsense2 "
                                      "(pip install pyrealsense2), which is not installed") from None
            self._rs = pyrealsense2
        rs = self._rs
        pipeline = rs.pipeline()
        config = rs.config()
        if self._serial is not None:
            config.enable_device(self._serial)
        config.enable_stream(rs.stream.depth, self._size[0], self._size[1], rs.format.z16, self._fps)
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise PerceptionError(f"realsense{'' if self._serial is None else ' ' + self._serial}: "
                                  f"cannot start the depth stream: {exc}") from None
        unit_m = float(profile.get_device().first_depth_sensor().get_depth_scale())
        intr = profile.get_stream(rs.stream.depth).as_video_stream_profile().get_intrinsics()
        k = np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])
        self.camera = DepthCamera(int(intr.width), int(intr.height), k, self._pose, self._max_depth_m)
        self.depth_scale = 1.0 / unit_m
        self._pipeline = pipeline

    def read(self) -> np.ndarray | None:
        """Wait for the next depth frame and back-project it.

        Raises:
            PerceptionError: no frame within the timeout, or read before `open`.
        """
        if self._pipeline is None or self.camera is None:
            raise PerceptionError("realsense: read before open()")
        try:
            frames = self._pipeline.wait_for_frames(self._timeout_ms)
        except RuntimeError as exc:
            raise PerceptionError(f"realsense: no depth frame: {exc}") from None
        depth = np.asanyarray(frames.get_depth_frame().get_data())
        return points_from_depth(np.ascontiguousarray(depth, dtype=np.uint16), self.camera, self.depth_scale)

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None


class OccupancyInput:
    """Runs a `DepthSource` through an `OccupancyChannel` at `fps` in its own thread.

    Thread safety: `start`, `stop` from the composing thread; `latest` and `report` from any
    thread (one reference read). The source and the channel belong to the input's thread.

    Args:
        source: where the frames come from.
        channel: the occupancy channel (with its background).
        robot_source: the robot's newest state (its link capsules self-filter the frame); a
            frame without a robot state is skipped.
        fps: frames per second (the loop waits for the next period after each frame).
        clock: monotonic clock, ns (capture and publication stamps).
        audit: ``(kind, actor, inputs, reason)`` (`safety.audit.AuditLog.append`, must not
            block): told, as ``placed_objects`` by ``occupancy``, whenever the cause for which
            the placed-objects list is refused changes (`safety.placed_mask.rejection_cause`),
            including back to accepted; not every frame, and at most `PLACED_AUDIT_BURST` at
            once, then one per `PLACED_AUDIT_PERIOD_S` (the record then counts the changes since
            the last one and gives the cause in force; `stop` writes what is still held back).
    """

    def __init__(self, source: DepthSource, channel: OccupancyChannel,
                 robot_source: Callable[[], RobotState | None], fps: float,
                 clock: Callable[[], int] = time.monotonic_ns,
                 audit: Callable[[str, str, dict, str], Any] | None = None) -> None:
        if not fps > 0:
            raise OccupancyError(f"fps must be positive, got {fps}")
        self.source = source
        self.channel = channel
        self._robot = robot_source
        self._period_ns = int(1e9 / fps)
        self._clock = clock
        self._latest: OccupancyMeasurement | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self.errors = 0
        self.last_error: str | None = None
        self.ended = False
        self._audit = audit
        self._placed_cause: str | None = None     # the cause in the newest frame
        self._recorded_cause: str | None = None   # the cause of the newest record
        self._placed_changes = 0                  # changes of cause not yet recorded
        self._audit_tokens = float(PLACED_AUDIT_BURST)
        self._audit_refilled_ns: int | None = None
        self._placed_last: tuple[OccupancyMeasurement, RobotState] | None = None

    def latest(self) -> OccupancyMeasurement | None:
        """The newest measurement (the monitor's `occupancy_source`); None before the first."""
        return self._latest

    def start(self) -> None:
        """Open the source and start the thread.

        Raises:
            PerceptionError: the source cannot be opened.
        """
        self.source.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="depth-input", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the thread and close the source."""
        self._stop.set()
        running = False
        if self._thread is not None:
            self._thread.join(timeout_s)
            running = self._thread.is_alive()
            self._thread = None
        if not running and self._placed_last is not None and self._placed_changes:
            self._audit_placed(*self._placed_last, force=True)   # what the rate limit held back
        self.source.close()

    def step(self) -> OccupancyMeasurement | None:
        """Read and measure one frame (the thread's body; tests call it directly).

        Returns:
            The new measurement, or None (no robot state yet, or the source ended).

        Raises:
            PerceptionError, OccupancyError: the frame cannot be read or measured.
        """
        capture_ns = self._clock()
        points = self.source.read()
        if points is None:
            self.ended = True
            return None
        robot = self._robot()
        if robot is None:
            return None
        m = self.channel.measure(points, robot.link_segments, robot.link_radii_m, robot.link_names,
                                 capture_ns, self._clock(), robot.placed_objects, robot.stamp_ns)
        self._latest = m
        self._audit_placed(m, robot)
        self.frames += 1
        return m

    def _audit_placed(self, m: OccupancyMeasurement, robot: RobotState, *,
                      force: bool = False) -> None:
        """Record a change of the refusal's cause (rate-limited; `force`: now, on `stop`)."""
        cause = rejection_cause(m.placed_rejected)
        if cause != self._placed_cause:
            self._placed_cause = cause
            self._placed_changes += 1
        self._placed_last = (m, robot)
        if self._placed_changes == 0 or self._audit is None:
            return
        now = self._clock()
        if self._audit_refilled_ns is not None:
            earned = (now - self._audit_refilled_ns) / (PLACED_AUDIT_PERIOD_S * 1e9)
            self._audit_tokens = min(float(PLACED_AUDIT_BURST), self._audit_tokens + max(earned, 0.0))
        self._audit_refilled_ns = now
        if self._audit_tokens < 1.0 and not force:
            return   # rate-limited: the changes are counted in the next record (or on stop)
        self._audit_tokens = max(self._audit_tokens - 1.0, 0.0)
        changes, self._placed_changes = self._placed_changes, 0
        previous, self._recorded_cause = self._recorded_cause, cause
        listed = robot.placed_objects
        inputs = {"cause": cause, "previous_cause": previous, "changes": changes,
                  "capture_ns": m.capture_ns, "robot_stamp_ns": robot.stamp_ns,
                  "placed_masked": m.placed_objects,
                  "objects": len(listed) if isinstance(listed, (tuple, list)) else None}
        reason = m.placed_rejected or (
            (f"placed-objects list accepted again ({previous} resolved)" if previous is not None
             else "placed-objects list accepted") + f"; {m.placed_objects} masked")
        if changes > 1:
            reason += f" ({changes} changes of cause since the last record)"
        try:
            self._audit("placed_objects", "occupancy", inputs, reason)
        except Exception:  # noqa: BLE001 - the audit never stops the input; it counts its own losses
            _log.exception("audit append failed")

    def _run(self) -> None:
        next_ns = self._clock()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # a bad frame never ends the input; the watchdog sees the gap
                self.errors += 1
                if str(exc) != self.last_error:
                    _log.error("depth input: %s", exc)
                self.last_error = str(exc)
            if self.ended:
                _log.warning("depth input: the sequence ended (loop: false); the depth watchdog stops the robot")
                return
            next_ns += self._period_ns
            now = self._clock()
            if next_ns < now:
                next_ns = now
            self._stop.wait((next_ns - now) / 1e9)

    def report(self) -> dict:
        """Figures for the run report: frames measured, frame errors, the last error, voxels, the
        placed objects masked in the newest frame and why a placed-objects list was refused."""
        m = self._latest
        return {"frames": self.frames, "errors": self.errors, "last_error": self.last_error,
                "ended": self.ended, "voxels": None if m is None else m.voxel_count,
                "placed_objects": None if m is None else m.placed_objects,
                "placed_rejected": None if m is None else m.placed_rejected,
                "background_voxels": 0 if self.channel.background is None else len(self.channel.background)}


def save_background(model: BackgroundModel, path: Path) -> None:
    """Write a background model to `path` (`.npz`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez_compressed(f, format=np.int64(_BACKGROUND_FORMAT), voxel_size_m=np.float64(model.voxel_size_m),
                            dilation_voxels=np.int64(model.dilation_voxels), keys=model.keys)


def load_background(path: Path, voxel_size_m: float | None = None) -> BackgroundModel:
    """Read a background model written by `save_background`.

    Args:
        path: the `.npz` file.
        voxel_size_m: the channel's voxel size; the file's must match (None: no check).

    Raises:
        OccupancyError: missing or unreadable file, a layout other than this version's, or a
            voxel size other than the channel's.
    """
    path = Path(path)
    if not path.is_file():
        raise OccupancyError(f"{path}: no such background file (learn one with `xrcell occupancy learn`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            fmt = int(data["format"])
            size = float(data["voxel_size_m"])
            dilation = int(data["dilation_voxels"])
            keys = data["keys"]
    except (OSError, ValueError, KeyError) as exc:
        raise OccupancyError(f"{path}: not a background file ({exc})") from None
    if fmt != _BACKGROUND_FORMAT:
        raise OccupancyError(f"{path}: background format {fmt}, expected {_BACKGROUND_FORMAT}")
    if voxel_size_m is not None and abs(size - voxel_size_m) > 1e-12:
        raise OccupancyError(f"{path}: background voxel size {size} m differs from the channel's {voxel_size_m} m")
    return BackgroundModel.from_keys(size, dilation, keys)
