"""The protective separation distance and the speed limit against hand-computed values."""

import math

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
