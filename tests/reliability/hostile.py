"""What the hostile-input tests share: a snapshot of everything a request could change, a raw
HTTP/1.1 client that frames bodies as an attacker likes, and the one assertion they all make.

``requests`` always frames a body it holds whole with Content-Length, and the Flask test
client never goes through gunicorn: to send ``Transfer-Encoding: chunked``, a body shorter
than its Content-Length, or broken chunk framing, the tests speak HTTP over a socket.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from reliability.tally import TALLY

TABLES = ("cdrs", "ledger", "reservations", "audit_log", "rates", "rate_plans", "cucm_files",
          "cucm_cdrs", "accounts", "idempotency_keys", "user_sessions", "fac_codes")  # fmt: skip


def snapshot(db_url: str) -> dict[str, Any]:
    """Row counts of every table a request may write, and the money of every account."""
    with psycopg.connect(db_url) as c:
        counts: dict[str, Any] = {
            t: c.execute(f"SELECT count(*) FROM {t}").fetchone() for t in TABLES
        }
        counts["money"] = c.execute(
            "SELECT sum(balance), sum(reserved), sum(active_calls) FROM accounts"
        ).fetchone()
        counts["balances"] = c.execute(
            "SELECT number, balance, reserved FROM accounts ORDER BY number"
        ).fetchall()
        counts["open"] = c.execute(
            "SELECT count(*) FROM reservations WHERE status = 'open'"
        ).fetchone()
    return counts


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: (before[k], after[k]) for k in before if before[k] != after[k]}


def refused(status: int, before: dict[str, Any], db_url: str, what: object = "") -> None:
    """The assertion of the suite: answered 4xx and nothing changed (counted in the tally)."""
    after = snapshot(db_url)
    TALLY.hostile(status, after != before)
    assert 400 <= status < 500, (what, status)
    assert after == before, (what, _changes(before, after))


def answered_safely(status: int, before: dict[str, Any], db_url: str, what: object = "") -> None:
    """A hostile input answered 2xx on purpose (a call denied, a value escaped): no 5xx and
    nothing changed."""
    after = snapshot(db_url)
    TALLY.hostile(status, after != before, safe=True)
    assert status < 500, (what, status)
    assert after == before, (what, _changes(before, after))


@dataclass
class Answer:
    status: int  # 0: the server closed the connection without answering
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    base_url: str,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
    chunk_size: int = 65536,
    declared_length: int | None = None,
    raw_tail: bytes = b"",
    end_body: bool = True,
    timeout: float = 30.0,
) -> Answer:
    """One request on a fresh connection, framed as asked, then its answer.

    ``chunked``: the body goes as chunks of ``chunk_size`` (and the last, empty chunk unless
    ``end_body`` is false). Otherwise ``Content-Length`` is ``declared_length`` (default:
    the body's length). ``raw_tail`` is written after the body as it is (broken framing).
    With ``end_body`` false the client stops writing (half-close) after what it sent, as a
    client that died mid-upload."""
    parts = urlsplit(base_url)
    head = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + chunk_size]), body[i : i + chunk_size])
            for i in range(0, len(body), chunk_size)
        )
        if end_body:
            payload += b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body) if declared_length is None else declared_length}")
        payload = body
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload + raw_tail
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if not end_body:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed: its answer may still be readable
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> Answer:
    received = bytearray()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except ConnectionResetError:
        pass
    if b"\r\n\r\n" not in received:
        return Answer(0, {}, bytes(received))
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return Answer(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


HOSTILE_ENV = {"APOLO_FAC_KEY": "reliability-fac-key-0123456789",
               "APOLO_SESSION_COOKIE_SECURE": "false"}  # fmt: skip


def only_user(db_url: str, username: str, role: str, password: str, *tables: str) -> None:
    """Leave ``username`` the one dashboard user (sessions, login failures and ``tables``
    emptied with the others)."""
    from sidecar.auth import hash_password
    from sidecar.repo import users as users_repo

    with psycopg.connect(db_url, row_factory=dict_row) as c:
        c.execute(f"TRUNCATE {', '.join(('users', 'user_sessions', 'login_failures', *tables))}"
                  " CASCADE")  # fmt: skip
        users_repo.create(c, username, role, hash_password(password))
        c.commit()


def login_session(url: str, username: str, password: str) -> tuple[dict[str, str], str]:
    """The Cookie header and the CSRF token of a fresh login through ``POST /v1/session``."""
    import requests

    login = requests.post(f"{url}/v1/session", timeout=10,
                          json={"username": username, "password": password})  # fmt: skip
    assert login.status_code == 200, login.text
    cookie = {"Cookie": f"apolo_session={login.cookies['apolo_session']}"}
    return cookie, str(login.json()["csrf_token"])
