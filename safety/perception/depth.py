"""Depth inputs of the occupancy channel: RGB-D depth images and `.ply`/`.pcd` point-cloud sequences,
turned by Open3D into points in the `cell` frame (`safety.occupancy` takes them from there).

Open3D is imported on first use, so `safety.perception` still imports in milliseconds.

Camera frame: the optical frame of OpenCV and ROS REP 103 `*_optical_frame` (x right, y down,
z forward), metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from safety.errors import PerceptionError


@dataclass(frozen=True)
class DepthCamera:
    """A pinhole depth camera in the cell.

    Attributes:
        width_px, height_px: image size, pixels.
        intrinsic: (3, 3) float64 camera matrix K (fx, fy, cx, cy in pixels).
        cell_from_camera: (4, 4) float64 pose of the optical frame in the `cell` frame.
        max_depth_m: depth readings beyond this are dropped (no return / out of range).
    """

    width_px: int
    height_px: int
    intrinsic: np.ndarray
    cell_from_camera: np.ndarray
    max_depth_m: float = 6.0

    @classmethod
    def look_at(cls, position: Sequence[float], target: Sequence[float], fov_deg: float, width_px: int,
                height_px: int, max_depth_m: float = 6.0) -> "DepthCamera":
        """A camera at `position` looking at `target` (both metres, `cell` frame), image rows
        pointing down the cell's z axis as well as they can, horizontal field of view `fov_deg`.

        Raises:
            PerceptionError: position equals target, or the camera looks straight up or down
                without a defined image row direction (it then uses the cell's x axis as "up").
        """
        eye = np.asarray(position, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - eye
        norm = float(np.linalg.norm(forward))
        if norm < 1e-9:
            raise PerceptionError("depth camera: position and target are the same point")
        z = forward / norm
        up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.999 else np.array([1.0, 0.0, 0.0])
        x = np.cross(z, up)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
        f = (width_px / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
        k = np.array([[f, 0.0, (width_px - 1) / 2.0], [0.0, f, (height_px - 1) / 2.0], [0.0, 0.0, 1.0]])
        return cls(int(width_px), int(height_px), k, pose, float(max_depth_m))

    @property
    def camera_from_cell(self) -> np.ndarray:
        """(4, 4) float64: the extrinsic matrix (cell to optical frame)."""
        rot, t = self.cell_from_camera[:3, :3], self.cell_from_camera[:3, 3]
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = rot.T, -rot.T @ t
        return out


def points_from_depth(depth: np.ndarray, camera: DepthCamera, depth_scale: float = 1.0) -> np.ndarray:
    """Back-project a depth image into points in the `cell` frame (Open3D `create_from_depth_image`).

    Args:
        depth: (H, W) depth along the optical axis: float32 metres (`depth_scale` 1) or uint16 in
            units of 1/`depth_scale` metres (1000 for millimetres). 0 (or NaN) is no return.
        camera: the camera that took it.
        depth_scale: raw units per metre.

    Returns:
        (N, 3) float64, metres, `cell` frame: one point per valid pixel.

    Raises:
        PerceptionError: the image size differs from the camera's, or an unsupported dtype.
    """
    import open3d as o3d

    if depth.shape != (camera.height_px, camera.width_px):
        raise PerceptionError(f"depth image: shape {depth.shape} does not match the camera's "
                              f"{camera.height_px}x{camera.width_px}")
    if depth.dtype == np.uint16:
        image = o3d.geometry.Image(np.ascontiguousarray(depth))
    elif depth.dtype in (np.float32, np.float64):
        image = o3d.geometry.Image(np.ascontiguousarray(np.nan_to_num(depth, nan=0.0), dtype=np.float32))
    else:
        raise PerceptionError(f"depth image: dtype {depth.dtype} is not uint16, float32 or float64")
    k = camera.intrinsic
    intrinsic = o3d.camera.PinholeCameraIntrinsic(camera.width_px, camera.height_px, k[0, 0], k[1, 1],
                                                  k[0, 2], k[1, 2])
    cloud = o3d.geometry.PointCloud.create_from_depth_image(
        image, intrinsic, camera.camera_from_cell, depth_scale=depth_scale, depth_trunc=camera.max_depth_m)
    return np.asarray(cloud.points, dtype=np.float64)


def read_point_cloud(path: Path, cell_from_sensor: np.ndarray | None = None) -> np.ndarray:
    """Read one `.ply` or `.pcd` point cloud (Open3D) into the `cell` frame.

    Args:
        path: the file.
        cell_from_sensor: (4, 4) pose of the cloud's frame in the `cell` frame (None: the cloud is
            already in the `cell` frame).

    Returns:
        (N, 3) float64, metres, `cell` frame.

    Raises:
        PerceptionError: missing file, an extension other than .ply/.pcd, or a file Open3D cannot
            read (it returns an empty cloud for those; a depth frame without a single point is not
            a frame).
    """
    import open3d as o3d

    path = Path(path)
    if path.suffix.lower() not in (".ply", ".pcd"):
        raise PerceptionError(f"{path}: a point cloud must be .ply or .pcd")
    if not path.is_file():
        raise PerceptionError(f"{path}: no such point cloud file")
    cloud = o3d.io.read_point_cloud(str(path))
    points = np.asarray(cloud.points, dtype=np.float64)
    if points.shape[0] == 0:
        raise PerceptionError(f"{path}: no points read (unreadable or empty point cloud)")
    if cell_from_sensor is not None:
        points = points @ cell_from_sensor[:3, :3].T + cell_from_sensor[:3, 3]
    return points


def read_point_cloud_sequence(source: Path | Sequence[Path],
                              cell_from_sensor: np.ndarray | None = None) -> Iterator[tuple[Path, np.ndarray]]:
    """Read a sequence of point clouds, in order.

    Args:
        source: a directory (its `.ply` and `.pcd` files in name order, e.g. `frame_000123.pcd`)
            or the files themselves.
        cell_from_sensor: see `read_point_cloud`.

    Yields:
        (path, (N, 3) float64 points, metres, `cell` frame).

    Raises:
        PerceptionError: an empty directory, or a file `read_point_cloud` refuses.
    """
    if isinstance(source, (str, Path)):
        directory = Path(source)
        if not directory.is_dir():
            raise PerceptionError(f"{directory}: not a directory of point clouds")
        paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".ply", ".pcd"))
        if not paths:
            raise PerceptionError(f"{directory}: no .ply or .pcd files")
    else:
        paths = [Path(p) for p in source]
    for path in paths:
        yield path, read_point_cloud(path, cell_from_sensor)
