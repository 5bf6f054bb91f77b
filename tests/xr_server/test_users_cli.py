"""`xrcell users add|list|remove` through the real command line entry point, on a SQLite file."""

import functools
import io

import argon2
import pytest

from content.storage import UserStore
from xr_server import cli

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    """Argon2 at test cost (the CLI uses the store's default, about 0.3 s a hash here)."""
    monkeypatch.setattr("argon2.PasswordHasher", functools.partial(
        argon2.PasswordHasher, time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'users.sqlite'}"


def run(monkeypatch, argv, stdin=""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(argv)


def test_add_from_stdin_then_list_then_remove(monkeypatch, capsys, db):
    assert run(monkeypatch, ["users", "add", "ana", "--role", "operator", "--role", "supervisor",
                             "--password-stdin", "--db", db], stdin=PASSWORD + "\n") == 0
    out, err = capsys.readouterr()
    assert "user 'ana' added with roles supervisor, operator" in out
    assert PASSWORD not in out + err
    user = UserStore(db).verify("ana", PASSWORD)
    assert user is not None and user.roles == ("supervisor", "operator")

    assert run(monkeypatch, ["users", "list", "--db", db]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["username", "roles", "created", "(UTC)"]
    assert lines[1].split()[:2] == ["ana", "supervisor,operator"]

    assert run(monkeypatch, ["users", "remove", "ana", "--db", db]) == 0
    assert "user 'ana' removed" in capsys.readouterr().out
    assert UserStore(db).list() == []


def test_add_prompts_twice_with_getpass_when_not_from_stdin(monkeypatch, capsys, db):
    prompts = []

    def fake_getpass(prompt):
        prompts.append(prompt)
        return PASSWORD

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert run(monkeypatch, ["users", "add", "wim", "--role", "worker", "--db", db]) == 0
    assert prompts == ["Password for wim: ", "Repeat the password: "]
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    assert UserStore(db).verify("wim", PASSWORD) is not None


def test_add_refuses_two_different_passwords(monkeypatch, capsys, db):
    answers = iter(["one-password", "another-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert run(monkeypatch, ["users", "add", "wim", "--role", "worker", "--db", db]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == "xrcell: error: the passwords do not match; no account added"
    assert "one-password" not in out + err and "another-password" not in out + err
    assert UserStore(db).list() == []


def test_unknown_role_is_refused_by_name(monkeypatch, capsys, db):
    with pytest.raises(SystemExit) as exit_info:
        run(monkeypatch, ["users", "add", "bob", "--role", "boss", "--password-stdin", "--db", db], stdin="x\n")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --role: invalid choice: 'boss'" in err
    for role in ("worker", "expert", "supervisor", "operator", "admin"):
        assert role in err


def test_a_role_is_required(monkeypatch, capsys, db):
    with pytest.raises(SystemExit):
        run(monkeypatch, ["users", "add", "bob", "--password-stdin", "--db", db], stdin="x\n")
    assert "the following arguments are required: --role" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["users", "add", "ana", "--role", "worker", "--password-stdin"], "\n",
     "xrcell: error: password of user 'ana' must not be empty"),
    (["users", "remove", "nobody"], "", "xrcell: error: no user 'nobody'"),
])
def test_store_errors_exit_2_with_the_message(monkeypatch, capsys, db, argv, stdin, message):
    assert run(monkeypatch, argv + ["--db", db], stdin=stdin) == 2
    assert capsys.readouterr().err.strip() == message


def test_duplicate_user_is_refused(monkeypatch, capsys, db):
    argv = ["users", "add", "ana", "--role", "worker", "--password-stdin", "--db", db]
    assert run(monkeypatch, argv, stdin="pw-1\n") == 0
    assert run(monkeypatch, argv, stdin="pw-2\n") == 2
    assert capsys.readouterr().err.strip() == "xrcell: error: user 'ana' already exists"


def test_list_of_an_empty_store_says_so_without_the_database_password(monkeypatch, capsys):
    from xr_server.users_cli import _safe_url
    assert _safe_url("postgresql://xr:hunter2@db/xrcell") == "postgresql://xr:***@db/xrcell"
    assert run(monkeypatch, ["users", "list", "--db", "sqlite://"]) == 0
    assert capsys.readouterr().out.strip() == "xrcell: no users in sqlite://"


def test_default_db_is_the_demo_database(monkeypatch):
    from xr_server.demo import REPO_ROOT
    args = cli._parser().parse_args(["users", "list"])
    assert args.db == f"sqlite:///{REPO_ROOT / 'data' / 'xrcell.sqlite'}"
