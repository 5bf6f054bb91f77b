"""Builds the `twin_state` message (schema: `xr_server/twin_schema.json`, version 1).

Positions are metres in the `cell` frame (z up), rounded to 0.1 mm; angles are
radians rounded to 1 mrad; `t` is UNIX seconds.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from robot_bridge.types import RobotState
from safety.decision import SafetyState
from safety.errors import OccupancyError
from safety.gate import PlannedPath
from safety.occupancy import OccupancyMeasurement
from safety.perception.types import PerceptionSnapshot
from safety.placed_mask import validate_placed_objects
from safety.zones import ZoneSet

if TYPE_CHECKING:
    from xr_server.program import ProgramStatus

TWIN_SCHEMA_VERSION = 1
#: Any centre is in bounds for the twin: the occupancy channel checks the cell's bounds.
_ANYWHERE = (np.full(3, -np.inf), np.full(3, np.inf))


def _r(values: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _robot(state: RobotState | None) -> dict | None:
    if state is None:
        return None
    return {
        "joint_names": list(state.joint_names),
        "q": _r(state.position, 3),
        "tcp": _r(state.tcp_position),
        "tcp_speed_mps": round(float(np.linalg.norm(state.tcp_velocity_mps)), 3),
        "speed_scale": round(state.speed_scale, 3),
        "mode": state.mode.value,
        "links": [{"name": n, "a": _r(seg[0]), "b": _r(seg[1]), "r": round(float(r), 4)}
                  for n, seg, r in zip(state.link_names, state.link_segments, state.link_radii_m)],
        "payload_carried": bool(state.payload_carried),
        "gripper_opening_m": None if state.gripper_opening_m is None
        else round(float(state.gripper_opening_m), 4),
        "placed_objects": _placed_objects(state.placed_objects),
    }


def _placed_objects(objects: object) -> list[dict] | None:
    """The robot's placed objects (moveit_msgs/CollisionObject semantics, `cell` frame, z up),
    or None when the backend does not know them or its list is malformed (validated as the
    occupancy channel validates it, `validate_placed_objects`; the channel's refusal says why)."""
    if objects is None:
        return None
    try:
        valid = validate_placed_objects(objects, _ANYWHERE)
    except OccupancyError:
        return None
    return [{"id": o.id, "primitive": o.primitive, "dimensions": _r(o.dimensions),
             "position": _r(o.position), "orientation": _r(o.orientation, 6)} for o in valid]


def _safety(state: SafetyState | None) -> dict | None:
    if state is None:
        return None
    closest = state.closest
    return {
        "mode": state.mode.value,
        "speed_scale": round(state.speed_scale, 3),
        "separation_m": None if state.separation_m is None else round(state.separation_m, 4),
        "s_p_m": None if state.s_p is None else round(state.s_p.total_m, 4),
        "terms": None if state.s_p is None else {k: round(v, 4) for k, v in state.s_p.as_dict().items()},
        "closest": None if closest is None else {
            "person": closest.person, "body_part": closest.body_part, "link": closest.link,
            "human_point": _r(closest.human_point), "robot_point": _r(closest.robot_point),
            "v_r_mps": round(closest.v_r_mps, 3), "v_r_directed": closest.v_r_directed,
        },
        "reason": state.reason,
        "faults": list(state.faults),
        "zone_violations": [{"zone": v.zone, "kind": v.kind, "subject": v.subject, "part": v.part}
                            for v in state.zone_violations],
        "channels": list(state.channels),
        "occupancy_separation_m": None if state.occupancy_separation_m is None
        else round(state.occupancy_separation_m, 4),
    }


def _people(snapshot: PerceptionSnapshot | None) -> list[dict]:
    if snapshot is None:
        return []
    people = []
    for track in snapshot.tracks:
        kps = []
        for p, c in zip(track.keypoints_cell, track.confidence):
            kps.append(None if not np.isfinite(p).all() or c <= 0 else _r(np.append(p, c)))
        people.append({"id": track.track_id, "keypoints": kps, "velocity_mps": _r(track.velocity_mps, 3),
                       "placement": track.placement, "sigma_m": round(float(track.sigma_m), 4)})
    return people


def _cameras(snapshot: PerceptionSnapshot | None) -> list[dict]:
    if snapshot is None:
        return []
    return [{"id": c.camera_id, "frames": c.frames, "frames_processed": c.frames_processed,
             "frames_with_person": c.frames_with_person} for c in snapshot.cameras]


def _plan(plan: PlannedPath | None, robot: RobotState | None) -> dict | None:
    """The forwarded path while the robot executes it (its goal id is the robot's, not done)."""
    if plan is None or robot is None or robot.goal_id != plan.goal_id or robot.goal_done:
        return None
    return {"goal_id": plan.goal_id, "t": _r(plan.times_s, 3), "points": _r(plan.tool_points)}


def _zones(zones: ZoneSet | None) -> list[dict]:
    if zones is None:
        return []
    return [{"name": zone.name, "kind": zone.kind, "footprint": _r(footprint), "z_range_m": _r(z_range)}
            for zone, footprint, z_range in zones.prisms()]


def _occupancy(m: OccupancyMeasurement) -> dict:
    sep = m.separation_m   # strict JSON: a non-finite figure is shown as unknown
    return {"separation_m": None if sep is None or not math.isfinite(sep) else round(float(sep), 4),
            "voxels": int(m.voxel_count), "placed_masked": int(m.placed_objects),
            "placed_rejected": m.placed_rejected}


def build_twin_state(cell: str, robot: RobotState | None, safety: SafetyState | None,
                     snapshot: PerceptionSnapshot | None, plan: PlannedPath | None = None,
                     zones: ZoneSet | None = None, program: ProgramStatus | None = None,
                     occupancy: OccupancyMeasurement | None = None) -> dict:
    """One `twin_state` message from the newest robot, safety and tracking records, the path
    the gate forwarded last (`CommandGate.planned_path`, shown while the robot executes it), the
    zones in force (`CellZones.current()`), the program's state (`ProgramRunner.status()`;
    None: no program, the field is left out) and the occupancy channel's newest measurement
    (`OccupancyInput.latest()`; None: no depth channel or no frame yet, the field is left out)."""
    state = {
        "v": TWIN_SCHEMA_VERSION,
        "t": round(time.time(), 3),
        "cell": cell,
        "robot": _robot(robot),
        "safety": _safety(safety),
        "people": _people(snapshot),
        "cameras": _cameras(snapshot),
        "plan": _plan(plan, robot),
        "zones": _zones(zones),
    }
    if program is not None:
        state["program"] = {"state": program.state, "step": program.step, "steps": program.steps,
                            "goal_id": program.goal_id, "reason": program.reason}
    if occupancy is not None:
        state["occupancy"] = _occupancy(occupancy)
    return state
