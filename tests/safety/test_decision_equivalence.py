"""The vectorised decision cycle decides exactly as the per-region loop it replaced.

`tests/safety/reference_ssm.py` is a frozen copy of the cycle before vectorisation (commit
8b13988). Seeded random cells (a 9-link capsule chain on a commanded path, 0-6 people with
partial tracking and held keypoints, zones of every kind) run through `decide()` twice per cycle,
once with the reference's body capsules, regions, `_ssm` and zone test patched in, once as
shipped; mode, speed scale, closest pair, S_p terms, v_r, margin, reason and memory must agree
(floats within 1e-9; in practice they agree bit for bit). Edge cases: no path, another goal,
a person closer than `DIRECTION_FLOOR_M` or overlapping a link, an SSM stop under way,
non-finite keypoints and robot values, a robot in a keep-out zone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from content.cell import SafetyParameters, Zone
from robot_bridge.types import ControllerMode, RobotState
from safety import decision
from safety.decision import Memory, SafetyState, decide
from safety.directed_speed import ActivePath
from safety.perception.types import CameraStatus, HumanTrack, PerceptionSnapshot
from safety.ssm import StoppingModel
from safety.zones import ZoneSet
from tests.safety import reference_ssm
from tests.safety.fakes import MS, standing_person

PARAMS = SafetyParameters()
STOP = StoppingModel(0.05, 2.5)
LINKS = tuple(f"link{i}" for i in range(9))
RADII = np.array([0.09, 0.09, 0.08, 0.08, 0.07, 0.07, 0.06, 0.06, 0.1])
LENGTHS = np.array([0.33, 0.3, 0.32, 0.28, 0.38, 0.1, 0.1, 0.1, 0.12])
T0 = 10_000 * MS
ZONES = ZoneSet([
    Zone(name="work", kind="warning", footprint=[(-1.5, -1.5), (1.5, -1.5), (1.5, 1.5), (-1.5, 1.5)],
         z_range_m=(0.0, 2.2)),
    Zone(name="cabinet", kind="robot_keep_out", box={"min": [1.2, -0.3, 0.0], "max": [1.6, 0.3, 1.2]}),
    Zone(name="aisle", kind="restricted", footprint=[(-2.5, 1.0), (-1.0, 1.0), (-1.5, 2.5)],
         z_range_m=(0.0, 2.0)),
    Zone(name="bench", kind="collaborative", box={"min": [0.3, 0.3, 0.0], "max": [1.0, 1.0, 2.0]}),
])


def chain(q: np.ndarray) -> np.ndarray:
    """(S, 9, 2, 3) capsule axes of a planar-ish 9-link arm at joint positions q (S, 7)."""
    out = np.zeros((len(q), len(LENGTHS), 2, 3))
    for s, row in enumerate(q):
        p = np.zeros(3)
        yaw, pitch = row[0], 0.0
        for k, length in enumerate(LENGTHS):
            pitch += row[min(k, 6)] * (0.5 if k else 0.0)
            d = np.array([math.cos(yaw) * math.sin(pitch), math.sin(yaw) * math.sin(pitch), math.cos(pitch)])
            out[s, k] = (p, p + length * d)
            p = p + length * d
    return out


def random_path(rng: np.random.Generator) -> ActivePath:
    samples = int(rng.integers(3, 60))
    ends = rng.uniform(-2.0, 2.0, (2, 7))
    q = ends[0] + (ends[1] - ends[0]) * np.linspace(0.0, 1.0, samples)[:, None]
    t = np.cumsum(rng.uniform(0.0, 0.08, samples))
    return ActivePath.from_sweep("g", q, t - t[0], chain(q))


def random_robot(rng: np.random.Generator, path: ActivePath, now: int, case: str) -> RobotState:
    s = int(rng.integers(0, len(path.times_s)))
    q = path.positions[s] + rng.normal(0.0, 0.01 if rng.random() < 0.8 else 0.2, 7)
    segs = chain(q[None])[0]
    speeds = path.speeds[s] * rng.uniform(0.0, 1.5) if rng.random() < 0.8 else np.full(9, rng.uniform(0, 2))
    if case == "robot_nan":
        speeds = speeds.copy()
        speeds[3] = np.nan
    if case == "keep_out":
        segs = segs + np.array([1.4, 0.0, 0.0]) - segs[-1, 1] * np.array([1.0, 1.0, 0.0])
    return RobotState(now - 2 * MS, tuple(f"j{i}" for i in range(7)), q, np.zeros(7), segs[-1, 1], np.zeros(3),
                      LINKS, segs, RADII, speeds, float(rng.uniform(0, 1)), ControllerMode.EXECUTING,
                      goal_id="other" if case == "other_goal" else "g", goal_done=False)


def random_people(rng: np.random.Generator, robot: RobotState, now: int, case: str) -> PerceptionSnapshot:
    tracks = []
    for k in range(int(rng.integers(0, 7))):
        ang = rng.uniform(0.0, 2 * math.pi)
        dist = rng.uniform(0.0, 0.35) if case == "close" and k == 0 else rng.uniform(0.1, 3.0)
        if case == "spread" and k > 0:   # far people next to a near one
            dist = rng.uniform(1.5, 6.0)
        kp = standing_person(dist * math.cos(ang), dist * math.sin(ang)) + rng.normal(0.0, 0.05, (33, 3))
        if rng.random() < 0.5:   # an arm reaching for a link
            link = robot.link_segments[int(rng.integers(0, 9))]
            kp[15:23] = link[1] + rng.normal(0.0, 0.15, (8, 3))
        conf = np.where(rng.random(33) < 0.15, 0.0, rng.uniform(0.2, 1.0, 33))
        kp[conf == 0.0] = np.nan
        if case == "keypoints_nan" and k == 0:
            kp[16] = np.nan
            conf[16] = 0.9
        held = None
        if rng.random() < 0.3:
            held = np.full(33, now - 60 * MS, dtype=np.int64) - rng.integers(0, 80, 33) * MS
        tracks.append(HumanTrack(f"p{k + 1}", kp, conf, rng.normal(0.0, 0.8, 3), float(rng.uniform(0.02, 0.2)),
                                 now - 60 * MS, now - 40 * MS, ("c1",), keypoint_capture_ns=held))
    cams = (CameraStatus("c1", now - 5 * MS, now - 5 * MS, 1, 1, 0, 1),)
    return PerceptionSnapshot(now - MS, tuple(tracks), cams)


def reference_decide(monkeypatch: pytest.MonkeyPatch, *args, **kwargs) -> tuple[SafetyState, Memory]:
    with monkeypatch.context() as m:
        # (the cycle hands it the tracks it stacked for the input checks; the reference stacks
        # its own)
        m.setattr(decision, "body_capsules", lambda perception, params, stacked=None:
                  reference_ssm.body_capsules(perception, params))
        m.setattr(decision, "_body_regions", reference_ssm._body_regions)
        m.setattr(decision, "_ssm", reference_ssm._ssm)
        m.setattr(ZoneSet, "capsules_inside", reference_ssm.capsules_inside)
        return decide(*args, **kwargs)


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-9)


def assert_same(new: SafetyState, old: SafetyState) -> None:
    assert (new.mode, new.reason, new.faults, new.latched, new.zone_violations) == (
        old.mode, old.reason, old.faults, old.latched, old.zone_violations)
    for name in ("speed_scale", "separation_m", "v_r_mps", "v_h_mps", "reaction_time_s", "margin_m"):
        assert close(getattr(new, name), getattr(old, name)), name
    assert (new.s_p is None) == (old.s_p is None)
    if new.s_p is not None:
        for term, value in new.s_p.as_dict().items():
            assert close(value, old.s_p.as_dict()[term]), term
    assert (new.closest is None) == (old.closest is None)
    if new.closest is not None:
        a, b = new.closest, old.closest
        assert (a.person, a.body_part, a.link, a.v_r_directed) == (b.person, b.body_part, b.link, b.v_r_directed)
        assert close(a.separation_m, b.separation_m) and close(a.v_r_mps, b.v_r_mps)
        assert np.allclose(a.human_point, b.human_point, atol=1e-9, rtol=0)
        assert np.allclose(a.robot_point, b.robot_point, atol=1e-9, rtol=0)


CASES = ("plain", "spread", "no_path", "other_goal", "close", "stop_under_way", "keypoints_nan", "robot_nan",
         "keep_out", "spread")


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_cycle_decides_as_the_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    path = random_path(rng)
    new_mem = old_mem = Memory(started=True, scale=1.0, prev_cycle_ns=T0 - 10 * MS)
    kinds = {c: 0 for c in ("full_speed", "reduced_speed", "protective_stop", "fault_stop")}
    for cycle in range(25):
        case = CASES[(seed + cycle) % len(CASES)]
        now = T0 + cycle * 10 * MS
        robot = random_robot(rng, path, now, case)
        snap = random_people(rng, robot, now, case)
        if case == "stop_under_way":
            stopping = Memory(started=True, scale=0.0, ssm_stop=True, stop_commanded_ns=now - 30 * MS,
                              prev_cycle_ns=now - 10 * MS)
            new_mem = old_mem = stopping
        zones = ZONES if rng.random() < 0.7 else None
        args = (now, robot, snap, PARAMS, STOP, 1.0)
        kwargs = {"zones": zones, "path": None if case == "no_path" else path}
        old, old_next = reference_decide(monkeypatch, *args, old_mem, **kwargs)
        new, new_next = decide(*args, new_mem, **kwargs)
        assert_same(new, old)
        assert new_next == old_next
        kinds[new.mode.value] += 1
        if new.mode.value == "fault_stop":   # clear the latch so that the next cycles decide again
            new_next = old_next = Memory(started=True, scale=0.0, prev_cycle_ns=now)
        new_mem, old_mem = new_next, old_next
    assert kinds["fault_stop"] > 0


def test_the_random_cells_reach_every_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeds above are not all trivially far or all faults: every mode and both kinds of v_r occur."""
    seen, directed = set(), set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        path = random_path(rng)
        for cycle in range(25):
            case = CASES[(seed + cycle) % len(CASES)]
            now = T0 + cycle * 10 * MS
            robot = random_robot(rng, path, now, case)
            snap = random_people(rng, robot, now, case)
            mem = Memory(started=True, scale=1.0 if cycle % 2 else 0.3, prev_cycle_ns=now - 10 * MS)
            state, _ = decide(now, robot, snap, PARAMS, STOP, 1.0, mem, ZONES if cycle % 3 else None,
                              path=None if case == "no_path" else path)
            seen.add(state.mode.value)
            if state.closest is not None:
                directed.add(state.closest.v_r_directed)
    assert seen == {"full_speed", "reduced_speed", "protective_stop", "fault_stop"}
    assert directed == {True, False}


def test_zone_pretests_answer_as_shapely_alone() -> None:
    """`ZoneSet.capsules_inside` with its numpy pre-tests against the shapely-only reference, on
    capsules around and across convex and concave footprints (edges grazed within 1 mm)."""
    zones = ZoneSet(list(ZONES.zones) + [
        Zone(name="ell", kind="restricted", footprint=[(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)])])
    rng = np.random.default_rng(3)
    for trial in range(300):
        a = rng.uniform(-3.0, 3.0, (60, 3))
        if trial % 3 == 0:   # a small cluster somewhere: the whole-set early exit
            a = rng.uniform(-4.0, 4.0, 3) + rng.uniform(-0.2, 0.2, (60, 3))
        b = np.where(rng.random((60, 1)) < 0.2, a, a + rng.normal(0.0, 0.5, (60, 3)))
        segs = np.stack((a, b), axis=1)
        segs[:10, :, 0] = np.round(segs[:10, :, 0] * 2) / 2 + rng.uniform(-1e-3, 1e-3, (10, 2))   # near edges
        radii = rng.uniform(0.0, 0.3, 60)
        segs[rng.random(60) < 0.02] = np.nan
        for i in range(len(zones)):
            assert (zones.capsules_inside(i, segs, radii) == reference_ssm.capsules_inside(zones, i, segs, radii)).all()


def test_zone_decisions_on_edges_corners_and_non_finite_capsules() -> None:
    """The numpy decisions of `ZoneSet.capsules_inside` where they are closest to shapely's
    boundary: capsules exactly on a footprint's edges and vertices (radius 0 and not), just
    outside an edge by less and by more than their radius, off a corner diagonally, across a
    footprint, along an edge, and non-finite ones (inside, fail-safe)."""
    ell = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]
    zones = ZoneSet(list(ZONES.zones) + [Zone(name="ell", kind="restricted", footprint=ell)])
    work = 0                                        # the square (-1.5, -1.5) .. (1.5, 1.5)
    z = 1.0
    cases = [  # (a, b, radius, inside?)
        ((1.5, 0.2, z), (1.5, -0.4, z), 0.0, True),           # on an edge, radius 0
        ((1.5, 1.5, z), (1.5, 1.5, z), 0.0, True),            # on a vertex, radius 0
        ((1.6, 0.0, z), (1.6, 0.5, z), 0.1 + 1e-6, True),     # 0.1 m outside, radius just above
        ((1.6, 0.0, z), (1.6, 0.5, z), 0.1 - 1e-6, False),    # ... and just below
        ((1.6, 1.6, z), (1.6, 1.6, z), 0.15, True),           # off the corner by 0.141 m
        ((1.6, 1.6, z), (1.6, 1.6, z), 0.14, False),
        ((1.7, 1.3, z), (1.3, 1.7, z), 0.0, True),            # cutting the corner
        ((1.8, 1.4, z), (1.4, 1.8, z), 0.14, False),          # passing the corner 0.1414 m off
        ((1.8, 1.4, z), (1.4, 1.8, z), 0.15, True),
        ((-3.0, 0.0, z), (3.0, 0.0, z), 0.0, True),           # across, both ends outside
        ((-1.5, -2.0, z), (-1.5, 2.0, z), 0.0, True),         # along an edge
        ((1.5 + 1e-12, -1.0, z), (1.5 + 1e-12, 1.0, z), 0.0, False),   # 1e-12 m outside, radius 0
        ((0.0, 0.0, 2.3), (0.0, 0.0, 2.5), 0.05, False),      # above the prism
        ((0.0, 0.0, 2.3), (0.0, 0.0, 2.5), 0.1 + 1e-6, True),  # above, within its radius
        ((np.nan, 0.0, z), (0.0, 0.0, z), 0.1, True),         # non-finite: inside
        ((5.0, 5.0, z), (np.inf, 5.0, z), 0.1, True),
        ((5.0, 5.0, z), (5.0, 5.0, z), np.nan, True),
    ]
    segs = np.array([(a, b) for a, b, _, _ in cases], dtype=np.float64)
    radii = np.array([r for _, _, r, _ in cases])
    with np.errstate(invalid="ignore"):
        reference = reference_ssm.capsules_inside(zones, work, segs, radii)
    assert zones.capsules_inside(work, segs, radii).tolist() == [c[3] for c in cases]
    assert zones.capsules_inside(work, segs, radii).tolist() == reference.tolist()
    for i in range(len(zones)):   # every other footprint (convex, concave, boxes) agrees too
        with np.errstate(invalid="ignore"):
            expected = reference_ssm.capsules_inside(zones, i, segs, radii)
        assert (zones.capsules_inside(i, segs, radii) == expected).all(), zones.zones[i].name
