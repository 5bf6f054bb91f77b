"""The occupancy channel against hand-built point clouds: distance, self-filter, background, noise."""

import math

import numpy as np
import pytest

from safety.errors import OccupancyError
from safety.occupancy import (
    BackgroundModel,
    OccupancyChannel,
    key_indices,
    point_capsule_distances,
    voxel_indices,
    voxel_keys,
)

#: One robot link: a vertical capsule on the z axis from 0 to 1 m, radius 0.1 m.
LINK = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
RADII = np.array([0.1])
NAMES = ("link0",)
HALF_DIAGONAL = 0.05 * math.sqrt(3) / 2


def blob(centre, n=20, spread=0.005, seed=0):
    """n points within `spread` of `centre` (a small object, all in one voxel or two)."""
    rng = np.random.default_rng(seed)
    return np.asarray(centre) + rng.uniform(-spread, spread, (n, 3))


def test_point_capsule_distance_by_hand():
    pts = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 1.5], [0.0, 0.05, 0.5], [3.0, 4.0, -1.0]])
    d = point_capsule_distances(pts, LINK, RADII)
    assert d[:, 0] == pytest.approx([0.9, 0.4, -0.05, math.sqrt(25 + 1) - 0.1])


def test_voxel_keys_round_trip_negative_and_positive_indices():
    idx = np.array([[0, 0, 0], [-1, 2, -3], [1_000_000, -1_000_000, 7]])
    assert (key_indices(voxel_keys(idx)) == idx).all()
    assert (voxel_indices(np.array([[-0.01, 0.049, 0.051]]), 0.05) == [[-1, 0, 1]]).all()


def test_a_point_at_a_known_distance_gives_that_distance_within_a_voxel():
    # An object about 0.61 m from the axis at z = 0.51: 0.51 m from the capsule's surface, in voxel
    # (12, 0, 10) of 5 cm.
    channel = OccupancyChannel(voxel_size_m=0.05, min_points_per_voxel=1)
    m = channel.measure(blob([0.61, 0.01, 0.51], spread=0.001), LINK, RADII, NAMES, capture_ns=7, stamp_ns=9)
    assert m.closest_link == "link0" and m.voxel_count == 1
    truth = math.hypot(0.61, 0.01) - 0.1
    # A lower bound: the voxel centre's distance minus the half diagonal, never above the truth.
    assert m.separation_m == pytest.approx(math.hypot(0.625, 0.025) - 0.1 - HALF_DIAGONAL)
    assert truth - 0.05 - HALF_DIAGONAL <= m.separation_m <= truth
    assert m.capture_ns == 7 and m.stamp_ns == 9 and m.uncertainty_m == 0.05
    assert m.closest_point == pytest.approx([0.625, 0.025, 0.525])


def test_the_closest_of_several_objects_and_links_wins():
    links = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [[2.0, 0.0, 0.0], [2.0, 0.0, 1.0]]])
    pts = np.concatenate([blob([1.0, 0.0, 0.5]), blob([1.7, 0.0, 0.5], seed=1)])
    m = OccupancyChannel(min_points_per_voxel=1).measure(pts, links, np.array([0.1, 0.1]), ("a", "b"), 0)
    assert m.closest_link == "b"
    assert 0.2 - 0.05 - HALF_DIAGONAL <= m.separation_m <= 0.2


def test_nothing_near_the_robot_is_no_separation():
    m = OccupancyChannel(range_m=2.0).measure(blob([5.0, 0.0, 0.5]), LINK, RADII, NAMES, 0)
    assert m.separation_m is None and m.closest_link is None and m.voxel_count == 0
    assert m.voxels.shape == (0, 3)


def test_self_filter_removes_the_robots_own_points_and_keeps_a_hand_next_to_it():
    # The link's surface, sampled: every point is within the margin, none is occupancy.
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    z = np.linspace(0.0, 1.0, 30)
    surface = np.array([[0.1 * math.cos(a), 0.1 * math.sin(a), h] for a in angles for h in z])
    channel = OccupancyChannel(self_margin_m=0.05, min_points_per_voxel=1)
    m = channel.measure(surface, LINK, RADII, NAMES, 0)
    assert m.voxel_count == 0 and m.robot_points == surface.shape[0] and m.separation_m is None
    # A hand 0.2 m from the surface stays.
    m = channel.measure(np.concatenate([surface, blob([0.3, 0.0, 0.5])]), LINK, RADII, NAMES, 0)
    assert m.robot_points == surface.shape[0]
    assert 0.2 - 0.05 - HALF_DIAGONAL <= m.separation_m <= 0.2


def test_self_filter_follows_the_joint_state_of_the_frame():
    # The same points are the robot's in one pose and an object in another.
    pts = blob([0.5, 0.0, 0.5])
    channel = OccupancyChannel(min_points_per_voxel=1)
    moved = LINK + np.array([0.5, 0.0, 0.0])
    assert channel.measure(pts, moved, RADII, NAMES, 0).voxel_count == 0
    assert channel.measure(pts, LINK, RADII, NAMES, 0).voxel_count >= 1


def floor(z=0.0, half=1.5, step=0.02, noise=0.0, seed=0):
    xs = np.arange(-half, half, step)
    grid = np.array([[x, y, z] for x in xs for y in xs])
    return grid + np.random.default_rng(seed).normal(0.0, noise, grid.shape)


def test_background_learned_from_the_empty_cell_is_removed_with_its_noise():
    channel = OccupancyChannel(min_points_per_voxel=1)
    channel.learn_background(floor(noise=0.004), LINK, RADII)
    # A later frame of the same floor, other noise, and a person-sized object standing on it.
    person = blob([0.8, 0.3, 1.0], n=200, spread=0.15, seed=3)
    m = channel.measure(np.concatenate([floor(noise=0.004, seed=1), person]), LINK, RADII, NAMES, 0)
    assert m.background_points >= floor().shape[0] - 50
    # Only the object is left: every occupied voxel is above the floor's dilated band.
    assert m.voxel_count > 0 and (m.voxels[:, 2] > 0.05).all()
    assert m.separation_m == pytest.approx(0.8 - 0.15 - 0.1 - 0.05, abs=0.1)


def test_without_background_the_floor_is_occupancy():
    m = OccupancyChannel(min_points_per_voxel=1).measure(floor(), LINK, RADII, NAMES, 0)
    assert m.voxel_count > 100 and m.separation_m < 0.1


def test_background_is_learned_without_the_robot_points():
    channel = OccupancyChannel(min_points_per_voxel=1)
    bg = channel.learn_background(blob([0.12, 0.0, 0.5]), LINK, RADII)
    assert len(bg) == 0


def test_isolated_speckle_below_min_points_is_not_occupancy():
    channel = OccupancyChannel(min_points_per_voxel=3)
    speckle = np.array([[0.6, 0.0, 0.5], [0.9, 0.3, 0.2]])
    assert channel.measure(speckle, LINK, RADII, NAMES, 0).voxel_count == 0
    assert channel.measure(blob([0.61, 0.01, 0.51], n=3), LINK, RADII, NAMES, 0).voxel_count == 1


def test_non_finite_points_are_ignored():
    pts = np.concatenate([blob([0.6, 0.0, 0.5]), np.full((4, 3), np.nan), [[np.inf, 0, 0]]])
    m = OccupancyChannel(min_points_per_voxel=1).measure(pts, LINK, RADII, NAMES, 0)
    assert m.points == 20 and m.voxel_count >= 1


def test_voxels_kept_for_the_monitor_are_the_band_near_the_closest():
    pts = np.concatenate([blob([0.5, 0.0, 0.5]), blob([2.0, 0.0, 0.5], seed=1)])
    channel = OccupancyChannel(min_points_per_voxel=1, keep_band_m=0.5, range_m=3.0)
    m = channel.measure(pts, LINK, RADII, NAMES, 0)
    assert m.voxel_count >= 2 and (m.voxels[:, 0] < 1.0).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"voxel_size_m": 0.0}, "voxel_size_m must be positive, got 0.0"),
    ({"min_points_per_voxel": 0}, "min_points_per_voxel >= 1"),
    ({"keep_band_m": 0.0}, "keep_band_m > 0, got 0.0"),
    ({"background": BackgroundModel(0.1)}, "background voxel size 0.1 m differs from the channel's 0.05 m"),
])
def test_bad_configuration_is_named(kwargs, match):
    with pytest.raises(OccupancyError, match=match):
        OccupancyChannel(**kwargs)


def test_bad_shapes_are_named():
    channel = OccupancyChannel()
    with pytest.raises(OccupancyError, match=r"points: expected an \(N, 3\) array, got shape \(4,\)"):
        channel.measure(np.zeros(4), LINK, RADII, NAMES, 0)
    with pytest.raises(OccupancyError, match="robot capsules: expected"):
        channel.measure(np.zeros((1, 3)), LINK, RADII, ("a", "b"), 0)
    with pytest.raises(OccupancyError, match="dilation_voxels must be >= 0, got -1"):
        BackgroundModel(0.05, -1)
