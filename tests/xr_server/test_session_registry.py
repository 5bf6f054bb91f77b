"""The session registry on its own: who may create and join, the worker's place, leaving and the
end of a session."""

import pytest

from xr_server.errors import SessionError
from xr_server.sessions import ParticipantRole, SessionRegistry, cell_room, session_room

EXPERT, WORKER = ParticipantRole.EXPERT, ParticipantRole.WORKER


@pytest.fixture
def registry():
    return SessionRegistry(["lab"])


def test_a_session_lives_while_someone_is_in_it(registry):
    info = registry.create("lab", "s1", "wendy", ["worker"])
    assert (info.cell, info.worker, info.worker_present, info.experts) == ("lab", "wendy", True, ())
    assert len(info.session_id) == 16 and int(info.session_id, 16) >= 0
    registry.join(info.session_id, "s2", "eve", ["expert"], EXPERT)
    after, ended = registry.leave("s1")
    assert (after.worker_present, after.experts, ended) == (False, ("eve",), False)
    back = registry.join(info.session_id, "s3", "wendy", ["worker"], WORKER)
    assert back.worker_present
    registry.leave("s2")
    _, ended = registry.leave("s3")
    assert ended and registry.sessions("lab") == []
    assert registry.leave("s3") is None
    with pytest.raises(SessionError, match=f"^no session '{info.session_id}'$"):
        registry.info(info.session_id)


@pytest.mark.parametrize(("roles", "role", "message"), [
    (["operator"], EXPERT, "^role: joining as expert needs one of the roles admin, expert, supervisor$"),
    (["worker"], EXPERT, "^role: joining as expert needs one of the roles admin, expert, supervisor$"),
    (["expert"], WORKER, "^role: joining as worker needs one of the roles admin, worker$"),
])
def test_roles_that_may_not_join_are_refused(registry, roles, role, message):
    info = registry.create("lab", "s1", "wendy", ["worker"])
    with pytest.raises(SessionError, match=message):
        registry.join(info.session_id, "s2", "x", roles, role)


def test_create_refuses_other_roles_other_cells_and_busy_connections(registry):
    with pytest.raises(SessionError, match="^role: creating a session needs one of the roles admin, worker$"):
        registry.create("lab", "s1", "eve", ["expert", "supervisor"])
    with pytest.raises(SessionError, match="^unknown cell 'hall-b': this server shows lab$"):
        registry.create("hall-b", "s1", "wendy", ["worker"])
    info = registry.create("lab", "s1", "wendy", ["worker"])
    with pytest.raises(SessionError, match=f"^already in session {info.session_id}: leave it first$"):
        registry.create("lab", "s1", "wendy", ["worker"])


def test_participant_lookup_names_the_session(registry):
    info = registry.create("lab", "s1", "wendy", ["worker"])
    assert registry.participant(info.session_id, "s1").role is WORKER
    with pytest.raises(SessionError, match=f"^not a participant of session {info.session_id}: join it first$"):
        registry.participant(info.session_id, "s9")


def test_room_names():
    assert (cell_room("lab"), session_room("0123456789abcdef")) == ("cell:lab", "session:0123456789abcdef")
