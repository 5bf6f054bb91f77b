"""The batched closest-pair searches equal the per-person one and, bit for bit, the frozen
segment routine of `tests/safety/reference_ssm.py`, edge cases included."""

import numpy as np

from safety.distance import (
    closest_capsule_pair,
    closest_capsule_pairs,
    closest_points_all_pairs,
    human_capsules,
    points_at,
    segment_closest_points,
)
from tests.safety import reference_ssm


def test_batched_pairs_equal_per_person_pairs():
    rng = np.random.default_rng(3)
    robot = rng.uniform(-0.5, 0.5, size=(9, 2, 3))
    radii = rng.uniform(0.05, 0.1, size=9)
    people = []
    for k in range(5):
        kp = rng.uniform(-2, 2, size=(33, 3))
        conf = np.ones(33)
        if k == 2:
            conf[:] = 0.0  # nobody tracked: no capsules
        people.append(human_capsules(kp, conf))
    batched = closest_capsule_pairs(people, robot, radii)
    for (segs, rad, _), pair in zip(people, batched):
        single = closest_capsule_pair(segs, rad, robot, radii)
        if single is None:
            assert pair is None
            continue
        assert (pair.human_index, pair.robot_index) == (single.human_index, single.robot_index)
        assert np.isclose(pair.distance_m, single.distance_m) and np.allclose(pair.human_point, single.human_point)


def edge_case_segments(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(40, 2, 3) 'body' and (9, 2, 3) 'robot' segments with every degenerate configuration."""
    body, robot = rng.uniform(-2, 2, (40, 2, 3)), rng.uniform(-2, 2, (9, 2, 3))
    robot[6, 0] = robot[5, 1]                          # a joint two links share
    robot[0, 1] = robot[0, 0]                          # a point (sphere) link
    robot[4, 1] = robot[4, 0] + 1e-7                   # shorter than the degenerate threshold
    body[:6, 1] = body[:6, 0]                          # spheres (untracked limbs)
    # parallel to a link
    body[6:10, 1] = body[6:10, 0] + (robot[1, 1] - robot[1, 0]) * rng.uniform(-2, 2, (4, 1))
    body[10] = robot[2]                                # the same segment
    body[11] = robot[2, ::-1]                          # the same, reversed
    side = np.cross(robot[1, 1] - robot[1, 0], [0.0, 0.0, 1.0])
    body[12] = robot[1] + 0.15 * side / np.linalg.norm(side)   # parallel, 0.15 m apart
    body[13, 0] = robot[3, 1]                          # touching at an end
    body[14, 1] = body[14, 0] + 1e-7
    body[15] = robot[5, 1] + rng.normal(0.0, 0.1, (2, 3))   # around the shared joint, < 0.2 m
    # crossing a link's middle 0.05 m above it
    body[16] = (robot[7, 0] + robot[7, 1]) / 2 + np.array([[0.0, -0.3, 0.05], [0.0, 0.3, 0.05]])
    body[17] = robot[8, 0] + rng.normal(0.0, 0.05, (2, 3))  # at < 0.2 m from a link's end
    return body, robot


def test_all_pairs_equal_the_frozen_routine_bit_for_bit():
    rng = np.random.default_rng(11)
    for _ in range(200):
        body, robot = edge_case_segments(rng)
        axis, s, t = closest_points_all_pairs(body, robot)
        c1, c2 = reference_ssm.segment_closest_points(body[:, None, 0], body[:, None, 1],
                                                      robot[None, :, 0], robot[None, :, 1])
        assert (axis == np.linalg.norm(c1 - c2, axis=-1)).all()
        assert (points_at(body[:, None], s) == c1).all() and (points_at(robot[None], t) == c2).all()
        g1, g2 = segment_closest_points(body[:, None, 0], body[:, None, 1],
                                        robot[None, :, 0], robot[None, :, 1])
        assert (g1 == c1).all() and (g2 == c2).all()
        # the geometry, not only the agreement
        assert axis[10, 2] == 0.0 and axis[11, 2] == 0.0 and axis[13, 3] == 0.0
        assert abs(axis[12, 1] - 0.15) < 1e-12 and axis[16, 7] < 0.05 + 1e-12
        assert ((s >= 0.0) & (s <= 1.0) & (t >= 0.0) & (t <= 1.0)).all()
        assert (s[:6] == 0.0).all() and (t[:, 0] == 0.0).all()   # point segments sit at their start


def test_a_non_finite_segment_spoils_only_its_own_pairs():
    body, robot = edge_case_segments(np.random.default_rng(2))
    body[3, 1] = np.nan
    robot[2, 0, 1] = np.inf
    with np.errstate(invalid="ignore"):          # inf - inf: NaN, as intended
        axis, _, _ = closest_points_all_pairs(body, robot)
    bad = np.zeros(axis.shape, dtype=bool)
    bad[3, :] = bad[:, 2] = True
    assert not np.isfinite(axis[bad]).any()
    clean, _, _ = closest_points_all_pairs(np.delete(body, 3, axis=0), np.delete(robot, 2, axis=0))
    assert (np.delete(np.delete(axis, 3, axis=0), 2, axis=1) == clean).all()
