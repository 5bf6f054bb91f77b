"""User store: Argon2-hashed passwords, roles checked, every error message pinned."""

import sqlite3

import pytest

from content.errors import ContentError, StorageError
from content.storage import ROLE_NAMES, UserStore


@pytest.fixture
def store(tmp_path):
    return UserStore(f"sqlite:///{tmp_path / 'users.sqlite'}")


def test_add_then_verify_returns_the_user_with_its_roles(store):
    added = store.add("ana", "correct horse", ["operator", "worker"])
    assert added.roles == ("worker", "operator")  # Role order
    user = store.verify("ana", "correct horse")
    assert user is not None and user.username == "ana" and user.roles == ("worker", "operator")


def test_wrong_password_and_unknown_user_give_none(store):
    store.add("ana", "correct horse", ["worker"])
    assert store.verify("ana", "wrong") is None
    assert store.verify("bob", "correct horse") is None


def test_unknown_role_is_a_content_error_naming_the_role_and_the_choices(store):
    with pytest.raises(StorageError, match=r"unknown role 'pilot': expected one of worker, expert, "
                                           r"supervisor, operator, admin"):
        store.add("ana", "pw", ["pilot"])
    assert issubclass(StorageError, ContentError)
    assert store.list() == []


@pytest.mark.parametrize(("username", "password", "roles", "message"), [
    ("", "pw", ["worker"], "username must be 1 to 64 characters"),
    ("ana", "", ["worker"], "password of user 'ana' must not be empty"),
    ("ana", "pw", [], "a user needs at least one role"),
])
def test_bad_input_is_refused(store, username, password, roles, message):
    with pytest.raises(StorageError, match=message):
        store.add(username, password, roles)


def test_duplicate_user_and_removing_a_missing_user_are_refused(store):
    store.add("ana", "pw", ["worker"])
    with pytest.raises(StorageError, match="user 'ana' already exists"):
        store.add("ana", "other", ["admin"])
    with pytest.raises(StorageError, match="no user 'bob'"):
        store.remove("bob")


def test_list_and_remove(store):
    for role in ROLE_NAMES:
        store.add(role, "pw-" + role, [role])
    assert [u.username for u in store.list()] == sorted(ROLE_NAMES)
    store.remove("admin")
    assert "admin" not in {u.username for u in store.list()}
    assert store.verify("admin", "pw-admin") is None


def test_password_is_stored_as_an_argon2id_hash_never_in_clear(tmp_path):
    path = tmp_path / "users.sqlite"
    UserStore(f"sqlite:///{path}").add("ana", "correct horse battery", ["worker"])
    raw = path.read_bytes()
    assert b"correct horse battery" not in raw
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT password_hash FROM users WHERE username = 'ana'").fetchone()
    assert stored.startswith("$argon2id$")
    # A second store on the same file (another process) verifies the same password.
    assert UserStore(f"sqlite:///{path}").verify("ana", "correct horse battery") is not None


def test_sqlite_folder_is_created_and_a_bad_url_is_a_storage_error(tmp_path):
    UserStore(f"sqlite:///{tmp_path / 'new' / 'dir' / 'users.sqlite'}").add("ana", "pw", ["admin"])
    assert (tmp_path / "new" / "dir" / "users.sqlite").is_file()
    with pytest.raises(StorageError, match="cannot open the user store at 'nosuchdb://x'"):
        UserStore("nosuchdb://x")
