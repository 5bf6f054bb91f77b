"""Placed objects in the occupancy channel: parts the robot released are masked where the robot side
says they lie, nothing else is, and a bad or stale list masks nothing.

The depth frames are rendered with Open3D's `RaycastingScene` (`SimulatedDepthCamera`) and
back-projected with Open3D (`points_from_depth`), as a real RGB-D frame would be.
"""

import dataclasses
import math

import numpy as np
import pytest

from content.cell import SafetyParameters
from robot_bridge.placed import PlacedObject, PlacedObjectTracker
from robot_bridge.types import ControllerMode, RobotState
from safety.cross_check import compare, disagreement_bound_m
from safety.errors import OccupancyError
from safety.occupancy import BackgroundLearner, OccupancyChannel
from safety.perception.depth import DepthCamera, points_from_depth
from safety.perception.depth_input import DepthImageSequence, OccupancyInput
from safety.placed_mask import (PlacedObjectMask, inside_placed_objects, on_placed_surfaces,
                                rejection_cause, validate_placed_objects)
from xr_server.scenario_depth import SimulatedDepthCamera

#: An overhead depth camera 2 m above the floor, 1.25 cm per pixel on the floor.
CAMERA = DepthCamera.look_at([0.5, 0.0, 2.0], [0.5, 0.0, 0.0], 90.0, 320, 240)
#: One robot link: a vertical capsule on the z axis from 0 to 1 m, radius 0.1 m.
LINK = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
RADII = np.array([0.1])
NAMES = ("link0",)
#: A part 0.2 x 0.2 x 0.3 m standing on the floor 0.25 m from the link's surface.
PART_MIN, PART_MAX = (0.35, -0.1, 0.0), (0.55, 0.1, 0.3)
PART = PlacedObject("payload/1", "box", (0.2, 0.2, 0.3), (0.45, 0.0, 0.15), (0.0, 0.0, 0.0, 1.0),
                    placed_ns=500)
CELL = ((-2.0, -2.0, -0.1), (2.0, 2.0, 2.5))
CAPTURE_NS = 1_000


def channel() -> tuple[OccupancyChannel, SimulatedDepthCamera]:
    """The channel with the empty cell (the floor) learned as background, and its camera."""
    sim = SimulatedDepthCamera(CAMERA, 0.003, np.random.default_rng(0))
    ch = OccupancyChannel(voxel_size_m=0.05, placed_mask=PlacedObjectMask(cell_bounds=CELL))
    ch.learn_background(points_from_depth(sim.render([]), CAMERA), LINK, RADII)
    return ch, sim


def frame(sim: SimulatedDepthCamera, capsules=(), boxes=(PART_MIN, PART_MAX),
          links=(LINK, RADII)) -> np.ndarray:
    """Points of one rendered frame: the floor, the robot link, `capsules` and an axis-aligned
    box (min, max)."""
    pairs = [boxes] if boxes else []
    return points_from_depth(sim.render([*capsules, links], pairs), CAMERA)


def disagree(separation_m: float | None, m) -> bool:
    """The cross-check's verdict with nobody tracked by the skeleton channel."""
    params = SafetyParameters()
    bound = disagreement_bound_m(params, params.human_uncertainty_m, m, None)
    return compare(None, separation_m, bound, params).disagree


def test_a_part_placed_next_to_the_robot_is_masked_and_the_channels_agree():
    ch, sim = channel()
    points = frame(sim)
    unmasked = ch.measure(points, LINK, RADII, NAMES, CAPTURE_NS)
    # Without the list the part is occupancy 0.25 m from the link that no skeleton explains.
    assert unmasked.separation_m is not None and unmasked.separation_m < 0.3
    assert unmasked.placed_objects == 0 and disagree(unmasked.separation_m, unmasked)
    masked = ch.measure(points, LINK, RADII, NAMES, CAPTURE_NS, placed_objects=(PART,),
                        placed_stamp_ns=CAPTURE_NS)
    assert masked.placed_objects == 1 and masked.placed_points > 100
    assert masked.placed_rejected is None
    assert masked.voxel_count == 0 and masked.separation_m is None
    assert not disagree(masked.separation_m, masked)


def test_a_hand_resting_on_the_part_is_still_occupancy_outside_the_mask():
    ch, sim = channel()
    # A hand lying on the part's top face (its underside 1 cm above it) and its forearm.
    hand = (np.array([[[0.40, 0.0, 0.35], [0.55, 0.0, 0.35]],
                      [[0.55, 0.0, 0.35], [0.9, 0.0, 0.6]]]), np.array([0.04, 0.05]))
    m = ch.measure(frame(sim, [hand]), LINK, RADII, NAMES, CAPTURE_NS, placed_objects=(PART,),
                   placed_stamp_ns=CAPTURE_NS)
    assert m.placed_objects == 1 and m.placed_points > 0
    # The hand's top is seen: voxels above the mask (the part's top 0.30 m + 0.05 m margin).
    assert m.voxel_count > 0 and (m.voxels[:, 2] > 0.35).any()
    # Its closest point: the hand's end at x = 0.36 m, 0.26 m from the link's surface (a lower
    # bound within a voxel and its half diagonal).
    truth = 0.40 - 0.04 - 0.1
    assert truth - 0.05 - 0.05 * math.sqrt(3) / 2 <= m.separation_m <= truth + 0.01
    # Every occupied voxel has points outside the part's volume + margin: none lies deep inside.
    core = dataclasses.replace(PART, dimensions=(0.1, 0.1, 0.2))
    assert not inside_placed_objects(m.voxels, [core], 0.0).any()
    assert disagree(m.separation_m, m)  # a hand nobody's skeleton explains is a disagreement


def test_a_hand_where_a_carried_away_part_lay_is_seen_inside_its_volume():
    # Someone carried the part away; the list still holds it (until the robot picks there).
    # A hand lies where the part stood, 0.11 m below its top face: the camera sees it inside the
    # part's volume, deeper than the margin below its surface, where a part lying there would
    # hide everything.
    ch, sim = channel()
    hand = (np.array([[[0.40, 0.0, 0.15], [0.50, 0.0, 0.15]]]), np.array([0.04]))
    m = ch.measure(frame(sim, [hand], boxes=()), LINK, RADII, NAMES, CAPTURE_NS,
                   placed_objects=(PART,), placed_stamp_ns=CAPTURE_NS)
    assert m.placed_objects == 1 and m.placed_points > 0
    assert m.voxel_count > 0
    truth = 0.40 - 0.04 - 0.1  # the hand's end, 0.26 m from the link's surface
    assert truth - 0.05 - 0.05 * math.sqrt(3) / 2 <= m.separation_m <= 0.45 - 0.1
    assert disagree(m.separation_m, m)
    # The part itself (rendered where it lies) is all on its surface: it is masked whole.
    lying = ch.measure(frame(sim), LINK, RADII, NAMES, CAPTURE_NS, placed_objects=(PART,),
                       placed_stamp_ns=CAPTURE_NS)
    assert lying.voxel_count == 0


def test_a_part_picked_up_again_leaves_the_list_and_is_filtered_as_payload():
    tracker = PlacedObjectTracker()
    # Carried, then released at z = 0.15 m (a vertical payload capsule of radius 0.08 m).
    held = np.array([[0.45, 0.0, 0.07], [0.45, 0.0, 0.23]])
    tracker.observe(90, False, held, 0.08, gripper_moving=False)  # the pick: open, closing,
    tracker.observe(95, True, held, 0.08, gripper_moving=True)
    assert tracker.observe(100, True, held, 0.08, gripper_moving=False,
                           object_evidence=True) == ()  # held at rest, a part between the fingers
    (placed,) = tracker.observe(200, False, held, 0.08, gripper_moving=False)
    assert placed.primitive == "cylinder"
    assert placed.dimensions == pytest.approx((0.16 + 0.16, 0.08))
    assert placed.position == pytest.approx((0.45, 0.0, 0.15)) and placed.placed_ns == 200
    ch, sim = channel()
    part = (held[None], np.array([0.08]))
    lying = ch.measure(frame(sim, [part], boxes=()), LINK, RADII, NAMES, CAPTURE_NS,
                       placed_objects=(placed,), placed_stamp_ns=CAPTURE_NS)
    assert lying.placed_objects == 1 and lying.voxel_count == 0
    # Picked up again: carried where it lies, the list is empty; lifted by 0.4 m the part is the
    # robot's payload capsule and the self-filter removes it.
    assert tracker.observe(300, True, held, 0.08, gripper_moving=True) == ()
    lifted = held + [0.0, 0.0, 0.4]
    links = (np.concatenate([LINK, lifted[None]]), np.array([0.1, 0.08]))
    points = frame(sim, boxes=(), links=links)
    m = ch.measure(points, *links, ("link0", "payload"), CAPTURE_NS,
                   placed_objects=tracker.objects, placed_stamp_ns=CAPTURE_NS)
    assert m.placed_objects == 0 and m.robot_points > 0 and m.voxel_count == 0
    # The same frame without the payload among the capsules: the lifted part is occupancy.
    assert ch.measure(points, LINK, RADII, NAMES, CAPTURE_NS).voxel_count > 0


def test_an_unknown_or_stale_list_masks_nothing():
    ch, sim = channel()
    points = frame(sim)
    assert ch.measure(points, LINK, RADII, NAMES, CAPTURE_NS, placed_objects=None).voxel_count > 0
    stale = ch.measure(points, LINK, RADII, NAMES, 2_000_000_000, placed_objects=(PART,),
                       placed_stamp_ns=0)
    assert stale.placed_objects == 0 and stale.voxel_count > 0
    assert stale.placed_rejected == ("placed_objects: stale (2000 ms old at the depth capture, "
                                     "limit 500 ms); nothing masked")
    # An object placed after the frame's capture is not masked in that frame.
    later = dataclasses.replace(PART, placed_ns=CAPTURE_NS + 1)
    m = ch.measure(points, LINK, RADII, NAMES, CAPTURE_NS, placed_objects=(later,),
                   placed_stamp_ns=CAPTURE_NS)
    assert m.placed_objects == 0 and m.voxel_count > 0 and m.placed_rejected is None


def test_a_malformed_list_is_rejected_whole_and_masks_nothing():
    ch, sim = channel()
    bad = dataclasses.replace(PART, id="payload/2", position=(0.45, 0.0, float("nan")))
    m = ch.measure(frame(sim), LINK, RADII, NAMES, CAPTURE_NS, placed_objects=(PART, bad),
                   placed_stamp_ns=CAPTURE_NS)
    assert m.placed_objects == 0 and m.placed_points == 0 and m.voxel_count > 0
    assert m.placed_rejected.startswith("placed_objects[1].position: expected 3 finite values")
    assert m.placed_rejected.endswith("; nothing masked")


def test_without_cell_bounds_objects_must_lie_within_the_channels_range_of_the_robot():
    mask = PlacedObjectMask()
    far = dataclasses.replace(PART, position=(3.0, 0.0, 0.15))
    result = mask.apply(np.zeros((1, 3)), (far,), 0, 0, LINK, RADII, range_m=2.5)
    assert result.rejected.startswith("placed_objects[0].position: [3.0, 0.0, 0.15] m lies outside "
                                      "the cell [-2.6, -2.6, -2.6] .. [2.6, 2.6, 3.6] m")
    assert mask.apply(np.zeros((1, 3)), (PART,), 0, 0, LINK, RADII, range_m=2.5).rejected is None


def _bad(**change) -> PlacedObject:
    return dataclasses.replace(PART, **change)


@pytest.mark.parametrize("objects, match", [
    ({"a": PART}, r"placed_objects: expected a list of PlacedObject, got dict"),
    ((PART,) * 17, r"placed_objects: 17 objects, at most 16"),
    ((PART, {"id": "x"}), r"placed_objects\[1\]: expected a PlacedObject, got dict"),
    ((_bad(id=""),), r"placed_objects\[0\]\.id: expected 1 to 64 characters, got ''"),
    ((PART, PART), r"placed_objects\[1\]\.id: 'payload/1' repeats an earlier object's id"),
    ((_bad(frame_id="world"),), r"placed_objects\[0\]\.frame_id: expected 'cell', got 'world'"),
    ((_bad(primitive="sphere"),),
     r"placed_objects\[0\]\.primitive: expected one of box, cylinder, got 'sphere'"),
    ((_bad(primitive=["box"]),),   # unhashable: a TypeError once, crashing the twin and the mask
     r"placed_objects\[0\]\.primitive: expected one of box, cylinder, got \['box'\]"),
    ((_bad(dimensions=(0.2, -0.2, 0.3)),),
     r"placed_objects\[0\]\.dimensions: a box needs 3 finite positive values"),
    ((_bad(primitive="cylinder"),),
     r"placed_objects\[0\]\.dimensions: a cylinder needs 2 finite positive values "
     r"\(height, radius\)"),
    ((_bad(dimensions=(0.2, float("inf"), 0.3)),),
     r"placed_objects\[0\]\.dimensions: a box needs 3"),
    ((_bad(dimensions=(0.6, 0.2, 0.3)),),
     r"placed_objects\[0\]\.dimensions: 0\.700 m across, larger than the largest part allowed "
     r"\(0\.5 m\)"),
    ((_bad(position=(0.45, 0.0)),), r"placed_objects\[0\]\.position: expected 3 finite values"),
    ((_bad(position=("0.45", 0.0, 0.1)),), r"placed_objects\[0\]\.position: expected 3 finite"),
    ((_bad(position=(0.45, 0.0, 3.0)),),
     r"placed_objects\[0\]\.position: \[0\.45, 0\.0, 3\.0\] m lies outside the cell"),
    ((_bad(orientation=(0.0, 0.0, 0.0, 2.0)),),
     r"placed_objects\[0\]\.orientation: expected a unit quaternion"),
    ((_bad(orientation=(0.0, 0.0, float("nan"), 1.0)),),
     r"placed_objects\[0\]\.orientation: expected a unit"),
    ((_bad(placed_ns=1.5),),
     r"placed_objects\[0\]\.placed_ns: expected integer nanoseconds, got 1\.5"),
])
def test_malformed_lists_are_rejected_naming_the_field(objects, match):
    with pytest.raises(OccupancyError, match=match):
        validate_placed_objects(objects, (np.array(CELL[0]), np.array(CELL[1])))


def test_the_mask_is_the_solid_grown_by_the_margin_also_when_rotated():
    # A box 0.4 x 0.1 x 0.1 m turned 90 deg about z: its long edge along y.
    q = (0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))
    box = PlacedObject("b", "box", (0.4, 0.1, 0.1), (1.0, 0.0, 0.05), q, 0)
    pts = np.array([[1.0, 0.19, 0.05], [1.0, 0.24, 0.05], [1.0, 0.26, 0.05], [1.09, 0.0, 0.05],
                    [1.11, 0.0, 0.05], [1.0 + 0.05 + 0.035, 0.2 + 0.035, 0.05]])
    assert inside_placed_objects(pts, [box], 0.05).tolist() == [True, True, False, True, False,
                                                                True]
    # A corner is rounded: 0.035 m out along both axes is within 0.05 m, 0.04 m is not.
    assert not inside_placed_objects(np.array([[1.05 + 0.04, 0.2 + 0.04, 0.05]]), [box], 0.05)[0]
    # A cylinder of height 0.2 m and radius 0.05 m lying along x (z turned onto x).
    about_y = (0.0, math.sin(math.pi / 4), 0.0, math.cos(math.pi / 4))
    cyl = PlacedObject("c", "cylinder", (0.2, 0.05), (0.0, 0.0, 0.5), about_y, 0)
    pts = np.array([[0.14, 0.0, 0.5], [0.16, 0.0, 0.5], [0.0, 0.0, 0.59], [0.0, 0.0, 0.61],
                    [0.0, 0.08, 0.57]])
    assert inside_placed_objects(pts, [cyl], 0.05).tolist() == [True, False, True, False, False]


def test_the_mask_is_a_shell_about_the_surface_not_the_interior():
    # The 0.2 x 0.2 x 0.3 m part: its centre and a point 0.06 m under its top face are deeper
    # than the 0.05 m margin (a part lying there hides them); 0.04 m under the top face, on it
    # and 0.04 m above it are the part's surface as a depth camera measures it.
    pts = np.array([[0.45, 0.0, 0.15], [0.45, 0.0, 0.24], [0.45, 0.0, 0.26], [0.45, 0.0, 0.30],
                    [0.45, 0.0, 0.34], [0.45, 0.0, 0.36], [0.45, 0.06, 0.15], [0.45, 0.07, 0.15]])
    assert on_placed_surfaces(pts, [PART], 0.05).tolist() == [False, False, True, True, True,
                                                              False, True, True]
    assert inside_placed_objects(pts, [PART], 0.05).tolist() == [True] * 5 + [False, True, True]
    # A cylinder (height 0.3 m, radius 0.1 m, upright): its axis is deep inside, its side not.
    cyl = PlacedObject("c", "cylinder", (0.3, 0.1), (0.0, 0.0, 0.15), (0.0, 0.0, 0.0, 1.0), 0)
    pts = np.array([[0.0, 0.0, 0.15], [0.04, 0.0, 0.15], [0.06, 0.0, 0.15], [0.14, 0.0, 0.15],
                    [0.16, 0.0, 0.15], [0.0, 0.0, 0.28]])
    assert on_placed_surfaces(pts, [cyl], 0.05).tolist() == [False, False, True, True, False,
                                                             True]


@pytest.mark.parametrize("kwargs, match", [
    ({"margin_m": -0.01}, "need 0 <= margin_m <= 0.1"),
    ({"margin_m": 0.15}, "need 0 <= margin_m <= 0.1"),
    ({"max_extent_m": 0.0}, "0 < max_extent_m <= 5"),
    ({"max_age_s": 0.0}, "max_age_s > 0"),
])
def test_bad_mask_settings_are_named(kwargs, match):
    with pytest.raises(OccupancyError, match=match):
        PlacedObjectMask(**kwargs)


def robot_state(placed_objects, stamp_ns: int = 0) -> RobotState:
    """A robot state of the one-link robot carrying `placed_objects`."""
    return RobotState(stamp_ns, ("j1",), np.zeros(1), np.zeros(1), np.array([0.0, 0.0, 1.0]),
                      np.zeros(3), NAMES, LINK, RADII, np.zeros(1), 1.0, ControllerMode.IDLE,
                      placed_objects=placed_objects)


def test_the_live_depth_input_takes_the_list_from_the_robot_state(tmp_path):
    ch, sim = channel()
    (tmp_path / "seq").mkdir()
    np.save(tmp_path / "seq" / "0000.npy", sim.render([(LINK, RADII)], [(PART_MIN, PART_MAX)]))
    states = {"now": robot_state(None)}
    clock = iter(range(1_000_000, 10**12, 1_000_000))
    live = OccupancyInput(DepthImageSequence(tmp_path / "seq", CAMERA), ch, lambda: states["now"],
                          fps=10, clock=lambda: next(clock))
    live.source.open()
    assert live.step().voxel_count > 0  # the backend does not know: the part is occupancy
    states["now"] = robot_state((dataclasses.replace(PART, placed_ns=0),), stamp_ns=1_000_000)
    m = live.step()
    assert m.placed_objects == 1 and m.voxel_count == 0 and m.placed_rejected is None
    assert live.report()["placed_objects"] == 1 and live.report()["placed_rejected"] is None


@pytest.mark.parametrize("rejected, cause", [
    (None, None),
    ("placed_objects: stale (2000 ms old at the depth capture, limit 500 ms); nothing masked",
     "placed_objects: stale"),
    ("placed_objects: stale (unknown old at the depth capture, limit 500 ms); nothing masked",
     "placed_objects: stale"),
    ("placed_objects[1].position: expected 3 finite values (x, y, z) in metres, got (0.45, 0.0, nan)"
     "; nothing masked", "placed_objects[1].position"),
    ("placed_objects: 17 objects, at most 16; nothing masked", "placed_objects"),
])
def test_a_rejection_cause_is_the_field_without_its_figures(rejected, cause):
    assert rejection_cause(rejected) == cause


def _audited_live_input(tmp_path, part, fps: float):
    """The live depth input on one rendered frame (the link and `part`'s box), auditing to a
    fresh hash-chained log: (input, audit log, {"now": robot state}, {"ns": clock}); the robot
    state starts with `part` placed, fresh at the clock's start."""
    from safety.audit import AuditLog

    ch, sim = channel()
    (tmp_path / "seq").mkdir()
    np.save(tmp_path / "seq" / "0000.npy", sim.render([(LINK, RADII)], [(PART_MIN, PART_MAX)]))
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    now = {"ns": 1_000_000_000}
    states = {"now": robot_state((part,), stamp_ns=now["ns"])}
    live = OccupancyInput(DepthImageSequence(tmp_path / "seq", CAMERA), ch, lambda: states["now"],
                          fps=fps, clock=lambda: now["ns"], audit=audit.append)
    live.source.open()
    return live, audit, states, now


def test_the_live_depth_input_audits_each_change_of_the_refusal_not_every_frame(tmp_path):
    """Accepted, then stale for three frames (its age grows), then a NaN position for two, then
    accepted: three records (stale, the field, accepted again), hash-chained."""
    part = dataclasses.replace(PART, placed_ns=0)
    bad = dataclasses.replace(PART, id="payload/2", position=(0.45, 0.0, math.nan), placed_ns=0)
    live, audit, states, now = _audited_live_input(tmp_path, part, fps=10)
    try:
        seen = []
        for kind in ["good"] + ["stale"] * 3 + ["bad"] * 2 + ["good"] * 2:
            now["ns"] += 100_000_000
            if kind == "good":
                states["now"] = robot_state((part,), stamp_ns=now["ns"])
            elif kind == "bad":
                states["now"] = robot_state((part, bad), stamp_ns=now["ns"])
            else:  # the robot state 0.6, 0.7, 0.8 s old at the capture: stale beyond 0.5 s
                states["now"] = robot_state((part,), stamp_ns=now["ns"] - 100_000_000 * (len(seen) + 5))
            seen.append(live.step().placed_rejected)
        assert seen[0] is None and all(s.startswith("placed_objects: stale") for s in seen[1:4])
        assert len(set(seen[1:4])) == 3  # the age in the reason differs every frame
        assert audit.flush()
        records = audit.tail(10)
        assert [r.kind for r in records] == ["placed_objects"] * 3
        assert all(r.actor == "occupancy" for r in records)
        stale, field, again = records
        assert stale.reason == seen[1] and stale.inputs["cause"] == "placed_objects: stale"
        assert stale.inputs["previous_cause"] is None and stale.inputs["objects"] == 1
        assert field.reason.startswith("placed_objects[1].position: expected 3 finite values")
        assert field.inputs["cause"] == "placed_objects[1].position"
        assert field.inputs["previous_cause"] == "placed_objects: stale"
        assert field.inputs["objects"] == 2 and field.inputs["placed_masked"] == 0
        assert again.reason == ("placed-objects list accepted again (placed_objects[1].position "
                                "resolved); 1 masked")
        assert again.inputs["cause"] is None and again.inputs["placed_masked"] == 1
        assert audit.verify() is None
    finally:
        audit.close()


def test_a_flapping_refusal_is_audited_at_a_bounded_rate_and_every_change_is_counted(tmp_path):
    """The list refused and accepted in turn every frame at 30 Hz for 3 s (an object at the edge
    of the cell's bounds): a burst, then at most one record a second, not one a frame; every
    change of cause is counted in some record, and the last record gives the cause in force."""
    from safety.perception.depth_input import PLACED_AUDIT_BURST, PLACED_AUDIT_PERIOD_S

    part = dataclasses.replace(PART, placed_ns=0)
    bad = dataclasses.replace(PART, id="payload/2", position=(0.45, 0.0, 3.0), placed_ns=0)
    live, audit, states, now = _audited_live_input(tmp_path, part, fps=30)
    try:
        frames = [i % 2 == 1 for i in range(90)] + [False] * 45   # True: refused
        changes = sum(a != b for a, b in zip([False] + frames, frames))
        for refused in frames:
            now["ns"] += 33_333_333
            states["now"] = robot_state((part, bad) if refused else (part,), stamp_ns=now["ns"])
            live.step()
        assert audit.flush()
        records = audit.tail(1000)
        elapsed_s = len(frames) / 30
        assert len(records) <= PLACED_AUDIT_BURST + elapsed_s / PLACED_AUDIT_PERIOD_S + 1
        assert len(records) < changes / 4
        assert sum(r.inputs["changes"] for r in records) == changes
        last = records[-1]
        assert last.inputs["cause"] is None and last.reason.startswith("placed-objects list accepted")
        assert [r.inputs["previous_cause"] for r in records[1:]] == [r.inputs["cause"] for r in records[:-1]]
        # Flapping again, then the input stops: the changes the rate limit held back are written.
        more = [i % 2 == 0 for i in range(21)]                    # ends refused
        changes += sum(a != b for a, b in zip([False] + more, more))
        for refused in more:
            now["ns"] += 33_333_333
            states["now"] = robot_state((part, bad) if refused else (part,), stamp_ns=now["ns"])
            live.step()
        live.stop()
        assert audit.flush()
        records = audit.tail(1000)
        assert sum(r.inputs["changes"] for r in records) == changes
        assert records[-1].inputs["cause"] == "placed_objects[1].position"
        assert audit.verify() is None
    finally:
        audit.close()


def test_background_learning_does_not_learn_a_placed_part():
    _, sim = channel()
    empty = frame(sim, boxes=())
    with_part = frame(sim)
    for placed, learned_away in ((None, True), ((PART,), False)):
        learner = BackgroundLearner(min_frames=2)
        for _ in range(3):
            learner.add(with_part, LINK, RADII, placed, CAPTURE_NS)
        learner.add(empty, LINK, RADII)
        ch = OccupancyChannel(background=learner.model())
        seen = ch.measure(with_part, LINK, RADII, NAMES, CAPTURE_NS).voxel_count > 0
        assert seen is not learned_away
