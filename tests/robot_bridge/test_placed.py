"""The placed-objects list the robot side keeps from its payload's attach state."""

import numpy as np
import pytest

from robot_bridge.placed import PlacedObjectTracker, cylinder_of_capsule, quaternion_z_to
from safety.placed_mask import inside_placed_objects

#: The payload's capsule: a 0.3 m bar lying along x at z = 0.05 m, radius 0.04 m.
BAR = np.array([[0.25, -0.5, 0.05], [0.55, -0.5, 0.05]])


def rotate(q, v):
    x, y, z, w = q
    u = np.array([x, y, z])
    return 2 * (u @ v) * u + (w * w - u @ u) * np.asarray(v) + 2 * w * np.cross(u, v)


@pytest.mark.parametrize("axis", [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, -2.0),
                                  (0.3, -0.4, 0.5)])
def test_quaternion_z_to_turns_z_onto_the_axis(axis):
    q = quaternion_z_to(np.array(axis))
    assert np.linalg.norm(q) == pytest.approx(1.0)
    assert rotate(q, [0.0, 0.0, 1.0]) == pytest.approx(np.array(axis) / np.linalg.norm(axis))


def test_the_cylinder_of_a_capsule_covers_the_capsule():
    cyl = cylinder_of_capsule("p", BAR, 0.04, 7)
    assert cyl.primitive == "cylinder" and cyl.dimensions == pytest.approx((0.38, 0.04))
    assert cyl.position == pytest.approx((0.4, -0.5, 0.05)) and cyl.placed_ns == 7
    # The capsule's extreme points lie in the cylinder; 1 cm beyond them does not.
    ends = np.array([[0.21, -0.5, 0.05], [0.59, -0.5, 0.05], [0.4, -0.46, 0.05], [0.4, -0.5, 0.09]])
    assert inside_placed_objects(ends, [cyl], 0.0).all()
    beyond = ends + [[-0.01, 0, 0], [0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]]
    assert not inside_placed_objects(beyond, [cyl], 0.0).any()


def test_a_release_places_the_payload_where_it_was_last_carried():
    tracker = PlacedObjectTracker()
    assert tracker.observe(1, False, BAR, 0.04) == ()         # open gripper: nothing happens
    assert tracker.observe(2, True, BAR + [0, 0, 0.3], 0.04) == ()
    assert tracker.observe(3, True, BAR, 0.04) == ()          # carried down onto the spot
    (placed,) = tracker.observe(4, False, BAR + [0, 0, 0.1], 0.04)  # released (the arm moves on)
    assert placed.id == "payload/1" and placed.placed_ns == 4
    assert placed.position == pytest.approx((0.4, -0.5, 0.05))
    assert tracker.observe(5, False, BAR + [0, 0, 0.3], 0.04) == (placed,)


def test_a_pick_removes_only_the_object_under_the_payload():
    tracker = PlacedObjectTracker()
    other = BAR + [0.0, 0.5, 0.0]
    for spot in (BAR, other):
        tracker.observe(0, True, spot, 0.04)
        tracker.observe(0, False, spot, 0.04)
    assert [o.id for o in tracker.objects] == ["payload/1", "payload/2"]
    tracker.observe(1, True, other + [0.01, 0.0, 0.0], 0.04)  # picked up the second again
    assert [o.id for o in tracker.objects] == ["payload/1"]


def test_a_spot_placed_again_holds_one_object_and_the_list_is_bounded():
    tracker = PlacedObjectTracker(max_objects=3)
    for _ in range(2):
        tracker.observe(0, True, BAR, 0.04)
        tracker.observe(0, False, BAR, 0.04)
    assert [o.id for o in tracker.objects] == ["payload/2"]
    for k in range(1, 5):
        spot = BAR + [0.0, 0.2 * k, 0.0]
        tracker.observe(0, True, spot, 0.04)
        tracker.observe(0, False, spot, 0.04)
    # The oldest left the list (it then shows as occupancy: a false stop, never a missed person).
    assert [o.id for o in tracker.objects] == ["payload/4", "payload/5", "payload/6"]


def test_without_a_payload_nothing_is_placed():
    tracker = PlacedObjectTracker()
    assert tracker.observe(0, True, None, 0.0) == () and tracker.observe(1, False, None, 0.0) == ()
