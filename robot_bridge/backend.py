"""The `RobotBackend` protocol and the backend registry.

Only `safety.gate` calls the commanding methods (`execute`, `set_speed_scale`,
`protective_stop`, `reset`); everything else reads state.
"""

from __future__ import annotations

from typing import Callable, Protocol

from robot_bridge.types import RobotCommand, RobotState, StopCategory


class RobotBackend(Protocol):
    """A robot cell as xrcell sees it.

    Thread safety: every method may be called from any thread; implementations
    hand commands to their own control thread.
    """

    joint_names: tuple[str, ...]
    joint_lower_limits: tuple[float, ...]
    joint_upper_limits: tuple[float, ...]

    def start(self) -> None:
        """Connect and start publishing state. Starts in a protective stop (STOPPED)."""

    def shutdown(self) -> None:
        """Stop the robot (category 1 if possible) and release resources."""

    def latest_state(self) -> RobotState | None:
        """The newest state sample, or None before the first one."""

    def execute(self, command: RobotCommand) -> None:
        """Start a trajectory or gripper command, replacing any active trajectory."""

    def set_speed_scale(self, scale: float, seq: int) -> None:
        """Set the speed override in [0, 1]; re-times the active trajectory smoothly.

        `seq` is echoed as `RobotState.safety_seq` once applied.
        """

    def protective_stop(self, category: StopCategory, seq: int) -> None:
        """Stop per IEC 60204-1 `category` and hold until `reset()`."""

    def reset(self) -> None:
        """Release a protective stop (motion resumes at the current speed scale)."""


BackendFactory = Callable[..., RobotBackend]
BACKENDS: dict[str, str] = {
    # name -> "module:factory"; imported lazily so heavy libraries load only when used.
    "sim": "robot_bridge.sim:PyBulletPandaBackend",
    "dds": "robot_bridge.dds:DdsBackend",
}


#: Backends named by the design but not in this build, with the library each needs; asking for
#: one is a clear error (which says whether the library is there at all).
PLANNED_BACKENDS: dict[str, str] = {"ros2": "rclpy"}


def create_backend(name: str, **kwargs: object) -> RobotBackend:
    """Create the backend registered as `name`.

    Raises:
        BackendUnavailableError: unknown name, a planned backend (`PLANNED_BACKENDS`), or the
            backend's library is missing.
    """
    import importlib

    from robot_bridge.errors import BackendUnavailableError

    if name in PLANNED_BACKENDS:
        library = PLANNED_BACKENDS[name]
        try:
            importlib.import_module(library)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"robot backend {name!r} needs {library}, which does not import here ({exc}); "
                f"source a ROS 2 installation first (e.g. `source /opt/ros/jazzy/setup.bash`), "
                f"or use the 'dds' backend, which speaks ROS 2 on the wire without one"
            ) from None
        raise BackendUnavailableError(
            f"robot backend {name!r} is not in this build yet ({library} imports); "
            f"use the 'dds' backend"
        )
    try:
        target = BACKENDS[name]
    except KeyError:
        raise BackendUnavailableError(
            f"unknown robot backend {name!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(f"robot backend {name!r} needs {exc.name}: {exc}") from exc
    return getattr(module, attr)(**kwargs)
