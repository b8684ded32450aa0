"""``apolo users``: dashboard users (argon2id password hashes; passwords never in argv)."""

from __future__ import annotations

import json
import os
import re
import sys

import click

from sidecar.auth import USER_ROLES, hash_password
from sidecar.db import connect_cli
from sidecar.repo import audit
from sidecar.repo import users as users_repo

_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")  # as the CHECK in sql/004_access.sql


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        hash_password(password)  # length check only; the hash is made again by the caller
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return password


@click.group()
def users() -> None:
    """Dashboard users (roles admin, operator, viewer)."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(USER_ROLES), required=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="read the password from the first line of standard input instead of prompting",
)
def create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user; the password is prompted for (or read from stdin), never an argument."""
    if not _USERNAME.match(username):
        raise click.ClickException("a username is 1-64 letters, digits or . _ @ -")
    with connect_cli() as conn:
        if users_repo.exists(conn, username):
            raise click.ClickException(f"user {username} already exists")
        password = _read_password(password_stdin)
        user_id = users_repo.create(conn, username, role, hash_password(password))
        audit.record(
            conn,
            _actor(),
            "user.create",
            f"user:{username}",
            None,
            {"id": user_id, "username": username, "role": role},
        )
        conn.commit()
    click.echo(f"user {username} ({role}) created")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the new password from stdin")
def passwd(username: str, password_stdin: bool) -> None:
    """Set a user's password."""
    with connect_cli() as conn:
        user = users_repo.get(conn, username)
        if user is None:
            raise click.ClickException(f"no user {username}")
        users_repo.set_password_hash(
            conn, int(user["id"]), hash_password(_read_password(password_stdin))
        )
        audit.record(conn, _actor(), "user.password", f"user:{username}", None, None)
        conn.commit()
    click.echo(f"password of {username} changed")


@users.command("list")
def list_users() -> None:
    """Users with their role and whether they are disabled."""
    with connect_cli() as conn:
        rows = users_repo.list_all(conn)
    for row in rows:
        click.echo(json.dumps(row, default=str))


def _set_disabled(username: str, disabled: bool) -> None:
    with connect_cli() as conn:
        before = users_repo.get(conn, username)
        if before is None:
            raise click.ClickException(f"no user {username}")
        users_repo.set_disabled(conn, username, disabled)
        after = users_repo.get(conn, username)
        audit.record(
            conn,
            _actor(),
            "user.disable" if disabled else "user.enable",
            f"user:{username}",
            before,
            after,
        )
        conn.commit()
    click.echo(f"user {username} {'disabled' if disabled else 'enabled'}")


@users.command("disable")
@click.argument("username")
def disable(username: str) -> None:
    """Stop a user from logging in (sessions are refused from then on)."""
    _set_disabled(username, True)


@users.command("enable")
@click.argument("username")
def enable(username: str) -> None:
    """Let a disabled user log in again."""
    _set_disabled(username, False)
