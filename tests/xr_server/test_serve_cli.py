"""`xrcell serve` refusals that need no robot: a backend that cannot run here, a bad ROS domain.

The end-to-end run against a ROS 2 peer is `tests/e2e/test_serve_dds.py`.
"""

import sys

import pytest

from xr_server.cli import main
from xr_server.compose import REPO_ROOT, NoWorkerTracking

CELL = REPO_ROOT / "launch" / "cells" / "panda_dds.yaml"


@pytest.fixture
def serve(tmp_path, capsys, monkeypatch):
    interval = sys.getswitchinterval()

    def run(*args: str, env: dict | None = None) -> tuple[int, str]:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        code = main(
            ["serve", "--cell", str(CELL), "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", *args]
        )
        return code, capsys.readouterr().err.strip()

    yield run
    sys.setswitchinterval(interval)


def test_ros2_without_rclpy_is_a_clear_error(serve):
    code, err = serve("--robot", "ros2")
    assert code == 2
    assert err == (
        "xrcell: error: robot backend 'ros2' needs rclpy, which does not import here "
        "(No module named 'rclpy'); source a ROS 2 installation first "
        "(e.g. `source /opt/ros/jazzy/setup.bash`), or use the 'dds' backend, "
        "which speaks ROS 2 on the wire without one"
    )


@pytest.mark.parametrize(
    "domain, error",
    [
        ("ros", "xrcell: error: ROS_DOMAIN_ID must be an integer in 0..232, got 'ros'"),
        ("300", "xrcell: error: DdsBackend: domain_id must be an integer in 0..232, got 300"),
    ],
)
def test_dds_with_a_bad_ros_domain_id_is_a_clear_error(serve, domain, error):
    code, err = serve("--robot", "dds", env={"ROS_DOMAIN_ID": domain})
    assert (code, err) == (2, error)


def test_a_cell_without_cameras_tracks_nobody_and_is_always_fresh():
    tracking = NoWorkerTracking()
    first = tracking.snapshot()
    second = tracking.snapshot()
    assert first.tracks == () and first.cameras == () and first.lost_track_ids == ()
    assert second.stamp_ns >= first.stamp_ns > 0
    assert tracking.camera_ids() == [] and tracking.camera_jpeg("cam01") is None
