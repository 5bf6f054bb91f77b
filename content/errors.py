"""Errors of the world model."""


class ContentError(Exception):
    """Root of every error raised by `content`."""


class CellDescriptionError(ContentError):
    """A cell description file is missing, unreadable or invalid; the message names the field."""


class CalibrationError(ContentError):
    """A camera calibration file is missing, unreadable or invalid; the message names the file."""


class StorageError(ContentError):
    """The user store refused an operation (unknown role, duplicate or missing user, bad input)
    or its database failed; the message says which."""


class TwinAssetError(ContentError):
    """The static twin (GLB) cannot be generated: an unreadable or invalid URDF, a missing mesh
    file or an unsupported geometry; the message names the file or the link."""
