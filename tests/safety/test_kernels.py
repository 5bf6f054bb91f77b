"""The compiled kernels of `safety.kernels` give the numpy formulas' results bit for bit.

Random capsule sets (point segments, segments sharing a link's joint, a body point exactly on
a joint) and random swept paths, against `safety.distance.closest_points_all_pairs` with
`np.argmin` and against the numpy directed-speed pass the kernel replaced (kept here as the
reference). Exact equality, not a tolerance: the kernels do the same IEEE operations in the
same order.
"""

from __future__ import annotations

import numpy as np
import pytest

from safety import kernels
from safety.directed_speed import ActivePath, directed_speeds_mps
from safety.distance import closest_pairs_per_link, closest_points_all_pairs, points_at


def numpy_pairs(capsules, robot_segments, robot_radii):
    """`closest_pairs_per_link` with numpy: the all-pairs pass, then each region's argmin."""
    hs = np.concatenate([c[0] for c in capsules])
    hr = np.concatenate([c[1] for c in capsules])
    axis, s, t = closest_points_all_pairs(hs, robot_segments)
    surface = axis - hr[:, None]
    surface -= robot_radii[None, :]
    out = []
    start = 0
    for segs, _, _ in capsules:
        block = surface[start:start + len(segs)]
        h = np.argmin(block, axis=0)
        links = np.arange(len(robot_segments))
        rows = start + h
        out.append((block[h, links], h, points_at(hs[rows], s[rows, links]),
                    points_at(robot_segments, t[rows, links])))
        start += len(segs)
    return [np.stack(x) for x in zip(*out)]


def numpy_directed(path: ActivePath, window: np.ndarray, human_points: np.ndarray) -> np.ndarray:
    """The numpy directed-speed pass `safety.kernels.directed_speeds` replaced."""
    n_links = path.points_xyz.shape[1]
    x = path.points_xyz[:, :, window].reshape(3, n_links, -1)
    v = path.velocities_xyz[:, :, window].reshape(3, n_links, -1)
    h = human_points[:, :, :, None]
    dx, dy, dz = h[:, :, 0] - x[0], h[:, :, 1] - x[1], h[:, :, 2] - x[2]
    dist = dx * dx
    dist += dy * dy
    dist += dz * dz
    np.sqrt(dist, out=dist)
    along = dx * v[0]
    along += dy * v[1]
    along += dz * v[2]
    along /= np.maximum(dist, 1e-6)
    directed = np.where(dist > 1e-6, along, path.point_speeds[:, window].reshape(n_links, -1))
    return np.maximum(directed.max(axis=2), 0.0)


@pytest.mark.parametrize("seed", range(8))
def test_closest_pairs_kernel_is_the_numpy_pass_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for trial in range(150):
        n_links = int(rng.integers(1, 10))
        a = rng.normal(0.0, 0.4, (n_links, 3))
        b = np.where(rng.random((n_links, 1)) < 0.15, a, a + rng.normal(0.0, 0.3, (n_links, 3)))
        if trial % 3 == 0 and n_links > 1:       # a chain: links share their joints
            b[:-1] = a[1:]
        robot = np.stack((a, b), axis=1)
        radii = rng.uniform(0.0, 0.1, n_links)
        capsules = []
        for _ in range(int(rng.integers(1, 8))):
            h = int(rng.integers(1, 19))
            ha = rng.normal(0.0, 0.8, (h, 3))
            hb = np.where(rng.random((h, 1)) < 0.2, ha, ha + rng.normal(0.0, 0.3, (h, 3)))
            capsules.append((np.stack((ha, hb), axis=1), rng.uniform(0.0, 0.2, h), ("x",) * h))
        if trial % 3 == 0 and n_links > 1:       # a body point exactly on a shared joint
            capsules[0][0][0] = (a[1], a[1])
        got = closest_pairs_per_link(capsules, robot, radii)
        expected = numpy_pairs(capsules, robot, radii)
        for name, want in zip(("distance_m", "human_index", "human_point", "robot_point"), expected):
            assert np.array_equal(getattr(got, name), want), name


@pytest.mark.parametrize("seed", range(4))
def test_directed_speed_kernel_is_the_numpy_pass_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for trial in range(60):
        samples, n_links, n_regions = int(rng.integers(2, 60)), int(rng.integers(1, 10)), int(rng.integers(1, 13))
        segs = rng.normal(0.0, 1.0, (samples, n_links, 2, 3)).cumsum(axis=0) * 0.05
        t = np.cumsum(rng.uniform(0.0, 0.08, samples))
        path = ActivePath.from_sweep("g", rng.normal(0.0, 1.0, (samples, 7)), t - t[0], segs)
        window = path.window(int(rng.integers(0, samples)), float(rng.uniform(0.0, 2.0)))
        human = rng.normal(0.0, 1.0, (n_regions, n_links, 3))
        human[0, 0] = path.points[window[0], 0, 2]       # on an axis point: the full speed
        expected = numpy_directed(path, window, human)
        assert np.array_equal(directed_speeds_mps(path, window, human)[0], expected)
        rows = np.flatnonzero(rng.random(n_regions) < 0.5)
        assert np.array_equal(directed_speeds_mps(path, window, human, rows)[0], expected[rows])


@pytest.mark.parametrize("seed", range(3))
def test_the_merged_cycle_kernel_is_the_two_passes_bit_for_bit(seed: int) -> None:
    """`ssm_regions` (one call per cycle) returns what `closest_pairs_per_link` then `ssm_links`
    return, directed or not; a non-finite human point (an overflowing capsule) falls back to the
    undirected speeds, as `safety.decision._ssm` did between the two calls."""
    rng = np.random.default_rng(seed)
    constants = (0.05, 0.1, 0.02, 2.5, 0.1, 0.1, 2.5, 0.2, 0.0)
    for trial in range(40):
        samples, n_links = int(rng.integers(2, 40)), int(rng.integers(1, 10))
        segs = rng.normal(0.0, 1.0, (samples, n_links, 2, 3)).cumsum(axis=0) * 0.05
        t = np.cumsum(rng.uniform(0.0, 0.08, samples))
        path = ActivePath.from_sweep("g", rng.normal(0.0, 1.0, (samples, 7)), t - t[0], segs)
        window = path.window(int(rng.integers(0, samples)), float(rng.uniform(0.0, 2.0)))
        robot, robot_radii = segs[int(rng.integers(0, samples))], rng.uniform(0.0, 0.1, n_links)
        sizes = rng.integers(1, 15, int(rng.integers(1, 13)))
        human = rng.normal(0.0, 1.0, (int(sizes.sum()), 2, 3))
        if trial % 4 == 3:
            human[0, 0, 0] = np.inf
        radii = rng.uniform(0.0, 0.2, len(human))
        starts = np.cumsum(sizes) - sizes
        terms = [rng.uniform(0.1, 2.0, len(sizes)) for _ in range(4)]
        directed = bool(trial % 2)
        path_args = (path.points_xyz, path.velocities_xyz, path.point_speeds, path.speeds, window,
                     float(rng.uniform(0.0, 1.5)), 1.0, float(rng.uniform(0.0, 1.5)))
        got = kernels.ssm_regions(human, radii, starts, sizes, robot, robot_radii, *terms, constants,
                                  directed, *path_args)
        pairs = kernels.closest_pairs_per_link(human, radii, starts, sizes, robot, robot_radii)
        finite = bool(np.isfinite(pairs[2]).all())
        assert finite == (trial % 4 != 3)
        expected = kernels.ssm_links(pairs[0], pairs[2], *terms, constants, directed and finite,
                                     *path_args) + pairs
        assert len(got) == len(expected) == 11
        for value, want in zip(got, expected):
            assert np.array_equal(value, want, equal_nan=True)


def test_kernels_refuse_other_argument_types_instead_of_compiling() -> None:
    """The signatures are fixed: a non-contiguous or float32 argument raises TypeError (a fault
    stop in the cycle), it never compiles a new specialisation inside a live cycle."""
    segs = np.zeros((4, 2, 3))
    radii = np.zeros(4)
    spans = np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64)
    with pytest.raises(TypeError, match="No matching definition"):
        kernels.closest_pairs_per_link(segs[::2], radii[::2], *spans, segs, radii)
    with pytest.raises(TypeError, match="No matching definition"):
        kernels.closest_pairs_per_link(segs.astype(np.float32), radii, *spans, segs, radii)
    assert all(len(k.signatures) == 1 for k in (kernels.closest_pairs_per_link, kernels.directed_speeds,
                                                 kernels.zone_capsules, kernels.ssm_regions))


def numpy_people_capsules(kp: np.ndarray, confidence: np.ndarray, extra: np.ndarray | None):
    """The numpy body-capsule pass `safety.kernels.people_capsules` replaced: (segments, radii, keep)."""
    from safety.distance import _LIMB_I, _LIMB_J, LIMB_RADII_M, UNTRACKED_REACH_M
    ok = np.isfinite(kp).all(axis=2) & (confidence > 0.0)
    ok_i, ok_j = ok[:, _LIMB_I], ok[:, _LIMB_J]
    radius = LIMB_RADII_M
    if extra is not None:
        e_i, e_j = extra[:, _LIMB_I], extra[:, _LIMB_J]
        radius = radius + np.where(e_j > e_i, e_j, e_i)
    radius = np.where(ok_i & ok_j, radius, radius + UNTRACKED_REACH_M)
    a = np.where(ok_i[:, :, None], kp[:, _LIMB_I], kp[:, _LIMB_J])
    b = np.where(ok_j[:, :, None], kp[:, _LIMB_J], kp[:, _LIMB_I])
    return np.stack((a, b), axis=2), radius, ok_i | ok_j


@pytest.mark.parametrize("with_extra", [False, True])
def test_body_capsule_kernel_is_the_numpy_pass_bit_for_bit(with_extra: bool) -> None:
    from safety.distance import people_capsules
    rng = np.random.default_rng(11)
    for _ in range(200):
        people = int(rng.integers(1, 7))
        kp = rng.normal(0.0, 1.0, (people, 33, 3))
        confidence = np.where(rng.random((people, 33)) < 0.2, 0.0, rng.uniform(0.0, 1.0, (people, 33)))
        kp[rng.random((people, 33, 3)) < 0.05] = np.nan
        if rng.random() < 0.2:
            kp[0] = np.nan                                   # nobody left of the first person
        elif rng.random() < 0.2:
            kp, confidence = rng.normal(0.0, 1.0, (people, 33, 3)), np.ones((people, 33))  # all tracked
        extra = rng.uniform(0.0, 0.2, (people, 33)) if with_extra else None
        segs, radii, keep = numpy_people_capsules(kp, confidence, extra)
        got = people_capsules(kp, confidence, extra_radius_m=extra)
        for person, (got_segs, got_radii, names) in enumerate(got):
            mask = keep[person]
            assert np.array_equal(got_segs, segs[person][mask]) and np.array_equal(got_radii, radii[person][mask])
            assert len(names) == mask.sum()
        # every person's capsules stacked in order, the per-person arrays being views of them
        assert np.array_equal(got.segments, segs[keep]) and np.array_equal(got.radii, radii[keep])
        assert all(np.shares_memory(c[0], got.segments) for c in got if len(c[1]))


def test_a_path_swept_in_any_memory_order_reaches_the_kernels_c_contiguous() -> None:
    """`ActivePath.from_sweep` stores C-ordered arrays whatever order the sweep came in (a
    Fortran-ordered sweep once gave F-ordered `speeds`, and the cycle's fixed kernel signature
    turned every cycle on that path into a fault stop), and a cycle on such a path decides."""
    from tests.safety.test_decision_equivalence import PARAMS, STOP, T0, chain, random_people, random_robot
    from safety.decision import Memory, SafetyMode, decide

    rng = np.random.default_rng(5)
    q = np.linspace(rng.uniform(-2.0, 2.0, 7), rng.uniform(-2.0, 2.0, 7), 20)
    t = np.linspace(0.0, 1.5, 20)
    path = ActivePath.from_sweep("g", np.asfortranarray(q), t, np.asfortranarray(chain(q)))
    for name in ("positions", "times_s", "link_segments", "points", "velocities", "speeds", "points_xyz",
                 "velocities_xyz", "point_speeds"):
        assert getattr(path, name).flags["C_CONTIGUOUS"], name
    modes = set()
    for cycle in range(20):
        robot = random_robot(rng, path, T0, "plain")
        state, _ = decide(T0, robot, random_people(rng, robot, T0, "plain"), PARAMS, STOP, 1.0,
                          Memory(started=True, scale=1.0, prev_cycle_ns=T0 - 10_000_000), path=path)
        assert not state.faults, state.faults
        modes.add(state.mode)
    assert modes - {SafetyMode.FAULT_STOP}


def test_path_progress_kernel_is_the_numpy_search() -> None:
    """`ActivePath.progress` (compiled) against the numpy search it replaced: the first sample with
    the smallest largest joint difference, None beyond the tolerance or for a non-finite position."""
    from safety.directed_speed import PATH_MATCH_TOLERANCE_RAD
    rng = np.random.default_rng(2)
    for trial in range(300):
        samples = int(rng.integers(1, 80))
        q = np.cumsum(rng.normal(0.0, 0.02, (samples, 7)), axis=0)
        if trial % 10 == 0:
            q[samples // 2] = q[0]                          # a tie: the first sample wins
        path = ActivePath.from_sweep("g", q, np.linspace(0.0, 1.0, samples), np.zeros((samples, 1, 2, 3)))
        here = q[int(rng.integers(0, samples))] + rng.normal(0.0, 0.03, 7)
        if trial % 7 == 0:
            here[3] = np.nan
        gap = np.abs(q - here[None, :]).max(axis=1)
        i = int(np.argmin(gap))
        expected = i if gap[i] <= PATH_MATCH_TOLERANCE_RAD else None
        assert path.progress(here) == expected
    assert path.progress(np.zeros(6)) is None                # another robot model


def test_zone_pretests_leave_an_overflowing_capsule_to_shapely_as_numpy_did() -> None:
    """Finite coordinates near 1e308 m overflow the pre-tests' arithmetic to inf - inf = NaN. The
    numpy pre-tests' minima and maxima propagated that NaN, so nothing was decided on it and
    shapely answered; Python's `min`/`max` in a kernel drop a NaN that comes second and would
    decide such a capsule on its other numbers instead."""
    from tests.safety.test_decision_equivalence import ZONES
    segs = np.array([[[1e308, 1e300, 0.5], [-1e308, 1.5, 0.0]]])
    status, _ = kernels.zone_capsules(segs, np.zeros(1), *ZONES._kernel_args[0], 1e-9)
    assert status.tolist() == [kernels.ZONE_UNDECIDED]


def test_kernels_refuse_arguments_that_do_not_fit_instead_of_reading_out_of_range() -> None:
    """numba does not check indices: a radius array one short, a window past the path's end, a
    limb beyond the keypoints, a velocity of 2 values would each read whatever memory lies
    there. Every kernel checks its shapes and index arrays first and raises ValueError."""
    segs, radii = np.zeros((4, 2, 3)), np.zeros(4)
    one, four = np.ones(1, dtype=np.int64), np.full(1, 4, dtype=np.int64)
    zero = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="robot_segments must be"):
        kernels.closest_pairs_per_link(segs, radii, zero, four, segs, radii[:3])
    with pytest.raises(ValueError, match="human_radii"):
        kernels.closest_pairs_per_link(segs, radii[:3], zero, four, segs, radii)
    with pytest.raises(ValueError, match="outside human_segments"):
        kernels.closest_pairs_per_link(segs, radii, one, four, segs, radii)
    with pytest.raises(ValueError, match="is empty"):
        kernels.closest_pairs_per_link(segs, radii, zero, np.zeros(1, dtype=np.int64), segs, radii)

    rng = np.random.default_rng(0)
    t = np.arange(6) * 0.1
    path = ActivePath.from_sweep("g", rng.normal(0.0, 1.0, (6, 7)), t, rng.normal(0.0, 1.0, (6, 3, 2, 3)))
    human = np.zeros((2, 3, 3))
    layouts = (path.points_xyz, path.velocities_xyz, path.point_speeds)
    with pytest.raises(ValueError, match="window sample is outside"):
        kernels.directed_speeds(*layouts, np.array([0, 6]), human, np.arange(2))
    with pytest.raises(ValueError, match="region is outside"):
        kernels.directed_speeds(*layouts, np.array([0, 5]), human, np.array([2]))
    with pytest.raises(ValueError, match="the path's K"):
        kernels.directed_speeds(*layouts, np.array([0, 5]), np.zeros((2, 2, 3)), np.arange(2))
    constants = (0.0, 0.1, 0.1, 2.5, 0.05, 0.05, 2.5, 0.2, 0.0)
    terms = np.ones(2)
    with pytest.raises(ValueError, match="window sample is outside"):
        kernels.ssm_links(np.ones((2, 3)), human, terms, terms, terms, terms, constants, True, *layouts,
                          path.speeds, np.array([7]), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="another number of links"):
        kernels.ssm_links(np.ones((2, 2)), np.zeros((2, 2, 3)), terms, terms, terms, terms, constants, True,
                          *layouts, path.speeds, np.array([0]), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="do not fit"):
        kernels.ssm_links(np.ones((2, 3)), human, terms[:1], terms, terms, terms, constants, True, *layouts,
                          path.speeds, np.array([0]), 1.0, 1.0, 1.0)

    from safety.zones import ZoneSet
    from content.cell import Zone
    zones = ZoneSet([Zone(name="w", kind="warning", footprint=[(0, 0), (1, 0), (1, 1)], z_range_m=(0.0, 2.0))])
    with pytest.raises(ValueError, match="radii"):
        kernels.zone_capsules(segs, radii[:3], *zones._kernel_args[0], 1e-9)

    from safety.distance import _LIMB_I, _LIMB_J, LIMB_RADII_M, UNTRACKED_REACH_M
    kp, conf = np.zeros((1, 33, 3)), np.ones((1, 33))
    with pytest.raises(ValueError, match="keypoint is outside"):
        kernels.people_capsules(kp[:, :17], conf[:, :17], 0.0, np.zeros((0, 0)), False, _LIMB_I, _LIMB_J,
                                LIMB_RADII_M, UNTRACKED_REACH_M)
    with pytest.raises(ValueError, match="do not fit"):
        kernels.people_capsules(kp, conf[:, :17], 0.0, np.zeros((0, 0)), False, _LIMB_I, _LIMB_J,
                                LIMB_RADII_M, UNTRACKED_REACH_M)
    with pytest.raises(ValueError, match="do not fit"):
        kernels.people_capsules(kp, conf, 0.0, np.zeros((1, 17)), True, _LIMB_I, _LIMB_J,
                                LIMB_RADII_M, UNTRACKED_REACH_M)
    with pytest.raises(ValueError, match="do not fit"):
        kernels.tracks_finite(kp, conf, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="do not fit"):
        kernels.tracks_finite(kp, conf[:, :17], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="path's n joints"):
        kernels.path_progress(np.zeros((5, 7)), np.zeros(8), 0.1)


def test_a_corrupt_cache_entry_is_compiled_afresh_instead_of_failing_the_import(tmp_path) -> None:
    """numba's cache loader catches only OSError: an entry that fails to unpickle made
    `import safety.kernels` raise, so the monitor could not start until someone deleted the
    cache. The kernel is compiled afresh instead and the entry rewritten."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    script = ("import numpy as np, safety.kernels as k; "
              "print(k._CACHE, k.path_progress(np.zeros((3, 2)), np.full(2, 0.01), 0.1))")
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert first.stdout.split() == ["True", "0"], first.stderr
    entries = sorted(tmp_path.rglob("separation.path_progress-*.nbc"))
    assert entries
    for entry in entries:
        entry.write_bytes(b"\x80\x04 not a pickle")
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert again.stdout.split() == ["True", "0"], again.stderr
    assert all(entry.read_bytes() != b"\x80\x04 not a pickle" for entry in sorted(tmp_path.rglob("*.nbc")))


def test_directed_speed_shortcut_never_skips_a_value_above_the_maximum_by_rounding() -> None:
    """The kernel skips the square root and division of a sample whose quotient is below the
    maximum so far by more than rounding (a relative 1e-9); a sample 1e-10 above it is still
    computed and wins, bit for bit, as the numpy pass takes the largest."""
    for later in (1.0 + 1e-10, 1.0 + 1e-13, 1.0 - 1e-13, np.nextafter(1.0, 2.0)):
        points = np.zeros((3, 1, 2, 1))
        velocities = np.zeros((3, 1, 2, 1))
        points[0, 0, :, 0] = (1.0, 2.0)
        velocities[0, 0, :, 0] = (-1.0, -later)
        speeds = np.abs(velocities[0])
        got = kernels.directed_speeds(points, velocities, speeds, np.arange(2), np.zeros((1, 1, 3)),
                                      np.zeros(1, dtype=np.int64))
        along = np.array([(0.0 - 1.0) * -1.0, (0.0 - 2.0) * -later]) / np.array([1.0, 2.0])
        assert got[0, 0] == along.max(), later


def test_the_tracking_process_does_not_load_the_compiled_kernels():
    """`safety.perception` (the spawned tracking process, `xrcell track`) imports without the
    decision core: loading the kernels costs seconds of CPU at every start, and a tracker that
    starts later keeps the monitor in its start-up fault stop longer."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, safety.perception.pipeline, safety.perception.process; "
            "print(sorted(m for m in ('numba', 'safety.kernels', 'safety.decision', 'sqlalchemy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout
