"""``apolo tokens``: API tokens for machines (shown once, stored as SHA-256)."""

from __future__ import annotations

import json
import os

import click

from sidecar.auth import ROLES, hash_token, new_token
from sidecar.db import connect_cli
from sidecar.repo import audit
from sidecar.repo import tokens as token_repo
from sidecar.repo import users as users_repo


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


@click.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
def create(name: str, role: str) -> None:
    """Create a token; it is printed once, as the last line, and stored only hashed."""
    token = new_token()
    with connect_cli() as conn:
        token_id = token_repo.create(conn, name, role, hash_token(token))
        audit.record(
            conn,
            _actor(),
            "token.create",
            f"token:{token_id}",
            None,
            {"name": name, "role": role},
        )
        conn.commit()
    click.echo(f"token {token_id} ({name}, {role}) created; store it now, it is not shown again:")
    click.echo(token)


@tokens.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="include revoked tokens")
def list_tokens(include_revoked: bool) -> None:
    """Tokens (id, name, role, dates); the tokens themselves are never shown again."""
    with connect_cli() as conn:
        rows = users_repo.list_tokens(conn, include_revoked)
    for row in rows:
        click.echo(json.dumps(row, default=str))


@tokens.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke a token by id: every request with it is refused from the next one on."""
    with connect_cli() as conn:
        before = users_repo.get_token(conn, token_id)
        if before is None:
            raise click.ClickException(f"no token {token_id}")
        if before["revoked_at"] is not None:
            click.echo(f"token {token_id} was already revoked")
            return
        users_repo.revoke_token(conn, token_id)
        after = users_repo.get_token(conn, token_id)
        audit.record(conn, _actor(), "token.revoke", f"token:{token_id}", before, after)
        conn.commit()
    click.echo(f"token {token_id} ({before['name']}) revoked")
