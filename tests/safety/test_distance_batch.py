"""The batched closest-pair search equals the per-person one."""

import numpy as np

from safety.distance import closest_capsule_pair, closest_capsule_pairs, human_capsules


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
