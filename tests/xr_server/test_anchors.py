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
