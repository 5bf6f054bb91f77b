"""The `RobotBackend` protocol and the backend registry.

Only `safety.gate` calls the commanding methods (`execute`, `set_speed_scale`,
`protective_stop`, `reset`); everything else reads state.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol

from robot_bridge.types import RobotCommand, RobotState, StopCategory

log = logging.getLogger(__name__)

StateCallback = Callable[[RobotState], None]
"""A robot state listener: called with every state a backend publishes."""


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

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(state)` from the backend's own thread for every state from now on.

        Implementations delegate to a `StateSubscribers`; a callback that raises is logged and
        never stops the backend's loop. Returns the function that ends this subscription.
        """


class StateSubscribers:
    """The robot state listeners of one backend (its `subscribe`), and their notification.

    Thread safety: `subscribe` and the function it returns may be called from any thread, also
    from inside a callback; `notify` is called by the backend's own thread (the one that owns its
    state) and runs the callbacks there, outside any lock, on the listeners subscribed when it
    starts (the list is copied on write). A callback that raises is logged and the others still
    run: a listener never stops a backend's loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: tuple[tuple[object, StateCallback], ...] = ()

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(state)` for every state from now on.

        Returns:
            A function that ends this subscription (and no other of the same callback); calling
            it again does nothing.
        """
        token = object()
        with self._lock:
            self._entries = (*self._entries, (token, callback))

        def unsubscribe() -> None:
            with self._lock:
                self._entries = tuple(e for e in self._entries if e[0] is not token)

        return unsubscribe

    def notify(self, state: RobotState) -> None:
        """Hand `state` to every listener, in the order they subscribed."""
        for _, callback in self._entries:
            try:
                callback(state)
            except Exception:
                log.exception("state subscriber %r failed", callback)


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
