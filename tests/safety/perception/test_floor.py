"""Single-view floor placement (`safety.perception.floor`) and its use by the tracker, on
synthetic skeletons projected into calibrated cameras (ground truth known)."""

from __future__ import annotations

import numpy as np
import pytest

from content.calibration import CameraCalibration
from safety.perception import MultiPersonTracker, Pose2D, View, project_points
from safety.perception.floor import (
    FOOT_HEIGHT_SIGMA_M,
    FOOT_HEIGHTS_M,
    TORSO_LENGTH_M,
    Placement,
    PlacementBasis,
    place_on_floor,
)


def look_at(name: str, centre: tuple[float, float, float], target: tuple[float, float, float]) -> CameraCalibration:
    """A 1280x720 camera (f = 1000 px, mild distortion) at `centre` looking at `target`, cell frame."""
    c = np.asarray(centre, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - c
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    K = np.array([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]])
    return CameraCalibration(name, (1280, 720), K, np.array([-0.05, 0.02, 0.001, 0.0, 0.0]), R, -R @ c)


def standing(x: float, y: float, facing: tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
    """(33, 3) a standing person in MediaPipe's topology, feet on the floor z = 0 around (x, y),
    facing the horizontal direction `facing`; torso (hip to shoulder midpoint) `TORSO_LENGTH_M`."""
    f = np.array([*facing, 0.0]) / np.hypot(*facing)
    left = np.cross([0.0, 0.0, 1.0], f)                   # the person's left
    base = np.array([x, y, 0.0])

    def at(side: float, forward: float, up: float) -> np.ndarray:
        return base + side * left + forward * f + np.array([0.0, 0.0, up])

    hip_z = 0.90
    sh_z = hip_z + TORSO_LENGTH_M
    pts = np.zeros((33, 3))
    pts[0] = at(0.0, 0.08, 1.62)                          # nose
    for i, s in zip(range(1, 7), (0.02, 0.035, 0.05, -0.02, -0.035, -0.05)):
        pts[i] = at(s, 0.06, 1.66)                        # eyes
    pts[7], pts[8] = at(0.08, 0.0, 1.63), at(-0.08, 0.0, 1.63)
    pts[9], pts[10] = at(0.03, 0.07, 1.57), at(-0.03, 0.07, 1.57)
    pts[11], pts[12] = at(0.19, 0.0, sh_z), at(-0.19, 0.0, sh_z)
    pts[13], pts[14] = at(0.22, 0.0, sh_z - 0.30), at(-0.22, 0.0, sh_z - 0.30)
    pts[15], pts[16] = at(0.23, 0.02, sh_z - 0.57), at(-0.23, 0.02, sh_z - 0.57)
    for i, s in ((17, 1), (18, -1), (19, 1), (20, -1), (21, 1), (22, -1)):
        pts[i] = at(0.23 * s, 0.04, sh_z - 0.65)          # hands
    pts[23], pts[24] = at(0.10, 0.0, hip_z), at(-0.10, 0.0, hip_z)
    pts[25], pts[26] = at(0.11, 0.03, 0.48), at(-0.11, 0.03, 0.48)
    # the centre of mass (hips) above the midfoot, the ankles 4 cm behind it (quiet stance)
    pts[27], pts[28] = at(0.11, -0.04, FOOT_HEIGHTS_M[27]), at(-0.11, -0.04, FOOT_HEIGHTS_M[28])
    pts[29], pts[30] = at(0.11, -0.10, FOOT_HEIGHTS_M[29]), at(-0.11, -0.10, FOOT_HEIGHTS_M[30])
    pts[31], pts[32] = at(0.11, 0.14, FOOT_HEIGHTS_M[31]), at(-0.11, 0.14, FOOT_HEIGHTS_M[32])
    return pts


CAM = look_at("c", (0.0, 0.0, 2.5), (4.0, 0.0, 1.0))       # 2.5 m up, looking down 20 degrees


def observe(cal: CameraCalibration, body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return project_points(cal, body), np.ones(33)


def hips(points: np.ndarray) -> np.ndarray:
    return points[[23, 24]].mean(axis=0)


@pytest.mark.parametrize("x, y", [(4.0, 1.0), (5.0, 0.0), (6.0, -1.5)])
def test_a_standing_person_is_placed_within_2_cm_from_its_feet(x, y):
    body = standing(x, y, facing=(-1.0, 0.0))                # facing the camera
    kp, vis = observe(CAM, body)
    fp = place_on_floor(CAM, kp, vis)
    assert fp is not None and fp.basis is PlacementBasis.FEET
    assert np.linalg.norm(fp.ground_cell[:2] - [x, y]) < 0.02
    assert np.linalg.norm(hips(fp.keypoints_cell)[:2] - hips(body)[:2]) < 0.02
    assert np.linalg.norm(fp.keypoints_cell[[27, 28], :2] - body[[27, 28], :2], axis=1).max() < 0.02
    assert abs(hips(fp.keypoints_cell)[2] - hips(body)[2]) < 0.03     # upright: the hips at their height
    assert abs(fp.keypoints_cell[0, 2] - body[0, 2]) < 0.05


def test_a_person_seen_from_the_side_is_placed_within_a_few_cm():
    body = standing(4.0, 0.5, facing=(0.0, 1.0))             # walking across the view
    fp = place_on_floor(CAM, *observe(CAM, body))
    assert fp is not None
    assert np.linalg.norm(hips(fp.keypoints_cell)[:2] - hips(body)[:2]) < 0.04


def test_without_feet_the_torso_prior_places_the_person_with_a_larger_sigma():
    body = standing(4.0, 0.5, facing=(-1.0, 0.0))
    kp, vis = observe(CAM, body)
    with_feet = place_on_floor(CAM, kp, vis)
    vis[25:] = 0.1                                           # legs hidden behind a table
    fp = place_on_floor(CAM, kp, vis)
    assert fp is not None and fp.basis is PlacementBasis.TORSO
    assert np.linalg.norm(fp.ground_cell[:2] - [4.0, 0.5]) < 0.03     # exact prior: exact place
    assert fp.ground_sigma_m > 2 * with_feet.ground_sigma_m
    assert np.isnan(fp.keypoints_cell[27:]).all()


def test_feet_cut_off_at_the_image_bottom_do_not_give_the_depth():
    near = look_at("near", (0.0, 0.0, 1.6), (3.0, 0.0, 1.4))   # nearly level: feet below the image
    body = standing(2.0, 0.0, facing=(-1.0, 0.0))
    kp, vis = observe(near, body)
    assert (kp[27:, 1] > 720).all()                          # the detector extrapolates them
    fp = place_on_floor(near, np.clip(kp, 0, [1279, 719]), vis)
    assert fp is not None and fp.basis is PlacementBasis.TORSO


def test_the_depth_sigma_grows_as_the_feet_approach_the_horizon():
    level = look_at("level", (0.0, 0.0, 1.0), (10.0, 0.0, 1.0))   # 1 m up, level
    h = 1.0 - FOOT_HEIGHTS_M[27]                             # camera above the ankles' plane
    sigma_theta = 2.0 / 1000.0                               # 2 px at f = 1000 px, radians
    sigmas = []
    for d in (3.0, 5.0, 9.0, 15.0):
        kp, vis = observe(level, standing(d, 0.0, facing=(-1.0, 0.0)))
        vis[29:] = 0.0                                       # the ankles alone: one depth, one height
        fp = place_on_floor(level, kp, vis, pixel_sigma_px=2.0)
        assert fp is not None and fp.basis is PlacementBasis.FEET
        sigmas.append(fp.ground_sigma_m)
        # depth error (D^2 + h^2) / h per radian of pixel error, D / h per metre of foot height,
        # D per radian sideways
        expected = np.sqrt((sigma_theta * (d * d + h * h) / h) ** 2 + (FOOT_HEIGHT_SIGMA_M * d / h) ** 2
                           + (sigma_theta * d) ** 2)
        assert fp.ground_sigma_m == pytest.approx(expected, rel=0.1)
    assert sigmas == sorted(sigmas) and sigmas[-1] > 4 * sigmas[0]


def test_sigma_covers_the_error_under_pixel_noise():
    rng = np.random.default_rng(7)
    body = standing(5.0, -1.0, facing=(-1.0, 0.2))
    kp, vis = observe(CAM, body)
    errors, sigmas = [], []
    for _ in range(300):
        noisy = kp + rng.normal(0.0, 4.0, kp.shape)
        fp = place_on_floor(CAM, noisy, vis, pixel_sigma_px=4.0)
        errors.append(np.linalg.norm(hips(fp.keypoints_cell)[:2] - hips(body)[:2]))
        sigmas.append(float(np.nanmax(fp.sigma_m[[23, 24]])))
    assert np.mean(np.array(errors) <= np.array(sigmas)) >= 0.9


def test_feet_above_the_horizon_and_no_torso_place_nobody():
    low = look_at("low", (0.0, 0.0, 0.03), (5.0, 0.0, 1.0))   # on the floor, looking up
    kp, vis = observe(low, standing(4.0, 0.0))
    vis[:27] = 0.0                                           # only the feet, rays above their planes
    assert place_on_floor(low, kp, vis) is None


# ---------------------------------------------------------------- the tracker
CAM_B = look_at("b", (8.0, 3.0, 2.5), (4.0, 0.0, 1.0))


def views(body: np.ndarray, stamp: int, cams: tuple[CameraCalibration, ...]) -> list[View]:
    return [View(c.name, c, stamp, (Pose2D(*observe(c, body)),)) for c in cams]


def test_a_track_continues_on_one_view_with_floor_placement_and_returns_to_triangulation():
    tracker = MultiPersonTracker()
    period = 125_000_000
    t = 0
    for k in range(8):                                       # walking along +y at 0.4 m/s, 2 views
        t = k * period
        tracker.update(views(standing(4.0, 0.05 * k), t, (CAM, CAM_B)), t)
    (tri,) = tracker.tracks()
    assert tri.placement == "triangulated" and tri.track_id == "p1"
    states = []
    for k in range(8, 20):                                   # camera B loses him
        t = k * period
        tracker.update(views(standing(4.0, 0.05 * k), t, (CAM,)), t)
        (one,) = tracker.tracks()
        assert one.track_id == "p1"
        states.append((one.placement, one.coast_s > 0, one.sigma_m))
    # It coasts while coasting is more certain than the floor placement, then the floor takes over
    # (no coasting to lost); the sigma grows to the placement's and stays there.
    switch = [p for p, _, _ in states].index("floor")
    assert 1 <= switch <= 6
    assert all(p == "triangulated" for p, _, _ in states[:switch]) and states[switch - 1][1]
    assert all(p == "floor" and not coasting for p, coasting, _ in states[switch:])
    sigmas = [sigma for _, _, sigma in states]
    assert sigmas[:switch + 1] == sorted(sigmas[:switch + 1])
    assert one.views == ("c",) and one.sigma_m > 3 * tri.sigma_m
    assert np.linalg.norm(hips(one.keypoints_cell)[:2] - hips(standing(4.0, 0.95))[:2]) < 0.05
    assert tracker.lost_ids() == ()
    t += period
    tracker.update(views(standing(4.0, 1.0), t, (CAM, CAM_B)), t)
    (back,) = tracker.tracks()
    assert back.track_id == "p1" and back.placement == "triangulated" and back.sigma_m < one.sigma_m
    assert tracker.tracks_started == 1


def test_a_person_seen_by_one_view_only_gets_a_floor_track_once_seen_three_times():
    tracker = MultiPersonTracker(cell_bounds=(np.array([-10.0, -10.0, -1.0]), np.array([10.0, 10.0, 3.0])))
    tracker.update(views(standing(4.0, 0.0), 0, (CAM, CAM_B)), 0)
    far = standing(6.0, -2.0)                               # a second person, only camera "c" sees him
    for k in (1, 2, 3):
        t = k * 125_000_000
        people = (Pose2D(*observe(CAM, standing(4.0, 0.0))), Pose2D(*observe(CAM, far)))
        tracker.update([View("c", CAM, t, people),
                        View("b", CAM_B, t, (Pose2D(*observe(CAM_B, standing(4.0, 0.0))),))], t)
        tracks = {h.track_id: h for h in tracker.tracks()}
        # tentative for its first two updates: not published
        assert set(tracks) == ({"p1", "p2"} if k == 3 else {"p1"})
    assert tracks["p1"].placement == "triangulated" and tracks["p2"].placement == "floor"
    assert tracks["p2"].views == ("c",)
    assert np.linalg.norm(hips(tracks["p2"].keypoints_cell)[:2] - hips(far)[:2]) < 0.05


def test_a_ghost_in_one_view_is_never_published_nor_lost():
    tracker = MultiPersonTracker(cell_bounds=(np.array([-10.0, -10.0, -1.0]), np.array([10.0, 10.0, 3.0])))
    for k in (0, 1):                                         # a detector's ghost for two frames
        tracker.update(views(standing(5.0, 1.0), k * 125_000_000, (CAM,)), k * 125_000_000)
        assert tracker.tracks() == ()
    for k in range(2, 30):                                   # then nothing, for 3.5 s
        tracker.update([], k * 125_000_000)
    assert tracker.tracks() == () and tracker.lost_ids() == ()


def test_without_a_floor_one_view_places_nobody():
    tracker = MultiPersonTracker(floor_z_m=None)
    for k in range(4):
        tracker.update(views(standing(4.0, 0.0), k * 125_000_000, (CAM,)), k * 125_000_000)
    assert tracker.tracks() == () and tracker.tracks_started == 0
    assert Placement.FLOOR.value == "floor"


def test_feet_that_put_the_hips_where_no_standing_person_has_them_are_not_trusted():
    body = standing(4.0, 0.5, facing=(-1.0, 0.0))
    kp, vis = observe(CAM, body)
    kp[27:, 1] -= 120                                        # "feet" detected on the shins
    fp = place_on_floor(CAM, kp, vis)
    assert fp is not None and fp.basis is PlacementBasis.TORSO
    assert np.linalg.norm(fp.ground_cell[:2] - [4.0, 0.5]) < 0.05
    crouching = body.copy()
    crouching[:27, 2] -= 0.5                                 # hips at 0.4 m, feet on the floor
    kp, vis = observe(CAM, crouching)
    vis[11:13] = 0.0                                         # shoulders hidden: no torso prior
    assert place_on_floor(CAM, kp, vis) is None


def test_one_view_of_a_person_just_triangulated_in_that_camera_is_not_placed():
    tracker = MultiPersonTracker()
    tracker.update(views(standing(4.0, 0.0), 0, (CAM, CAM_B)), 0)
    assert tracker.triangulations == 1 and tracker.floor_placements == 0
    # The next round's first frame: camera "c" alone, 0.125 s later (the other view is on its way).
    # The tracker would discard his placement, so none is computed; the track stays triangulated.
    t = 125_000_000
    tracker.update(views(standing(4.0, 0.02), t, (CAM,)), t)
    assert tracker.floor_placements == 0
    (track,) = tracker.tracks()
    assert track.track_id == "p1" and track.placement == "triangulated"
    # Someone else in the same camera, and the same person once 0.15 s have passed: placed.
    far = standing(6.0, -2.0)
    tracker.update([View("c", CAM, t, (Pose2D(*observe(CAM, far)),))], t)
    assert tracker.floor_placements == 1
    t = 400_000_000
    tracker.update(views(standing(4.0, 0.05), t, (CAM,)), t)
    assert tracker.floor_placements == 2
