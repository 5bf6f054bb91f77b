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
    under way), then held at rest on the part (the backend's evidence of an object)."""
    tracker.observe(stamp, False, spot, 0.04, gripper_moving=False)
    tracker.observe(stamp, True, spot, 0.04, gripper_moving=True)
    tracker.observe(stamp, True, spot, 0.04, gripper_moving=False, object_evidence=True)


def release(tracker: PlacedObjectTracker, spot: np.ndarray, stamp: int = 0) -> tuple:
    """Opening on `spot` (carried while the goal is under way), then open."""
    tracker.observe(stamp, True, spot, 0.04, gripper_moving=True)
    return tracker.observe(stamp, False, spot, 0.04, gripper_moving=False)


def test_a_release_places_the_payload_where_it_was_last_carried():
    tracker = PlacedObjectTracker()
    assert tracker.observe(1, False, BAR, 0.04, gripper_moving=False) == ()  # open: nothing
    assert tracker.observe(2, True, BAR + [0, 0, 0.3], 0.04, gripper_moving=True) == ()
    assert tracker.observe(2, True, BAR + [0, 0, 0.3], 0.04, gripper_moving=False,
                           object_evidence=True) == ()
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


def _payload_sim():
    """A started simulated Panda of `tests/scenarios/cell_payload_post.yaml` (a payload with grasp
    widths; no physics thread: the test steps it)."""
    import yaml

    from content.cell import Robot
    from robot_bridge.sim.backend import PyBulletPandaBackend

    doc = yaml.safe_load((Path(__file__).parents[1] / "scenarios" / "cell_payload_post.yaml")
                         .read_text())
    backend = PyBulletPandaBackend(Robot(**doc["robot"]), None, realtime=False)
    backend.start()
    return backend


def _gripper_goal(backend, position: float, goal: str):
    """Send a gripper goal to `position` (opening, m), step until it is done (at most 3 s of
    physics), then 20 steps more; returns that state, asserting the goal ended."""
    from robot_bridge.sim.backend import PHYSICS_RATE_HZ
    from robot_bridge.types import GripperCommand

    backend.execute(GripperCommand(position, goal_id=goal))
    for _ in range(3 * int(PHYSICS_RATE_HZ)):
        state = backend.step(1)
        if state.goal_id == goal and state.goal_done:
            break
    state = backend.step(20)
    assert state.goal_id == goal and state.goal_done
    return state


def test_the_simulated_robot_places_nothing_when_its_empty_gripper_closes_and_opens():
    backend = _payload_sim()
    try:
        backend.reset()
        state = backend.step(10)
        assert state.placed_objects == () and not state.payload_carried
        for position, goal in ((0.0, "close"), (0.08, "open")):
            state = _gripper_goal(backend, position, goal)
            assert not state.payload_carried
            # The gripper closed on nothing in mid-air: no part lies there.
            assert state.placed_objects == (), goal
    finally:
        backend.shutdown()


def test_a_grasp_holds_a_part_only_with_evidence_of_an_object():
    """At rest within the grasp widths after a pick: a part is held only when the backend has
    evidence of one (True); touching nothing (False) or unknown (None) places nothing on release,
    so no shell is masked where no part lies (a part that was there shows: a false stop)."""
    for evidence, placed in ((True, 1), (False, 0), (None, 0)):
        tracker = PlacedObjectTracker()
        tracker.observe(1, False, BAR, 0.04, gripper_moving=False)
        tracker.observe(2, True, BAR, 0.04, gripper_moving=True)                 # closing
        tracker.observe(3, True, BAR, 0.04, gripper_moving=False, object_evidence=evidence)
        tracker.observe(4, True, BAR + [0, 0, 0.2], 0.04, gripper_moving=False,
                        object_evidence=evidence)
        assert len(tracker.observe(5, False, BAR, 0.04, gripper_moving=False)) == placed, evidence
    # Evidence seen once at rest holds the part until it is released, even if a state lacks it.
    tracker = PlacedObjectTracker()
    tracker.observe(1, False, BAR, 0.04, gripper_moving=False)
    tracker.observe(2, True, BAR, 0.04, gripper_moving=True, object_evidence=True)  # not at rest
    tracker.observe(3, True, BAR, 0.04, gripper_moving=False, object_evidence=None)
    assert tracker.observe(4, False, BAR, 0.04, gripper_moving=False) == ()
    tracker.observe(5, True, BAR, 0.04, gripper_moving=True)
    tracker.observe(6, True, BAR, 0.04, gripper_moving=False, object_evidence=True)
    tracker.observe(7, True, BAR, 0.04, gripper_moving=False, object_evidence=None)
    assert len(tracker.observe(8, False, BAR, 0.04, gripper_moving=False)) == 1


def test_the_simulated_robot_places_nothing_when_its_empty_gripper_stops_within_the_grasp_widths():
    """Told to close to 0.04 m in mid-air (inside the payload's grasp widths, 0.005..0.075 m), the
    empty gripper rests there: carried by the attach rule, but no finger touches anything, so its
    release places nothing."""
    backend = _payload_sim()
    try:
        backend.reset()
        backend.step(10)
        seen = []
        for position, goal in ((0.04, "stop-inside"), (0.08, "open")):
            state = _gripper_goal(backend, position, goal)
            seen.append((state.payload_carried, round(state.gripper_opening_m, 3), state.placed_objects))
        assert seen == [(True, 0.04, ()), (False, 0.08, ())]
    finally:
        backend.shutdown()


def test_the_centre_distance_is_the_point_segment_distance_of_safety_distance():
    """`robot_bridge` may not import `safety`; its point-segment distance must agree with
    `safety.distance.segment_closest_points` (a point as a segment of length 0)."""
    from robot_bridge.placed import PlacedObject, _centre_distances
    from safety.distance import segment_closest_points

    rng = np.random.default_rng(3)
    centres = rng.uniform(-1.0, 1.0, (200, 3))
    objects = tuple(PlacedObject(f"o{i}", "cylinder", (0.1, 0.02), tuple(c), (0.0, 0.0, 0.0, 1.0), 0)
                    for i, c in enumerate(centres))
    for segment in (rng.uniform(-1.0, 1.0, (2, 3)), np.array([[0.2, 0.1, 0.0]] * 2)):  # and a point
        c1, c2 = segment_closest_points(centres, centres, segment[0], segment[1])
        assert np.allclose(_centre_distances(objects, segment), np.linalg.norm(c1 - c2, axis=1),
                           atol=1e-12)
    assert _centre_distances((), segment).shape == (0,)


class _TrackerBefore:
    """`PlacedObjectTracker.observe` as it was before the not-carried fast path, the vectorised
    distance and the evidence of an object (commit 7d7ebe2), the oracle of the test below."""

    def __init__(self, max_objects: int = 16, pick_tolerance_m: float = 0.02) -> None:
        self.max_objects, self.pick_tolerance_m = max_objects, pick_tolerance_m
        self.objects: tuple = ()
        self._carried = None
        self._last_segment, self._last_radius = None, 0.0
        self._count, self._picked, self._held = 0, False, False

    @staticmethod
    def _distance(point, segment) -> float:
        a, b = segment
        ab = b - a
        denom = float(ab @ ab)
        t = 0.0 if denom < 1e-12 else min(1.0, max(0.0, float((point - a) @ ab) / denom))
        return float(np.linalg.norm(point - (a + t * ab)))

    def observe(self, stamp_ns, carried, payload_segment, payload_radius_m, *, gripper_moving):
        if payload_segment is None:
            return self.objects
        segment = np.asarray(payload_segment, dtype=np.float64).reshape(2, 3)
        if self._carried is True and not carried and self._last_segment is not None:
            if self._held:
                self._count += 1
                last, radius = self._last_segment, self._last_radius
                placed = cylinder_of_capsule(f"payload/{self._count}", last, radius, stamp_ns)
                kept = tuple(o for o in self.objects if self._distance(np.asarray(o.position), last) > radius)
                self.objects = (kept + (placed,))[-self.max_objects:]
        elif self._carried is False and carried:
            reach = payload_radius_m + self.pick_tolerance_m
            self.objects = tuple(o for o in self.objects
                                 if self._distance(np.asarray(o.position), segment) > reach)
            self._picked = True
        if carried:
            self._last_segment, self._last_radius = segment.copy(), float(payload_radius_m)
            self._held = self._held or (self._picked and not gripper_moving)
        else:
            self._picked = self._held = False
        self._carried = bool(carried)
        return self.objects


def test_the_tracker_places_exactly_what_it_placed_before_its_fast_path():
    """Random robot-state streams (carried on and off, gripper goals, the arm moving among a few
    spots, states without a payload segment): the same placements, state by state."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    spots = [BAR + [0.0, 0.0, 0.0], BAR + [0.0, 0.3, 0.0], BAR + [0.01, 0.0, 0.1], BAR + [0.0, 0.3, 0.2]]
    state = st.tuples(st.booleans(), st.booleans(), st.integers(0, len(spots)))  # index 4: no segment

    @settings(max_examples=300, deadline=None)
    @given(st.lists(state, max_size=60), st.integers(2, 5))
    def check(stream, max_objects):
        now, before = PlacedObjectTracker(max_objects), _TrackerBefore(max_objects)
        for stamp, (carried, moving, spot) in enumerate(stream):
            segment = spots[spot] if spot < len(spots) else None
            # with evidence of an object in every state the rule is the one before the evidence
            got = now.observe(stamp, carried, segment, 0.04, gripper_moving=moving, object_evidence=True)
            assert got == before.observe(stamp, carried, segment, 0.04, gripper_moving=moving)

    check()


def _sim_grip_on(body_mass_kg: float):
    """The simulated robot's gripper at home closing on a 4 cm cube held between its fingers
    (`body_mass_kg` 0: a static body, part of the world such as a table or the floor), then
    opening: (carried, evidence of a part) after each goal, and what it placed."""
    import pybullet

    backend = _payload_sim()
    try:
        backend.reset()
        backend.step(10)
        cid, body = backend._cid, backend._body
        tips = [np.array(pybullet.getLinkState(body, f, physicsClientId=cid)[4])
                for f in backend._fingers]
        centre = (tips[0] + tips[1]) / 2.0
        shape = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[0.02] * 3,
                                              physicsClientId=cid)
        cube = pybullet.createMultiBody(body_mass_kg, shape, basePosition=centre.tolist(),
                                        physicsClientId=cid)
        if body_mass_kg > 0.0:   # held where the fingers close (it does not fall meanwhile)
            pybullet.createConstraint(cube, -1, -1, -1, pybullet.JOINT_FIXED, [0, 0, 0],
                                      [0, 0, 0], centre.tolist(), physicsClientId=cid)
        seen = []
        for position, goal in ((0.0, "close"), (0.08, "open")):
            state = _gripper_goal(backend, position, goal)
            seen.append((state.payload_carried, backend._fingers_touch()))
        return seen, state.placed_objects
    finally:
        backend.shutdown()


def test_the_simulated_robot_places_a_part_its_fingers_squeeze():
    """A movable part between the fingers is evidence of an object: its release is placed."""
    seen, placed = _sim_grip_on(0.2)
    assert seen[0] == (True, True) and len(placed) == 1


def test_the_simulated_robot_places_nothing_when_its_fingers_press_on_the_static_world():
    """The fingers closed on a static body (a table, a pedestal, the floor: not a part the
    robot can carry) are no evidence of an object: nothing is placed on release."""
    seen, placed = _sim_grip_on(0.0)
    assert seen[0][0] and not seen[0][1] and placed == ()


def test_the_simulated_robot_places_nothing_when_its_fingertips_drag_on_a_part_below():
    """Fingertips pressed on the top of a movable plate (a tray under the gripper) close, held
    back by friction, to within the grasp widths: both fingers touch one movable body, but from
    the same side (contact normals both up), not squeezing it: no evidence, nothing placed."""
    import pybullet

    backend = _payload_sim()
    try:
        backend.reset()
        backend.step(10)
        cid, body = backend._cid, backend._body
        boxes = [pybullet.getAABB(body, f, physicsClientId=cid) for f in backend._fingers]
        bottom = min(lo[2] for lo, _ in boxes)
        centre = [sum(lo[0] + hi[0] for lo, hi in boxes) / 4, sum(lo[1] + hi[1] for lo, hi in boxes) / 4,
                  bottom + 0.005]   # its top 1.5 cm above the fingertips' bounding box: pressed
        shape = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[0.1, 0.1, 0.01],
                                              physicsClientId=cid)
        plate = pybullet.createMultiBody(0.5, shape, basePosition=centre, physicsClientId=cid)
        pybullet.createConstraint(plate, -1, -1, -1, pybullet.JOINT_FIXED, [0, 0, 0], [0, 0, 0],
                                  centre, physicsClientId=cid)
        seen = []
        for position, goal in ((0.04, "close"), (0.08, "open")):
            state = _gripper_goal(backend, position, goal)
            touching = [{c[2] for c in pybullet.getContactPoints(bodyA=body, linkIndexA=f, physicsClientId=cid)}
                        for f in backend._fingers]
            seen.append((state.payload_carried, touching, backend._fingers_touch()))
        assert seen[0] == (True, [{plate}, {plate}], False), seen   # carried, on the plate only
        assert not seen[1][0] and state.placed_objects == ()
    finally:
        backend.shutdown()
