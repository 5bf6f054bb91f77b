"""`xrcell occupancy learn`: the background learned over a run of the program removes the false
occupancy under the arm that one empty-cell capture leaves."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from content.cell import load_cell
from content.errors import CellDescriptionError
from robot_bridge.sim import PandaLinkKinematics
from safety.errors import OccupancyError
from safety.occupancy import BackgroundLearner, OccupancyChannel
from safety.perception.depth import DepthCamera, points_from_depth
from safety.perception.depth_input import load_background
from xr_server.cli import main
from xr_server.errors import XrServerError
from xr_server.occupancy_learn import depth_camera_of, learn_in_simulation, program_samples
from xr_server.scenario_depth import SimulatedDepthCamera

PROGRAM = {"pick": [0.5, 0.35, 0.0], "place": [0.55, -0.3, 0.0], "approach_height_m": 0.2}


def write_cell(tmp_path: Path, depth: dict | None, program: dict | None = PROGRAM) -> Path:
    data: dict = {"name": "learn-cell"}
    if depth is not None:
        data["perception"] = {"depth": depth}
    if program is not None:
        data["program"] = program
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


#: A depth camera on a post beside the cell, 1.3 m up, looking down at the robot at an angle: the
#: arm's shadow on the floor is large (an overhead camera sees little floor behind the arm).
LOOK = DepthCamera.look_at([1.6, 0.3, 1.3], [0.3, 0.0, 0.2], 90.0, 160, 120)
F = float(LOOK.intrinsic[0, 0])
DEPTH = {"source": "depth_images", "path": "frames", "fps": 10,
         "intrinsics": {"width_px": 160, "height_px": 120, "fx": F, "fy": F, "cx": 79.5, "cy": 59.5},
         "pose": {"position": [1.6, 0.3, 1.3],
                  "quaternion": Rotation.from_matrix(LOOK.cell_from_camera[:3, :3]).as_quat().tolist()}}


def test_learning_over_the_run_removes_the_false_occupancy_under_the_arm(tmp_path):
    cell = load_cell(write_cell(tmp_path, DEPTH))
    learned, figures = learn_in_simulation(cell, cell.program, rate_hz=10.0)
    assert figures["frames"] > 30 and figures["voxels"] == len(learned)
    # The same run seen at other instants (20 Hz, the frames between the learned ones), with
    # another noise seed: what the live channel would measure against each background.
    camera = depth_camera_of(cell)
    sim = SimulatedDepthCamera(camera, 0.002, np.random.default_rng(7))
    kin = PandaLinkKinematics(cell.robot)
    try:
        segments = kin.link_segments(program_samples(cell, cell.program, 20.0)[1::2])
        radii, names = kin.link_radii_m, kin.link_names
    finally:
        kin.close()
    frames = [points_from_depth(sim.render([(seg, radii)]), camera) for seg in segments]
    single = BackgroundLearner(min_frames=1)                 # one capture: the robot at its start pose
    single.add(frames[0], segments[0], radii)
    once, over_run = [], []
    for points, seg in zip(frames, segments):
        once.append(OccupancyChannel(background=single.model()).measure(points, seg, radii, names, 0).voxel_count)
        over_run.append(OccupancyChannel(background=learned).measure(points, seg, radii, names, 0).voxel_count)
    # One capture: the floor the arm hid shows up next to the robot once the arm moves on.
    assert once[0] == 0 and max(once) >= 15 and sum(v > 0 for v in once) >= len(once) // 3, once
    # Learned over the run: nothing is left at any instant.
    assert max(over_run) == 0, over_run


def test_the_learner_counts_frames_and_self_filters_the_robot():
    learner = BackgroundLearner(voxel_size_m=0.1, self_margin_m=0.05, min_frames=2, dilation_voxels=0)
    link = (np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]), np.array([0.1]))
    floor = np.array([[1.05, 0.05, 0.05], [1.06, 0.05, 0.05], [2.05, 0.05, 0.05]])
    robot_surface = np.array([[0.12, 0.0, 0.5]])
    assert learner.add(np.vstack([floor, robot_surface]), *link) == 2
    assert learner.add(floor[:2], *link) == 1
    model = learner.model()
    assert learner.frames == 2 and len(model) == 1                 # only the voxel seen in both frames
    with pytest.raises(OccupancyError, match=r"background learning: no frames added"):
        BackgroundLearner().model()


def test_the_cli_writes_the_background_the_cell_uses(tmp_path, capsys):
    out = tmp_path / "background.npz"
    assert main(["occupancy", "learn", str(write_cell(tmp_path, DEPTH)), "--out", str(out), "--rate", "5"]) == 0
    err = capsys.readouterr().err
    assert "learning the background: frame" in err and "(100 %)" in err and f"written to {out}" in err
    model = load_background(out, 0.05)
    assert len(model) > 1000
    # The learned file is what the cell's depth block names; the composed cell loads it.
    cell = load_cell(write_cell(tmp_path, {**DEPTH, "background": "background.npz"}))
    assert cell.perception.depth.background == out


@pytest.mark.parametrize("depth, program, argv, message", [
    (None, PROGRAM, [], r"cell 'learn-cell': no perception.depth block"),
    ({"source": "ply_sequence", "path": "clouds"}, PROGRAM, [],
     r"perception.depth: learning in simulation renders the depth camera from its intrinsics and pose; "
     r"source ply_sequence gives no intrinsics"),
    (DEPTH, None, [], r"cell 'learn-cell' has no program: give one with --program FILE"),
    (DEPTH, None, ["--program", "nowhere.yaml"], r"nowhere.yaml: cannot read program"),
])
def test_cli_errors_name_the_cause(tmp_path, capsys, depth, program, argv, message):
    argv = [a if not a.endswith(".yaml") else str(tmp_path / a) for a in argv]
    code = main(["occupancy", "learn", str(write_cell(tmp_path, depth, program)), "--out",
                 str(tmp_path / "bg.npz"), *argv])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_program_file_with_a_bad_field_is_named(tmp_path):
    from xr_server.occupancy_learn import load_program

    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"pick": [0.5, 0.3], "place": [0.5, -0.3, 0.0]}))
    with pytest.raises(CellDescriptionError, match=r"p.yaml: pick: Tuple should have at most 3 items|p.yaml: pick"):
        load_program(tmp_path / "p.yaml")


# --- learning from the cell's real depth input (`--from-depth`) -----------------------------------

#: A table beside the robot that the simulation does not know, metres, `cell` frame.
TABLE = ((0.2, -1.0, 0.0), (0.6, -0.65, 0.45))
#: Where a worker stands in the checks: in the camera's view, between the table and the robot.
WORKER_XY = (0.95, -0.15)


class SimClock:
    """The learning loop's clock and sleep on the simulated robot's time: sleeping steps the
    simulation and starts the program's next command through the gate once the previous is done."""

    def __init__(self, backend, gate, commands) -> None:
        self.ns = 10**9
        self.backend, self.gate, self.commands = backend, gate, list(commands)
        self.current = None

    def now(self) -> int:
        return self.ns

    def sleep(self, seconds: float) -> None:
        from robot_bridge.sim.backend import PHYSICS_RATE_HZ
        from safety.gate import Actor

        for _ in range(max(1, round(seconds * PHYSICS_RATE_HZ))):
            state = self.backend.step(1)
            self.ns += round(1e9 / PHYSICS_RATE_HZ)
            if self.commands and (self.current is None or (state.goal_id == self.current and state.goal_done)):
                command = self.commands.pop(0)
                self.current = command.goal_id
                assert self.gate.submit(command, Actor("op", frozenset({"operator"}))).forwarded


class RenderedDepth:
    """A `DepthSource` that renders the simulated depth camera at each read: the floor, the table
    and the robot as the simulation has it at that instant (plus `people`' body capsules)."""

    def __init__(self, camera, backend, people=()) -> None:
        self.camera, self.backend, self.people = camera, backend, list(people)
        self.sim = SimulatedDepthCamera(camera, 0.002, np.random.default_rng(3))
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def read(self):
        robot = self.backend.latest_state()
        return points_from_depth(self.sim.render([(robot.link_segments, robot.link_radii_m), *self.people],
                                                 [TABLE]), self.camera)

    def close(self) -> None:
        self.closed += 1


def worker_capsules():
    from safety.distance import human_capsules
    from tests.safety.fakes import standing_person

    return human_capsules(standing_person(*WORKER_XY), np.ones(33))[:2]


def nobody(clock):
    from safety.perception.types import PerceptionSnapshot

    return lambda: PerceptionSnapshot(clock.now(), (), ())


@pytest.fixture
def running_cell(tmp_path):
    """The learn cell's simulated robot running its program through a gate, on a simulated clock."""
    from robot_bridge.sim import PANDA_JOINT_VELOCITY_LIMITS_RADPS, PyBulletPandaBackend, plan_pick_and_place
    from safety.decision import SafetyMode, SafetyState
    from safety.gate import CommandGate

    cell = load_cell(write_cell(tmp_path, DEPTH))
    holder = {}
    backend = PyBulletPandaBackend(cell.robot, cell.program, realtime=False, clock_ns=lambda: holder["c"].now())
    gate = CommandGate(backend, lambda: SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test"),
                       np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS))
    clock = holder["c"] = SimClock(backend, gate, plan_pick_and_place(cell.robot, cell.program))
    backend.start()
    backend.reset()
    yield cell, backend, clock
    backend.shutdown()


def test_learning_from_depth_while_the_robot_runs_removes_a_table_the_simulation_does_not_know(running_cell):
    from xr_server.occupancy_learn import learn_from_depth

    cell, backend, clock = running_cell
    camera = depth_camera_of(cell)
    source = RenderedDepth(camera, backend)
    seen = []
    model, figures = learn_from_depth(source, backend.latest_state, nobody(clock), duration_s=6.0, fps=10.0,
                                      robot_timeout_s=0.1, tracker_timeout_s=0.3, clock=clock.now,
                                      sleep=clock.sleep, progress=lambda s, n: seen.append(n))
    assert source.opened == source.closed == 1 and seen == list(range(1, figures["frames"] + 1))
    assert figures["frames"] == 60 and figures["robot_travel_m"] > 0.5          # the robot ran
    # Later instants of the same run (the program goes on), with and without a worker.
    in_sim, _ = learn_in_simulation(cell, cell.program, rate_hz=10.0)          # floor and robot only
    channel = OccupancyChannel(background=model)
    blind = OccupancyChannel(background=in_sim)
    worker = RenderedDepth(camera, backend, [worker_capsules()])
    empty_counts, table_counts, worker_counts = [], [], []
    for _ in range(10):
        clock.sleep(0.3)
        robot = backend.latest_state()
        args = (robot.link_segments, robot.link_radii_m, robot.link_names, 0)
        frame = source.read()
        empty_counts.append(channel.measure(frame, *args).voxel_count)
        table_counts.append(blind.measure(frame, *args).voxel_count)
        m = channel.measure(worker.read(), *args)
        worker_counts.append(m.voxel_count)
    assert max(empty_counts) == 0, empty_counts                    # the table is background now
    assert min(table_counts) >= 20, table_counts                   # the simulation's background misses it
    assert min(worker_counts) >= 20, worker_counts                 # a worker is still seen


def test_learning_from_depth_is_refused_when_the_skeleton_channel_sees_a_person(running_cell):
    from safety.perception.types import PerceptionSnapshot
    from tests.safety.fakes import snapshot, standing_person
    from xr_server.occupancy_learn import learn_from_depth

    cell, backend, clock = running_cell
    source = RenderedDepth(depth_camera_of(cell), backend)
    frames = []

    def people():
        if len(frames) < 5:
            return PerceptionSnapshot(clock.now(), (), ())
        return snapshot(clock.now(), [standing_person(*WORKER_XY)])

    with pytest.raises(XrServerError, match=r"learning refused after 0.5 s and 5 frames: the skeleton channel "
                                            r"sees a person \(p1\) in the cell; a person must not become "
                                            r"background"):
        learn_from_depth(source, backend.latest_state, people, duration_s=6.0, fps=10.0, robot_timeout_s=0.1,
                         tracker_timeout_s=0.3, clock=clock.now, sleep=clock.sleep,
                         progress=lambda s, n: frames.append(n))
    assert source.closed == 1
    with pytest.raises(XrServerError, match=r"learning refused after 0.0 s and 0 frames: the skeleton channel "
                                            r"is stale"):
        learn_from_depth(source, backend.latest_state, lambda: PerceptionSnapshot(clock.now() - 10**9, (), ()),
                         duration_s=6.0, fps=10.0, robot_timeout_s=0.1, tracker_timeout_s=0.3, clock=clock.now,
                         sleep=clock.sleep)


def test_learning_from_depth_is_refused_when_the_robot_state_is_stale(running_cell):
    from xr_server.occupancy_learn import learn_from_depth

    cell, backend, clock = running_cell
    source = RenderedDepth(depth_camera_of(cell), backend)
    frozen = backend.latest_state()
    with pytest.raises(XrServerError, match=r"learning refused after 0.1 s and 1 frames: the nearest robot "
                                            r"state 1\d\d ms away at the frame's capture \(bound 0.1 s\): the "
                                            r"robot could not be filtered out"):
        learn_from_depth(source, lambda: frozen, nobody(clock), duration_s=6.0, fps=10.0, robot_timeout_s=0.1,
                         tracker_timeout_s=0.3, clock=clock.now, sleep=clock.sleep)
    with pytest.raises(XrServerError, match=r"learning refused after 0.0 s and 0 frames: no robot state"):
        learn_from_depth(source, lambda: None, nobody(clock), duration_s=6.0, fps=10.0, robot_timeout_s=0.1,
                         tracker_timeout_s=0.3, clock=clock.now, sleep=clock.sleep)


def test_the_cli_learns_from_a_depth_sequence_of_the_cell(tmp_path, capsys):
    """A recorded sequence (the robot holding its ready pose, the table) through the composed cell:
    robot, monitor and all, in real time."""
    from robot_bridge.sim import PANDA_HOME_POSITION

    cell = load_cell(write_cell(tmp_path, DEPTH, program=None))
    camera = depth_camera_of(cell)
    kin = PandaLinkKinematics(cell.robot)
    try:
        home = kin.link_segments(np.array(PANDA_HOME_POSITION)[None])[0]
        radii, names = kin.link_radii_m, kin.link_names
    finally:
        kin.close()
    sim = SimulatedDepthCamera(camera, 0.002, np.random.default_rng(5))
    (tmp_path / "frames").mkdir()
    for i in range(8):
        np.save(tmp_path / "frames" / f"{i:03d}.npy", sim.render([(home, radii)], [TABLE]))
    out = tmp_path / "background.npz"
    assert main(["occupancy", "learn", str(tmp_path / "cell.yaml"), "--from-depth", "--duration-s", "2",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no cameras, so no person check" in err
    assert "learning the background from depth: " in err and f"written to {out}" in err
    model = load_background(out, 0.05)
    channel = OccupancyChannel(background=model)
    assert channel.measure(points_from_depth(sim.render([(home, radii)], [TABLE]), camera), home, radii, names,
                           0).voxel_count == 0
    seen = channel.measure(points_from_depth(sim.render([(home, radii), worker_capsules()], [TABLE]), camera),
                           home, radii, names, 0)
    assert seen.voxel_count >= 20


@pytest.mark.parametrize("depth, argv, message", [
    (DEPTH, ["--program", "p.yaml"], r"--program and --rate apply to learning in simulation, not --from-depth"),
    (DEPTH, ["--rate", "5"], r"--program and --rate apply to learning in simulation, not --from-depth"),
    (None, [], r"cell 'learn-cell': no perception.depth block"),
])
def test_from_depth_cli_errors_name_the_cause(tmp_path, capsys, depth, argv, message):
    code = main(["occupancy", "learn", str(write_cell(tmp_path, depth)), "--from-depth", "--out",
                 str(tmp_path / "bg.npz"), *argv])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
