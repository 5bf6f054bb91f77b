"""`xrcell serve --cell FILE --robot sim|dds|ros2`: one cell's XR server on a chosen robot backend.

Like `xrcell demo` (worker tracking, safety monitor, command gate, safety output, dashboard,
REST and Socket.IO) but on the cell description given, with the robot backend chosen by flag,
worker tracking only from the cameras the cell configures, and the accounts of the user store
(`xrcell users add`; no demo accounts). With `--robot dds` the server joins the ROS 2 domain
of ROS_DOMAIN_ID (Cyclone DDS configuration from CYCLONEDDS_URI) and drives the robot's
JointTrajectoryController; `--robot ros2` needs rclpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from content.cell import load_cell
from xr_server.compose import run_cell

if TYPE_CHECKING:
    from xr_server.tls import ServerTls


def run_serve(
    *,
    cell_path: Path,
    robot: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    db_url: str | None = None,
    duration_s: float | None = None,
    tls: ServerTls | None = None,
) -> int:
    """Serve the cell in `cell_path` until SIGINT/SIGTERM (or `duration_s`); returns the exit code.
    With `tls` (`xr_server.tls.server_tls`) the server speaks HTTPS and WSS only.

    Raises:
        ContentError: the cell file is invalid.
        BackendUnavailableError, BridgeError: the robot backend cannot be created or reached.
    """
    description = load_cell(cell_path)
    print(f"xrcell: cell {description.name!r} from {description.source_path}", flush=True)
    return run_cell(
        description, robot=robot, host=host, port=port, db_url=db_url, duration_s=duration_s,
        tls=tls,
    )
