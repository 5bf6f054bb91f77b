"""Cross-check of the two diverse channels: skeleton capsules and voxel occupancy.

Pure functions; `safety.decision.decide` calls them once per cycle where the cell has depth data.

The rule (ISO 13849-1 clause 6.2.6/6.2.7, categories 3 and 4: two channels, a detected
discrepancy between them is a fault that leads to the safe state and stays there until the
fault is cleared):

- Stricter channel wins, every cycle: the occupancy channel's voxels are a body of unknown
  identity and speed; they get their own S_p (v_h the ISO 13855 hand/arm speed, Z_d one voxel)
  and their own allowed speed, and the monitor takes the smaller allowed speed of the two
  channels. Anything the occupancy channel sees inside its S_p is a protective stop, whether the
  skeleton channel sees it or not.
- Discrepancy is a fault: when the channels' closest distances (each capped at
  `cross_check_range_m`) differ by more than `disagreement_bound_m` for longer than
  `channel_disagreement_time_s`, one channel is wrong and nobody can tell which: a latched
  fault stop that a supervisor resets once the channels agree again. A protective stop would
  resume on its own while a channel may still be blind; a fault stop does not.
- A missing or stale depth input is a fault stop like a stale camera (`occupancy_faults`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from content.cell import SafetyParameters
from safety.occupancy import OccupancyMeasurement

#: Stamps this far ahead of the monitor's clock are a clock fault (as in `safety.decision`).
_FUTURE_TOLERANCE_NS = 1_000_000


@dataclass(frozen=True)
class ChannelComparison:
    """One cycle's comparison of the channels.

    Attributes:
        skeleton_m: the skeleton channel's closest distance, capped at the range, metres.
        occupancy_m: the occupancy channel's, capped at the range, metres.
        bound_m: the allowed difference this cycle, metres.
        disagree: True when |skeleton_m - occupancy_m| > bound_m.
    """

    skeleton_m: float
    occupancy_m: float
    bound_m: float
    disagree: bool


def occupancy_faults(now_ns: int, occupancy: OccupancyMeasurement | None, params: SafetyParameters) -> list[str]:
    """Watchdog of the depth input: no measurement, a stale one, one from the future, NaN.

    Returns:
        Fault causes (empty when the input is sound).
    """
    if occupancy is None:
        return ["depth: no occupancy measurement received"]
    faults = []
    if occupancy.stamp_ns - now_ns > _FUTURE_TOLERANCE_NS or occupancy.capture_ns - now_ns > _FUTURE_TOLERANCE_NS:
        faults.append("clock jump: occupancy measurement stamped in the future")
    age = now_ns - occupancy.capture_ns
    if age > params.depth_timeout_s * 1e9:
        faults.append(f"depth stale: {age / 1e6:.0f} ms since the last depth frame "
                      f"(limit {params.depth_timeout_s * 1e3:.0f} ms)")
    if not np.isfinite(occupancy.voxels).all():
        faults.append("depth: occupancy voxels have non-finite values")
    return faults


def disagreement_bound_m(params: SafetyParameters, skeleton_uncertainty_m: float,
                         occupancy: OccupancyMeasurement, skeleton_capture_ns: int | None) -> float:
    """The allowed difference between the channels, metres: `channel_disagreement_m` + the
    skeleton's Z_d + the occupancy's voxel + what a person walks (`human_speed_mps`) between the
    two capture times (None: the skeleton channel tracked nobody, no time term)."""
    skew_s = 0.0 if skeleton_capture_ns is None else abs(skeleton_capture_ns - occupancy.capture_ns) / 1e9
    return (params.channel_disagreement_m + skeleton_uncertainty_m + occupancy.uncertainty_m
            + params.human_speed_mps * skew_s)


def compare(skeleton_m: float | None, occupancy_m: float | None, bound_m: float,
            params: SafetyParameters) -> ChannelComparison:
    """Compare the closest distances (None: the channel sees nothing near the robot)."""
    cap = params.cross_check_range_m
    s = cap if skeleton_m is None else min(skeleton_m, cap)
    o = cap if occupancy_m is None else min(occupancy_m, cap)
    return ChannelComparison(s, o, bound_m, abs(s - o) > bound_m)


def disagreement_fault(now_ns: int, comparison: ChannelComparison, since_ns: int,
                       params: SafetyParameters) -> tuple[str | None, int]:
    """Debounce a disagreement over `channel_disagreement_time_s`.

    Args:
        now_ns: this cycle's monotonic time.
        comparison: this cycle's `compare`.
        since_ns: when the current disagreement began (0: the channels agreed last cycle).

    Returns:
        (fault cause or None, `since_ns` for the next cycle).
    """
    if not comparison.disagree:
        return None, 0
    since = since_ns or now_ns
    if now_ns - since < params.channel_disagreement_time_s * 1e9:
        return None, since
    return (f"channel disagreement: skeleton {comparison.skeleton_m:.2f} m, occupancy {comparison.occupancy_m:.2f} m "
            f"for {(now_ns - since) / 1e9:.2f} s (bound {comparison.bound_m:.2f} m)"), since
