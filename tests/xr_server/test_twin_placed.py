"""Placed objects and the occupancy channel's refusals in the twin: `build_twin_state` against its
JSON Schema, then the same message over real sockets (Socket.IO on 127.0.0.1, and GET /api/twin)."""

import dataclasses
import json
import math
import threading
import time

import jsonschema
import numpy as np
import pytest
import requests
import socketio

from robot_bridge.placed import PlacedObject
from safety.decision import SafetyMode, SafetyState
from safety.occupancy import OccupancyMeasurement
from tests.safety.fakes import MS, robot_state
from tests.xr_server.live import start_live_server_with_accounts
from xr_server.openapi import TWIN_SCHEMA_PATH
from xr_server.twin import build_twin_state

SCHEMA = json.loads(TWIN_SCHEMA_PATH.read_text())
NOW = 5_000 * MS
POST = PlacedObject("payload/1", "cylinder", (0.34, 0.04), (0.1, -0.5, 0.17),
                    (0.0, 0.0, 0.0, 1.0), placed_ns=NOW - 10 * MS)
CRATE = PlacedObject("crate", "box", (0.3, 0.2, 0.1), (0.6, 0.2, 0.05),
                     (0.0, 0.0, math.sin(0.25), math.cos(0.25)), placed_ns=NOW - 20 * MS)
REFUSED = ("placed_objects[1].position: expected 3 finite values (x, y, z) in metres, "
           "got (0.45, 0.0, nan); nothing masked")


def measurement(masked: int, rejected: str | None) -> OccupancyMeasurement:
    return OccupancyMeasurement(NOW - 30 * MS, NOW - 20 * MS, 0.81234, "link0", np.zeros(3), 4, 0.05,
                                np.zeros((4, 3)), placed_objects=masked, placed_rejected=rejected)


@pytest.fixture
def safety():
    return SafetyState(NOW, SafetyMode.FULL_SPEED, 1.0, None, None, None, "full speed: nobody tracked in the cell")


def test_placed_objects_are_solid_primitives_in_the_cell_frame(safety):
    robot = dataclasses.replace(robot_state(NOW), placed_objects=(POST, CRATE))
    twin = build_twin_state("lab", robot, safety, None)
    jsonschema.validate(twin, SCHEMA)
    post, crate = twin["robot"]["placed_objects"]
    assert post == {"id": "payload/1", "primitive": "cylinder", "dimensions": [0.34, 0.04],
                    "position": [0.1, -0.5, 0.17], "orientation": [0.0, 0.0, 0.0, 1.0]}
    assert crate["primitive"] == "box" and crate["dimensions"] == [0.3, 0.2, 0.1]
    assert crate["orientation"] == [0.0, 0.0, round(math.sin(0.25), 6), round(math.cos(0.25), 6)]
    assert "occupancy" not in twin  # no depth channel: the field is left out


@pytest.mark.parametrize("listed, shown", [
    (None, None),                                                    # the backend does not know
    ((), []),                                                        # nothing placed
    ((POST, dataclasses.replace(CRATE, position=(0.45, 0.0, math.nan))), None),  # malformed
    ((POST, dataclasses.replace(POST)), None),                       # an id repeated
    ((dataclasses.replace(POST, primitive=["cylinder"]),), None),    # unhashable: no TypeError
])
def test_an_unknown_or_malformed_list_is_null_never_bad_json(safety, listed, shown):
    twin = build_twin_state("lab", dataclasses.replace(robot_state(NOW), placed_objects=listed), safety,
                            None)
    jsonschema.validate(twin, SCHEMA)
    assert twin["robot"]["placed_objects"] == shown
    json.dumps(twin, allow_nan=False)  # the message stays strict JSON


def test_the_occupancy_channel_says_what_it_masked_or_why_it_refused(safety):
    twin = build_twin_state("lab", None, safety, None, occupancy=measurement(2, None))
    jsonschema.validate(twin, SCHEMA)
    assert twin["occupancy"] == {"separation_m": 0.8123, "voxels": 4, "placed_masked": 2,
                                 "placed_rejected": None}
    twin = build_twin_state("lab", None, safety, None, occupancy=measurement(0, REFUSED))
    jsonschema.validate(twin, SCHEMA)
    assert twin["occupancy"]["placed_rejected"] == REFUSED and twin["occupancy"]["placed_masked"] == 0
    for sep in (math.nan, math.inf):   # never NaN in the message: unknown
        odd = dataclasses.replace(measurement(1, None), separation_m=sep)
        twin = build_twin_state("lab", None, safety, None, occupancy=odd)
        assert twin["occupancy"]["separation_m"] is None
        json.dumps(twin, allow_nan=False)
    bad = {**twin, "robot": {**build_twin_state("lab", robot_state(NOW), safety, None)["robot"],
                             "placed_objects": [{"id": "p", "primitive": "sphere", "dimensions": [0.1, 0.1],
                                                 "position": [0, 0, 0], "orientation": [0, 0, 0, 1]}]}}
    with pytest.raises(jsonschema.ValidationError, match="'sphere' is not one of"):
        jsonschema.validate(bad, SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match="'placed_masked' is a required property"):
        jsonschema.validate({**twin, "occupancy": {"separation_m": None, "voxels": 0,
                                                   "placed_rejected": None}}, SCHEMA)


def test_the_placed_objects_and_a_refusal_reach_clients_over_real_sockets(tmp_path, safety):
    """A live server on 127.0.0.1: a worker's Socket.IO client (as the HMI and the dashboard
    subscribe) and GET /api/twin get the placed objects and the occupancy channel's refusal."""
    robot = dataclasses.replace(robot_state(NOW), placed_objects=(POST, CRATE))
    current = {"twin": build_twin_state("lab", robot, safety, None, occupancy=measurement(2, None))}
    server = start_live_server_with_accounts(tmp_path, twin_source=lambda: current["twin"])
    received: list[dict] = []
    lock = threading.Lock()
    sio = socketio.Client(reconnection=False)

    @sio.on("twin_state", namespace="/xr")
    def on_twin(state):
        with lock:
            received.append(state)

    def wait_for(predicate) -> dict:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            with lock:
                hits = [s for s in received if predicate(s)]
            if hits:
                return hits[-1]
            time.sleep(0.02)
        raise AssertionError(f"no matching twin_state within 10 s; last: {received[-1:]}")

    token = server.token("wendy")
    try:
        sio.connect(server.base, namespaces=["/xr"], auth={"token": token}, transports=["websocket"],
                    wait_timeout=10)
        sio.emit("twin_state_request", {"cell": "lab"}, namespace="/xr")
        first = wait_for(lambda s: s.get("occupancy") is not None)
        jsonschema.validate(first, SCHEMA)
        assert [o["id"] for o in first["robot"]["placed_objects"]] == ["payload/1", "crate"]
        assert first["robot"]["placed_objects"][0]["dimensions"] == [0.34, 0.04]
        assert first["occupancy"]["placed_masked"] == 2
        # The robot's list goes bad: the channel refuses it; clients see why.
        bad = dataclasses.replace(robot, placed_objects=(POST, dataclasses.replace(CRATE, position=(0.45, 0.0,
                                                                                                     math.nan))))
        current["twin"] = build_twin_state("lab", bad, safety, None, occupancy=measurement(0, REFUSED))
        refused = wait_for(lambda s: (s.get("occupancy") or {}).get("placed_rejected") is not None)
        jsonschema.validate(refused, SCHEMA)
        assert refused["occupancy"]["placed_rejected"] == REFUSED
        assert refused["robot"]["placed_objects"] is None
        answer = requests.get(f"{server.base}/api/twin", headers={"Authorization": f"Bearer {token}"},
                              timeout=10)
        assert answer.status_code == 200
        jsonschema.validate(answer.json(), SCHEMA)
        assert answer.json()["occupancy"]["placed_rejected"] == REFUSED
    finally:
        if sio.connected:
            sio.disconnect()
        server.app.xrcell_stop()
