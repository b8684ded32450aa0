"""``apolo numbers``: number normalization rules of plans, switches and CUCM clusters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sidecar.cli.plans_cmd import actor, echo, run


def _owner_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option("--plan", default=None, help="a rate plan's rules"),
            click.option("--switch", default=None, help="a FreeSWITCH switch's (its switchname)"),
            click.option("--cucm-cluster", default=None, help="a CUCM cluster's (ClusterID)"),
        ]
    ):
        command = option(command)
    return command


def _direction(callee: bool, caller: bool, default: str | None = "callee") -> str | None:
    if callee and caller:
        raise click.UsageError("--callee and --caller exclude each other")
    return "caller" if caller else "callee" if callee else default


@click.group()
def numbers() -> None:
    """Number normalization rules: strip a prefix, add a prefix, for numbers of a length.

    The first rule that applies turns a number into E.164 digits, before rating (callees)
    and account matching (callers): the source's rules first, then the plan's."""


@numbers.command("add")
@_owner_options
@click.option("--callee", is_flag=True, help="for called numbers (the default)")
@click.option("--caller", is_flag=True, help="for calling numbers")
@click.option("--strip", default="", help="prefix to strip, e.g. 9011 (may start with +)")
@click.option("--add", "add", default="", help="prefix to add, e.g. 52")
@click.option("--min", "min_length", type=int, default=1, show_default=True, help="digits")
@click.option("--max", "max_length", type=int, default=32, show_default=True, help="digits")
@click.option("--position", type=int, default=None, help="where in the list [default: last]")
def add(plan, switch, cucm_cluster, callee, caller, strip, add, min_length, max_length, position):  # type: ignore[no-untyped-def]
    """Add a rule."""
    from sidecar.services.number_rules import add_rule

    body: dict[str, Any] = {
        "plan": plan, "switch": switch, "cucm_cluster": cucm_cluster,
        "direction": _direction(callee, caller), "strip": strip, "add": add,
        "min_length": min_length, "max_length": max_length, "position": position,
    }  # fmt: skip
    echo(
        run(lambda conn: add_rule(conn, actor(), {k: v for k, v in body.items() if v is not None}))
    )


@numbers.command("list")
@_owner_options
@click.option("--callee", is_flag=True)
@click.option("--caller", is_flag=True)
def list_rules(plan, switch, cucm_cluster, callee, caller):  # type: ignore[no-untyped-def]
    """Rules in the order they are tried (every owner's, or one's)."""
    from sidecar.services.number_rules import list_rules as listed

    filters = {"plan": plan, "switch": switch, "cucm_cluster": cucm_cluster,
               "direction": _direction(callee, caller, None)}  # fmt: skip
    echo(run(lambda conn: listed(conn, {k: v for k, v in filters.items() if v}), commit=False))


@numbers.command("update")
@click.argument("rule_id", type=int)
@click.option("--strip", default=None)
@click.option("--add", "add", default=None)
@click.option("--min", "min_length", type=int, default=None)
@click.option("--max", "max_length", type=int, default=None)
def update(rule_id, strip, add, min_length, max_length):  # type: ignore[no-untyped-def]
    """Change a rule's prefixes or lengths."""
    from sidecar.services.number_rules import update_rule

    body = {"strip": strip, "add": add, "min_length": min_length, "max_length": max_length}
    changes = {k: v for k, v in body.items() if v is not None}
    echo(run(lambda conn: update_rule(conn, actor(), rule_id, changes)))


@numbers.command("delete")
@click.argument("rule_id", type=int)
def delete(rule_id: int) -> None:
    from sidecar.services.number_rules import delete_rule

    run(lambda conn: delete_rule(conn, actor(), rule_id))
    click.echo(f"deleted number rule {rule_id}")


@numbers.command("test")
@click.argument("number")
@_owner_options
@click.option("--callee", is_flag=True)
@click.option("--caller", is_flag=True)
def test(number, plan, switch, cucm_cluster, callee, caller):  # type: ignore[no-untyped-def]
    """What NUMBER becomes with a source's and a plan's rules."""
    from sidecar.services.number_rules import normalize

    direction = _direction(callee, caller)
    assert direction is not None
    echo(
        run(
            lambda conn: normalize(
                conn, number, direction, plan=plan, switch=switch, cucm_cluster=cucm_cluster
            ),
            commit=False,
        )
    )
