"""Errors of the XR server's own machinery (the WebRTC gateway, XR sessions, signalling).

Every message is safe to send back to the client whose request caused it.
"""


class XrServerError(Exception):
    """Root of every error raised by `xr_server`'s session and WebRTC modules."""


class GatewayError(XrServerError):
    """The WebRTC gateway cannot run the work: not started, stopped, or called from its own loop."""


class GatewayTimeout(GatewayError):
    """Work handed to the WebRTC gateway did not finish within its timeout; it was cancelled."""


class SessionError(XrServerError):
    """An XR session request was refused (unknown session, role not allowed, not a participant,
    annotation of another author); the message says why."""


class SignallingError(XrServerError):
    """A WebRTC offer was refused (bad SDP, wrong party, no video to relay yet); the message says
    why."""
