"""``apolo trunks``: networks whose calls are billed without a SIP login."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from sidecar.db import connect_cli
from sidecar.errors import ApiError


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


def _run(action: str, **kwargs: Any) -> Any:
    """One trunk service call in its own committed transaction; ApiError -> click error."""
    from sidecar.services import trunks as trunks_service

    result: Any
    with connect_cli() as conn:
        try:
            if action == "create":
                result = trunks_service.create_trunk(conn, actor=_actor(), **kwargs)
            elif action == "delete":
                result = trunks_service.delete_trunk(conn, actor=_actor(), **kwargs)
            else:
                result = trunks_service.list_trunks(conn)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        conn.commit()
    return result


@click.group()
def trunks() -> None:
    """Trunks: calls arriving from their CIDRs are theirs to pay (see README, "Who pays")."""


@trunks.command("create")
@click.argument("name")
@click.option(
    "--cidr",
    "cidrs",
    multiple=True,
    required=True,
    help="network the trunk's INVITEs come from (repeatable), e.g. 203.0.113.0/24",
)
@click.option("--account", default=None, help="account number the trunk's calls bill")
@click.option(
    "--trust-caller-id",
    is_flag=True,
    help="bill the account whose ANI is the caller ID the trunk sends",
)
@click.option(
    "--trust-billing-header",
    is_flag=True,
    help="bill the account named by the trunk's X-Billing-Account header",
)
def create(name: str, cidrs: tuple[str, ...], account: str | None, trust_caller_id: bool,
           trust_billing_header: bool) -> None:  # fmt: skip
    """Declare trunk NAME (audited). A trusted caller ID or header that names no account
    falls back to --account; without one, such calls are refused."""
    created = _run(
        "create",
        name=name,
        cidrs=list(cidrs),
        account=account,
        trust_caller_id=trust_caller_id,
        trust_billing_header=trust_billing_header,
    )
    click.echo(json.dumps(created, indent=2, default=str))


@trunks.command("list")
def list_() -> None:
    """Declared trunks, one per line: name, CIDRs, account, what is trusted."""
    for t in _run("list"):
        trusted = [k for k in ("trust_caller_id", "trust_billing_header") if t[k]]
        click.echo(
            f"{t['name']}\t{','.join(t['cidrs'])}\t{t['account'] or '-'}\t"
            f"{','.join(trusted) or '-'}"
        )


@trunks.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete trunk NAME (audited): its calls are refused from then on."""
    deleted = _run("delete", name=name)
    click.echo(f"deleted trunk {deleted['name']} ({', '.join(deleted['cidrs'])})")
