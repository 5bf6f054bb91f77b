"""Errors of the robot bridge."""


class BridgeError(Exception):
    """Root of every error raised by `robot_bridge`."""


class BackendUnavailableError(BridgeError):
    """A backend cannot be created on this machine (missing library, no peer)."""


class CommandError(BridgeError):
    """A command is malformed for this robot (wrong joints, bad shape, non-finite values)."""
