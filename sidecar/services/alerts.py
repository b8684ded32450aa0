"""Low-balance alerts: detection in the charge transaction, webhook delivery after it.

:func:`check_low_balance` runs inside the transaction that moved the balance: when the
balance crosses the account's ``low_balance_threshold`` downward (before >= threshold >
after) it records an alert and queues a webhook in the outbox, in that same transaction,
so an alert exists exactly when the charge committed. Nothing leaves the process there.
Fraud-control alerts (events ``fraud.<control>``) are queued in the same outbox by SQL
(``apolo_fraud_alert_open`` in sql/009_fraud_controls.sql) and delivered the same way.

:func:`deliver_due` (run by ``apolo alerts deliver``, woken by the outbox NOTIFY that
PostgreSQL sends at commit, and polling besides) POSTs the due webhooks to
``APOLO_WEBHOOK_URL`` and retries failures with exponential back-off
(``base * 2**(attempt-1)``, capped) up to ``max_attempts``.

Signature: headers ``X-Apolo-Timestamp`` (unix seconds) and ``X-Apolo-Signature:
sha256=HEX``, HEX = HMAC-SHA256(``APOLO_WEBHOOK_SECRET``, ``"{timestamp}.{body}"``);
``X-Apolo-Delivery`` is the outbox id (stable across retries, for the receiver to
de-duplicate). Without a secret nothing is sent: an unsigned webhook would be forgeable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from sidecar.jsonfmt import rfc3339
from sidecar.repo import alerts as alerts_repo

log = logging.getLogger(__name__)
EVENT = "account.low_balance"


@dataclass(frozen=True)
class WebhookSettings:
    url: str = ""  # APOLO_WEBHOOK_URL; empty: alerts are recorded, nothing is sent
    secret: str = ""  # APOLO_WEBHOOK_SECRET; required to send
    timeout: float = 5.0  # APOLO_WEBHOOK_TIMEOUT, seconds per POST
    max_attempts: int = 10  # APOLO_WEBHOOK_MAX_ATTEMPTS
    retry_base: float = 5.0  # APOLO_WEBHOOK_RETRY_BASE_SECONDS
    retry_max: float = 3600.0  # APOLO_WEBHOOK_RETRY_MAX_SECONDS
    poll: float = 5.0  # APOLO_WEBHOOK_POLL_SECONDS, besides LISTEN/NOTIFY
    batch: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        e = os.environ if env is None else env
        d = cls()
        return cls(
            url=e.get("APOLO_WEBHOOK_URL", d.url),
            secret=e.get("APOLO_WEBHOOK_SECRET", d.secret),
            timeout=float(e.get("APOLO_WEBHOOK_TIMEOUT") or d.timeout),
            max_attempts=int(e.get("APOLO_WEBHOOK_MAX_ATTEMPTS") or d.max_attempts),
            retry_base=float(e.get("APOLO_WEBHOOK_RETRY_BASE_SECONDS") or d.retry_base),
            retry_max=float(e.get("APOLO_WEBHOOK_RETRY_MAX_SECONDS") or d.retry_max),
            poll=float(e.get("APOLO_WEBHOOK_POLL_SECONDS") or d.poll),
        )


# --------------------------------------------------------------------------- pure


def crossed(threshold: Decimal | None, before: Decimal, after: Decimal) -> bool:
    """A downward crossing: at or above the threshold before, below it after."""
    return threshold is not None and before >= threshold > after


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, now: float, skew: int = 300
) -> bool:
    """Receiver side: a valid signature over a timestamp within ``skew`` seconds of now."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > skew:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry number ``attempt`` (1 = after the first failure)."""
    return float(min(cap, base * 2 ** max(attempt - 1, 0)))


# --------------------------------------------------------------------------- detection


def check_low_balance(
    conn: psycopg.Connection[Any], account_id: int, balance_before: Decimal, balance_after: Decimal
) -> int | None:
    """Record an alert and queue its webhook when the balance crossed the threshold
    downward; the alert id, else None. Call it in the transaction that moved the balance."""
    if balance_after >= balance_before:
        return None
    account = alerts_repo.account_for_alert(conn, account_id)
    if account is None:
        return None
    threshold = account["low_balance_threshold"]
    if not crossed(threshold, balance_before, balance_after):
        return None
    alert = alerts_repo.insert_alert(conn, account_id, threshold, balance_before, balance_after)
    payload = {
        "event": EVENT,
        "alert_id": int(alert["id"]),
        "account": account["number"],
        "name": account["name"],
        "threshold": str(threshold),
        "balance_before": str(balance_before),
        "balance_after": str(balance_after),
        "at": rfc3339(alert["created_at"]),
    }
    alerts_repo.enqueue(conn, int(alert["id"]), EVENT, payload)
    return int(alert["id"])


# --------------------------------------------------------------------------- delivery

Post = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the status; raises OSError on a network failure."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def deliver_due(
    conn: psycopg.Connection[Any], settings: WebhookSettings, post: Post = http_post
) -> tuple[int, int]:
    """Send the due webhooks (one transaction, committed here); (delivered, failed)."""
    if not settings.url or not settings.secret:
        return 0, 0
    delivered = failed = 0
    with conn.transaction():
        for item in alerts_repo.claim_due(conn, settings.max_attempts, settings.batch):
            body = json.dumps(item["payload"], sort_keys=True, separators=(",", ":")).encode()
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "apolo-webhooks",
                "X-Apolo-Event": str(item["event"]),
                "X-Apolo-Delivery": str(item["id"]),
                "X-Apolo-Timestamp": str(stamp),
                "X-Apolo-Signature": sign(settings.secret, stamp, body),
            }
            try:
                status = post(settings.url, body, headers, settings.timeout)
                error = "" if 200 <= status < 300 else f"HTTP {status}"
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not error:
                alerts_repo.mark_delivered(conn, int(item["id"]))
                delivered += 1
                continue
            attempt = int(item["attempts"]) + 1
            wait = backoff(attempt, settings.retry_base, settings.retry_max)
            alerts_repo.mark_failed(conn, int(item["id"]), error, wait)
            log.warning(
                "webhook %s attempt %d failed (%s); retry in %.0fs",
                item["id"],
                attempt,
                error,
                wait,
            )
            failed += 1
    return delivered, failed


def delivery_loop(database_url: str, settings: WebhookSettings, stop: threading.Event) -> None:
    """Deliver until ``stop`` is set: on each outbox NOTIFY and every ``poll`` seconds.

    A database error (PostgreSQL restarting, a failover) closes both connections; they are
    opened again, with back-off, wherever ``database_url`` leads then (a multi-host URL
    finds the new primary). What was due meanwhile goes out at the next pass."""
    backoff = 0.5
    while not stop.is_set():
        try:
            with (
                psycopg.connect(database_url, autocommit=True) as listener,
                psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn,
            ):
                listener.execute(f"LISTEN {alerts_repo.NOTIFY_CHANNEL}")
                while not stop.is_set():
                    deliver_due(conn, settings)
                    backoff = 0.5
                    for _ in listener.notifies(timeout=settings.poll, stop_after=1):
                        pass
        except psycopg.Error as exc:
            log.warning("webhook delivery: database unavailable (%s); again in %.1fs", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
