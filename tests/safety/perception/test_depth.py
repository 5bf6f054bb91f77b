"""Depth inputs: depth images back-projected into the `cell` frame, `.ply`/`.pcd` sequences read with Open3D."""

import numpy as np
import open3d as o3d
import pytest

from safety.errors import PerceptionError
from safety.perception.depth import DepthCamera, points_from_depth, read_point_cloud, read_point_cloud_sequence

#: 3 m above the floor, looking straight down.
OVERHEAD = DepthCamera.look_at([1.0, 2.0, 3.0], [1.0, 2.0, 0.0], 90.0, 64, 48)


def test_look_at_pose_is_a_rotation_looking_at_the_target():
    cam = DepthCamera.look_at([0.0, 0.0, 1.0], [2.0, 0.0, 1.0], 60.0, 64, 48)
    rot = cam.cell_from_camera[:3, :3]
    assert rot.T @ rot == pytest.approx(np.eye(3))
    assert rot[:, 2] == pytest.approx([1.0, 0.0, 0.0])  # optical z along the view
    assert rot[:, 1] == pytest.approx([0.0, 0.0, -1.0])  # image rows down the cell's z
    assert cam.camera_from_cell @ cam.cell_from_camera == pytest.approx(np.eye(4))
    assert cam.intrinsic[0, 0] == pytest.approx(32 / np.tan(np.radians(30)))


def test_a_flat_depth_image_is_a_plane_in_the_cell_frame():
    depth = np.full((48, 64), 2.0, dtype=np.float32)
    depth[0, 0] = 0.0  # no return
    pts = points_from_depth(depth, OVERHEAD)
    assert pts.shape == (48 * 64 - 1, 3)
    assert pts[:, 2] == pytest.approx(1.0, abs=1e-5)
    # The optical centre (pixel (31.5, 23.5)) is below the camera; the image spans +-2 m in x or y.
    assert pts[:, :2].mean(axis=0) == pytest.approx([1.0, 2.0], abs=0.05)
    assert np.ptp(pts[:, 0]) + np.ptp(pts[:, 1]) == pytest.approx(2 * 2.0 * (1 - 1 / 64) + 2 * 1.5 * (1 - 1 / 48),
                                                                  abs=0.05)


def test_millimetre_depth_images_use_the_depth_scale():
    depth = np.full((48, 64), 2500, dtype=np.uint16)
    pts = points_from_depth(depth, OVERHEAD, depth_scale=1000.0)
    assert pts[:, 2] == pytest.approx(0.5, abs=1e-5)


def test_depth_image_errors_are_named():
    with pytest.raises(PerceptionError, match=r"depth image: shape \(10, 10\) does not match the camera's 48x64"):
        points_from_depth(np.zeros((10, 10), np.float32), OVERHEAD)
    with pytest.raises(PerceptionError, match="depth image: dtype int32 is not uint16, float32 or float64"):
        points_from_depth(np.zeros((48, 64), np.int32), OVERHEAD)
    with pytest.raises(PerceptionError, match="depth camera: position and target are the same point"):
        DepthCamera.look_at([0, 0, 1], [0, 0, 1], 60.0, 64, 48)


def write_cloud(path, points):
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, float)))
    assert o3d.io.write_point_cloud(str(path), cloud)


def test_a_ply_and_pcd_sequence_is_read_in_name_order_into_the_cell_frame(tmp_path):
    for i in (2, 0, 1):
        write_cloud(tmp_path / f"frame_{i:03d}.{'pcd' if i == 1 else 'ply'}", [[i, 0.0, 0.0], [i, 1.0, 0.0]])
    (tmp_path / "notes.txt").write_text("not a cloud")
    frames = list(read_point_cloud_sequence(tmp_path))
    assert [p.name for p, _ in frames] == ["frame_000.ply", "frame_001.pcd", "frame_002.ply"]
    assert [pts[0, 0] for _, pts in frames] == [0.0, 1.0, 2.0]
    # A sensor 1 m up, turned 90 deg about z: (x, y, z) -> (-y, x, z + 1).
    pose = np.array([[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    _, pts = next(iter(read_point_cloud_sequence([tmp_path / "frame_002.ply"], pose)))
    assert pts == pytest.approx(np.array([[0.0, 2.0, 1.0], [-1.0, 2.0, 1.0]]))


def test_point_cloud_errors_are_named(tmp_path):
    with pytest.raises(PerceptionError, match="no .ply or .pcd files"):
        list(read_point_cloud_sequence(tmp_path))
    with pytest.raises(PerceptionError, match="not a directory of point clouds"):
        list(read_point_cloud_sequence(tmp_path / "missing"))
    with pytest.raises(PerceptionError, match="a point cloud must be .ply or .pcd"):
        read_point_cloud(tmp_path / "cloud.xyz")
    with pytest.raises(PerceptionError, match="no such point cloud file"):
        read_point_cloud(tmp_path / "gone.ply")
    (tmp_path / "broken.ply").write_text("ply\nthis is not a point cloud\n")
    with pytest.raises(PerceptionError, match=r"broken.ply: no points read \(unreadable or empty point cloud\)"):
        read_point_cloud(tmp_path / "broken.ply")
