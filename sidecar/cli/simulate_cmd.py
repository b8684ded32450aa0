"""``apolo simulate``: play calls against a running sidecar like FreeSWITCH would."""

from __future__ import annotations

import os
import re
from typing import Final

import click

from sidecar.cli.demo_cmd import DEMO_ACCOUNTS, DEMO_PBX_ADDRESS

DEFAULT_URL: Final = "http://127.0.0.1:8080"
# every ANI of the demo accounts (`apolo demo load`), suspended and low-balance ones included
DEFAULT_CALLERS: Final = tuple(ani for account in DEMO_ACCOUNTS for ani in account[4])
# one number per demo rate prefix: 51, 519, 1, 447, 44, 5255, 52, 34
DEFAULT_DESTINATIONS: Final = (
    "5114567890",
    "51987654321",
    "12125550123",
    "447700900123",
    "442079460123",
    "525512345678",
    "523312345678",
    "34911234567",
)
_NUMBER_RE: Final = re.compile(r"\+?[0-9A-Za-z*#._-]{1,64}")


def _numbers(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    numbers = tuple(n.strip() for n in value.split(",") if n.strip())
    bad = [n for n in numbers if _NUMBER_RE.fullmatch(n) is None]
    if not numbers or bad:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}")
    return numbers


@click.command()
@click.option("--calls", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 500), default=4, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Talk seconds per authorized call (capped by its max_duration).",
)
@click.option(
    "--url",
    default=lambda: os.environ.get("APOLO_SIDECAR_URL", DEFAULT_URL),
    show_default=f"APOLO_SIDECAR_URL or {DEFAULT_URL}",
    help="Sidecar base URL.",
)
@click.option(
    "--callers",
    default=",".join(DEFAULT_CALLERS),
    callback=_numbers,
    show_default=True,
    help="Comma-separated caller numbers (ANIs).",
)
@click.option(
    "--destinations",
    default=",".join(DEFAULT_DESTINATIONS),
    callback=_numbers,
    show_default=True,
    help="Comma-separated destination numbers.",
)
@click.option(
    "--source-ip",
    default=DEMO_PBX_ADDRESS,
    show_default=True,
    help="Address the simulated INVITEs come from (sip_network_ip): a trunk must cover it"
    " (apolo demo load declares one that trusts its caller IDs).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Seeds who calls whom and which CDRs are posted twice.",
)
@click.option(
    "--speedup",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Divide every talk time's real sleep by this.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="No call starts after this many seconds.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Calls started per second (0: each worker starts its next call at once).",
)
@click.option(
    "--cdr-retries",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Like mod_xml_cdr's retries: a failed CDR post is tried again this many times.",
)
@click.option(
    "--cdr-retry-delay",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Like mod_xml_cdr's delay: seconds between the tries of a CDR post.",
)
@click.option(
    "--err-log-dir",
    type=click.Path(file_okay=False, writable=True),
    default="",
    help="Like mod_xml_cdr's err-log-dir: where a CDR goes when every try failed"
    " (replay with `apolo cdr replay DIR`).",
)
def simulate(
    calls: int, concurrency: int, duration: float, url: str, callers: tuple[str, ...],
    destinations: tuple[str, ...], source_ip: str, seed: int, speedup: float, timeout: float,
    rate: float, cdr_retries: int, cdr_retry_delay: float, err_log_dir: str,
) -> None:  # fmt: skip
    """Play calls against a running sidecar: authorize, talk, post the CDR.

    About 10% of the CDRs are posted twice to check that the sidecar charges once. With
    --cdr-retries and --err-log-dir the CDR posts fail over as mod_xml_cdr's do.
    Credentials: APOLO_FS_USER (default freeswitch) and APOLO_FS_PASSWORD. Exits 1 when a
    CDR post or an authorize request failed.
    """
    from sidecar.simulator.runner import SimConfig, run

    password = os.environ.get("APOLO_FS_PASSWORD", "")
    if not password:
        raise click.UsageError("APOLO_FS_PASSWORD is not set")
    cfg = SimConfig(
        url=url.rstrip("/"), auth=(os.environ.get("APOLO_FS_USER") or "freeswitch", password),
        calls=calls, concurrency=concurrency, callers=callers, destinations=destinations,
        duration=duration, seed=seed, speedup=speedup, timeout=timeout, source_ip=source_ip,
        rate=rate, cdr_retries=cdr_retries, cdr_retry_delay=cdr_retry_delay, spool_dir=err_log_dir,
    )  # fmt: skip
    summary = run(cfg)
    for line in summary.lines():
        click.echo(line)
    if not summary.ok:
        raise click.exceptions.Exit(1)
