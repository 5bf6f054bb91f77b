"""Forward kinematics of a robot from its URDF string, and the link capsules `safety` needs.

The URDF (from `/robot_description`) is loaded into a private PyBullet client in DIRECT mode,
with its `<visual>` and `<collision>` elements removed: meshes referenced as `package://...`
do not exist on this machine, and only the kinematic tree and the inertial frames are needed.
PyBullet then computes link frames and velocities (`getLinkStates`).

Link capsules: when every link of the fitted Franka Panda capsules
(`robot_bridge.sim.panda.PANDA_LINK_CAPSULES`, fitted to the Panda meshes) exists in the URDF,
those are used. Otherwise each URDF joint whose child link lies on the kinematic tree gives a
"skeleton" capsule from the parent link's origin to the child link's origin, with a configured
radius: a coarse envelope, because URDF mesh collision geometry is not available here. A
carried part (`payload_capsule`, the cell's `robot.payload`) is one more capsule, last, named
`PAYLOAD_LINK`, rigid in the TCP link's frame; the backend leaves it out while the gripper is
empty.

Frames: positions in the `cell` frame (REP 103); the URDF root link is placed at the robot's
base pose. Thread ownership: one thread (the backend's reader thread) owns an instance.
"""

from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import pybullet

from robot_bridge.errors import BridgeError
from robot_bridge.payload import PAYLOAD_LINK
from robot_bridge.sim.panda import PANDA_LINK_CAPSULES, LinkCapsule, quaternion_matrix, yaw_quaternion


@dataclass(frozen=True)
class UrdfJoint:
    """A URDF `<joint>`.

    Attributes:
        name: joint name.
        type: `revolute`, `continuous`, `prismatic`, `fixed`, `floating` or `planar`.
        parent: parent link name.
        child: child link name.
        lower: lower position limit, radians or metres (-inf when absent or continuous).
        upper: upper position limit (+inf when absent or continuous).
    """

    name: str
    type: str
    parent: str
    child: str
    lower: float
    upper: float


def parse_urdf(urdf: str) -> tuple[ET.Element, dict[str, UrdfJoint]]:
    """Parse a URDF string.

    Returns:
        (root element, joints by name).

    Raises:
        BridgeError: not XML, not a `<robot>`, or a joint without name, type, parent or child.
    """
    try:
        root = ET.fromstring(urdf)
    except ET.ParseError as exc:
        raise BridgeError(f"robot description: not valid XML: {exc}") from None
    if root.tag != "robot":
        raise BridgeError(f"robot description: root element is <{root.tag}>, expected <robot>")
    joints: dict[str, UrdfJoint] = {}
    for j in root.findall("joint"):
        name, kind = j.get("name"), j.get("type")
        parent, child = j.find("parent"), j.find("child")
        if not name or not kind or parent is None or child is None:
            raise BridgeError(f"robot description: joint {name!r} lacks name, type, parent or child")
        lower, upper = -math.inf, math.inf
        limit = j.find("limit")
        if limit is not None and kind in ("revolute", "prismatic"):
            try:
                lower = float(limit.get("lower", "0"))
                upper = float(limit.get("upper", "0"))
            except ValueError:
                raise BridgeError(f"robot description: joint {name!r} has a non-numeric limit") from None
        joints[name] = UrdfJoint(name, kind, parent.get("link", ""), child.get("link", ""), lower, upper)
    return root, joints


class UrdfKinematics:
    """Forward kinematics and link capsules of a URDF.

    Args:
        urdf: the URDF text.
        joint_names: the joints positions are given for (others stay at 0).
        base_position: (3,) metres, `cell` frame, where the URDF root link is.
        base_yaw_rad: rotation of the root link about z, radians.
        tcp_link: link whose origin is the TCP; None: the child link of the last of `joint_names`.
        link_radius_m: radius of skeleton capsules, metres.
        payload_capsule: the carried part's capsule in the TCP link's frame (its `a`, `b`,
            `radius_m`; name and link are ignored), appended as `PAYLOAD_LINK`; None: none.

    Raises:
        BridgeError: the URDF is invalid, lacks one of `joint_names` or `tcp_link`, or PyBullet
            cannot load it.
    """

    def __init__(
        self,
        urdf: str,
        joint_names: tuple[str, ...],
        base_position: tuple[float, float, float] = (0.0, 0.0, 0.0),
        base_yaw_rad: float = 0.0,
        tcp_link: str | None = None,
        link_radius_m: float = 0.1,
        payload_capsule: LinkCapsule | None = None,
    ) -> None:
        root, joints = parse_urdf(urdf)
        for n in joint_names:
            if n not in joints:
                raise BridgeError(f"robot description: has no joint {n!r}")
            if joints[n].type not in ("revolute", "continuous", "prismatic"):
                raise BridgeError(f"robot description: joint {n!r} is {joints[n].type}, not movable")
        self.joint_lower_limits = tuple(joints[n].lower for n in joint_names)
        self.joint_upper_limits = tuple(joints[n].upper for n in joint_names)
        links = {link.get("name") for link in root.findall("link")}
        tcp = tcp_link if tcp_link is not None else joints[joint_names[-1]].child
        if tcp not in links:
            raise BridgeError(f"robot description: has no link {tcp!r} (tcp_link)")
        for link in root.findall("link"):
            for tag in ("visual", "collision"):
                for element in link.findall(tag):
                    link.remove(element)
        stripped = ET.tostring(root, encoding="unicode")

        self._cid = pybullet.connect(pybullet.DIRECT)
        fd, path = tempfile.mkstemp(suffix=".urdf", prefix="xrcell-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(stripped)
            quat = yaw_quaternion(base_yaw_rad)
            self._body = pybullet.loadURDF(
                path, basePosition=list(base_position), baseOrientation=quat, useFixedBase=True,
                physicsClientId=self._cid,
            )
        except pybullet.error as exc:
            pybullet.disconnect(self._cid)
            raise BridgeError(f"robot description: PyBullet cannot load it: {exc}") from None
        finally:
            os.unlink(path)
        self._base_pos = np.asarray(base_position, dtype=np.float64)
        self._base_rot = quaternion_matrix(quat)
        index: dict[str, int] = {}  # joint name and child link name -> PyBullet index
        root_link = ""
        for i in range(pybullet.getNumJoints(self._body, physicsClientId=self._cid)):
            info = pybullet.getJointInfo(self._body, i, physicsClientId=self._cid)
            index[info[1].decode()] = i
            index[info[12].decode()] = i
        child_links = {j.child for j in joints.values()}
        roots = [n for n in links if n not in child_links]
        root_link = roots[0] if len(roots) == 1 else ""
        self._joints = [index[n] for n in joint_names]

        def link_index(name: str) -> int:
            return -1 if name == root_link else index[name]

        if all(c.name in links for c in PANDA_LINK_CAPSULES):
            self.link_names = tuple(c.name for c in PANDA_LINK_CAPSULES)
            self._cap_links = [link_index(c.name) for c in PANDA_LINK_CAPSULES]
            self._cap_a = np.array([c.a for c in PANDA_LINK_CAPSULES])
            self._cap_b = np.array([c.b for c in PANDA_LINK_CAPSULES])
            self.link_radii_m = np.array([c.radius_m for c in PANDA_LINK_CAPSULES])
            self._skeleton: list[tuple[int, int]] = []
            self.capsule_model = "panda_fitted"
        else:
            pairs = [(link_index(j.parent), link_index(j.child)) for j in joints.values()
                     if j.parent in links and j.child in links]
            self.link_names = tuple(j.child for j in joints.values() if j.parent in links and j.child in links)
            self._skeleton = pairs
            self.link_radii_m = np.full(len(pairs), float(link_radius_m))
            self.capsule_model = "skeleton"
        self._payload = payload_capsule
        if payload_capsule is not None:
            self.link_names = (*self.link_names, PAYLOAD_LINK)
            self.link_radii_m = np.append(self.link_radii_m, payload_capsule.radius_m)
        self.link_radii_m.setflags(write=False)
        self._tcp = link_index(tcp)
        self.tcp_link = tcp
        used = {i for i in self._cap_links if i >= 0} if not self._skeleton else {
            i for pair in self._skeleton for i in pair if i >= 0}
        self._state_links = sorted(used | ({self._tcp} if self._tcp >= 0 else set()))

    def compute(self, q: np.ndarray, qd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Link capsules and TCP at joint positions `q` and velocities `qd`.

        Args:
            q: (n,) positions of `joint_names`, radians (metres for prismatic joints).
            qd: (n,) velocities, rad/s (m/s).

        Returns:
            tcp_position (3,) m, tcp_velocity (3,) m/s, link_segments (K, 2, 3) m,
            link_speeds (K,) m/s (larger end-point speed of each capsule); `cell` frame. With a
            payload capsule, it is the last of the K.
        """
        cid, body = self._cid, self._body
        for j, qi, vi in zip(self._joints, q, qd):
            pybullet.resetJointState(body, j, float(qi), float(vi), physicsClientId=cid)
        states = pybullet.getLinkStates(
            body, self._state_links, computeLinkVelocity=1, computeForwardKinematics=1, physicsClientId=cid
        ) if self._state_links else []
        by_index = dict(zip(self._state_links, states))

        def frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            if i < 0:  # the fixed root link
                zero = np.zeros(3)
                return self._base_pos, self._base_rot, self._base_pos, zero, zero
            ls = by_index[i]
            return (np.array(ls[4]), quaternion_matrix(ls[5]), np.array(ls[0]), np.array(ls[6]), np.array(ls[7]))

        def point_velocity(i: int, p: np.ndarray) -> np.ndarray:
            _, _, com, v, w = frame(i)
            return v + np.cross(w, p - com)

        if self._skeleton:
            k = len(self._skeleton)
            segments = np.empty((k, 2, 3))
            speeds = np.empty(k)
            for c, (a, b) in enumerate(self._skeleton):
                pa, pb = frame(a)[0], frame(b)[0]
                segments[c] = (pa, pb)
                speeds[c] = max(np.linalg.norm(point_velocity(a, pa)), np.linalg.norm(point_velocity(b, pb)))
        else:
            k = len(self._cap_links)
            segments = np.empty((k, 2, 3))
            speeds = np.empty(k)
            for c, i in enumerate(self._cap_links):
                origin, rot = frame(i)[:2]
                ends = origin + np.stack([self._cap_a[c], self._cap_b[c]]) @ rot.T
                segments[c] = ends
                speeds[c] = max(np.linalg.norm(point_velocity(i, e)) for e in ends)
        tcp = frame(self._tcp)[0].copy()
        tcp_v = point_velocity(self._tcp, tcp)
        if self._payload is not None:
            origin, rot = frame(self._tcp)[:2]
            ends = origin + np.stack([self._payload.a, self._payload.b]) @ rot.T
            segments = np.concatenate([segments, ends[None]])
            fastest = max(np.linalg.norm(point_velocity(self._tcp, e)) for e in ends)
            speeds = np.append(speeds, fastest)
        return tcp, tcp_v, segments, speeds

    def close(self) -> None:
        """Disconnect the PyBullet client."""
        if self._cid >= 0:
            pybullet.disconnect(self._cid)
            self._cid = -1
