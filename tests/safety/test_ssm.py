"""The protective separation distance and the speed limit against hand-computed values."""

import math

import numpy as np

import pytest

from safety.ssm import StoppingModel, max_robot_speed_mps, protective_separation_distance

STOP = StoppingModel(latency_s=0.05, deceleration_mps2=2.5)
COMMON = dict(reaction_time_s=0.1, stopping=STOP, intrusion_distance_m=0.1, z_d_m=0.1, z_r_m=0.01)


def test_terms_by_hand():
    # T_s = 0.05 + 1.0/2.5 = 0.45 s
    sp = protective_separation_distance(v_h_mps=1.6, v_r_mps=1.0, **COMMON)
    assert sp.s_h == pytest.approx(1.6 * (0.1 + 0.45))      # 0.88 m
    assert sp.s_r == pytest.approx(1.0 * 0.1)               # 0.10 m
    assert sp.s_s == pytest.approx(1.0 * 0.05 + 1.0 / 5.0)  # 0.25 m
    assert (sp.c, sp.z_d, sp.z_r) == (0.1, 0.1, 0.01)
    assert sp.total_m == pytest.approx(1.44)


def test_robot_at_rest_still_needs_human_travel_during_reaction():
    sp = protective_separation_distance(v_h_mps=1.6, v_r_mps=0.0, **COMMON)
    assert sp.s_r == 0.0 and sp.s_s == 0.0
    assert sp.total_m == pytest.approx(1.6 * 0.15 + 0.21)


def test_speed_limit_inverts_the_distance():
    # At d = S_p(1.0 m/s) = 1.44 m the allowed speed is exactly 1.0 m/s.
    assert max_robot_speed_mps(separation_m=1.44, v_h_mps=1.6, **COMMON) == pytest.approx(1.0)
    for v in (0.1, 0.37, 0.8, 1.5):
        d = protective_separation_distance(v_h_mps=2.0, v_r_mps=v, **COMMON).total_m
        assert max_robot_speed_mps(separation_m=d, v_h_mps=2.0, **COMMON) == pytest.approx(v)


def test_speed_limit_reduces_to_design_formula_without_human_speed_and_latency():
    stop = StoppingModel(latency_s=0.0, deceleration_mps2=3.0)
    a, t_r, d, c, z = 3.0, 0.12, 0.9, 0.1, 0.05
    expected = math.sqrt((a * t_r) ** 2 + 2 * a * (d - c - z)) - a * t_r
    got = max_robot_speed_mps(separation_m=d, v_h_mps=0.0, reaction_time_s=t_r, stopping=stop,
                              intrusion_distance_m=c, z_d_m=z, z_r_m=0.0)
    assert got == pytest.approx(expected)


def test_too_close_allows_no_speed():
    assert max_robot_speed_mps(separation_m=0.3, v_h_mps=1.6, **COMMON) == 0.0
    assert max_robot_speed_mps(separation_m=float("nan"), v_h_mps=1.6, **COMMON) == 0.0


def test_closer_or_faster_person_never_allows_more_speed():
    last = math.inf
    for d in (3.0, 2.0, 1.5, 1.0, 0.6):
        v = max_robot_speed_mps(separation_m=d, v_h_mps=1.6, **COMMON)
        assert v <= last
        last = v
    assert max_robot_speed_mps(separation_m=1.5, v_h_mps=2.0, **COMMON) < max_robot_speed_mps(
        separation_m=1.5, v_h_mps=1.6, **COMMON)


@pytest.mark.parametrize("field", ["v_h_mps", "v_r_mps", "reaction_time_s", "intrusion_distance_m", "z_d_m", "z_r_m"])
def test_negative_or_nan_input_is_refused(field):
    args = dict(v_h_mps=1.6, v_r_mps=1.0, **COMMON)
    args[field] = -0.1
    with pytest.raises(ValueError, match=f"{field} must be finite and >= 0"):
        protective_separation_distance(**args)
    args[field] = float("nan")
    with pytest.raises(ValueError, match=f"{field} must be finite and >= 0"):
        protective_separation_distance(**args)


# ----------------------------------------------------------------- measured stopping data
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from safety.ssm import fit_stopping_envelope  # noqa: E402


def interpolated(speeds, times, distances, v):
    """The table as the envelope must bound it: distances from (0, 0), times flat below."""
    return (float(__import__("numpy").interp(v, speeds, times)),
            float(__import__("numpy").interp(v, [0.0, *speeds], [0.0, *distances])))


def test_a_table_made_by_the_linear_model_is_bounded_more_tightly_the_denser_it_is():
    true = StoppingModel(latency_s=0.05, deceleration_mps2=2.5)

    def fit(n):
        speeds = [k / n for k in range(1, n + 1)]
        return fit_stopping_envelope(speeds, [true.stopping_time_s(v) for v in speeds],
                                     [true.stopping_distance_m(v) for v in speeds])

    coarse, dense = fit(4), fit(10)
    for k in range(1, 101):          # never below the robot that made the data
        v = k / 100
        for model in (coarse, dense):
            assert model.stopping_distance_m(v) >= true.stopping_distance_m(v) - 1e-12
            assert model.stopping_time_s(v) >= true.stopping_time_s(v) - 1e-12
    # The price of knowing the curve only at the rows (chords above a convex distance):
    # 0.30 m instead of 0.25 m at 1 m/s from 4 rows, 0.27 m from 10.
    assert coarse.stopping_distance_m(1.0) <= 1.25 * true.stopping_distance_m(1.0)
    assert dense.stopping_distance_m(1.0) <= 1.10 * true.stopping_distance_m(1.0)
    assert dense.stopping_distance_m(1.0) < coarse.stopping_distance_m(1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.05, 0.5), st.floats(0.01, 0.3), st.floats(0.005, 0.3)),
                min_size=1, max_size=5))
def test_the_envelope_is_never_below_the_measured_stops(steps):
    # cumulative sums: strictly increasing speeds, non-decreasing times and distances
    speeds, times, distances = [], [], []
    v = t = d = 0.0
    for dv, dt, dd in steps:
        v, t, d = v + dv, t + dt, d + dd
        speeds.append(v), times.append(t), distances.append(d)
    fit = fit_stopping_envelope(speeds, times, distances)
    for k in range(1, 201):
        speed = speeds[-1] * k / 200
        t_data, d_data = interpolated(speeds, times, distances, speed)
        assert fit.stopping_time_s(speed) >= t_data - 1e-9
        assert fit.stopping_distance_m(speed) >= d_data - 1e-9


@pytest.mark.parametrize(("speeds", "times", "distances", "match"), [
    ([0.5, 0.4], [0.1, 0.2], [0.1, 0.2], "speeds must be strictly increasing"),
    ([0.5, 1.0], [0.3, 0.2], [0.1, 0.2], "must not decrease with speed"),
    ([0.5, 1.0], [0.1, 0.2], [0.1, -0.2], "must be > 0"),
    ([0.5], [0.1, 0.2], [0.1], "give as many times and distances as speeds"),
])
def test_unusable_stopping_data_is_refused(speeds, times, distances, match):
    with pytest.raises(ValueError, match=match):
        fit_stopping_envelope(speeds, times, distances)


TABLE = [
    {"speed_mps": 0.33, "payload_kg": 0, "stopping_time_s": 0.15, "stopping_distance_m": 0.04},
    {"speed_mps": 0.66, "payload_kg": 0, "stopping_time_s": 0.22, "stopping_distance_m": 0.11},
    {"speed_mps": 1.0, "payload_kg": 0, "stopping_time_s": 0.30, "stopping_distance_m": 0.21},
    {"speed_mps": 0.33, "payload_kg": 3, "stopping_time_s": 0.18, "stopping_distance_m": 0.05},
    {"speed_mps": 0.66, "payload_kg": 3, "stopping_time_s": 0.27, "stopping_distance_m": 0.14},
    {"speed_mps": 1.0, "payload_kg": 3, "stopping_time_s": 0.36, "stopping_distance_m": 0.27},
]


def cell_robot(**stop):
    from content.cell import parse_cell

    return parse_cell({"name": "x", "robot": {"max_tcp_speed_mps": 1.0, "stop": stop}}, source="cell.yaml").robot


def test_the_cells_payload_picks_the_next_heavier_measured_rows():
    light = StoppingModel.from_stop_data(cell_robot(table=TABLE, payload_kg=0).stop)
    carrying = StoppingModel.from_stop_data(cell_robot(table=TABLE, payload_kg=1.0).stop)   # 3 kg rows
    assert carrying.stopping_distance_m(1.0) >= 0.27 > light.stopping_distance_m(1.0) >= 0.21
    assert carrying.stopping_time_s(0.66) >= 0.27
    # The table wins over the parametric figures, which then describe the simulated brake only.
    assert StoppingModel.from_stop_data(cell_robot(table=TABLE).stop) == light != \
        StoppingModel.from_stop_data(cell_robot().stop)


@pytest.mark.parametrize(("stop", "match"), [
    ({"table": TABLE, "payload_kg": 5}, r"robot.stop: Value error, payload_kg 5 is above every payload of the table"),
    ({"table": TABLE[:2]}, r"robot: Value error, stop.table: the payload 0 kg is measured up to 0.66 m/s, "
                           r"below max_tcp_speed_mps 1"),
    ({"table": [TABLE[1], {**TABLE[2], "stopping_distance_m": 0.1}]},
     r"robot.stop: Value error, table rows of payload 0 kg: the stop from 1 m/s is shorter than from 0.66 m/s"),
    ({"table": [TABLE[2], {**TABLE[2], "stopping_time_s": 0.4}]},
     r"robot.stop: Value error, table rows of payload 0 kg: two rows at 1 m/s"),
])
def test_a_bad_table_is_refused_naming_the_field(stop, match):
    from content.errors import CellDescriptionError

    with pytest.raises(CellDescriptionError, match=match):
        cell_robot(**stop)


def test_the_vectorised_forms_agree_with_the_scalar_ones():
    from safety.ssm import max_robot_speeds_mps, protective_separation_distances_m
    stopping = StoppingModel(0.05, 2.5)
    terms = dict(v_h_mps=1.6, reaction_time_s=0.12, stopping=stopping, intrusion_distance_m=0.2, z_d_m=0.05,
                 z_r_m=0.01)
    separations = np.array([0.0, 0.3, 0.8, 1.5, 3.0, np.inf])
    expected = [max_robot_speed_mps(separation_m=d, **terms) if np.isfinite(d) else 0.0 for d in separations]
    assert max_robot_speeds_mps(separations, **terms) == pytest.approx(expected)
    speeds = np.array([0.0, 0.25, 1.0, 2.0])
    assert protective_separation_distances_m(speeds, **terms) == pytest.approx(
        [protective_separation_distance(v_r_mps=v, **terms).total_m for v in speeds])
