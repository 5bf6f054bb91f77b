"""The two-channel rule: skeleton and occupancy agree (no stop), disagree beyond the bound for longer
than the configured time (latched fault stop), occupancy sees something inside S_p the skeleton
does not (protective stop), a stale or missing depth input (fault stop)."""

import numpy as np
import pytest

from content.cell import SafetyParameters
from safety.cross_check import compare, disagreement_bound_m, disagreement_fault
from safety.decision import Memory, SafetyMode, decide
from safety.occupancy import OccupancyChannel, OccupancyMeasurement
from safety.ssm import StoppingModel
from tests.safety.fakes import MS, robot_state, snapshot, standing_person

PARAMS = SafetyParameters(channel_disagreement_m=0.25, channel_disagreement_time_s=0.3, depth_timeout_s=0.5)
STOP = StoppingModel(0.05, 2.5)
T0 = 10_000 * MS
CHANNEL = OccupancyChannel(voxel_size_m=0.05, min_points_per_voxel=1)


def person_points(x_m: float) -> np.ndarray:
    """The surface of a person standing with their front at x (a 0.3 m thick slab, 1.7 m tall), as a
    depth camera would see it: points every 2 cm."""
    ys = np.arange(-0.2, 0.2, 0.02)
    zs = np.arange(0.1, 1.7, 0.02)
    return np.array([[x_m, y, z] for y in ys for z in zs])


def occupancy(now: int, points: np.ndarray | None, age_ns: int = 40 * MS) -> OccupancyMeasurement:
    robot = robot_state(now)
    pts = np.empty((0, 3)) if points is None else points
    return CHANNEL.measure(pts, robot.link_segments, robot.link_radii_m, robot.link_names, now - age_ns, now)


def step(now, people_x=(), occupied_x=None, mem=None, age_ns=40 * MS, occ="auto", speed_mps=1.0):
    people = [standing_person(x) for x in people_x]
    m = occupancy(now, None if occupied_x is None else person_points(occupied_x), age_ns) if occ == "auto" else occ
    return decide(now, robot_state(now, speed_mps=speed_mps), snapshot(now, people), PARAMS, STOP, 1.0,
                  mem or Memory(), occupancy_channel=True, occupancy=m)


def started():
    state, mem = step(T0)
    assert state.mode is SafetyMode.FULL_SPEED
    return mem


def test_one_channel_only_says_so():
    state, _ = decide(T0, robot_state(T0), snapshot(T0), PARAMS, STOP, 1.0, Memory())
    assert state.channels == ("skeleton",) and state.occupancy_separation_m is None
    state, _ = step(T0)
    assert state.channels == ("skeleton", "occupancy")


def test_agreeing_channels_do_not_stop():
    # The skeleton at 2.4 m (its capsules reach to 2.15 m of the robot's surface), the depth camera
    # sees the person's front at 2.15 m (2.05 m from the surface): within the bound, outside S_p.
    mem = started()
    for i in range(1, 60):  # 0.6 s, twice the disagreement time
        state, mem = step(T0 + i * 10 * MS, people_x=[2.4], occupied_x=2.15, mem=mem)
        assert state.mode is SafetyMode.FULL_SPEED, state.reason
    # The state shows the closer channel's separation.
    assert state.separation_m == state.occupancy_separation_m
    assert 2.05 - 0.05 - 0.05 <= state.occupancy_separation_m <= 2.05
    assert mem.disagree_since_ns == 0


def test_disagreement_beyond_the_bound_latches_a_fault_stop_after_the_configured_time():
    # The skeleton channel sees the person at 3 m, the depth camera an object at 1.7 m.
    mem = started()
    t = T0
    for i in range(1, 30):  # 0.29 s of disagreement: not yet
        t = T0 + i * 10 * MS
        state, mem = step(t, people_x=[3.0], occupied_x=1.7, mem=mem)
        assert state.mode is not SafetyMode.FAULT_STOP, state.reason
    assert mem.disagree_since_ns == T0 + 10 * MS
    state, mem = step(t + 20 * MS, people_x=[3.0], occupied_x=1.7, mem=mem)
    assert state.mode is SafetyMode.FAULT_STOP and state.latched
    assert "channel disagreement: skeleton 2.00 m, occupancy 1.5" in state.reason
    # Latched: the channels agree again, the robot stays stopped until an authorised reset.
    state, mem = step(t + 30 * MS, people_x=[3.0], occupied_x=2.85, mem=mem)
    assert state.mode is SafetyMode.FAULT_STOP and "reset required" in state.reason
    from dataclasses import replace
    state, mem = step(t + 40 * MS, people_x=[3.0], occupied_x=2.85, mem=replace(mem, reset_requested=True))
    assert state.mode is not SafetyMode.FAULT_STOP


def test_a_short_disagreement_is_forgiven():
    mem = started()
    for i in range(1, 20):
        state, mem = step(T0 + i * 10 * MS, people_x=[3.0], occupied_x=1.7, mem=mem)
    state, mem = step(T0 + 200 * MS, people_x=[3.0], occupied_x=2.85, mem=mem)
    assert mem.disagree_since_ns == 0
    for i in range(21, 40):
        state, mem = step(T0 + i * 10 * MS, people_x=[3.0], occupied_x=1.7, mem=mem)
    assert state.mode is not SafetyMode.FAULT_STOP


def test_occupancy_inside_s_p_that_the_skeleton_does_not_see_is_a_protective_stop_at_once():
    # Nobody tracked; the depth camera sees something 0.4 m from the moving robot.
    mem = started()
    state, mem = step(T0 + 10 * MS, occupied_x=0.5, mem=mem)
    assert state.mode is SafetyMode.PROTECTIVE_STOP and state.speed_scale == 0.0
    assert state.closest is not None and state.closest.person == "occupancy"
    assert state.occupancy_separation_m < 0.4


def test_the_stricter_channel_sets_the_speed():
    # The skeleton alone at 1.75 m allows full speed; the occupancy channel seeing the same person
    # about 0.1 m closer (within the bound) lowers it.
    mem = started()
    alone, _ = decide(T0 + 10 * MS, robot_state(T0 + 10 * MS), snapshot(T0 + 10 * MS, [standing_person(2.0)]),
                      PARAMS, STOP, 1.0, mem)
    both, _ = step(T0 + 10 * MS, people_x=[2.0], occupied_x=1.75, mem=mem)
    assert alone.mode is SafetyMode.FULL_SPEED
    assert both.mode is SafetyMode.REDUCED_SPEED and 0.0 < both.speed_scale < 1.0


@pytest.mark.parametrize("case, expect", [
    ("stale", "depth stale: 600 ms since the last depth frame (limit 500 ms)"),
    ("missing", "depth: no occupancy measurement received"),
    ("future", "clock jump: occupancy measurement stamped in the future"),
])
def test_a_stale_missing_or_future_depth_input_is_a_fault_stop(case, expect):
    mem = started()
    now = T0 + 10 * MS
    occ = {"stale": occupancy(now, None, age_ns=600 * MS), "missing": None,
           "future": occupancy(now, None, age_ns=-5 * MS)}[case]
    state, _ = step(now, occ=occ, mem=mem)
    assert state.mode is SafetyMode.FAULT_STOP and state.latched
    assert expect in state.reason


def test_start_up_waits_for_the_depth_input():
    state, _ = step(T0, occ=None)
    assert state.mode is SafetyMode.FAULT_STOP and not state.latched
    assert "starting up" in state.reason and "no occupancy measurement" in state.reason


def test_the_bound_grows_with_both_uncertainties_and_the_capture_skew():
    m = occupancy(T0, None)
    base = disagreement_bound_m(PARAMS, 0.1, m, None)
    assert base == pytest.approx(0.25 + 0.1 + 0.05)
    assert disagreement_bound_m(PARAMS, 0.1, m, m.capture_ns - 100 * MS) == pytest.approx(base + 1.6 * 0.1)


def test_distances_are_compared_within_the_range():
    p = SafetyParameters(cross_check_range_m=2.0)
    assert not compare(None, 5.0, 0.4, p).disagree  # both beyond the range
    assert compare(None, 1.0, 0.4, p).disagree  # the skeleton misses what the depth camera sees
    assert compare(1.0, None, 0.4, p).disagree  # and the other way round
    c = compare(1.0, 1.3, 0.4, p)
    assert not c.disagree and c.skeleton_m == 1.0 and c.occupancy_m == 1.3


def test_debounce_keeps_the_start_of_the_disagreement():
    p = SafetyParameters(channel_disagreement_time_s=0.3)
    bad = compare(None, 1.0, 0.4, p)
    assert disagreement_fault(T0, bad, 0, p) == (None, T0)
    assert disagreement_fault(T0 + 100 * MS, bad, T0, p) == (None, T0)
    fault, since = disagreement_fault(T0 + 300 * MS, bad, T0, p)
    assert since == T0 and fault.startswith("channel disagreement: skeleton 2.00 m, occupancy 1.00 m for 0.30 s")
    assert disagreement_fault(T0 + 400 * MS, compare(1.0, 1.0, 0.4, p), T0, p) == (None, 0)
