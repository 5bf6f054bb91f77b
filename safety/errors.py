"""Errors of the safety package."""


class SafetyError(Exception):
    """Root of every error raised by `safety`."""


class PerceptionError(SafetyError):
    """A camera source or pose estimator cannot be used (missing file, unreadable video)."""


class OccupancyError(SafetyError):
    """Bad occupancy-channel input or configuration (wrong array shape, non-positive voxel size)."""
