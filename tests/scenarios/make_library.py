"""Writes the scenario library `tests/scenarios/library/*.yaml` (run it after changing the recipe).

    .venv/bin/python tests/scenarios/make_library.py

The robot of `tests/scenarios/cell.yaml` stands at (0.4, -1.0) facing +y; its pick-and-place
line runs along x at y = -0.5. Directions are angles about the middle of its working area
C = (0.4, -0.7), 0 deg = +x. Walkers start 3 m from C and stop `stop_m` from C (outside the
Panda's 0.855 m reach unless the scenario says otherwise). Counter-examples found by the
falsification search (`bench/falsify.py`) are added by hand under `library/found-*.yaml`
and never regenerated away.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "library"
C = (0.4, -0.7)


def point(angle_deg: float, dist_m: float) -> tuple[float, float]:
    a = math.radians(angle_deg)
    return (round(C[0] + dist_m * math.cos(a), 3), round(C[1] + dist_m * math.sin(a), 3))


def walk(angle_deg: float, speed: float, *, start_s: float = 1.0, start_m: float = 3.0, stop_m: float = 1.2,
         pid: str = "p1", back_after_s: float | None = 3.0) -> dict:
    a = point(angle_deg, start_m)
    b = point(angle_deg, stop_m)
    t1 = round(start_s + (start_m - stop_m) / speed, 3)
    wps = [[start_s, *a], [t1, *b]]
    if back_after_s is not None:
        wps.append([round(t1 + back_after_s, 3), *b])
        wps.append([round(t1 + back_after_s + (start_m - stop_m) / speed, 3), *a])
    return {"id": pid, "waypoints": wps, "face": list(C)}


def scenario(name: str, description: str, people: list[dict], *, duration_s: float = 12.0, **extra) -> dict:
    return {"name": name, "description": description, "cell": "../cell.yaml", "duration_s": duration_s,
            "people": people, **extra}


def library() -> list[dict]:
    out = []
    # Walk-ins: 8 directions (the robot's back, 270 deg, is the cabinet: walkers come from the
    # other 7 plus a diagonal behind) x 4 speeds from a slow walk to a fast one (ISO 13855's 2.0 m/s).
    for angle in (0, 45, 90, 135, 180, 225, 315, 300):
        for speed in (0.5, 1.0, 1.6, 2.0):
            out.append(scenario(f"walk-in-{angle:03d}deg-{speed:.1f}mps",
                                f"A worker walks towards the robot from {angle} deg at {speed} m/s, stops 1.2 m from "
                                f"the working area for 3 s and walks back.",
                                [walk(angle, speed)], seed=angle + int(speed * 10)))
    # Reach-ins: the worker stands 1.0 m away and reaches an arm into the working area.
    for angle, target, arm in ((90, (0.4, -0.5, 0.3), "right"), (90, (0.7, -0.5, 0.1), "left"),
                               (135, (0.1, -0.5, 0.2), "right"), (45, (0.7, -0.5, 0.2), "left"),
                               (180, (0.1, -0.6, 0.4), "right"), (0, (0.7, -0.7, 0.4), "left")):
        w = walk(angle, 1.0, stop_m=1.0, back_after_s=None)
        arrive = w["waypoints"][-1][0]
        w["reaches"] = [{"start_s": round(arrive + 0.5, 3), "duration_s": 0.3, "hold_s": 1.5, "arm": arm,
                         "target": list(target)}]
        out.append(scenario(f"reach-in-{angle:03d}deg-{arm}",
                            f"A worker walks up from {angle} deg, stands 1.0 m away and reaches the {arm} arm "
                            f"towards {list(target)} in 0.3 s.", [w], seed=angle))
    # Two people.
    for a1, a2, v in ((90, 180, 1.6), (45, 135, 1.0), (0, 90, 2.0), (135, 225, 1.6)):
        out.append(scenario(f"two-people-{a1:03d}-{a2:03d}-{v:.1f}mps",
                            f"Two workers approach from {a1} and {a2} deg at {v} m/s, the second 1.5 s later.",
                            [walk(a1, v, pid="p1"), walk(a2, v, pid="p2", start_s=2.5)], seed=a1 + a2))
    # Standing still near and inside the working area.
    out.append(scenario("standing-near-90deg", "A worker stands 1.3 m from the working area the whole run; "
                        "the robot works on, slowed where its path comes near.",
                        [{"id": "p1", "waypoints": [[0.0, *point(90, 1.3)]], "face": list(C)}]))
    out.append(scenario("standing-within-reach-90deg",
                        "A worker stands 1.0 m from the working area the whole run: with the hands and arms "
                        "approaching at ISO 13855's 2.0 m/s, S_p at the minimum useful speed exceeds the "
                        "separation, so the robot holds and the gate starts no motion towards them.",
                        [{"id": "p1", "waypoints": [[0.0, *point(90, 1.0)]], "face": list(C)}],
                        expect={"robot_moved": False}))
    out.append(scenario("standing-close-135deg", "A worker stands 0.8 m from the working area the whole run.",
                        [{"id": "p1", "waypoints": [[0.0, *point(135, 0.8)]], "face": list(C)}],
                        expect={"robot_moved": False}))
    # Robot at other speeds.
    for speed in (0.5, 1.5):
        for angle in (90, 180):
            out.append(scenario(f"robot-{speed:.1f}mps-walk-in-{angle:03d}deg",
                                f"The robot runs at {speed} m/s TCP while a worker walks in from {angle} deg at 1.6 m/s.",
                                [walk(angle, 1.6)], robot_speed_mps=speed))
    # Robot carrying a part (a 0.3 m bar across the gripper, `cell_payload.yaml`).
    for angle in (90, 180):
        out.append(scenario(f"payload-walk-in-{angle:03d}deg-1.6mps",
                            f"The robot carries a 0.3 m bar (2 kg) while a worker walks in from {angle} deg at 1.6 m/s.",
                            [walk(angle, 1.6)], cell="../cell_payload.yaml"))
    # Pick (close on the part: it is carried), carry, place (open: it is not) next to a worker
    # standing by the place position, 1.5 m from the working area.
    out.append(scenario("payload-pick-carry-place-standing-by-place",
                        "The robot picks the 0.3 m bar (2 kg), carries it and places it while a "
                        "worker stands 1.5 m from the working area by the place position; the bar "
                        "counts only while the gripper holds it.",
                        [{"id": "p1", "waypoints": [[0.0, *point(150, 1.5)]], "face": list(C)}],
                        cell="../cell_payload.yaml", duration_s=14.0,
                        expect={"payload_placed": True}))
    # Fast tracker, slow tracker, noisy tracker.
    for label, tracker in (("tracker-30hz", {"rate_hz": 30.0, "latency_s": 0.05}),
                           ("tracker-8hz-slow", {"rate_hz": 8.0, "latency_s": 0.15}),
                           ("tracker-noisy", {"noise_m": 0.04, "sigma_m": 0.08})):
        out.append(scenario(f"{label}-walk-in-090deg", f"A walk-in at 1.6 m/s seen by a tracker with {tracker}.",
                            [walk(90, 1.6)], tracker=tracker))
    # Faults: each must end in a fault stop within its watchdog bound (timeout + one tracker
    # period + two monitor cycles).
    for at in (3.0, 5.5, 7.0):
        out.append(scenario(f"camera-freeze-{at:.1f}s", f"Camera cam2 stops delivering frames at {at} s.",
                            [walk(90, 1.0)], faults=[{"kind": "camera_freeze", "at_s": at, "camera": "cam2"}],
                            expect={"fault_stop_within_s": 0.3 + 1 / 30 + 0.02}))
        out.append(scenario(f"tracker-dropout-{at:.1f}s", f"The tracker publishes nothing for 1 s from {at} s.",
                            [walk(135, 1.6)], faults=[{"kind": "tracker_freeze", "at_s": at, "duration_s": 1.0}],
                            expect={"fault_stop_within_s": 0.3 + 0.08 + 1 / 15 + 0.02}))
    for at in (2.5, 4.0):
        out.append(scenario(f"track-lost-{at:.1f}s", f"The tracker loses the worker inside the cell at {at} s.",
                            [walk(45, 1.0)], faults=[{"kind": "track_lost", "at_s": at}],
                            expect={"fault_stop_within_s": 0.08 + 1 / 15 + 0.02}))
    # Two diverse channels: a simulated overhead depth camera (the defaults of `depth_camera`)
    # feeds the occupancy channel, which the monitor cross-checks against the skeleton channel.
    depth = {"depth_camera": {}}
    out.append(scenario("depth-walk-in-090deg-1.6mps", "A walk-in at 1.6 m/s seen by both channels: they agree, "
                        "the robot slows as without depth.", [walk(90, 1.6)], seed=916, **depth))
    reach = walk(90, 1.0, stop_m=1.0, back_after_s=None)
    reach["reaches"] = [{"start_s": round(reach["waypoints"][-1][0] + 0.5, 3), "duration_s": 0.3, "hold_s": 1.5,
                         "arm": "right", "target": [0.4, -0.5, 0.3]}]
    out.append(scenario("depth-reach-in-090deg-right", "A reach-in seen by both channels.", [reach], seed=90,
                        **depth))
    out.append(scenario("depth-two-people-045-135-1.0mps", "Two workers seen by both channels.",
                        [walk(45, 1.0, pid="p1"), walk(135, 1.0, pid="p2", start_s=2.5)], seed=180, **depth))
    hidden = {**walk(90, 1.6), "visible_to_pose": False}
    out.append(scenario("depth-invisible-walk-in-090deg-1.6mps",
                        "The pose estimator misses a worker who walks in at 1.6 m/s: only the occupancy channel "
                        "sees them; it slows the robot, and the channels' disagreement latches a fault stop.",
                        [hidden], seed=161, **depth))
    rush = {"id": "p1", "waypoints": [[1.0, *point(45, 3.0)], [2.25, *point(45, 0.5)]], "face": list(C),
            "visible_to_pose": False}
    out.append(scenario("depth-invisible-walk-up-045deg-2.0mps",
                        "A worker the pose estimator misses walks at 2.0 m/s right into the working area: the "
                        "occupancy channel alone must stop the robot before contact.", [rush], seed=452, **depth))
    # A part placed next to the robot, seen by the depth camera: the robot side reports where it
    # released it (`RobotState.placed_objects`) and the occupancy channel masks it, so nobody in
    # the cell means no stop, before and after the place.
    out.append(scenario("depth-place-post-empty-cell",
                        "The robot picks a 0.26 m post and places it upright next to itself "
                        "with nobody in the cell; the placed post is masked, never a false stop.",
                        [],
                        cell="../cell_payload_post.yaml", duration_s=12.0, seed=77,
                        expect={"payload_placed": True, "max_stops": 0}, **depth))
    out.append(scenario("depth-freeze-3.0s", "The depth camera stops delivering frames at 3.0 s.", [walk(90, 1.0)],
                        faults=[{"kind": "depth_freeze", "at_s": 3.0}],
                        expect={"fault_stop_within_s": 0.5 + 1 / 30 + 0.02}, **depth))
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.yaml"):
        if not old.name.startswith("found-"):
            old.unlink()
    items = library()
    for item in items:
        (OUT / f"{item['name']}.yaml").write_text(yaml.safe_dump(item, sort_keys=False, width=120))
    print(f"wrote {len(items)} scenarios to {OUT}")


if __name__ == "__main__":
    main()
