"""Pixel rays against the floor plane: known geometry, the cases without an anchor, bad poses."""

import math

import numpy as np
import pytest

from xr_server.anchors import CameraPose, anchor_on_plane, pixel_ray
from xr_server.errors import SessionError

# Optical frame looking straight down (z_optical = -z_cell), x_optical = +x_cell, y_optical = -y_cell:
# a rotation of pi about the cell's x axis.
DOWN = (1.0, 0.0, 0.0, 0.0)


def test_the_image_centre_of_a_camera_looking_down_is_straight_below_it():
    camera = CameraPose((1.0, 2.0, 1.5), DOWN, 90.0, 4 / 3)
    assert anchor_on_plane(camera, 0.5, 0.5) == (1.0, 2.0, 0.0)


def test_the_image_edges_follow_the_field_of_view():
    camera = CameraPose((0.0, 0.0, 2.0), DOWN, 90.0, 2.0)  # tan(45 deg) = 1: the half width is the height
    assert anchor_on_plane(camera, 1.0, 0.5) == pytest.approx((2.0, 0.0, 0.0))
    assert anchor_on_plane(camera, 0.5, 1.0) == pytest.approx((0.0, -1.0, 0.0))  # v down is -y here


def test_a_camera_looking_at_the_horizon_has_no_anchor_above_it():
    # looking along +x: z_optical = +x_cell, x_optical = -y_cell, y_optical = -z_cell
    r = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    w = math.sqrt(1 + np.trace(r)) / 2
    q = ((r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w), w)
    camera = CameraPose((0.0, 0.0, 1.6), q, 60.0, 4 / 3)
    _, direction = pixel_ray(camera, 0.5, 0.5)
    assert direction == pytest.approx([1.0, 0.0, 0.0])
    assert anchor_on_plane(camera, 0.5, 0.5) is None       # parallel to the floor
    assert anchor_on_plane(camera, 0.5, 0.2) is None       # above the horizon: behind the camera
    x, y, z = anchor_on_plane(camera, 0.5, 0.9)            # below it: on the floor ahead
    assert z == 0.0 and x > 1.6 and y == pytest.approx(0.0)


@pytest.mark.parametrize(("pose", "message"), [
    (((0, 0, 1), (0, 0, 0, 2), 90, 1.3), r"^field 'orientation' must be a unit quaternion \(x, y, z, w\), its norm is 2\.0000$"),
    (((0, 0, 1), DOWN, 0.5, 1.3), "^field 'hfov_deg' must be from 1 to 179 degrees, got 0.5$"),
    (((0, 0, 1), DOWN, 90, 0), r"^field 'aspect' must be from 0\.1 to 10 \(width / height\), got 0$"),
])
def test_bad_camera_poses_are_refused_by_field(pose, message):
    with pytest.raises(SessionError, match=message):
        CameraPose(*pose)


# ---------------------------------------------------------------- the twin's geometry and people
def test_the_ray_meets_the_nearest_capsule_before_the_floor():
    from xr_server.anchors import SceneCapsule, anchor_in_scene

    camera = CameraPose((1.0, 2.0, 1.5), DOWN, 90.0, 4 / 3)
    low = SceneCapsule("robot:link1", (1.0, 2.0, 0.0), (1.0, 2.0, 0.5), 0.1)
    high = SceneCapsule("robot:link2", (0.8, 2.0, 0.9), (1.2, 2.0, 0.9), 0.05)   # across the ray, nearer
    anchor = anchor_in_scene(camera, 0.5, 0.5, [low, high])
    assert anchor.on == "robot:link2"
    assert anchor.position_m == pytest.approx((1.0, 2.0, 0.95), abs=0.002)
    assert anchor_in_scene(camera, 0.5, 0.5, [low]).position_m == pytest.approx((1.0, 2.0, 0.6), abs=0.002)
    # Off to the side of every capsule: the floor, as without any.
    side = anchor_in_scene(camera, 0.9, 0.5, [low, high])
    assert side.on == "floor" and side.position_m == anchor_on_plane(camera, 0.9, 0.5)
    # A capsule behind the camera is not met.
    behind = SceneCapsule("robot:link3", (1.0, 2.0, 2.0), (1.0, 2.0, 3.0), 0.1)
    assert anchor_in_scene(camera, 0.5, 0.5, [behind]).on == "floor"


def test_scene_capsules_name_robot_links_and_measured_limbs_only():
    import time

    from tests.safety.fakes import robot_state, snapshot, standing_person
    from xr_server.anchors import scene_capsules

    now = time.monotonic_ns()
    person = standing_person(2.0)
    person[15:23] = np.nan     # wrists and hands not measured: the monitor's grown spheres
    capsules = scene_capsules(robot_state(now), snapshot(now, [person]))
    names = [c.name for c in capsules]
    assert names[0] == "robot:link0"
    assert any(n.startswith("person:p1:") for n in names)
    assert not any("wrist" in n for n in names)               # one end unmeasured: left out
    assert all(c.radius_m > 0 and np.isfinite(c.a).all() for c in capsules)
    # A person met by the ray is named with the body part.
    camera = CameraPose((2.0, 0.0, 3.0), DOWN, 60.0, 4 / 3)
    hit = anchor_in_scene_of(camera, capsules)
    assert hit.on.startswith("person:p1:") and hit.position_m[2] > 1.0


def anchor_in_scene_of(camera, capsules):
    from xr_server.anchors import anchor_in_scene

    return anchor_in_scene(camera, 0.5, 0.5, capsules)
