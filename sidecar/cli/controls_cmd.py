"""``apolo controls``: fraud controls of accounts and rate plans, shared settings, alerts.

Every change goes through the same validation and audit as ``PATCH /v1/.../controls``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from sidecar.db import connect_cli
from sidecar.errors import ApiError
from sidecar.services import fraud_controls


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


def _run(action: Callable[[Any], Any]) -> None:
    """Run one service call in its own transaction, print its JSON; ApiError -> exit 1."""
    with connect_cli() as conn:
        try:
            result = action(conn)
        except ApiError as exc:
            conn.rollback()
            raise click.ClickException(exc.message) from None
        conn.commit()
    click.echo(json.dumps(result, indent=2, default=str))


def _rules(values: tuple[str, ...], clear: bool, name: str) -> list[dict[str, str]] | None:
    """``PREFIX[:NOTE]`` options as the API's list; None when the list is left alone."""
    if clear and values:
        raise click.UsageError(f"--{name} and --no-{name} together")
    if clear:
        return []
    if not values:
        return None
    entries = []
    for value in values:
        prefix, _, note = value.partition(":")
        entries.append({"prefix": prefix, "note": note})
    return entries


def _nullable(value: str | None, as_int: bool = False) -> Any:
    """``none`` clears a limit; digits become a number where the field is a count."""
    if value is None or value.lower() != "none":
        return int(value) if as_int and value is not None and value.isdigit() else value
    return None


def _rule_options(fn: Any) -> Any:
    for option in (
        click.option("--no-deny", is_flag=True, help="empty the deny list"),
        click.option("--deny", multiple=True, metavar="PREFIX[:NOTE]",
                     help="the deny list (repeat; replaces the current list)"),
        click.option("--no-allow", is_flag=True, help="empty the allow list"),
        click.option("--allow", multiple=True, metavar="PREFIX[:NOTE]",
                     help="the allow list (repeat; replaces the current list)"),
    ):  # fmt: skip
        fn = option(fn)
    return fn


def _rule_body(allow: tuple[str, ...], no_allow: bool, deny: tuple[str, ...], no_deny: bool
               ) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {}
    for name, values, clear in (("allow", allow, no_allow), ("deny", deny, no_deny)):
        rules = _rules(values, clear, name)
        if rules is not None:
            body[name] = rules
    return body


@click.group()
def controls() -> None:
    """Fraud controls: destination rules, calls per minute, daily spend, spend spikes."""


@controls.command("account")
@click.argument("number")
@_rule_options
@click.option("--calls-per-minute", default=None, help="most calls authorized per minute, or none")
@click.option("--daily-limit", default=None, help="most spent per local day, or none")
@click.option("--time-zone", default=None, help="IANA name of the account's day (UTC)")
@click.option("--spike-factor", default=None, help="spike alert factor; 0 off, none: default")
def account(number: str, allow: tuple[str, ...], no_allow: bool, deny: tuple[str, ...],
            no_deny: bool, calls_per_minute: str | None, daily_limit: str | None,
            time_zone: str | None, spike_factor: str | None) -> None:  # fmt: skip
    """Show an account's controls, or change the ones given (audited)."""
    body = _rule_body(allow, no_allow, deny, no_deny)
    for name, value, as_int in (
        ("max_calls_per_minute", calls_per_minute, True),
        ("daily_spend_limit", daily_limit, False),
        ("spend_spike_factor", spike_factor, False),
    ):
        if value is not None:
            body[name] = _nullable(value, as_int)
    if time_zone is not None:
        body["time_zone"] = time_zone
    if not body:
        _run(lambda conn: fraud_controls.account_controls(conn, number))
        return
    _run(lambda conn: fraud_controls.update_account_controls(
        conn, actor=_actor(), number=number, body=body))  # fmt: skip


@controls.command("plan")
@click.argument("name")
@_rule_options
def plan(name: str, allow: tuple[str, ...], no_allow: bool, deny: tuple[str, ...],
         no_deny: bool) -> None:  # fmt: skip
    """Show a rate plan's destination rules, or replace the lists given (audited)."""
    body = _rule_body(allow, no_allow, deny, no_deny)
    if not body:
        _run(lambda conn: fraud_controls.plan_controls(conn, name))
        return
    _run(lambda conn: fraud_controls.update_plan_controls(
        conn, actor=_actor(), name=name, body=body))  # fmt: skip


@controls.command("settings")
@click.option("--spike-factor", default=None, help="default spike factor (0 turns spikes off)")
@click.option("--spike-min-spend", default=None, help="no spike below this hour's spend")
@click.option("--alert-window", default=None, help="seconds one alert counts repeats")
def settings(spike_factor: str | None, spike_min_spend: str | None,
             alert_window: str | None) -> None:  # fmt: skip
    """Show the shared fraud settings, or change the ones given (audited)."""
    body: dict[str, Any] = {}
    if spike_factor is not None:
        body["spike_factor"] = spike_factor
    if spike_min_spend is not None:
        body["spike_min_spend"] = spike_min_spend
    if alert_window is not None:
        body["alert_window_seconds"] = _nullable(alert_window, as_int=True)
    if not body:
        _run(fraud_controls.settings)
        return
    _run(lambda conn: fraud_controls.update_settings(conn, actor=_actor(), body=body))


@controls.command("alerts")
@click.option("--account", default=None)
@click.option("--control", type=click.Choice(fraud_controls.CONTROLS), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def alerts(account: str | None, control: str | None, limit: int) -> None:
    """The latest fraud alerts (JSON), newest first."""
    _run(lambda conn: fraud_controls.alerts(conn, account=account, control=control, limit=limit))
