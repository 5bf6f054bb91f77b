"""The placed-objects list the robot side keeps from its payload's attach state."""

from pathlib import Path

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


def grip(tracker: PlacedObjectTracker, spot: np.ndarray, stamp: int = 0) -> None:
    """A pick at `spot` as the attach rule reports it: open, closing (carried while the goal is
    under way), then held at rest on the part."""
    tracker.observe(stamp, False, spot, 0.04, gripper_moving=False)
    tracker.observe(stamp, True, spot, 0.04, gripper_moving=True)
    tracker.observe(stamp, True, spot, 0.04, gripper_moving=False)


def release(tracker: PlacedObjectTracker, spot: np.ndarray, stamp: int = 0) -> tuple:
    """Opening on `spot` (carried while the goal is under way), then open."""
    tracker.observe(stamp, True, spot, 0.04, gripper_moving=True)
    return tracker.observe(stamp, False, spot, 0.04, gripper_moving=False)


def test_a_release_places_the_payload_where_it_was_last_carried():
    tracker = PlacedObjectTracker()
    assert tracker.observe(1, False, BAR, 0.04, gripper_moving=False) == ()  # open: nothing
    assert tracker.observe(2, True, BAR + [0, 0, 0.3], 0.04, gripper_moving=True) == ()
    assert tracker.observe(2, True, BAR + [0, 0, 0.3], 0.04, gripper_moving=False) == ()
    assert tracker.observe(3, True, BAR, 0.04, gripper_moving=False) == ()  # carried down
    assert tracker.observe(4, True, BAR, 0.04, gripper_moving=True) == ()  # opening
    # Released (the arm moves on): the part lies at its last carried pose.
    (placed,) = tracker.observe(5, False, BAR + [0, 0, 0.1], 0.04, gripper_moving=False)
    assert placed.id == "payload/1" and placed.placed_ns == 5
    assert placed.position == pytest.approx((0.4, -0.5, 0.05))
    assert tracker.observe(6, False, BAR + [0, 0, 0.3], 0.04, gripper_moving=False) == (placed,)


def test_a_pick_removes_only_the_object_under_the_payload():
    tracker = PlacedObjectTracker()
    other = BAR + [0.0, 0.5, 0.0]
    for spot in (BAR, other):
        grip(tracker, spot)
        release(tracker, spot)
    assert [o.id for o in tracker.objects] == ["payload/1", "payload/2"]
    # Picked up the second again: the list changes as the gripper starts closing.
    tracker.observe(1, True, other + [0.01, 0.0, 0.0], 0.04, gripper_moving=True)
    assert [o.id for o in tracker.objects] == ["payload/1"]


def test_a_spot_placed_again_holds_one_object_and_the_list_is_bounded():
    tracker = PlacedObjectTracker(max_objects=3)
    for _ in range(2):
        grip(tracker, BAR)
        release(tracker, BAR)
    assert [o.id for o in tracker.objects] == ["payload/2"]
    for k in range(1, 5):
        spot = BAR + [0.0, 0.2 * k, 0.0]
        grip(tracker, spot)
        release(tracker, spot)
    # The oldest left the list (it then shows as occupancy: a false stop, never a missed person).
    assert [o.id for o in tracker.objects] == ["payload/4", "payload/5", "payload/6"]


def test_without_a_payload_nothing_is_placed():
    tracker = PlacedObjectTracker()
    assert tracker.observe(0, True, None, 0.0, gripper_moving=False) == ()
    assert tracker.observe(1, False, None, 0.0, gripper_moving=False) == ()


def test_an_empty_gripper_closing_and_opening_places_nothing():
    # Closing on nothing: carried while the goal is under way (the attach rule's fail-safe side),
    # then the fingers meet below the grasp widths: not carried. No part was ever held.
    tracker = PlacedObjectTracker()
    assert tracker.observe(1, False, BAR, 0.04, gripper_moving=False) == ()
    assert tracker.observe(2, True, BAR, 0.04, gripper_moving=True) == ()
    assert tracker.observe(3, False, BAR, 0.04, gripper_moving=False) == ()
    # Opening the empty gripper again: carried while it opens, then open.
    assert tracker.observe(4, True, BAR, 0.04, gripper_moving=True) == ()
    assert tracker.observe(5, False, BAR, 0.04, gripper_moving=False) == ()
    # A part held at start-up (no pick seen) and released is not placed either: it then shows as
    # occupancy (a false stop, never a masked volume where no part lies).
    fresh = PlacedObjectTracker()
    fresh.observe(1, True, BAR, 0.04, gripper_moving=False)
    assert fresh.observe(2, False, BAR, 0.04, gripper_moving=False) == ()


def test_the_simulated_robot_places_nothing_when_its_empty_gripper_closes_and_opens():
    import yaml

    from content.cell import Robot
    from robot_bridge.sim.backend import PHYSICS_RATE_HZ, PyBulletPandaBackend
    from robot_bridge.types import GripperCommand

    doc = yaml.safe_load((Path(__file__).parents[1] / "scenarios" / "cell_payload_post.yaml")
                         .read_text())
    backend = PyBulletPandaBackend(Robot(**doc["robot"]), None, realtime=False)
    backend.start()
    try:
        backend.reset()
        state = backend.step(10)
        assert state.placed_objects == () and not state.payload_carried
        for position, goal in ((0.0, "close"), (0.08, "open")):
            backend.execute(GripperCommand(position, goal_id=goal))
            for _ in range(3 * int(PHYSICS_RATE_HZ)):
                state = backend.step(1)
                if state.goal_id == goal and state.goal_done:
                    break
            state = backend.step(20)
            assert state.goal_id == goal and state.goal_done and not state.payload_carried
            # The gripper closed on nothing in mid-air: no part lies there.
            assert state.placed_objects == (), goal
    finally:
        backend.shutdown()
