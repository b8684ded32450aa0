"""``apolo cdr replay``: post the CDRs mod_xml_cdr spooled to its err-log-dir.

A file goes exactly as FreeSWITCH would have posted it (same encoding, same ``uuid`` query,
``a_`` prefix included) and is deleted only after a 2xx, i.e. after the sidecar committed it;
the sidecar is idempotent per call leg, so replaying a file twice charges once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote_to_bytes

import click
import requests

from sidecar.freeswitch.xml_cdr import (
    CT_BASE64,
    CT_TEXTXML,
    CT_URLENCODED,
    SPOOL_SUFFIX,
    CdrDecodeError,
    decode_spooled_file,
)

DEFAULT_URL: Final = "http://127.0.0.1:8080"
REJECTED_DIR: Final = "rejected"
CDR_PATH: Final = "/freeswitch/cdr"
TIMEOUT: Final = (5.0, 60.0)  # connect, read
# 4xx answers about the request rather than the document (credentials, URL, throttling):
# the file is fine, so it stays; and every other file would get the same answer.
STOP_STATUSES: Final = frozenset({401, 403, 404, 405, 407, 421})
RETRY_STATUSES: Final = frozenset({408, 425, 429})
MAX_TRANSPORT_ERRORS: Final = 5  # in a row: the sidecar is down, stop trying

Kind = Literal["accepted", "duplicate", "rejected", "failed", "gone"]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    detail: str = ""
    transport_error: bool = False
    stop: bool = False


@dataclass
class ReplayStats:
    counts: dict[str, int] = field(default_factory=dict)
    not_tried: int = 0
    stopped: str = ""

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def __getitem__(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    @property
    def ok(self) -> bool:
        return not (self["rejected"] or self["failed"] or self.not_tried)

    def summary(self) -> str:
        line = (
            f"accepted {self['accepted']}, duplicates {self['duplicate']}, "
            f"rejected {self['rejected']}, failed {self['failed']}"
        )
        if self.stopped:
            line += f"; stopped early ({self.stopped}), {self.not_tried} file(s) not tried"
        return line


def spooled_files(directory: Path) -> Iterator[Path]:
    """The ``*.cdr.xml`` files of ``directory``, one at a time (no listing held in memory)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(SPOOL_SUFFIX) and entry.is_file(follow_symlinks=False):
                yield Path(entry.path)


def wire_request(name: str, data: bytes) -> tuple[str, str, bytes]:
    """(uuid query value, content type, body) of the POST FreeSWITCH made for this file.

    The adapter decodes the file; comparing its result with the file tells the encoding.
    """
    post = decode_spooled_file(name, data)
    query = name[: -len(SPOOL_SUFFIX)]
    if post.xml == data:
        return query, CT_TEXTXML, data
    text = data.strip()
    if unquote_to_bytes(text) == post.xml:
        return query, CT_URLENCODED, b"cdr=" + text
    return query, CT_BASE64, b"cdr=" + text


def reject(path: Path, reason: str) -> Path:
    """Move a permanently bad file to ``rejected/`` with a ``.reason`` beside it (never delete)."""
    target_dir = path.parent / REJECTED_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    n = 0
    while target.exists():
        n += 1
        target = target_dir / f"{path.name}.{n}"
    path.rename(target)
    target.with_name(target.name + ".reason").write_text(reason.rstrip() + "\n", "utf-8")
    return target


def _duplicate(resp: requests.Response) -> bool:
    try:
        return resp.json().get("duplicate") is True
    except (ValueError, AttributeError):
        return False


def replay_file(session: requests.Session, url: str, path: Path, keep: bool) -> Outcome:
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # another replay took it
        return Outcome("gone")
    try:
        query, content_type, body = wire_request(path.name, data)
    except CdrDecodeError as exc:
        reject(path, f"not a mod_xml_cdr spool file: {exc}")
        return Outcome("rejected", str(exc))
    try:
        resp = session.post(
            url, params={"uuid": query}, data=body,
            headers={"Content-Type": content_type}, timeout=TIMEOUT,
        )  # fmt: skip
    except requests.RequestException as exc:
        return Outcome("failed", f"{type(exc).__name__}: {exc}", transport_error=True)
    status = resp.status_code
    if 200 <= status < 300:
        if not keep:
            path.unlink(missing_ok=True)
        return Outcome("duplicate" if _duplicate(resp) else "accepted")
    detail = f"HTTP {status} from {resp.url}: {resp.text[:2000]}"
    if status in STOP_STATUSES:
        return Outcome("failed", detail, stop=True)
    if 400 <= status < 500 and status not in RETRY_STATUSES:
        reject(path, detail)
        return Outcome("rejected", detail)
    return Outcome("failed", detail)


def replay_dir(directory: Path, url: str, auth: tuple[str, str], keep: bool = False) -> ReplayStats:
    stats = ReplayStats()
    endpoint = url.rstrip("/") + CDR_PATH
    transport_errors = 0
    files = spooled_files(directory)
    with requests.Session() as session:
        session.auth = auth
        for path in files:
            outcome = replay_file(session, endpoint, path, keep)
            stats.add(outcome.kind)
            if outcome.kind in ("rejected", "failed"):
                click.echo(f"{outcome.kind} {path.name}: {outcome.detail}", err=True)
            transport_errors = transport_errors + 1 if outcome.transport_error else 0
            if outcome.stop or transport_errors >= MAX_TRANSPORT_ERRORS:
                stats.stopped = outcome.detail.split("\n", 1)[0][:200]
                stats.not_tried = sum(1 for _ in files)
                break
    return stats


@click.group()
def cdr() -> None:
    """CDRs."""


@cdr.command("replay")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--url",
    default=lambda: os.environ.get("APOLO_SIDECAR_URL", DEFAULT_URL),
    show_default=f"APOLO_SIDECAR_URL or {DEFAULT_URL}",
    help="Sidecar base URL.",
)
@click.option("--keep", is_flag=True, help="Do not delete the files the sidecar accepted.")
@click.option(
    "--direct",
    is_flag=True,
    help="Straight into PostgreSQL (DATABASE_URL), in batches: for big backlogs.",
)
@click.option("--batch", default=2000, show_default=True, help="CDRs per transaction (--direct).")
@click.option("--jobs", default=0, help="Parsing processes (--direct); default: one per CPU.")
def replay(directory: Path, url: str, keep: bool, direct: bool, batch: int, jobs: int) -> None:
    """Post every *.cdr.xml of a mod_xml_cdr err-log-dir DIRECTORY to the sidecar.

    Accepted files are deleted, files the sidecar refuses (4xx) move to DIRECTORY/rejected/
    with a .reason file, and the rest (5xx, sidecar unreachable) stay for the next run.
    Credentials: APOLO_FS_USER (default freeswitch) and APOLO_FS_PASSWORD.

    With --direct the files skip HTTP: they are parsed by a pool of processes and stored
    and charged by the sidecar's own intake code, a batch per transaction, deleted only
    after its commit (same database settings as the sidecar).
    """
    if direct:
        from sidecar.cli.cdr_bulk import replay_direct
        from sidecar.config import load_settings

        if batch < 1:
            raise click.UsageError("--batch must be at least 1")
        result = replay_direct(spooled_files(directory), load_settings(), batch, jobs or None, keep)
        click.echo(result.summary())
        if result.rejected:
            raise click.exceptions.Exit(1)
        return
    password = os.environ.get("APOLO_FS_PASSWORD", "")
    if not password:
        raise click.UsageError("APOLO_FS_PASSWORD is not set")
    auth = (os.environ.get("APOLO_FS_USER") or "freeswitch", password)
    stats = replay_dir(directory, url, auth, keep)
    click.echo(stats.summary())
    if not stats.ok:
        raise click.exceptions.Exit(1)
