"""``xrcell users add|list|remove``: the accounts of the user store the server logs people in with.

Works on the same storage URL as ``xrcell demo`` (``--db``, default the SQLite file in ``data/``),
so accounts added here can log in to a running demo at once; a removed account's sessions end
within a second (`xr_server.auth.SessionGuard`). Passwords are read from stdin
(``--password-stdin``, one line) or prompted for twice with `getpass`; they are never echoed,
printed or logged, and are stored as Argon2id hashes (`content.storage.UserStore`).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import TextIO

import sqlalchemy as sa

from content.storage import ROLE_NAMES, UserStore


def _safe_url(url: str) -> str:
    """`url` with any password masked, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def add_users_parser(sub: argparse._SubParsersAction, default_db_url: str) -> None:
    """Add the ``users`` command to the `xrcell` parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=default_db_url,
                        help="storage URL, as for `xrcell demo` (default: %(default)s)")
    users = sub.add_parser("users", help="manage user accounts (add, list, remove)")
    actions = users.add_subparsers(dest="users_action", required=True)
    add = actions.add_parser("add", parents=[common], help="add an account")
    add.add_argument("name", help="login name (1 to 64 characters)")
    add.add_argument("--role", dest="roles", action="append", required=True, choices=ROLE_NAMES,
                     help="a role of the account; repeat for several")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin instead of prompting")
    actions.add_parser("list", parents=[common], help="list the accounts and their roles")
    remove = actions.add_parser("remove", parents=[common], help="remove an account (its sessions end)")
    remove.add_argument("name")


def _read_password(name: str, from_stdin: bool, stdin: TextIO) -> str | None:
    """The new password, or None when the two prompts differ."""
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password for {name}: ")
    if getpass.getpass("Repeat the password: ") != first:
        return None
    return first


def run_users(args: argparse.Namespace, *, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Run ``xrcell users ...``; returns the exit code.

    Raises:
        content.errors.StorageError: the store refused (duplicate or unknown user, empty
            password, database failure); `xr_server.cli.main` prints it and exits with 2.
    """
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    store = UserStore(args.db)
    if args.users_action == "add":
        password = _read_password(args.name, args.password_stdin, stdin)
        if password is None:
            print("xrcell: error: the passwords do not match; no account added", file=sys.stderr)
            return 2
        user = store.add(args.name, password, args.roles)
        print(f"xrcell: user {user.username!r} added with roles {', '.join(user.roles)} "
              f"in {_safe_url(args.db)}", file=out)
        return 0
    if args.users_action == "list":
        users = store.list()
        if not users:
            print(f"xrcell: no users in {_safe_url(args.db)}", file=out)
            return 0
        width = max(8, *(len(u.username) for u in users))
        print(f"{'username':<{width}}  {'roles':<40}  created (UTC)", file=out)
        for u in users:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(u.created_at))
            print(f"{u.username:<{width}}  {','.join(u.roles):<40}  {created}", file=out)
        return 0
    if args.users_action == "remove":
        store.remove(args.name)
        print(f"xrcell: user {args.name!r} removed from {_safe_url(args.db)}", file=out)
        return 0
    return 1
