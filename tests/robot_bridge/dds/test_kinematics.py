"""Forward kinematics and link capsules from a URDF string."""

import math

import numpy as np
import pytest

from content.cell import Robot
from robot_bridge.dds.kinematics import UrdfKinematics, parse_urdf
from robot_bridge.errors import BridgeError
from robot_bridge.sim import ARM_JOINT_NAMES, PANDA_HOME_POSITION, PyBulletPandaBackend
from robot_bridge.sim.panda import panda_urdf_path

TWO_LINK = """<robot name="two">
  <link name="base"/>
  <link name="upper"><collision><geometry><mesh filename="package://nowhere/upper.stl"/></geometry></collision></link>
  <link name="fore"/>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/>
    <origin xyz="0 0 0.5"/><axis xyz="0 0 1"/><limit lower="-1.5" upper="1.5" effort="1" velocity="1"/></joint>
  <joint name="elbow" type="continuous"><parent link="upper"/><child link="fore"/>
    <origin xyz="0.4 0 0"/><axis xyz="0 0 1"/></joint>
</robot>"""


def test_panda_capsules_and_tcp_equal_the_simulation():
    robot = Robot.model_validate({"base": {"position": [0.2, -0.1, 0.0], "yaw_deg": 30.0}})
    sim = PyBulletPandaBackend(robot, realtime=False)
    try:
        state = sim.step(0)
    finally:
        sim.shutdown()
    kin = UrdfKinematics(panda_urdf_path().read_text(), ARM_JOINT_NAMES, robot.base.position,
                         math.radians(30.0), tcp_link="panda_grasptarget")
    try:
        tcp, tcp_v, segments, speeds = kin.compute(np.array(PANDA_HOME_POSITION), np.zeros(7))
    finally:
        kin.close()
    assert kin.capsule_model == "panda_fitted"
    assert kin.link_names == state.link_names
    np.testing.assert_allclose(segments, state.link_segments, atol=1e-6)
    np.testing.assert_allclose(kin.link_radii_m, state.link_radii_m)
    np.testing.assert_allclose(tcp, state.tcp_position, atol=1e-6)
    assert np.allclose(speeds, 0.0) and np.allclose(tcp_v, 0.0)
    assert kin.joint_lower_limits == sim.joint_lower_limits
    assert kin.joint_upper_limits == sim.joint_upper_limits


def test_skeleton_capsules_of_a_two_link_arm():
    kin = UrdfKinematics(TWO_LINK, ("shoulder", "elbow"), (1.0, 0.0, 0.0), 0.0, link_radius_m=0.05)
    try:
        tcp, tcp_v, segments, speeds = kin.compute(np.array([math.pi / 2, 0.0]), np.array([1.0, 0.0]))
    finally:
        kin.close()
    assert kin.capsule_model == "skeleton"
    assert kin.link_names == ("upper", "fore") and kin.tcp_link == "fore"
    # base at x=1; shoulder 0.5 m up, turned 90 deg about z: the forearm origin is 0.4 m along +y
    np.testing.assert_allclose(segments[0], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.5]], atol=1e-9)
    np.testing.assert_allclose(segments[1], [[1.0, 0.0, 0.5], [1.0, 0.4, 0.5]], atol=1e-9)
    np.testing.assert_allclose(tcp, [1.0, 0.4, 0.5], atol=1e-9)
    # 1 rad/s about z at 0.4 m: 0.4 m/s along -x
    np.testing.assert_allclose(tcp_v, [-0.4, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(speeds, [0.0, 0.4], atol=1e-9)
    assert kin.link_radii_m.tolist() == [0.05, 0.05]
    assert kin.joint_lower_limits == (-1.5, -math.inf) and kin.joint_upper_limits == (1.5, math.inf)


@pytest.mark.parametrize(
    "urdf, joints, tcp, message",
    [
        ("<robot", ("a",), None, r"robot description: not valid XML"),
        ("<model/>", ("a",), None, r"robot description: root element is <model>, expected <robot>"),
        (TWO_LINK, ("shoulder", "wrist"), None, r"robot description: has no joint 'wrist'"),
        (TWO_LINK, ("shoulder",), "hand", r"robot description: has no link 'hand' \(tcp_link\)"),
        (TWO_LINK.replace('type="continuous"', 'type="fixed"'), ("elbow",), None,
         r"robot description: joint 'elbow' is fixed, not movable"),
        ('<robot name="r"><joint name="j" type="revolute"/></robot>', ("j",), None,
         r"robot description: joint 'j' lacks name, type, parent or child"),
    ],
)
def test_bad_descriptions_are_refused(urdf, joints, tcp, message):
    with pytest.raises(BridgeError, match=message):
        UrdfKinematics(urdf, joints, tcp_link=tcp)


def test_parse_urdf_reads_limits():
    _, joints = parse_urdf(TWO_LINK)
    assert joints["shoulder"].lower == -1.5 and joints["shoulder"].child == "upper"
