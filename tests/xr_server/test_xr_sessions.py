"""XR sessions over real sockets: python-socketio clients against a live server on 127.0.0.1.

Who may create, join and list sessions; rooms (nobody receives the events of a session they have
not joined); annotations stored before they are acknowledged and changed only by their author;
malformed or misplaced signalling refused with a reason, the connection and the server unharmed.
"""

import math
import threading
import time

import numpy as np
import pytest

from tests.xr_server.live import start_live_server_with_accounts

OTHER_SESSION = "0123456789abcdef"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    robot = {"state": None}    # what the anchors ray-cast besides the floor; a test sets it
    server = start_live_server_with_accounts(tmp_path_factory.mktemp("live"),
                                             robot_source=lambda: robot["state"])
    server.robot = robot
    yield server
    server.app.xrcell_stop()


def create(client):
    answer = client.call("session_create", {"cell": "lab"})
    assert "error" not in answer, answer
    return answer["session"]


# ----------------------------------------------------------------------------------- auth
@pytest.mark.parametrize(("user", "allowed"), [
    ("wendy", True), ("ada", True), ("eve", False), ("sam", False), ("otto", False)])
def test_only_workers_and_admins_create_sessions(clients, user, allowed):
    answer = clients(user).call("session_create", {"cell": "lab"})
    if allowed:
        assert answer["role"] == "worker" and answer["worker"] == user and answer["experts"] == []
        assert answer["video"] is None and answer["annotations"] == []
    else:
        assert answer == {"event": "session_create",
                          "error": "role: creating a session needs one of the roles admin, worker"}


@pytest.mark.parametrize(("user", "allowed"), [
    ("eve", True), ("sam", True), ("ada", True), ("walt", False), ("otto", False)])
def test_only_experts_supervisors_and_admins_join_as_expert(clients, user, allowed):
    session = create(clients("wendy"))
    answer = clients(user).call("session_join", {"session": session, "role": "expert"})
    if allowed:
        assert answer["role"] == "expert" and answer["experts"] == [user] and answer["worker"] == "wendy"
    else:
        assert answer == {"event": "session_join",
                          "error": "role: joining as expert needs one of the roles admin, expert, supervisor"}


def test_only_the_sessions_worker_rejoins_as_its_worker(clients):
    wendy = clients("wendy")
    session = create(wendy)
    walt = clients("walt")
    assert walt.call("session_join", {"session": session, "role": "worker"})["error"] == \
        f"session {session} is the session of worker 'wendy'"
    again = clients("wendy")
    assert again.call("session_join", {"session": session, "role": "worker"})["error"] == \
        f"session {session} already has its worker connected"
    wendy.close()  # the worker's connection drops; the expert keeps the session open
    expert = clients("eve")
    assert expert.call("session_join", {"session": session, "role": "expert"})["error"] == f"no session '{session}'"


def test_listing_sessions_needs_an_expert_role(clients):
    session = create(clients("wendy"))
    listed = clients("eve").call("session_list", {"cell": "lab"})
    assert session in [s["session"] for s in listed["sessions"]]
    assert clients("walt").call("session_list", {"cell": "lab"}) == {
        "event": "session_list", "error": "role: listing sessions needs one of the roles admin, expert, supervisor"}
    assert clients("eve").call("session_list", {"cell": "hall-b"}) == {
        "event": "session_list", "error": "unknown cell 'hall-b': this server shows 'lab'"}


# ---------------------------------------------------------------------------------- rooms
def test_nobody_receives_the_events_of_a_session_they_have_not_joined(clients):
    wendy, eve = clients("wendy"), clients("eve")
    walt, emil = clients("walt"), clients("emil")
    bystander = clients("otto")  # connected to the cell, in no session
    one, two = create(wendy), create(walt)
    eve.call("session_join", {"session": one, "role": "expert"})
    emil.call("session_join", {"session": two, "role": "expert"})
    placed = eve.call("annotation_create", {"session": one, "kind": "label", "points": [[0.5, 0.5]],
                                            "text": "this bolt"})
    assert placed["op"] == "created"
    for member in (wendy, eve):
        member.wait_for("annotation", lambda m: m["annotation"]["text"] == "this bolt")
    emil.call("annotation_create", {"session": two, "kind": "circle", "points": [[0.2, 0.2]], "radius": 0.1})
    walt.wait_for("annotation")
    for outsider in (walt, emil, bystander):
        assert [m["annotation"]["session"] for m in outsider.received("annotation")] in ([], [two])
    assert all(s["session"] == one for s in wendy.received("session_state"))
    assert bystander.received("session_state") == [] and bystander.received("annotation") == []
    # events of another session cannot be reached by naming it either
    assert emil.call("annotation_create", {"session": one, "kind": "label", "points": [[0.1, 0.1]],
                                           "text": "x"})["error"] == f"not a participant of session {one}: join it first"


def test_participants_see_each_other_come_and_go(clients):
    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    wendy.wait_for("session_state", lambda s: s["experts"] == ["eve"])
    assert eve.call("session_leave", {"session": session}) == {"session": session}
    wendy.wait_for("session_state", lambda s: s["experts"] == [] and s["worker_present"])
    assert eve.call("session_leave", {"session": session})["error"] == \
        f"not a participant of session {session}: join it first"
    eve.call("session_join", {"session": session, "role": "expert"})
    eve.close()  # a dropped connection leaves too
    wendy.wait_for("session_state", lambda s: s["experts"] == [] and len(wendy.received("session_state")) >= 4)


def test_a_connection_is_in_one_session_at_a_time(clients):
    eve = clients("eve")
    one, two = create(clients("wendy")), create(clients("walt"))
    eve.call("session_join", {"session": one, "role": "expert"})
    assert eve.call("session_join", {"session": two, "role": "expert"})["error"] == \
        f"already in session {one}: leave it first"


# ---------------------------------------------------------------------------- annotations
def test_an_annotation_is_stored_before_anyone_hears_of_it(clients, live):
    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    seen_in_store = []
    wendy.sio.on("annotation", lambda m: seen_in_store.append(
        m["annotation"]["id"] in [a.annotation_id for a in live.annotations.list(session)]), namespace="/xr")
    ack = eve.call("annotation_create", {"session": session, "kind": "arrow", "points": [[0.1, 0.2], [0.4, 0.5]],
                                         "text": "loosen", "color": "#ff0000", "ref": "c1"})
    stored = live.annotations.list(session)
    assert [(a.annotation_id, a.kind, a.points, a.author, a.text) for a in stored] == [
        (ack["annotation"]["id"], "arrow", ((0.1, 0.2), (0.4, 0.5)), "eve", "loosen")]
    assert ack["ref"] == "c1" and ack["annotation"]["anchor"] is None
    deadline = time.monotonic() + 10
    while not seen_in_store and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen_in_store == [True]
    # a late joiner gets the session's annotations at once
    sam = clients("sam")
    assert [a["id"] for a in sam.call("session_join", {"session": session, "role": "expert"})["annotations"]] == \
        [ack["annotation"]["id"]]


def test_only_the_author_changes_or_deletes_an_annotation(clients):
    wendy, eve, sam = clients("wendy"), clients("eve"), clients("sam")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    sam.call("session_join", {"session": session, "role": "expert"})
    created = eve.call("annotation_create", {"session": session, "kind": "circle", "points": [[0.5, 0.5]],
                                             "radius": 0.05})["annotation"]
    ident = created["id"]
    assert sam.call("annotation_update", {"session": session, "id": ident, "radius": 0.2})["error"] == \
        f"annotation {ident} was placed by 'eve': only its author may change it"
    assert sam.call("annotation_delete", {"session": session, "id": ident})["error"] == \
        f"annotation {ident} was placed by 'eve': only its author may delete it"
    updated = eve.call("annotation_update", {"session": session, "id": ident, "radius": 0.2, "text": "here"})
    assert updated["op"] == "updated" and updated["annotation"]["radius"] == 0.2
    wendy.wait_for("annotation", lambda m: m["op"] == "updated" and m["annotation"]["text"] == "here")
    assert eve.call("annotation_delete", {"session": session, "id": ident})["op"] == "deleted"
    wendy.wait_for("annotation", lambda m: m["op"] == "deleted" and m["annotation"]["id"] == ident)
    assert eve.call("annotation_delete", {"session": session, "id": ident})["error"] == \
        f"no annotation {ident} in session {session}"


@pytest.mark.parametrize(("payload", "reason"), [
    ({"kind": "arrow", "points": [[0.1, 0.1]]}, "field 'points': a arrow needs 2 points, got 1"),
    ({"kind": "label", "points": [[0.1, 0.1], [0.2, 0.2]], "text": "x"}, "field 'points': a label needs 1 point, got 2"),
    ({"kind": "circle", "points": [[0.1, 0.1]]}, "field 'radius' is required for a circle"),
    ({"kind": "label", "points": [[0.1, 0.1]], "text": " "}, "field 'text' must not be empty for a label"),
    ({"kind": "label", "points": [[1.5, 0.1]], "text": "x"}, "field 'points.0' must lie in the image: u and v from 0 to 1"),
    ({"kind": "label", "points": [[0.5, 0.1, 3]], "text": "x"}, "field 'points.0' must be [u, v], got 3 numbers"),
    ({"kind": "arrow", "points": [[0.1, 0.1], [0.2, 0.2]], "radius": 0.1}, "field 'radius' is for circles only, not a arrow"),
    ({"kind": "star", "points": [[0.1, 0.1]]},
     "invalid 'annotation_create' payload: field 'kind': Input should be 'arrow', 'circle', 'label' or 'stroke'"),
    ({"kind": "stroke", "points": [[0.1, 0.1]]}, "field 'points': a stroke needs 2 to 256 points, got 1"),
    ({"kind": "stroke", "points": [[0.1, 0.1]] * 257},
     "invalid 'annotation_create' payload: field 'points': List should have at most 256 items after validation, not 257"),
    ({"kind": "stroke", "points": [[0.1, 0.1], [0.2, 0.2]], "freeze": 0},
     "invalid 'annotation_create' payload: field 'freeze': Input should be greater than or equal to 1"),
    ({"kind": "label", "points": [[0.1, 0.1]], "text": "x", "color": "red"},
     "invalid 'annotation_create' payload: field 'color': String should match pattern '^#[0-9a-fA-F]{6}$'"),
])
def test_bad_annotations_are_refused_by_field(clients, payload, reason):
    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    assert eve.call("annotation_create", {"session": session, **payload}) == \
        {"event": "annotation_create", "error": reason}
    assert wendy.received("annotation") == []


def test_a_worker_does_not_place_annotations(clients):
    wendy = clients("wendy")
    session = create(wendy)
    assert wendy.call("annotation_create", {"session": session, "kind": "label", "points": [[0.5, 0.5]],
                                            "text": "x"})["error"] == \
        f"only an expert of session {session} may place annotations"


# ----------------------------------------------------------------------------- signalling
GOOD_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n"


@pytest.mark.parametrize(("offer", "reason"), [
    ({"type": "answer", "sdp": GOOD_SDP}, "invalid 'rtc_offer' payload: field 'type': Input should be 'offer'"),
    ({"type": "offer", "sdp": "v=0" + "x" * 70000},
     "invalid 'rtc_offer' payload: field 'sdp': String should have at most 65536 characters"),
    ({"type": "offer", "sdp": "hello"}, "field 'sdp' is not a session description: it must start with 'v=0'"),
    ({"type": "offer", "sdp": "v=0\r\ns=-\r\n"}, "field 'sdp' has no media section ('m=' line)"),
    ({"type": "offer"}, "invalid 'rtc_offer' payload: missing field 'sdp'"),
    ({"type": "offer", "sdp": GOOD_SDP, "extra": 1}, "invalid 'rtc_offer' payload: unexpected field 'extra'"),
    ({"type": "offer", "sdp": GOOD_SDP}, "the worker's offer sends no video: add the camera track before the offer"),
    ({"type": "offer", "sdp": GOOD_SDP, "device": ""},
     "invalid 'rtc_offer' payload: field 'device': String should have at least 1 character"),
])
def test_malformed_signalling_is_refused_with_a_reason_and_harms_nothing(clients, offer, reason):
    wendy = clients("wendy")
    session = create(wendy)
    assert wendy.call("rtc_offer", {"session": session, **offer}) == {"event": "rtc_offer", "error": reason}
    assert wendy.wait_for("error", lambda e: e["event"] == "rtc_offer") == {"event": "rtc_offer", "error": reason}
    assert wendy.sio.connected
    assert wendy.call("session_leave", {"session": session}) == {"session": session}  # still served


def test_signalling_outside_a_joined_session_is_refused(clients):
    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    assert eve.call("rtc_offer", {"session": session, "type": "offer", "sdp": GOOD_SDP, "device": "hl2"})["error"] == \
        f"field 'device': only the worker of session {session} sends from an HMI device"
    eve.call("session_leave", {"session": session})
    assert eve.call("rtc_offer", {"session": session, "type": "offer", "sdp": GOOD_SDP})["error"] == \
        f"not a participant of session {session}: join it first"
    assert eve.call("rtc_offer", {"session": "not-an-id", "type": "offer", "sdp": GOOD_SDP})["error"] == \
        "invalid 'rtc_offer' payload: field 'session': String should match pattern '^[0-9a-f]{16}$'"
    assert eve.call("rtc_offer", {"session": OTHER_SESSION, "type": "offer", "sdp": GOOD_SDP})["error"] == \
        f"no session '{OTHER_SESSION}'"
    eve.call("session_join", {"session": session, "role": "expert"})
    assert eve.call("rtc_offer", {"session": session, "type": "offer", "sdp": GOOD_SDP})["error"] == \
        f"session {session} has no video from its worker yet"
    assert eve.call("rtc_offer", {"session": session, "type": "offer", "sdp": GOOD_SDP.replace("recvonly", "sendonly")}
                    )["error"] == "the expert's offer receives no video: add a recvonly video transceiver"
    assert eve.sio.connected and wendy.sio.connected


def test_an_sdp_aiortc_cannot_parse_is_refused_and_the_server_goes_on(clients, live):
    wendy = clients("wendy")
    session = create(wendy)
    broken = GOOD_SDP.replace("a=recvonly", "a=sendonly").replace("UDP/TLS/RTP/SAVPF 96", "UDP/TLS/RTP/SAVPF x")
    answer = wendy.call("rtc_offer", {"session": session, "type": "offer", "sdp": broken})
    assert answer["error"].startswith("cannot answer the offer: ")
    assert wendy.sio.connected
    assert clients("eve").call("session_list", {"cell": "lab"})["cell"] == "lab"


# ---------------------------------------------------------------------------------- anchors
def test_with_the_workers_camera_pose_an_annotation_is_anchored_on_the_floor(clients, live):
    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    unanchored = eve.call("annotation_create", {"session": session, "kind": "label", "points": [[0.5, 0.5]],
                                                "text": "before"})
    assert unanchored["annotation"]["anchor"] is None  # no camera pose yet: on the image only
    looking_down = {"session": session, "position_m": [1.0, -0.5, 1.6], "orientation": [1.0, 0.0, 0.0, 0.0],
                    "hfov_deg": 90.0, "aspect": 4 / 3}
    assert eve.call("hmi_camera", looking_down)["error"] == f"only the worker of session {session} reports its camera"
    assert wendy.call("hmi_camera", looking_down) == {"session": session}
    arrow = eve.call("annotation_create", {"session": session, "kind": "arrow", "points": [[0.1, 0.1], [0.5, 0.5]]})
    assert arrow["annotation"]["anchor"] == {"frame": "cell", "position_m": [1.0, -0.5, 0.0], "on": "floor"}
    stored = {a.annotation_id: a.anchor_m for a in live.annotations.list(session)}
    assert stored[arrow["annotation"]["id"]] == (1.0, -0.5, 0.0)
    moved = eve.call("annotation_update", {"session": session, "id": arrow["annotation"]["id"],
                                           "points": [[0.1, 0.1], [1.0, 0.5]]})
    assert moved["annotation"]["anchor"]["position_m"] == [2.6, -0.5, 0.0]  # tan(45 deg) * 1.6 m to the right
    assert wendy.call("hmi_camera", {**looking_down, "orientation": [0, 0, 0, 2]})["error"] == \
        "field 'orientation' must be a unit quaternion (x, y, z, w), its norm is 2.0000"
    assert wendy.call("hmi_camera", {**looking_down, "principal_point": [0.5, 1.2]})["error"] == \
        "invalid 'hmi_camera' payload: field 'principal_point': Value error, must be inside the image " \
        "(each from 0 to 1), got [0.5, 1.2]"
    assert wendy.call("hmi_camera", {**looking_down, "principal_point": [0.48, 0.52]}) == {"session": session}


def test_a_worker_who_reconnects_gets_the_sessions_state_at_once(clients):
    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    placed = eve.call("annotation_create", {"session": session, "kind": "label", "points": [[0.3, 0.3]],
                                            "text": "torque 12 Nm"})["annotation"]
    threading.Thread(target=wendy.close, daemon=True).start()  # the Wi-Fi drops
    eve.wait_for("session_state", lambda s: not s["worker_present"])
    again = clients("wendy")
    joined = again.call("session_join", {"session": session, "role": "worker"})
    assert (joined["role"], joined["experts"], [a["id"] for a in joined["annotations"]]) == \
        ("worker", ["eve"], [placed["id"]])
    eve.wait_for("session_state", lambda s: len(eve.received("session_state")) >= 3)
    states = eve.received("session_state")  # eve joined, wendy dropped, wendy is back
    assert [s["worker_present"] for s in states] == [True, False, True]


def test_an_annotation_on_the_robot_is_anchored_on_its_link_not_the_floor_behind(clients, live):
    from tests.safety.fakes import robot_state

    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    looking_down = {"session": session, "position_m": [1.0, -0.5, 1.6], "orientation": [1.0, 0.0, 0.0, 0.0],
                    "hfov_deg": 90.0, "aspect": 4 / 3}
    wendy.call("hmi_camera", looking_down)
    # An upright link 0.1 m thick right below the camera, 1.0 m tall: the ray meets its top.
    live.robot["state"] = robot_state(time.monotonic_ns(), segments=[[[1.0, -0.5, 0.0], [1.0, -0.5, 1.0]]],
                                      radii=[0.1])
    try:
        on_link = eve.call("annotation_create", {"session": session, "kind": "circle", "points": [[0.5, 0.5]],
                                                 "radius": 0.05})
    finally:
        live.robot["state"] = None
    anchor = on_link["annotation"]["anchor"]
    assert anchor["on"] == "robot:link0"
    assert anchor["position_m"][2] == pytest.approx(1.1, abs=0.002)   # the top of the capsule, not the floor
    stored = next(a for a in live.annotations.list(session) if a.annotation_id == on_link["annotation"]["id"])
    assert stored.anchor_on == "robot:link0"


def test_a_freehand_stroke_on_a_freeze_frame_is_anchored_with_the_pose_of_that_frame(clients, live):
    wendy, eve = clients("wendy"), clients("eve")
    session = create(wendy)
    eve.call("session_join", {"session": session, "role": "expert"})
    then = {"session": session, "position_m": [1.0, -0.5, 1.6], "orientation": [1.0, 0.0, 0.0, 0.0],
            "hfov_deg": 90.0, "aspect": 4 / 3}
    assert wendy.call("hmi_camera", then) == {"session": session}
    assert wendy.call("freeze_frame", {"session": session})["error"] == \
        f"only an expert of session {session} freezes a frame"
    freeze = eve.call("freeze_frame", {"session": session})
    assert freeze["session"] == session and freeze["freeze"] >= 1
    # the worker walks on, 2 m along x, however long after the freeze
    assert wendy.call("hmi_camera", {**then, "position_m": [3.0, -0.5, 1.6]}) == {"session": session}
    ring = [[0.5 + 0.1 * math.cos(a), 0.5 + 0.1 * math.sin(a)] for a in np.linspace(0, 2 * math.pi, 40, endpoint=False)]
    # Drawn on the frozen frame: anchored under the pose pinned at the freeze, at the centroid of
    # the ring, the image centre.
    frozen = eve.call("annotation_create", {"session": session, "kind": "stroke", "points": ring,
                                            "freeze": freeze["freeze"]})
    assert frozen["annotation"]["kind"] == "stroke" and len(frozen["annotation"]["points"]) == 40
    assert frozen["annotation"]["anchor"]["position_m"] == pytest.approx([1.0, -0.5, 0.0], abs=1e-3)
    live_view = eve.call("annotation_create", {"session": session, "kind": "stroke", "points": ring})
    assert live_view["annotation"]["anchor"]["position_m"] == pytest.approx([3.0, -0.5, 0.0], abs=1e-3)
    unknown = freeze["freeze"] + 1000
    assert eve.call("annotation_create", {"session": session, "kind": "stroke", "points": ring,
                                          "freeze": unknown})["error"] == \
        f"field 'freeze': no freeze-frame {unknown} in session {session}: freeze the frame again"
    # The worker's page receives the stroke as stored.
    got = wendy.wait_for("annotation", lambda m: m["annotation"]["id"] == frozen["annotation"]["id"])
    assert got["annotation"]["points"] == frozen["annotation"]["points"]
