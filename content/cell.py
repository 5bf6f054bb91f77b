"""The cell description: frames, robot, cameras and safety parameters of one robot cell.

A cell file is YAML validated by the pydantic models below. All positions are
metres in the `cell` frame (REP 103: x forward, y left, z up); angles are
degrees only where the name says `_deg`. Relative paths in the file are
resolved against the folder of the cell file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError,
                      ValidationInfo, field_validator, model_validator)

from content.errors import CellDescriptionError
from content.video_source import DEFAULT_CAPTURE_LATENCY_S, video_source_kind


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pose(_Model):
    """A pose in the `cell` frame: position (m) and yaw about z (degrees)."""

    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw_deg: float = 0.0


class StopDataRow(_Model):
    """One measured stop: from `speed_mps` with `payload_kg`, the robot stopped within
    `stopping_time_s` and `stopping_distance_m` (ISO 10218-1:2011 annex B measures them at 33,
    66 and 100 % of speed, payload and extension; give the worst extension's figures, converted
    to the Cartesian speed and distance of the robot's fastest point)."""

    speed_mps: float = Field(..., gt=0.0, le=10.0)
    payload_kg: float = Field(0.0, ge=0.0, le=1000.0)
    stopping_time_s: float = Field(..., gt=0.0, le=10.0)
    stopping_distance_m: float = Field(..., gt=0.0, le=10.0)


class StopData(_Model):
    """The robot's stopping behaviour, used for T_s and S_s (ISO/TS 15066 clause 5.5.4.2.3).

    Stopping time T_s(v) = latency_s + v / deceleration_mps2 and stopping distance
    S_s(v) = v * latency_s + v^2 / (2 * deceleration_mps2), v the robot's speed. With a
    measured `table`, the monitor and the gate use instead the (latency, deceleration) pair that
    bounds the table's rows for `payload_kg` from above (`safety.ssm.fit_stopping_envelope`);
    `latency_s` and `deceleration_mps2` then only describe how the simulated robot brakes.

    Attributes:
        category: IEC 60204-1 stop category of the protective stop.
        latency_s, deceleration_mps2: t_d (s) and a (m/s^2) of the model above.
        table: measured stops (`StopDataRow`); per payload, speeds up to `robot.max_tcp_speed_mps`.
        payload_kg: the payload the robot carries; the table's rows of the smallest measured
            payload at or above it are used.
        source: where the figures come from (datasheet, measurement report).
    """

    category: Literal[0, 1, 2] = 1
    latency_s: float = Field(0.05, ge=0.0, le=2.0)
    deceleration_mps2: float = Field(2.5, gt=0.0, le=50.0)
    table: list[StopDataRow] = Field(default_factory=list)
    payload_kg: float = Field(0.0, ge=0.0, le=1000.0)
    source: str = ""

    @model_validator(mode="after")
    def _table_is_usable(self) -> "StopData":
        if not self.table:
            return self
        payloads = sorted({r.payload_kg for r in self.table})
        if self.payload_kg > payloads[-1]:
            raise ValueError(f"payload_kg {self.payload_kg:g} is above every payload of the table "
                             f"(at most {payloads[-1]:g} kg): measure the stops with it")
        for payload in payloads:
            rows = sorted((r for r in self.table if r.payload_kg == payload), key=lambda r: r.speed_mps)
            for slower, faster in zip(rows, rows[1:]):
                if faster.speed_mps == slower.speed_mps:
                    raise ValueError(f"table rows of payload {payload:g} kg: two rows at "
                                     f"{faster.speed_mps:g} m/s")
                if (faster.stopping_time_s < slower.stopping_time_s
                        or faster.stopping_distance_m < slower.stopping_distance_m):
                    raise ValueError(f"table rows of payload {payload:g} kg: the stop from "
                                     f"{faster.speed_mps:g} m/s is shorter than from "
                                     f"{slower.speed_mps:g} m/s (stopping time and distance must "
                                     "not decrease with speed)")
        return self


class CapsuleShape(_Model):
    """A capsule: the segment p0-p1 swept by a sphere of `radius_m`; points in metres in the
    frame its owner names."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius_m: float = Field(..., gt=0.0, le=1.0)


class Payload(_Model):
    """The part the robot carries in its gripper, rigid in the tool frame while it is held.

    It is carried while the gripper holds it (`robot_bridge.payload.payload_carried`): the
    finger opening lies in [`grasp_min_width_m`, `grasp_max_width_m`] (closed on the part, not
    on nothing, not opened), or a gripper goal is under way, or the grip state is unknown or
    stale (fail-safe: the larger geometry and the heavier stop data). While it is carried its
    capsule joins the link capsules as the link `payload` (separation distance, the gate's
    keep-out and people check of the whole path, the scenario contact check) and the stop data
    of `robot.stop.payload_kg` apply; while it is not, those of `robot.stop.payload_kg -
    mass_kg` (`Robot.stop_payload_kg`).

    Attributes:
        mass_kg: its mass; the stop data must be for at least this payload
            (`robot.stop.payload_kg`, which selects the rows of `robot.stop.table`).
        capsule: its geometry in the tool frame (the TCP, `panda_grasptarget` on the Panda: z
            along the gripper's approach direction): a box is covered by the capsule along its
            longest edge with the radius of its cross-section's half diagonal.
        grasp_min_width_m: finger opening (both fingers), metres, above which a closed gripper
            holds the part; at or below it the gripper closed on nothing.
        grasp_max_width_m: finger opening, metres, below which the gripper holds the part; above
            it the gripper is open (the Panda opens to 0.08 m).
    """

    mass_kg: float = Field(0.0, ge=0.0, le=1000.0)
    capsule: CapsuleShape
    grasp_min_width_m: float = Field(0.005, ge=0.0, le=1.0)
    grasp_max_width_m: float = Field(0.075, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _grasp_widths_ordered(self) -> "Payload":
        if self.grasp_max_width_m <= self.grasp_min_width_m:
            raise ValueError(f"grasp_max_width_m {self.grasp_max_width_m:g} m must be above "
                             f"grasp_min_width_m {self.grasp_min_width_m:g} m")
        return self


#: Joint position limits of each `Robot.model`, radians, in its joint order (the Panda: joints
#: 1..7). Source: Franka Emika "Robot and interface specifications" (FCI documentation), joint
#: space limits q_min / q_max; they lie inside the limits of the simulation's URDF.
JOINT_POSITION_LIMITS_RAD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "franka_panda": ((-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
                     (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)),
}

#: A named pose: joint positions in radians, one per arm joint of the robot, in its joint order.
NamedPose = Annotated[tuple[float, ...], Field(min_length=1, max_length=32)]


def check_named_poses(model: str, poses: dict[str, tuple[float, ...]]) -> None:
    """Check the named poses of a robot `model` (`Robot.named_poses`).

    Raises:
        ValueError: a name that is not a short identifier, a pose with the wrong number of joint
            positions, or a position outside its joint's limits; the message names the pose.
    """
    lower, upper = JOINT_POSITION_LIMITS_RAD[model]
    for name, q in poses.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise ValueError(f"pose name {name!r}: use 1 to 32 lower-case letters, digits or _, "
                             "starting with a letter")
        if len(q) != len(lower):
            raise ValueError(f"pose {name!r}: {len(q)} joint positions, {model} has {len(lower)} "
                             "joints")
        for j, (v, lo, hi) in enumerate(zip(q, lower, upper)):
            if not lo <= v <= hi:
                raise ValueError(f"pose {name!r}: joint {j + 1} at {v:g} rad is outside its "
                                 f"limits [{lo:g}, {hi:g}] rad")


#: The gripper's finger joints of each `Robot.model`, as its URDF names them. The Franka Hand
#: (franka_description `hand.xacro`): two prismatic joints of 0 .. 0.04 m each (their sum is the
#: opening, 0 .. 0.08 m); `panda_finger_joint2` mimics `panda_finger_joint1`.
FINGER_JOINTS: dict[str, tuple[str, ...]] = {
    "franka_panda": ("panda_finger_joint1", "panda_finger_joint2"),
}

#: The ROS 2 topic each `GripperController.kind` subscribes, relative to its controller node
#: (ros2_controllers: forward_command_controller `~/commands`, joint_trajectory_controller
#: `~/joint_trajectory`).
GRIPPER_CONTROLLER_TOPICS: dict[str, str] = {
    "forward_position": "commands",
    "joint_trajectory": "joint_trajectory",
}

_ROS_TOPIC = r"^(/[A-Za-z_][A-Za-z0-9_]*)+$"


class GripperController(_Model):
    """The ros2_control controller a `dds` robot drives its gripper with, over a topic.

    `forward_position`: a forward_command_controller on the finger joints (e.g.
    position_controllers/JointGroupPositionController), std_msgs/Float64MultiArray on
    `/<controller>/commands`, one position per entry of `joints` (metres: half the opening each).
    `joint_trajectory`: a JointTrajectoryController on the finger joints,
    trajectory_msgs/JointTrajectory on `/<controller>/joint_trajectory`. See
    `robot_bridge.dds.gripper` for how the commands are timed and stopped.

    Attributes:
        kind: `forward_position` or `joint_trajectory`.
        topic: absolute ROS 2 topic of the controller (`/<controller>/commands` or
            `/<controller>/joint_trajectory`).
        joints: the finger joints the controller commands, in its order: both fingers (default),
            or only `panda_finger_joint1` where the hardware moves the mimic finger itself.
    """

    kind: Literal["forward_position", "joint_trajectory"]
    topic: str = Field(..., pattern=_ROS_TOPIC)
    joints: tuple[str, ...] = Field(FINGER_JOINTS["franka_panda"], min_length=1, max_length=2)

    @model_validator(mode="after")
    def _topic_fits_the_kind(self) -> "GripperController":
        suffix = GRIPPER_CONTROLLER_TOPICS[self.kind]
        if not self.topic.endswith("/" + suffix) or self.topic.count("/") < 2:
            raise ValueError(f"topic {self.topic!r}: a {self.kind} controller subscribes "
                             f"/<controller>/{suffix}")
        if len(set(self.joints)) != len(self.joints):
            raise ValueError(f"joints: repeated joint in {list(self.joints)}")
        return self


class DdsRobot(_Model):
    """Options of a robot driven by the `dds` backend (`robot_bridge.dds`); other backends ignore
    them. `gripper_controller`: the controller gripper commands go to; None: gripper commands
    are refused (the GripperCommand action is out of scope over raw DDS)."""

    gripper_controller: GripperController | None = None


class Robot(_Model):
    """The robot of the cell (`payload`: the carried part, `Payload`; None: none;
    `named_poses`: joint positions a page can send the robot to by name, radians, checked by
    `check_named_poses`; `dds`: options of the `dds` backend, `DdsRobot`)."""

    backend: Literal["sim", "dds", "ros2"] = "sim"
    model: Literal["franka_panda"] = "franka_panda"
    base: Pose = Pose()
    max_tcp_speed_mps: float = Field(1.0, gt=0.0, le=3.0)
    stop: StopData = StopData()
    state_rate_hz: float = Field(200.0, ge=100.0, le=1000.0)
    payload: Payload | None = None
    named_poses: dict[str, NamedPose] = Field(default_factory=dict)
    dds: DdsRobot = DdsRobot()

    @field_validator("named_poses")
    @classmethod
    def _named_poses_within_limits(cls, poses: dict[str, tuple[float, ...]],
                                   info: ValidationInfo) -> dict[str, tuple[float, ...]]:
        check_named_poses(info.data.get("model", "franka_panda"), poses)
        return poses

    def stop_payload_kg(self, carried: bool) -> float:
        """The payload, kg, whose stop data apply (`StopData.payload_kg` selects the table rows):
        `stop.payload_kg` while the part is carried (or no `payload` is given), else
        `stop.payload_kg - payload.mass_kg` (the empty gripper)."""
        if carried or self.payload is None:
            return self.stop.payload_kg
        return max(0.0, self.stop.payload_kg - self.payload.mass_kg)

    @model_validator(mode="after")
    def _gripper_joints_of_the_model(self) -> "Robot":
        gripper = self.dds.gripper_controller
        fingers = FINGER_JOINTS[self.model]
        if gripper is not None and any(j not in fingers for j in gripper.joints):
            raise ValueError(f"robot.dds.gripper_controller.joints: {list(gripper.joints)} are not "
                             f"all finger joints of {self.model} ({', '.join(fingers)})")
        return self

    @model_validator(mode="after")
    def _stop_data_covers_the_payload(self) -> "Robot":
        if self.payload is not None and self.stop.payload_kg < self.payload.mass_kg:
            raise ValueError(f"robot.stop.payload_kg: {self.stop.payload_kg:g} kg is below "
                             f"robot.payload.mass_kg {self.payload.mass_kg:g} kg: give the stop data "
                             f"for the carried payload")
        return self

    @model_validator(mode="after")
    def _stop_table_covers_the_speed(self) -> "Robot":
        for payload in sorted({r.payload_kg for r in self.stop.table}):
            fastest = max(r.speed_mps for r in self.stop.table if r.payload_kg == payload)
            if fastest < self.max_tcp_speed_mps:
                raise ValueError(f"stop.table: the payload {payload:g} kg is measured up to {fastest:g} m/s, "
                                 f"below max_tcp_speed_mps {self.max_tcp_speed_mps:g}: the stopping "
                                 "distance above it is unknown")
        return self


class _OrientedPose(_Model):
    """A position and exactly one orientation (quaternion or roll, pitch, yaw) in the `cell`
    frame; `CameraPose` and `MarkerPose` say which frame it places."""

    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float] | None = None
    rpy: tuple[float, float, float] | None = None

    @model_validator(mode="after")
    def _one_orientation(self) -> "_OrientedPose":
        if (self.quaternion is None) == (self.rpy is None):
            raise ValueError("give exactly one of quaternion (x, y, z, w) or rpy (radians)")
        if self.quaternion is not None and sum(q * q for q in self.quaternion) < 1e-12:
            raise ValueError("quaternion must not be zero")
        return self


class CameraPose(_OrientedPose):
    """Pose of a camera's optical frame in the `cell` frame, for calibration files without
    extrinsics (ROS camera_info; OpenCV files without rvec/tvec or R/T).

    The optical frame is REP 103's `<camera>_optical_frame`: z along the optical axis into the
    scene, x to the right of the image, y down the image. Give the orientation as a quaternion
    (x, y, z, w) or as roll, pitch, yaw in radians about the fixed `cell` axes x, y, z (REP 103).
    Example: a camera 2 m up at the origin looking along cell +x with its image upright is
    `{position: [0, 0, 2], quaternion: [-0.5, 0.5, -0.5, 0.5]}` (rpy [-pi/2, 0, -pi/2]).

    Attributes:
        position: optical centre, metres, `cell` frame.
        quaternion: orientation (x, y, z, w) of the optical frame in `cell`.
        rpy: orientation as roll, pitch, yaw, radians.
    """


#: Calibration formats without extrinsics (the cell file's `pose` gives them) and with them.
INTRINSICS_ONLY_FORMATS = ("camera_info",)
EXTRINSICS_FORMATS = ("qca", "pose2sim")


class Calibration(_Model):
    """Where a camera's calibration comes from (formats: see `content.calibration`).

    `pose` gives the extrinsics for files that hold none: required for `camera_info`, refused
    for `qca` and `pose2sim`; for `opencv` exactly one of the file and `pose` must give them.
    """

    format: Literal["qca", "opencv", "pose2sim", "camera_info"] = "qca"
    file: Path
    camera: str = Field(..., min_length=1, description="camera name inside the calibration file")
    pose: CameraPose | None = None

    @model_validator(mode="after")
    def _extrinsics_source(self) -> Calibration:
        if self.format in INTRINSICS_ONLY_FORMATS and self.pose is None:
            raise ValueError(f"format {self.format} holds intrinsics only: give the camera's pose")
        if self.format in EXTRINSICS_FORMATS and self.pose is not None:
            raise ValueError(f"format {self.format} gives the extrinsics: remove pose")
        return self


class Camera(_Model):
    """A fixed cell camera: a video source and its calibration (``kind: fixed``, the default).

    ``video`` is a recorded file (relative to the cell file, replayed as a live camera), a
    network stream (``rtsp://``, ``rtsps://``, ``http://``, ``https://``) or a local device
    (``/dev/videoN``); see `content.video_source`. Live sources stamp each frame with its
    receipt time minus ``capture_latency_s`` (default per kind in
    `content.video_source.DEFAULT_CAPTURE_LATENCY_S`), which the safety monitor counts in T_r.
    """

    id: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["fixed"] = "fixed"
    video: str = Field(..., min_length=1)
    calibration: Calibration
    playback: Literal["loop", "pingpong", "once"] = Field(
        "loop", description="video files: loop from the start, play forwards then backwards, or play once")
    capture_latency_s: float | None = Field(None, ge=0.0, le=2.0, description=(
        "time from exposure to the frame reaching xrcell, s (live sources; default per source kind)"))
    process_rate_hz: float = Field(8.0, gt=0.0, le=120.0)
    resize: float = Field(0.5, gt=0.0, le=1.0)
    frame_rate_hz: float = Field(30.0, gt=0.0, le=240.0, description=(
        "the camera's nominal frame rate (W3C frameRate): its watchdog bound is "
        "safety.stale_periods frames"))

    @field_validator("video")
    @classmethod
    def _known_source(cls, video: str) -> str:
        video_source_kind(video)        # raises ValueError naming an unsupported scheme
        return video

    @model_validator(mode="after")
    def _playback_is_for_files(self) -> "Camera":
        kind = video_source_kind(self.video)
        if kind != "file" and "playback" in self.model_fields_set:
            raise ValueError(f"playback applies to video files only, not to a {kind} ({self.video})")
        if kind == "file" and self.capture_latency_s:
            raise ValueError("capture_latency_s applies to live sources only: a video file's frames "
                             "are stamped when they are replayed")
        return self

    @property
    def source_kind(self) -> str:
        """``"file"``, ``"stream"`` or ``"device"`` (`content.video_source.video_source_kind`)."""
        return video_source_kind(self.video)

    @property
    def latency_s(self) -> float:
        """The capture latency used for this camera's frames, s (declared or the kind's default)."""
        if self.capture_latency_s is not None:
            return self.capture_latency_s
        return DEFAULT_CAPTURE_LATENCY_S[self.source_kind]


#: The inputs the safety monitor watches, each with a watchdog bound `<input>_timeout_s` in
#: `SafetyParameters`.
WATCHDOG_INPUTS = ("camera", "tracker", "robot", "monitor")
#: The shortest watchdog bound derived from `stale_periods`, per input, seconds. Measured on the
#: 2-core reference machine: the monitor's p99 cycle is about 13 ms and a loaded machine has
#: scheduler stalls of up to 0.5 s; 3 missed periods of a 200 Hz robot state (15 ms) or of the
#: 100 Hz monitor (30 ms) would turn ordinary jitter into fault stops, so the bound never goes
#: below these: the robot's 50 ms (10 periods at 200 Hz), the monitor's 0.2 s (its previous
#: bound), and 0.2 s for camera frames and tracking output, which reach the monitor through the
#: niced perception process and WebRTC jitter buffers (chosen, not measured). An explicit
#: `<input>_timeout_s` in the cell overrides both.
WATCHDOG_FLOORS_S = {"camera": 0.2, "tracker": 0.2, "robot": 0.05, "monitor": 0.2}
#: Nominal input periods, seconds, where no cell says otherwise: a 30 fps camera, the tracker at
#: the default pose-estimation rate (8 Hz), a 200 Hz robot state.
DEFAULT_INPUT_PERIODS_S = {"camera": 1.0 / 30.0, "tracker": 1.0 / 8.0, "robot": 1.0 / 200.0}


class HmiCamera(_Model):
    """A worker's HMI (glasses) as a camera of the cell (``kind: hmi``).

    The frames come from the WebRTC video the HMI sends in its XR session; the camera's pose and
    intrinsics come, per frame, from the HMI's ``hmi_camera`` events (WebXR). A frame is used
    only when a reported pose is stamped within `max_pose_age_s` of its capture time (the rest
    are counted and dropped). Its absence is not a fault: a worker may take the glasses off, so
    the monitor's camera watchdog skips it (the fixed cameras keep theirs).

    Attributes:
        id: the camera's id in tracking output.
        user: the account whose worker video this camera is (exactly one of `user` and
            `device`).
        device: the HMI's device id, as its client sends it with its offer (``device``).
        max_pose_age_s: largest gap between a frame's capture time and the pose used for it.
        process_rate_hz: pose-estimation rate of the camera; frames in between are dropped
            before they are converted.
        resize: scale factor applied to the received frames before tracking.
        max_width_px: frames wider than this (after `resize`) are scaled down to it.
    """

    id: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["hmi"]
    user: str | None = Field(None, min_length=1)
    device: str | None = Field(None, min_length=1, max_length=128)
    max_pose_age_s: float = Field(0.1, gt=0.0, le=1.0)
    process_rate_hz: float = Field(8.0, gt=0.0, le=120.0)
    resize: float = Field(1.0, gt=0.0, le=1.0)
    max_width_px: int = Field(960, ge=64, le=4096)

    @model_validator(mode="after")
    def _one_selector(self) -> "HmiCamera":
        if (self.user is None) == (self.device is None):
            raise ValueError("give exactly one of user (an account) or device (the HMI's device id)")
        return self


#: The ArUco dictionaries a marker may come from (OpenCV's `cv2.aruco` names) and how many
#: markers each holds (a marker's `id` is below that).
ARUCO_DICTIONARIES = {
    **{f"DICT_{b}X{b}_{n}": n for b in (4, 5, 6, 7) for n in (50, 100, 250, 1000)},
    "DICT_ARUCO_ORIGINAL": 1024, "DICT_APRILTAG_16h5": 30, "DICT_APRILTAG_25h9": 35,
    "DICT_APRILTAG_36h10": 2320, "DICT_APRILTAG_36h11": 587, "DICT_ARUCO_MIP_36h12": 250,
}


class MarkerPose(_OrientedPose):
    """Pose of a fiducial marker's frame in the `cell` frame.

    The marker frame (as `xr_server.calibrate`'s board frame): origin at the marker's centre,
    x along its top edge (left to right as `cv2.aruco.generateImageMarker` draws it), y down its
    left edge, z = x × y into the marker (out of its back). Give the orientation as a quaternion
    (x, y, z, w) or as roll, pitch, yaw in radians about the fixed `cell` axes (REP 103).
    Examples: a marker lying face up on the floor with its top edge along cell +x is
    rpy (pi, 0, 0); one on a wall facing cell -x, upright, is rpy (-pi/2, 0, -pi/2).

    Attributes:
        position: the marker's centre, metres, `cell` frame.
        quaternion: orientation (x, y, z, w) of the marker frame in `cell`.
        rpy: orientation as roll, pitch, yaw, radians.
    """


class FiducialMarker(_Model):
    """A square ArUco/AprilTag marker fixed at a known pose in the cell, for registering an HMI
    (`xr_server.marker_alignment`: the WebXR room of glasses in the `cell` frame).

    Attributes:
        id: the marker's id in its dictionary.
        dictionary: the `cv2.aruco` predefined dictionary (`ARUCO_DICTIONARIES`).
        size_m: side of the marker's black outer square, metres (as printed; measure it).
        pose: where it is in the cell (`MarkerPose`).
    """

    id: int = Field(..., ge=0)
    dictionary: str = "DICT_4X4_50"
    size_m: float = Field(..., gt=0.0, le=2.0)
    pose: MarkerPose

    @model_validator(mode="after")
    def _known_id(self) -> "FiducialMarker":
        size = ARUCO_DICTIONARIES.get(self.dictionary)
        if size is None:
            raise ValueError(f"dictionary: unknown ArUco dictionary {self.dictionary!r} "
                             f"(known: {', '.join(ARUCO_DICTIONARIES)})")
        if self.id >= size:
            raise ValueError(f"id: {self.dictionary} holds ids 0 to {size - 1}, got {self.id}")
        return self


def _camera_kind(value: object) -> str:
    kind = value.get("kind", "fixed") if isinstance(value, dict) else getattr(value, "kind", "fixed")
    return kind if isinstance(kind, str) else repr(kind)


_CAMERA_TAGS = ("fixed", "hmi")
#: A camera of the cell, told apart by its ``kind`` (``fixed`` when absent).
AnyCamera = Annotated[Union[Annotated[Camera, Tag("fixed")], Annotated[HmiCamera, Tag("hmi")]],
                      Discriminator(_camera_kind, custom_error_type="camera_kind",
                                    custom_error_message="kind must be 'fixed' (the default) or 'hmi'")]


class SafetyParameters(_Model):
    """Speed and separation monitoring parameters (ISO/TS 15066 clause 5.5.4, ISO 13855).

    Attributes:
        rate_hz: monitor cycle rate.
        human_speed_mps: v_h, ISO 13855 clause 6.2.3 walking speed 1.6 m/s; the measured
            speed is used when larger.
        hand_arm_speed_mps: v_h of the hands and arms (elbows, wrists, hands), ISO 13855:2010
            clause 6.2.3, K = 2000 mm/s (the approach speed of the upper limbs, within their
            reach of 500 mm); the measured speed is used when larger.
        reaction_time_s: the part of T_r not measured from data age: decision + command
            transport; the age of the camera data is added every cycle.
        intrusion_distance_m: C, ISO 13855 intrusion distance beyond the tracked body.
        human_uncertainty_m: Z_d floor, metres; the tracker's sigma is used when larger.
        robot_uncertainty_m: Z_r, the robot's position uncertainty.
        separation_buffer_m: subtracted from the measured separation before the allowed speed
            is computed; covers the step by which each tracking update can move a person and
            the time the robot needs to decelerate to a newly lowered speed.
        min_speed_scale: below this allowed scale the monitor commands a protective stop.
        resume_delay_s: separation must be restored this long before leaving an SSM stop.
        raise_dwell_s: the speed scale is raised only after this long without a lowering.
        stale_periods: an input is stale once it missed this many of its nominal periods
            (issue 3: default 3): each watchdog bound not given in seconds is
            max(`WATCHDOG_FLOORS_S`[input], stale_periods x the input's period). Periods: the
            slowest camera's `frame_rate_hz`, the fastest camera's `process_rate_hz` (the
            tracker publishes when any camera was processed), `robot.state_rate_hz`, and
            `rate_hz` (the monitor's own cycle); `DEFAULT_INPUT_PERIODS_S` outside a cell.
        camera_timeout_s / tracker_timeout_s / robot_timeout_s: watchdog bounds, seconds;
            an explicit value wins over `stale_periods` (it must exceed one period of its input).
        monitor_timeout_s: the monitor's own watchdog: a gap between two cycles longer than
            this is a fault; from `stale_periods` like the others unless given.
        path_prediction_horizon_s: how far ahead the command gate moves people along their
            measured velocity when it plays a commanded path against them (`safety.path_check`);
            0 keeps them where they were seen.
        path_clearance_m: the command gate plans paths this much further from people than the
            monitor's threshold, so that the jitter of the monitor's inputs (the age of the
            camera data, tracking noise) does not stop a motion the gate let start.
        channel_disagreement_m: where the cell has depth data, the skeleton and the occupancy
            channel's closest distances (each capped at `cross_check_range_m`) may differ by this
            much plus both channels' uncertainties (Z_d of the skeleton, one voxel of the
            occupancy) plus the distance a person walks at `human_speed_mps` between the two
            measurements' capture times; beyond it for `channel_disagreement_time_s` the monitor
            latches a fault stop (`safety.cross_check`).
        channel_disagreement_time_s: how long a disagreement beyond the bound may last.
        cross_check_range_m: the channels are compared within this distance of the robot (the
            occupancy channel's working range; a person farther away counts as at this distance).
        depth_timeout_s: watchdog bound of the occupancy channel's depth input.
        realtime_priority: run the monitor thread under the real-time policy `SCHED_FIFO` at this
            priority (1-98, POSIX sched(7); 99 is left to the kernel's own threads), so that
            other processes on the machine cannot preempt a cycle (on a loaded 2-core machine
            they are what sets the cycle's p99: README, "The safety cycle's time"). Needs the
            CAP_SYS_NICE capability or an `rtprio` limit (limits.conf(5)) for xrcell's user;
            where the kernel refuses, the monitor runs with normal scheduling and says so in
            its log and report (`scheduling`). None (default): normal scheduling.
    """

    rate_hz: float = Field(100.0, ge=50.0, le=1000.0)
    human_speed_mps: float = Field(1.6, gt=0.0, le=5.0)
    hand_arm_speed_mps: float = Field(2.0, gt=0.0, le=5.0)
    reaction_time_s: float = Field(0.03, ge=0.0, le=2.0)
    intrusion_distance_m: float = Field(0.1, ge=0.0, le=2.0)
    human_uncertainty_m: float = Field(0.1, ge=0.0, le=1.0)
    robot_uncertainty_m: float = Field(0.01, ge=0.0, le=0.5)
    separation_buffer_m: float = Field(0.05, ge=0.0, le=1.0)
    min_speed_scale: float = Field(0.05, ge=0.0, le=1.0)
    resume_delay_s: float = Field(1.0, ge=0.0, le=60.0)
    raise_dwell_s: float = Field(0.3, ge=0.0, le=60.0)
    stale_periods: int = Field(3, ge=1, le=100)
    # None: from stale_periods (filled in by the validator, so readers always get seconds)
    camera_timeout_s: float = Field(None, gt=0.0, le=10.0)  # type: ignore[assignment]
    robot_timeout_s: float = Field(None, gt=0.0, le=10.0)  # type: ignore[assignment]
    tracker_timeout_s: float = Field(None, gt=0.0, le=10.0)  # type: ignore[assignment]
    monitor_timeout_s: float = Field(None, gt=0.0, le=10.0)  # type: ignore[assignment]
    path_prediction_horizon_s: float = Field(1.0, ge=0.0, le=10.0)
    path_clearance_m: float = Field(0.15, ge=0.0, le=1.0)
    channel_disagreement_m: float = Field(0.25, gt=0.0, le=2.0)
    channel_disagreement_time_s: float = Field(0.3, ge=0.0, le=10.0)
    cross_check_range_m: float = Field(2.0, gt=0.0, le=10.0)
    depth_timeout_s: float = Field(0.5, gt=0.0, le=10.0)
    realtime_priority: int | None = Field(None, ge=1, le=98, strict=True)

    @model_validator(mode="after")
    def _watchdog_bounds(self) -> "SafetyParameters":
        self._resolve_watchdogs(DEFAULT_INPUT_PERIODS_S)
        return self

    def explicit_timeouts(self) -> dict[str, float]:
        """The watchdog bounds given in seconds (they win over `stale_periods`), by input."""
        return {name: getattr(self, f"{name}_timeout_s") for name in WATCHDOG_INPUTS
                if f"{name}_timeout_s" in self.model_fields_set and getattr(self, f"{name}_timeout_s") is not None}

    def _resolve_watchdogs(self, periods_s: dict[str, float]) -> None:
        periods = {**periods_s, "monitor": 1.0 / self.rate_hz}
        explicit = self.explicit_timeouts()
        for name in WATCHDOG_INPUTS:
            if name not in explicit:
                # the model is frozen for its users; the validator fills in derived values once
                object.__setattr__(self, f"{name}_timeout_s",
                                   max(WATCHDOG_FLOORS_S[name], self.stale_periods * periods[name]))

    def with_input_periods(self, *, camera_period_s: float, tracker_period_s: float,
                           robot_period_s: float) -> "SafetyParameters":
        """A copy whose watchdog bounds not given in seconds follow these nominal periods, s."""
        out = self.model_copy()
        out._resolve_watchdogs({"camera": camera_period_s, "tracker": tracker_period_s,
                                "robot": robot_period_s})
        return out


class ZoneBox(_Model):
    """An axis-aligned box in the `cell` frame: corners `min` and `max`, metres."""

    min: tuple[float, float, float]
    max: tuple[float, float, float]

    @model_validator(mode="after")
    def _ordered(self) -> "ZoneBox":
        if not all(lo < hi for lo, hi in zip(self.min, self.max)):
            raise ValueError(f"box min {list(self.min)} must be below max {list(self.max)} on every axis")
        return self


class DepthIntrinsics(_Model):
    """Pinhole intrinsics of a depth camera (pixels), for depth images (the RealSense SDK
    reports its own)."""

    width_px: int = Field(..., gt=0, le=8192)
    height_px: int = Field(..., gt=0, le=8192)
    fx: float = Field(..., gt=0.0)
    fy: float = Field(..., gt=0.0)
    cx: float
    cy: float


#: Largest `PlacedObjectMaskSettings.margin_m`, metres: two 5 cm voxels (the same bound as
#: `safety.placed_mask.MAX_MARGIN_M`, which argues it; a test keeps the two equal).
MAX_PLACED_MARGIN_M = 0.1


class PlacedObjectMaskSettings(_Model):
    """How the occupancy channel masks the parts the robot released (`safety.placed_mask`,
    docs/safety.md "Parts the robot released").

    Attributes:
        margin_m: points within this distance of a placed part's surface (outside or inside)
            are the part's, metres; 0.05 (one voxel of depth noise, as the background's
            dilation), at most `MAX_PLACED_MARGIN_M` (0.1: a wider shell would hide a forearm
            lying along the part). Within it this channel is blind; the skeleton channel sees.
        max_age_s: a placed-objects list carried by a robot state older than this at the depth
            capture is stale and nothing is masked, seconds; 0.5 (the depth watchdog's default).
    """

    # strict: a number only (never a string or a boolean coerced into one), finite
    margin_m: float = Field(0.05, ge=0.0, le=MAX_PLACED_MARGIN_M, strict=True, allow_inf_nan=False)
    max_age_s: float = Field(0.5, gt=0.0, le=10.0, strict=True, allow_inf_nan=False)


#: Depth sources of `DepthInput`.
DEPTH_SOURCES = ("ply_sequence", "depth_images", "realsense")


class DepthInput(_Model):
    """The cell's depth camera: the input of the occupancy channel (`safety.occupancy`), the
    second, diverse distance channel beside the skeleton (docs/safety.md).

    Sources:
        ply_sequence: a directory of `.ply`/`.pcd` point clouds played in name order at `fps`;
            `pose` is the clouds' frame in `cell` (None: the clouds are in the `cell` frame).
        depth_images: a directory of depth images (`.npy` float metres or uint16, 16-bit
            `.png`) in name order at `fps`; needs `intrinsics` and `pose`.
        realsense: an Intel RealSense camera through `pyrealsense2` (not a dependency of
            xrcell: `pip install pyrealsense2`); needs `pose`; `serial` picks one of several.

    Attributes:
        source: one of the sources above.
        path: the directory (file sources only), relative to the cell file.
        fps: depth frames per second (file sources: playback rate; realsense: stream rate).
        loop: file sources start again after the last frame; false: the input goes stale
            after the last frame (a fault stop, as with a camera that stops).
        intrinsics: pinhole intrinsics (depth_images).
        pose: pose of the camera's optical frame (x right, y down, z forward) in `cell`.
        depth_scale: raw units per metre of uint16 images (1000: millimetres).
        max_depth_m: readings beyond this are no return.
        serial: RealSense device serial number (None: the first device).
        background: the static background (`.npz` of `xrcell occupancy learn`), relative to
            the cell file; None: nothing is background (the floor near the robot shows as
            occupancy unless `range_m` keeps it out).
        voxel_size_m, self_margin_m, range_m, min_points_per_voxel: the occupancy channel's
            settings (`safety.occupancy.OccupancyChannel`).
        placed_mask: how the parts the robot released are masked (`PlacedObjectMaskSettings`).
    """

    source: Literal["ply_sequence", "depth_images", "realsense"]
    path: Path | None = None
    fps: float = Field(15.0, gt=0.0, le=120.0)
    loop: bool = True
    intrinsics: DepthIntrinsics | None = None
    pose: CameraPose | None = None
    depth_scale: float = Field(1000.0, gt=0.0)
    max_depth_m: float = Field(6.0, gt=0.0, le=50.0)
    serial: str | None = None
    background: Path | None = None
    voxel_size_m: float = Field(0.05, gt=0.0, le=0.5)
    self_margin_m: float = Field(0.05, ge=0.0, le=0.5)
    range_m: float = Field(2.5, gt=0.0, le=20.0)
    min_points_per_voxel: int = Field(2, ge=1, le=1000)
    placed_mask: PlacedObjectMaskSettings = PlacedObjectMaskSettings()

    @model_validator(mode="after")
    def _source_fields(self) -> "DepthInput":
        if self.source == "realsense":
            if self.path is not None:
                raise ValueError("path applies to the file sources only (ply_sequence, depth_images)")
            if self.pose is None:
                raise ValueError("source realsense needs pose (the camera's optical frame in the cell)")
            if self.intrinsics is not None:
                raise ValueError("source realsense reads its intrinsics from the device: remove intrinsics")
        else:
            if self.path is None:
                raise ValueError(f"source {self.source} needs path (a directory of frames)")
            if self.serial is not None:
                raise ValueError("serial applies to source realsense only")
        if self.source == "depth_images" and (self.intrinsics is None or self.pose is None):
            raise ValueError("source depth_images needs intrinsics and pose")
        if self.source == "ply_sequence" and self.intrinsics is not None:
            raise ValueError("source ply_sequence takes no intrinsics (point clouds are 3D)")
        return self


class PerceptionParameters(_Model):
    """Worker tracking settings.

    Attributes:
        model_complexity: MediaPipe Pose landmark model: 0 lite, 1 full, 2 heavy (lite and
            heavy come from npm @mediapipe/pose, installed by the set-up).
        cell_bounds: box in the `cell` frame, metres, where a person who loses every camera
            view is reported lost (a latched fault for the safety monitor) rather than gone;
            people leave the cell across its edges. None: the bounding box of the cell's
            collaborative zones (`CellDescription.lost_track_bounds`).
        depth: the cell's depth camera (`DepthInput`); None: the skeleton channel alone.
        floor_z_m: height of the floor in the `cell` frame (z up), metres: a person seen by
            one camera only is placed on it (docs/perception.md, "One view: the floor").
    """

    model_complexity: Literal[0, 1, 2] = 1
    cell_bounds: ZoneBox | None = None
    floor_z_m: float = Field(0.0, ge=-10.0, le=10.0)
    depth: DepthInput | None = None


class PickAndPlace(_Model):
    """The demo program: pick a box at `pick` and place it at `place` (cell frame, m)."""

    pick: tuple[float, float, float]
    place: tuple[float, float, float]
    approach_height_m: float = Field(0.2, gt=0.0, le=1.0)
    box_size_m: float = Field(0.05, gt=0.0, le=0.2)


ZONE_KINDS = ("warning", "collaborative", "restricted", "robot_keep_out")


class Zone(_Model):
    """A fail-safe zone of the cell: a prism (polygon footprint + height range) or a box.

    Kinds:
        warning: a person inside is reported to the HMIs; the robot's speed is unaffected.
        collaborative: the collaborative workspace (ISO 10218-2 clause 3.2) where speed and
            separation monitoring applies; a track lost inside it is a fault.
        restricted: a person inside stops the robot (protective stop until the zone is clear
            for `safety.resume_delay_s`).
        robot_keep_out: no robot link may enter; commands whose path would are refused by the
            gate, and a robot found inside is a latched fault stop.

    Attributes:
        name: unique zone name.
        kind: one of the kinds above.
        footprint: prism footprint, >= 3 (x, y) vertices in metres, `cell` frame, a simple polygon.
        z_range_m: prism height range (bottom, top), metres, `cell` frame.
        box: an axis-aligned box instead of a prism.
    """

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["warning", "collaborative", "restricted", "robot_keep_out"]
    footprint: list[tuple[float, float]] | None = None
    z_range_m: tuple[float, float] = (0.0, 2.5)
    box: ZoneBox | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> "Zone":
        if (self.footprint is None) == (self.box is None):
            raise ValueError("give exactly one of footprint (a prism) or box")
        if self.footprint is not None:
            if len(self.footprint) < 3:
                raise ValueError(f"footprint needs at least 3 vertices, got {len(self.footprint)}")
            import shapely

            polygon = shapely.Polygon(self.footprint)
            if not polygon.is_valid or polygon.area <= 0.0:
                raise ValueError(f"footprint is not a simple polygon: {shapely.is_valid_reason(polygon)}")
            if not self.z_range_m[0] < self.z_range_m[1]:
                raise ValueError(f"z_range_m {list(self.z_range_m)}: bottom must be below top")
        return self


class SafetyOutputConfig(_Model):
    """The line from the monitor to the cell's certified safety chain (`safety.output`).

    Kinds:
        sim: in-process; the `sim` robot reads it as its safeguard-stop input. With a `dds` or
            `ros2` robot it drives nothing: the robot stops only through its commands, and the
            cell has no certified final stop wired to xrcell.
        modbus: Modbus TCP to a safety PLC (`safety.output.modbus`): a "run permitted" coil and
            a heartbeat counter in a holding register that the PLC's watchdog monitors.

    Attributes:
        kind: one of the kinds above.
        host, port, device_id: the PLC's address, TCP port and Modbus unit id (modbus only).
        run_permitted_coil, heartbeat_register: 0-based data addresses (modbus only).
        period_s: write period and heartbeat step, s (modbus only).
        input_timeout_s: no verdict from the monitor for longer: send stop, freeze the
            heartbeat, s. Default (None): `safety.monitor_timeout_s`.
        health_timeout_s: no successful write for longer: unhealthy, a fault stop, s
            (modbus only; None: 3 x period_s).
    """

    kind: Literal["sim", "modbus"] = "sim"
    host: str | None = None
    port: int = Field(502, ge=1, le=65535)
    device_id: int = Field(1, ge=0, le=247)
    run_permitted_coil: int = Field(0, ge=0, le=65535)
    heartbeat_register: int = Field(0, ge=0, le=65535)
    period_s: float = Field(0.05, gt=0.0, le=1.0)
    input_timeout_s: float | None = Field(None, gt=0.0, le=10.0)
    health_timeout_s: float | None = Field(None, gt=0.0, le=10.0)

    @model_validator(mode="after")
    def _modbus_needs_host(self) -> "SafetyOutputConfig":
        if self.kind == "modbus" and not self.host:
            raise ValueError("kind modbus needs host (the safety PLC's address)")
        if self.kind == "sim" and self.host is not None:
            raise ValueError("host applies to kind modbus only")
        return self


class RecordingsConfig(_Model):
    """How long the XR session recordings of this cell's server are kept
    (`xr_server.recording.RetentionPolicy`): pruned at start and every `prune_period_s`, oldest
    first, never one in progress.

    Attributes:
        retention_days: delete a recording this many days after it ended; null keeps them.
        max_total_mb: delete the oldest while all together hold more, MB (10^6 bytes); null: no
            bound.
        prune_period_s: how often the server prunes, s.
    """

    retention_days: float | None = Field(30.0, gt=0)
    max_total_mb: float | None = Field(20_000.0, gt=0)
    prune_period_s: float = Field(3600.0, gt=0)


class VideoConfig(_Model):
    """The video the cell's server sends over WebRTC (the worker's video relayed to experts, the
    composited view back to glasses; `xr_server.rtc_adapt`).

    Attributes:
        max_bitrate_kbps: cap of each video sent, kbit/s (250 to 20000; the link's estimate
            still lowers it); null: the estimate alone.
    """

    max_bitrate_kbps: int | None = Field(None, ge=250, le=20_000)


class CellDescription(_Model):
    """One robot cell."""

    name: str = Field(..., min_length=1)
    robot: Robot = Robot()
    cameras: list[AnyCamera] = Field(default_factory=list)
    safety: SafetyParameters = SafetyParameters()
    perception: PerceptionParameters = PerceptionParameters()
    program: PickAndPlace | None = None
    zones: list[Zone] = Field(default_factory=list)
    safety_output: SafetyOutputConfig = SafetyOutputConfig()
    recordings: RecordingsConfig = RecordingsConfig()
    video: VideoConfig = VideoConfig()
    markers: list[FiducialMarker] = Field(default_factory=list)
    source_path: Path | None = None

    @field_validator("zones")
    @classmethod
    def _unique_zone_names(cls, zones: list[Zone]) -> list[Zone]:
        _require_unique([z.name for z in zones], "zone names")
        return zones

    def lost_track_bounds(self) -> "ZoneBox | None":
        """Where a track that ends is a lost person (a fault), not one who left the cell.

        `perception.cell_bounds` when given; else the bounding box of the collaborative zones
        (`Zone` kinds: a track lost inside the collaborative workspace is a fault, issue 3
        "Fail-safe behaviour"); else None: the cell reports no lost tracks, and the docs and
        `xrcell serve` say so.
        """
        if self.perception.cell_bounds is not None:
            return self.perception.cell_bounds
        corners = [_zone_corners(z) for z in self.zones if z.kind == "collaborative"]
        if not corners:
            return None
        lo = tuple(min(c[0][i] for c in corners) for i in range(3))
        hi = tuple(max(c[1][i] for c in corners) for i in range(3))
        return ZoneBox(min=lo, max=hi)

    @field_validator("markers")
    @classmethod
    def _unique_markers(cls, markers: list[FiducialMarker]) -> list[FiducialMarker]:
        _require_unique([f"{m.dictionary} id {m.id}" for m in markers], "markers")
        return markers

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[Camera | HmiCamera]) -> list[Camera | HmiCamera]:
        _require_unique([c.id for c in cameras], "camera ids")
        return cameras

    def fixed_cameras(self) -> list[Camera]:
        """The cell's fixed cameras (video source and calibration), in file order."""
        return [c for c in self.cameras if isinstance(c, Camera)]

    def hmi_cameras(self) -> list[HmiCamera]:
        """The HMIs used as cameras, in file order."""
        return [c for c in self.cameras if isinstance(c, HmiCamera)]

    def input_periods_s(self) -> dict[str, float]:
        """The nominal period of each watched input, seconds (`SafetyParameters.stale_periods`)."""
        periods = dict(DEFAULT_INPUT_PERIODS_S)
        fixed = self.fixed_cameras()  # HMI cameras are optional inputs: no watchdog
        if fixed:
            periods["camera"] = max(1.0 / c.frame_rate_hz for c in fixed)
            periods["tracker"] = min(1.0 / c.process_rate_hz for c in fixed)
        periods["robot"] = 1.0 / self.robot.state_rate_hz
        periods["monitor"] = 1.0 / self.safety.rate_hz
        return periods

    @model_validator(mode="after")
    def _watchdogs_follow_the_inputs(self) -> "CellDescription":
        periods = self.input_periods_s()
        for name, value in self.safety.explicit_timeouts().items():
            if value <= periods[name]:
                raise ValueError(f"safety.{name}_timeout_s: {value:g} s is not longer than one period of its "
                                 f"input ({periods[name] * 1e3:.1f} ms): give at least "
                                 f"{self.safety.stale_periods} periods, or leave it out to use "
                                 f"safety.stale_periods")
        object.__setattr__(self, "safety", self.safety.with_input_periods(
            camera_period_s=periods["camera"], tracker_period_s=periods["tracker"],
            robot_period_s=periods["robot"]))
        return self


def _zone_corners(zone: Zone) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(min, max) corners of the axis-aligned box around `zone`, metres, `cell` frame."""
    if zone.box is not None:
        return zone.box.min, zone.box.max
    xs = [v[0] for v in zone.footprint or ()]
    ys = [v[1] for v in zone.footprint or ()]
    return (min(xs), min(ys), zone.z_range_m[0]), (max(xs), max(ys), zone.z_range_m[1])


def _require_unique(values: list[str], what: str) -> None:
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(dup)}")


def _field_path(loc: tuple) -> str:
    out = ""
    for k, part in enumerate(loc):
        if k and isinstance(loc[k - 1], int) and part in _CAMERA_TAGS:
            continue        # the `AnyCamera` member pydantic tried: the kind, not a field
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve(cell: CellDescription, base: Path) -> CellDescription:
    cams = [
        c.model_copy(
            update={
                "video": str((base / c.video).resolve()) if c.source_kind == "file" else c.video,
                "calibration": c.calibration.model_copy(
                    update={"file": (base / c.calibration.file).resolve()}
                ),
            }
        )
        if isinstance(c, Camera) else c
        for c in cell.cameras
    ]
    depth = cell.perception.depth
    if depth is not None:
        depth = depth.model_copy(update={
            "path": None if depth.path is None else (base / depth.path).resolve(),
            "background": None if depth.background is None else (base / depth.background).resolve(),
        })
    perception = cell.perception.model_copy(update={"depth": depth})
    return cell.model_copy(update={"cameras": cams, "perception": perception})


def parse_cell(data: object, *, source: str = "<cell>", base_dir: Path | None = None) -> CellDescription:
    """Validate a cell description given as parsed YAML.

    Args:
        data: the mapping read from YAML.
        source: the file name used in error messages.
        base_dir: folder that relative paths are resolved against (no resolution if None).

    Raises:
        CellDescriptionError: naming the first invalid field, e.g.
            ``demo.yaml: safety.human_speed_mps: Input should be greater than 0``.
    """
    if not isinstance(data, dict):
        raise CellDescriptionError(f"{source}: the cell description must be a mapping, got {type(data).__name__}")
    try:
        cell = CellDescription.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        where = _field_path(err["loc"])
        # a whole-model check names its field in the message itself
        raise CellDescriptionError(f"{source}: {where + ': ' if where else ''}{err['msg']}{more}") from None
    return _resolve(cell, base_dir) if base_dir is not None else cell


def load_cell(path: str | Path) -> CellDescription:
    """Read and validate a cell description file.

    Raises:
        CellDescriptionError: the file is missing, is not YAML, or a field is invalid
            (the message names the file and the field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CellDescriptionError(f"{path}: cannot read cell description: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CellDescriptionError(f"{path}: not valid YAML: {exc}") from None
    cell = parse_cell(data, source=path.name, base_dir=path.parent.resolve())
    return cell.model_copy(update={"source_path": path.resolve()})
