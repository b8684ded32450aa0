"""``apolo cucm``: the CDR Repository drop-directory listener and FAC management.

``watch DIR`` is its own long-running process. The directory is the only state: a file
stays in DIR until the sidecar has committed it (2xx), then moves to DIR/archive/; a
file the sidecar refuses for good (4xx about the file) moves to DIR/failed/ with a
``.reason`` file. A restart therefore picks up exactly the files not yet archived; a file
posted but not yet moved when the process died is posted again, and the sidecar answers
"duplicate" without charging twice.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Final, Literal

import click
import requests

DEFAULT_URL: Final = "http://127.0.0.1:8080"
ARCHIVE_DIR: Final = "archive"
FAILED_DIR: Final = "failed"
CUCM_PATH: Final = "/cucm/cdr"
NAME_HEADER: Final = "X-Apolo-File-Name"
TIMEOUT: Final = (5.0, 120.0)  # connect, read
# answers about the request, not the file (credentials, URL, throttling): the file stays
KEEP_STATUSES: Final = frozenset({401, 403, 404, 405, 407, 408, 421, 425, 429})

Kind = Literal["archived", "failed", "retry", "gone"]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    detail: str = ""


def _move(path: Path, folder: str) -> Path:
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    n = 0
    while target.exists():
        n += 1
        target = target_dir / f"{path.name}.{n}"
    path.rename(target)
    return target


@dataclass
class Watcher:
    directory: Path
    url: str
    token: str
    settle_seconds: float = 2.0
    max_backoff: float = 30.0
    session: requests.Session = field(default_factory=requests.Session)
    # name -> (size, mtime_ns, monotonic time this size/mtime was first seen)
    _seen: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    backoff: float = 0.0
    stopping: bool = False

    def pending(self) -> tuple[list[Path], int]:
        """(files that stopped growing, in name order; count of those still settling)."""
        now = time.monotonic()
        ready: list[Path] = []
        names = set()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(("_", ".")) or not entry.is_file(follow_symlinks=False):
                    continue
                names.add(entry.name)
                st = entry.stat(follow_symlinks=False)
                previous = self._seen.get(entry.name)
                if previous is None or previous[:2] != (st.st_size, st.st_mtime_ns):
                    self._seen[entry.name] = (st.st_size, st.st_mtime_ns, now)
                elif now - previous[2] >= self.settle_seconds:
                    ready.append(Path(entry.path))
        for gone in set(self._seen) - names:
            del self._seen[gone]
        ready.sort(key=lambda p: p.name)
        return ready, len(names) - len(ready)

    def post(self, path: Path) -> Outcome:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return Outcome("gone")
        try:
            resp = self.session.post(
                self.url.rstrip("/") + CUCM_PATH,
                data=data,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    NAME_HEADER: path.name,
                    "Content-Type": "application/octet-stream",
                },
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            return Outcome("retry", f"sidecar unreachable: {type(exc).__name__}")
        status = resp.status_code
        if 200 <= status < 300:
            _move(path, ARCHIVE_DIR)
            self._seen.pop(path.name, None)
            return Outcome("archived", resp.text[:300])
        detail = f"HTTP {status}: {resp.text[:4000]}"
        if 400 <= status < 500 and status not in KEEP_STATUSES:
            target = _move(path, FAILED_DIR)
            target.with_name(target.name + ".reason").write_text(detail + "\n", "utf-8")
            self._seen.pop(path.name, None)
            return Outcome("failed", detail)
        return Outcome("retry", detail)

    def cycle(self) -> tuple[dict[str, int], int]:
        """Post every settled file; stop at the first retryable failure (back-off)."""
        counts: dict[str, int] = {}
        ready, settling = self.pending()
        for path in ready:
            if self.stopping:
                break
            outcome = self.post(path)
            counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
            if outcome.kind == "archived":
                click.echo(f"archived {path.name}: {outcome.detail}")
            elif outcome.kind == "failed":
                click.echo(f"failed {path.name}: {outcome.detail}", err=True)
            if outcome.kind == "retry":
                self.backoff = min(max(self.backoff * 2, 0.5), self.max_backoff)
                click.echo(
                    f"retry {path.name} in {self.backoff:.1f}s: {outcome.detail[:300]}", err=True
                )
                return counts, settling + 1
            self.backoff = 0.0
        return counts, settling

    def run(self, poll_seconds: float, once: bool) -> int:
        """Loop until stopped; with ``once``, until nothing is left (0) or a retry (1)."""
        while not self.stopping:
            counts, left = self.cycle()
            if once and counts.get("retry"):
                return 1
            if once and left == 0:
                return 0
            pause = self.backoff or (
                min(poll_seconds, self.settle_seconds) if once else poll_seconds
            )
            deadline = time.monotonic() + pause
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
        return 0


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@click.group()
def cucm() -> None:
    """Cisco CUCM: CDR file intake and Forced Authorization Codes."""


@cucm.command("watch")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--url",
    default=lambda: os.environ.get("APOLO_SIDECAR_URL", DEFAULT_URL),
    show_default=f"APOLO_SIDECAR_URL or {DEFAULT_URL}",
)
@click.option(
    "--settle",
    type=float,
    default=lambda: _env_float("APOLO_CUCM_SETTLE_SECONDS", 2.0),
    show_default="2.0 (APOLO_CUCM_SETTLE_SECONDS)",
    help="Seconds a file's size and mtime must stay the same before it is taken.",
)
@click.option(
    "--poll",
    type=float,
    default=lambda: _env_float("APOLO_CUCM_POLL_SECONDS", 1.0),
    show_default="1.0 (APOLO_CUCM_POLL_SECONDS)",
)
@click.option(
    "--max-backoff",
    type=float,
    default=lambda: _env_float("APOLO_CUCM_MAX_BACKOFF", 30.0),
    show_default="30.0 (APOLO_CUCM_MAX_BACKOFF)",
)
@click.option("--once", is_flag=True, help="Exit once DIR is empty (0) or on a retry (1).")
def watch(
    directory: Path, url: str, settle: float, poll: float, max_backoff: float, once: bool
) -> None:
    """Post the CDR/CMR files CUCM's CDR Repository pushes into DIRECTORY to the sidecar.

    Files starting with "_" or "." are ignored (still being written). The bearer token
    (role switch) comes from APOLO_CUCM_TOKEN.
    """
    token = os.environ.get("APOLO_CUCM_TOKEN", "")
    if not token:
        raise click.UsageError("APOLO_CUCM_TOKEN is not set (a token of role switch)")
    watcher = Watcher(directory, url, token, settle, max_backoff)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        watcher.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"watching {directory} -> {url}{CUCM_PATH}")
    raise click.exceptions.Exit(watcher.run(poll, once))


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


def _run_fac(action: str, **kwargs: object) -> object:
    """Run one FAC service call in its own committed transaction; ApiError -> click error."""
    from sidecar.db import connect_cli
    from sidecar.errors import ApiError
    from sidecar.services import cucm_fac
    from sidecar.services.cucm_settings import load_cucm_settings

    with connect_cli() as conn:
        try:
            if action == "create":
                result: object = cucm_fac.create(
                    conn, load_cucm_settings(), actor=_actor(), **kwargs
                )
            elif action == "delete":
                result = cucm_fac.delete(conn, actor=_actor(), **kwargs)  # type: ignore[arg-type]
            else:
                result = cucm_fac.list_codes(conn, **kwargs)  # type: ignore[arg-type]
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        conn.commit()
    return result


@cucm.group("fac")
def fac() -> None:
    """Forced Authorization Codes (stored as HMAC under APOLO_FAC_KEY, never in clear)."""


@fac.command("create")
@click.option("--account", required=True, help="account number the code bills")
@click.option("--name", required=True, help="FAC name (CUCM's authCodeDescription)")
@click.option("--level", type=click.IntRange(0, 255), default=0, show_default=True)
@click.option("--code", prompt=True, hide_input=True, help="the code (prompted when omitted)")
def fac_create(account: str, name: str, level: int, code: str) -> None:
    """Register a FAC; the code is read from the prompt so it stays out of shell history."""
    created = _run_fac("create", code=code.strip(), name=name, level=level, account=account)
    assert isinstance(created, dict)
    click.echo(f"FAC {created['id']} {created['name']!r} ({created['code']}) -> {account}")


@fac.command("list")
@click.option("--account", default=None)
def fac_list(account: str | None) -> None:
    """List FACs (last digits only)."""
    rows = _run_fac("list", account=account)
    assert isinstance(rows, list)
    for row in rows:
        click.echo(f"{row['id']}\t{row['code']}\t{row['name']}\t{row['level']}\t{row['account']}")


@fac.command("delete")
@click.argument("fac_id", type=int)
def fac_delete(fac_id: int) -> None:
    """Delete a FAC by id."""
    deleted = _run_fac("delete", fac_id=fac_id)
    assert isinstance(deleted, dict)
    click.echo(f"deleted FAC {fac_id} {deleted['name']!r}")


if __name__ == "__main__":  # ``python -m sidecar.cli.cucm_cmd watch DIR`` before registration
    cucm()
