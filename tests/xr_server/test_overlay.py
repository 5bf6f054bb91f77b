"""The composited view's drawing (`xr_server.overlay`) against cv2.projectPoints, and the frame
stamp codec of the glass-to-glass bench (`xr_server.frame_stamp`), through aiortc's real VP8."""

import fractions

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from xr_server.anchors import CameraPose
from xr_server.frame_stamp import read_stamp, stamp_height, write_stamp
from xr_server.overlay import BANNER, ROBOT_BGR, ZONE_BGR, OverlayInputs, draw_overlay

W, H = 640, 480


def oblique_camera() -> tuple[CameraPose, np.ndarray, np.ndarray]:
    """A camera 2 m behind the cell origin, 1.5 m high, looking along +x pitched 25 deg down;
    with the rotation (optical -> cell) and position the test projects with itself."""
    pitch = np.radians(25.0)
    forward = np.array([np.cos(pitch), 0.0, -np.sin(pitch)])
    right = np.array([0.0, -1.0, 0.0])
    rotation = np.column_stack([right, np.cross(forward, right), forward])
    position = np.array([-2.0, 0.0, 1.5])
    quat = Rotation.from_matrix(rotation).as_quat()
    return CameraPose(tuple(position), tuple(quat), 70.0, W / H), rotation, position


def expected_pixels(points, rotation, position, width=W, height=H) -> np.ndarray:
    """cv2.projectPoints with K from a 70 deg horizontal field of view, square pixels."""
    f = width / 2 / np.tan(np.radians(35.0))
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    pixels, _ = cv2.projectPoints(np.asarray(points, float).reshape(-1, 3), cv2.Rodrigues(rotation.T)[0],
                                  -rotation.T @ position, K, None)
    return pixels.reshape(-1, 2)


def colour_mask(image, bgr, tolerance=40) -> np.ndarray:
    return (np.abs(image.astype(int) - np.array(bgr)).max(axis=2) <= tolerance)


def test_a_robot_capsule_is_drawn_around_its_projected_point():
    camera, rotation, position = oblique_camera()
    point = [0.5, 0.2, 0.8]
    twin = {"robot": {"links": [{"name": "panda_link0", "a": point, "b": point, "r": 0.08}]}}
    image = draw_overlay(np.full((H, W, 3), 128, np.uint8), OverlayInputs(twin, camera))
    ys, xs = np.nonzero(colour_mask(image, ROBOT_BGR))
    u, v = expected_pixels([point], rotation, position)[0]
    assert len(xs) > 50
    assert abs(xs.mean() - u) < 1.0 and abs(ys.mean() - v) < 1.0
    # the circle has the capsule's radius as seen from the camera
    depth = (rotation.T @ (np.array(point) - position))[2]
    radius = np.hypot(xs - u, ys - v).max()
    assert abs(radius - W / 2 / np.tan(np.radians(35.0)) * 0.08 / depth) < 3.0


def test_zone_corners_land_where_cv2_projects_them_and_nothing_behind_the_camera_is_drawn():
    camera, rotation, position = oblique_camera()
    footprint = [[0.0, -0.5], [1.0, -0.5], [1.0, 0.5], [0.0, 0.5]]
    behind = [[-4.0, -0.5], [-3.0, -0.5], [-3.0, 0.5], [-4.0, 0.5]]  # 1 m behind the camera
    twin = {"zones": [{"name": "cell", "kind": "restricted", "footprint": footprint, "z_range_m": [0.0, 0.0]},
                      {"name": "back", "kind": "warning", "footprint": behind, "z_range_m": [0.0, 0.5]}]}
    image = draw_overlay(np.full((H, W, 3), 128, np.uint8), OverlayInputs(twin, camera))
    red = colour_mask(image, ZONE_BGR["restricted"])
    red[: int(0.08 * H) + 1] = False  # the banner
    ys, xs = np.nonzero(red)
    for u, v in expected_pixels([[x, y, 0.0] for x, y in footprint], rotation, position):
        assert np.hypot(xs - u, ys - v).min() < 2.0, (u, v)
    centre_u, centre_v = expected_pixels([[0.5, 0.0, 0.0]], rotation, position)[0]
    assert np.hypot(xs - centre_u, ys - centre_v).min() > 20  # an outline, not a filled area
    assert not colour_mask(image, ZONE_BGR["warning"]).any()  # the zone behind: not mirrored


def test_without_a_camera_pose_only_the_banner_and_image_annotations_are_drawn():
    twin = {"robot": {"links": [{"name": "l", "a": [0, 0, 0], "b": [0, 0, 1], "r": 0.1}]},
            "safety": {"mode": "protective_stop", "speed_scale": 0.0}}
    note = {"kind": "circle", "points": [[0.5, 0.5]], "radius": 0.1, "color": "#00ff00", "anchor": None}
    image = draw_overlay(np.full((H, W, 3), 128, np.uint8), OverlayInputs(twin, None, (note,)))
    assert not colour_mask(image, ROBOT_BGR).any()
    assert colour_mask(image[:10], BANNER["protective_stop"][0], 0).mean() > 0.9
    green = colour_mask(image, (0, 255, 0), 10)
    ys, xs = np.nonzero(green)
    assert abs(xs.mean() - W / 2) < 1.5 and abs(ys.mean() - H / 2) < 1.5
    assert abs(np.hypot(xs - W / 2, ys - H / 2).mean() - 0.1 * W) < 3.0


def test_an_anchored_annotation_follows_its_anchor():
    camera, rotation, position = oblique_camera()
    anchor = [1.0, 0.3, 0.0]
    note = {"kind": "circle", "points": [[0.1, 0.9]], "radius": 0.05, "color": "#00ff00",
            "anchor": {"frame": "cell", "position_m": anchor, "on": "floor"}}
    image = draw_overlay(np.full((H, W, 3), 128, np.uint8), OverlayInputs({}, camera, (note,)))
    ys, xs = np.nonzero(colour_mask(image, (0, 255, 0), 10))
    u, v = expected_pixels([anchor], rotation, position)[0]
    assert abs(xs.mean() - u) < 1.5 and abs(ys.mean() - v) < 1.5


@pytest.mark.parametrize("mode", ["full_speed", "reduced_speed", "protective_stop", "fault_stop"])
def test_the_banner_shows_the_safety_mode_in_its_colour(mode):
    image = draw_overlay(np.zeros((H, W, 3), np.uint8),
                         OverlayInputs({"safety": {"mode": mode, "speed_scale": 0.4}}, None))
    band = image[: int(0.08 * H)]
    assert colour_mask(band, BANNER[mode][0], 0).mean() > 0.6
    assert colour_mask(band, (255, 255, 255), 60).any()  # the text
    assert not image[int(0.08 * H) + 1:].any()


# ----------------------------------------------------------------------------------- stamps
@pytest.mark.parametrize("width,height", [(640, 480), (1280, 720)])
def test_the_stamp_round_trips_and_survives_vp8(width, height):
    from aiortc.codecs import get_decoder, get_encoder
    from aiortc.codecs.vpx import VpxPayloadDescriptor
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from av import VideoFrame

    rng = np.random.default_rng(1)
    counters = [0, 1, 0x5A5A, 0xFFFF, 65536 + 7] + rng.integers(0, 65536, 10).tolist()
    for counter in counters:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert read_stamp(write_stamp(image, counter)) == counter % 65536
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    encoder, decoder = get_encoder(codec), get_decoder(codec)
    scene = cv2.resize(rng.integers(60, 200, (60, 80, 3), dtype=np.uint8), (width, height))
    read = []
    for i, counter in enumerate(counters):
        frame = VideoFrame.from_ndarray(write_stamp(scene.copy(), counter), format="bgr24")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=i == 0)
        data = b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads)
        for decoded in decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
            plane = decoded.planes[0]
            luma = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, :width]
            read.append(read_stamp(luma))
    assert read == [c % 65536 for c in counters]


def test_an_image_without_a_stamp_reads_as_none_and_a_narrow_image_is_refused():
    assert read_stamp(np.full((480, 640), 128, np.uint8)) is None
    smeared = write_stamp(np.zeros((480, 640, 3), np.uint8), 1234)
    smeared[-stamp_height(640):, :320] = 128  # the bits overdrawn grey: still apart from their twins
    assert read_stamp(smeared) == 1234
    smeared[-stamp_height(640):, :320] = 255  # overdrawn white: the zero bits equal their twins
    assert read_stamp(smeared) is None
    with pytest.raises(ValueError, match="an image 100 pixels wide is too narrow for a stamp"):
        write_stamp(np.zeros((10, 100, 3), np.uint8), 1)
