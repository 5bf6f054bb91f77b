"""`xrcell demo`: the whole product in one process on embedded defaults.

A PyBullet Franka Panda running pick-and-place, the real Pose2Sim footage as the
cell's cameras, MediaPipe worker tracking triangulated in the `cell` frame, the
safety monitor driving the robot through the command gate, and (unless
headless) the XR server with the dashboard and the `/hmi` page. The parts are
composed by `xr_server.compose`, as for `xrcell serve`; the demo adds its sim
robot and one fresh account per role.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from content.cell import load_cell
from xr_server.compose import REPO_ROOT, default_db_url, headless_report, run_cell

if TYPE_CHECKING:
    from xr_server.tls import ServerTls

__all__ = [
    "DEFAULT_CELL",
    "DEMO_ROLES",
    "REPO_ROOT",
    "default_db_url",
    "demo_users",
    "headless_report",
    "machine_load_warning",
    "run_demo",
]

DEFAULT_CELL = REPO_ROOT / "launch" / "cells" / "demo.yaml"
DEMO_ROLES = ("worker", "expert", "supervisor", "operator", "admin")


def demo_users(store) -> dict[str, str]:
    """(Re)create one demo user per role with a fresh random password; returns name -> password."""
    users = {}
    existing = {u.username for u in store.list()}
    for role in DEMO_ROLES:
        password = secrets.token_urlsafe(9)
        if role in existing:
            store.remove(role)
        store.add(role, password, [role])
        users[role] = password
    return users


def _print_demo_users(store) -> None:
    users = demo_users(store)
    print(
        "xrcell: demo users for this run (passwords are new at every start, stored hashed):",
        flush=True,
    )
    for name, password in users.items():
        print(f"          {name:<11} {password}", flush=True)


def machine_load_warning(load_avg_1m: float | None, cpus: int | None,
                         tracker_timeout_s: float, camera_timeout_s: float) -> str | None:
    """The start-up warning of a demo on a loaded machine, or None.

    The demo's worker tracking (MediaPipe, about 0.6 of a core for 4 cameras at 8 Hz) runs in a
    child process at a lower priority than the safety monitor. When every core is already busy
    (1-minute load average at least the number of CPUs) it gets a fraction of a core, one pose
    estimation step can take hundreds of ms instead of about 20, and a step longer than the
    tracker's watchdog bound is a fault stop, latched until a supervisor resets it: the robot
    then stands still for the rest of the run. Measured on the 2-core machine at load 9-13:
    steps up to 1.5 s, a watchdog trip in each of 7 runs (README, "Worker tracking").

    Args:
        load_avg_1m: the machine's 1-minute load average (`os.getloadavg()[0]`); None: unknown.
        cpus: the number of CPUs (`os.cpu_count()`); None: unknown.
        tracker_timeout_s, camera_timeout_s: the cell's watchdog bounds, seconds.
    """
    if load_avg_1m is None or not cpus or load_avg_1m < cpus:
        return None
    bound_ms = 1e3 * min(tracker_timeout_s, camera_timeout_s)
    return (f"xrcell: warning: this machine is loaded (load average {load_avg_1m:.1f} on {cpus} "
            f"CPUs): worker tracking may fall behind its {bound_ms:.0f} ms watchdog, and a "
            "watchdog that trips is a fault stop the robot stays in until a supervisor resets it "
            "(the report's safety.fault_stops_after_startup names it)")


def run_demo(
    *,
    cell_path: Path = DEFAULT_CELL,
    headless: bool = False,
    duration_s: float | None = None,
    report_path: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    db_url: str | None = None,
    tls: ServerTls | None = None,
) -> int:
    """Run the demo on the sim robot until Ctrl-C (or `duration_s`); returns the exit code.
    With `tls` (`xr_server.tls.server_tls`) the server speaks HTTPS and WSS only."""
    description = load_cell(cell_path)
    print(f"xrcell: cell {description.name!r} from {description.source_path}", flush=True)
    try:
        load_avg_1m: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):         # not on every platform
        load_avg_1m = None
    warning = machine_load_warning(load_avg_1m, os.cpu_count(), description.safety.tracker_timeout_s,
                                   description.safety.camera_timeout_s)
    if warning is not None:
        print(warning, flush=True)
    return run_cell(
        description,
        robot="sim",
        headless=headless,
        duration_s=duration_s,
        report_path=report_path,
        host=host,
        port=port,
        db_url=db_url,
        on_serving=_print_demo_users,
        tls=tls,
    )
