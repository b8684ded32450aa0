"""``apolo cucm devices``: which destination devices a site's CDRs name, and which are billed.

CUCM names gateways' MGCP endpoints itself; trunks, H.323 gateways and everything else are
named by the site's administrators. Before trusting ``APOLO_CUCM_BILLABLE_DEVICES``, list
the devices a day of CDR files (or what is already stored) sends calls to, and check that
the pattern takes the PSTN ones and nothing internal.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import click

from sidecar.cucm.errors import CucmFileError
from sidecar.cucm.flatfile import parse_flat_file
from sidecar.cucm.records import END_CALL_RECORD, cdr_records
from sidecar.services.cucm_settings import load_cucm_settings


def _from_files(paths: tuple[Path, ...]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for path in paths:
        try:
            records = cdr_records(parse_flat_file(path.read_bytes(), "cdr"))
        except CucmFileError as exc:
            raise click.ClickException(f"{path}: {exc}") from None
        seen.update(r.dest_device for r in records if r.record_type == END_CALL_RECORD)
    return seen


def _from_database() -> Counter[str]:
    from sidecar.db import connect_cli
    from sidecar.repo import cucm as cucm_repo

    with connect_cli() as conn:
        rows = cucm_repo.destination_devices(conn)
    return Counter({r["device"]: int(r["calls"]) for r in rows})


@click.command("devices")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pattern", default=None, help="try this regex instead of the configured one")
def devices(files: tuple[Path, ...], pattern: str | None) -> None:
    """List the destDeviceName values of end-of-call records (in FILES, else in the
    database) with their call counts, and whether the billable-devices pattern bills them."""
    try:
        regex = re.compile(pattern) if pattern else load_cucm_settings().billable_devices
    except (re.error, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--pattern") from None
    seen = _from_files(files) if files else _from_database()
    click.echo(f"pattern: {regex.pattern}")
    click.echo("billed\tcalls\tdevice")
    for device, calls in sorted(seen.items(), key=lambda item: (-item[1], item[0])):
        billed = "yes" if device and regex.search(device) else "no"
        click.echo(f"{billed}\t{calls}\t{device or '(none)'}")
