"""``apolo accounts``."""

from __future__ import annotations

import json
import os

import click

from sidecar.db import connect_cli
from sidecar.errors import ApiError
from sidecar.money import parse_money


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


def _money(value: str, field: str):  # type: ignore[no-untyped-def]
    try:
        return parse_money(value, field)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def accounts() -> None:
    """Accounts and balances."""


@accounts.command("create")
@click.argument("number")
@click.option("--plan", required=True, help="rate plan name")
@click.option("--type", "type_", type=click.Choice(["prepaid", "postpaid"]), required=True)
@click.option("--balance", default="0", show_default=True)
@click.option("--credit-limit", default="0", show_default=True)
@click.option("--ani", "anis", multiple=True, help="caller number identifying the account")
@click.option("--max-calls", type=click.IntRange(min=1), default=None)
@click.option("--name", default="")
@click.option(
    "--sip-user",
    "sip_users",
    multiple=True,
    help="authenticated SIP user it pays for (user@domain)",
)
def create(number, plan, type_, balance, credit_limit, anis, max_calls, name, sip_users) -> None:  # type: ignore[no-untyped-def]
    """Create an account (its number is its ANI unless --ani is given)."""
    from sidecar.services.accounts import create_account

    with connect_cli() as conn:
        try:
            result = create_account(
                conn,
                actor=_actor(),
                number=number,
                plan=plan,
                type_=type_,
                balance=_money(balance, "balance"),
                credit_limit=_money(credit_limit, "credit-limit"),
                anis=list(anis) or None,
                max_calls=max_calls,
                name=name,
                sip_user_list=list(sip_users) or None,
            )
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        conn.commit()
    click.echo(json.dumps(result, indent=2))


@accounts.command("update")
@click.argument("number")
@click.option(
    "--sip-user",
    "sip_users",
    multiple=True,
    help="authenticated SIP user (user@domain) the account pays for; repeat for several."
    " The account's SIP users become exactly those given.",
)
@click.option("--no-sip-users", is_flag=True, help="remove every SIP user of the account")
def update(number: str, sip_users: tuple[str, ...], no_sip_users: bool) -> None:
    """Change an account (audited, like PATCH /v1/accounts/NUMBER)."""
    from sidecar.services.accounts import update_account

    if sip_users and no_sip_users:
        raise click.UsageError("--sip-user and --no-sip-users exclude each other")
    if not sip_users and not no_sip_users:
        raise click.UsageError("nothing to update (--sip-user or --no-sip-users)")
    with connect_cli() as conn:
        try:
            result = update_account(
                conn, actor=_actor(), number=number, changes={"sip_users": list(sip_users)}
            )
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        conn.commit()
    click.echo(json.dumps(result, indent=2))


@accounts.command("recharge")
@click.argument("number")
@click.argument("amount")
@click.option("--note", default="")
def recharge(number: str, amount: str, note: str) -> None:
    """Add AMOUNT to the account's balance (ledger row and audit entry)."""
    from sidecar.services.accounts import recharge as do_recharge

    with connect_cli() as conn:
        try:
            result = do_recharge(
                conn, actor=_actor(), number=number, amount=_money(amount, "amount"), note=note
            )
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        conn.commit()
    click.echo(json.dumps(result, indent=2))


@accounts.command("show")
@click.argument("number")
def show(number: str) -> None:
    """Balance, reserved and available money of an account."""
    from sidecar.repo import accounts as accounts_repo
    from sidecar.services.accounts import summary

    with connect_cli() as conn:
        row = accounts_repo.get(conn, number)
    if row is None:
        raise click.ClickException(f"no account {number}")
    click.echo(json.dumps(summary(row), indent=2))
