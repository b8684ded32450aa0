"""One switch's control loop: event socket in, reservation extensions and hangup moves out.

The worker keeps its answered calls in memory and mirrors them to the Redis live table, so
a dropped connection loses nothing: it reconnects with back-off, subscribes again, lists the
switch's channels and forgets only the calls that ended meanwhile (their CDRs settle them).
PostgreSQL going away is handled the same way (back-off, reconnect, list again).
Each database unit of work is its own transaction (``pool.connection()`` commits on exit);
commands to the switch are sent only after the commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import redis

from sidecar.control import decide
from sidecar.control.esl import EslConnection, EslError
from sidecar.control.frames import Event, FrameError
from sidecar.control.reconcile import DbConnect, Reconciler, channel_uuids
from sidecar.control.settings import ControlSettings, Switch
from sidecar.freeswitch.commands import uuid_kill_api
from sidecar.repo import control as control_repo
from sidecar.services import live_calls
from sidecar.services.extension import extend_call, paid_time

log = logging.getLogger(__name__)
EVENTS = ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE", "HEARTBEAT")
FINAL = {"reservation_not_found", "reservation_closed", "no_rate", "max_call_seconds"}
FINAL |= {"call_cost_cap"}
DB_RETRY_MAX_SECONDS = 2.0


@dataclass
class Call:
    uuid: str
    account: str
    reservation_id: int
    answered_at: float
    paid_seconds: int
    retry_at: float = 0.0
    killed_at: float = 0.0
    # the reservation grew but the switch has not confirmed the moved hangup yet
    reschedule_pending: bool = False

    def state(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "account": self.account,
            "reservation_id": self.reservation_id,
            "answered_at": f"{self.answered_at:.6f}",
            "max_duration": self.paid_seconds,
        }


class SwitchWorker:
    def __init__(
        self,
        switch: Switch,
        settings: ControlSettings,
        db: DbConnect,
        redis_client: redis.Redis,
        reconciler: Reconciler,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.switch = switch
        self.node = switch.node
        self.cs = settings
        self.policy = settings.policy
        self._db = db
        self._redis = redis_client
        self._reconciler = reconciler
        self._clock = clock
        self.calls: dict[str, Call] = {}
        self.connected = threading.Event()
        self.connections = 0

    # ------------------------------------------------------------------ connection loop
    def run(self, stop: threading.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                conn = EslConnection.open(
                    self.switch.host,
                    self.switch.port,
                    self.switch.password,
                    self.cs.command_timeout,
                )
            except (OSError, EslError) as exc:
                log.warning("%s: connect failed (%s); retrying in %.1fs", self.node, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, self.cs.backoff_max_seconds)
                continue
            self.connections += 1
            db_down = False
            try:
                self.serve(conn, stop)
            except (OSError, EslError, TimeoutError, FrameError) as exc:
                log.warning("%s: connection lost (%s); reconnecting", self.node, exc)
            except psycopg.Error as exc:
                # PostgreSQL is the record: nothing can be decided without it. Start over
                # once it answers (the listing made on reconnect catches up with answers
                # missed meanwhile); the calls in memory are kept.
                log.warning("%s: database unavailable (%s); again in %.1fs", self.node, exc, delay)
                db_down = True
            finally:
                synced = self.connected.is_set()
                conn.close()
                self.connected.clear()
                self._reconciler.forget(self.node)
            if db_down:
                stop.wait(delay)
                # a failover gives a new primary within seconds: look often enough to be
                # back soon after it (the switch's own back-off cap may be far longer)
                delay = min(delay * 2, self.cs.backoff_max_seconds, DB_RETRY_MAX_SECONDS)
            elif synced:
                delay = 0.2

    def serve(self, conn: EslConnection, stop: threading.Event) -> None:
        conn.subscribe(self.cs.event_format, EVENTS, self.cs.command_timeout)
        if not self.calls:
            self._load_calls()
        self.refresh_channels(conn)
        for call in list(self.calls.values()):
            if call.reschedule_pending:  # the connection broke in the middle of a move
                self._reschedule(conn, call)
        self.connected.set()
        log.info("%s: connected, %d live call(s)", self.node, len(self.calls))
        next_tick = 0.0
        next_refresh = time.monotonic() + self.cs.reconcile_seconds
        while not stop.is_set():
            event = conn.next_event(self.cs.tick_seconds)
            if event is not None:
                self.handle(conn, event)
            now = self._clock()
            if now >= next_tick:
                self.tick(conn, now)
                next_tick = now + self.cs.tick_seconds
            if time.monotonic() >= next_refresh:
                self.refresh_channels(conn)
                next_refresh = time.monotonic() + self.cs.reconcile_seconds

    # ------------------------------------------------------------------ events
    def handle(self, conn: EslConnection, event: Event) -> None:
        uuid = event.get("Unique-ID")
        if event.name == "CHANNEL_ANSWER" and uuid:
            self._answered(conn, uuid, event)
        elif event.name == "CHANNEL_HANGUP_COMPLETE" and uuid:
            self._reconciler.note_hangup(uuid)
            call = self.calls.pop(uuid, None)
            if call is not None:
                self._live(lambda: live_calls.remove(self._redis, uuid, self.node))

    def _answered(self, conn: EslConnection, uuid: str, event: Event) -> None:
        if uuid in self.calls:  # already taken over from the channel list
            return
        answered_us = event.get("Caller-Channel-Answered-Time")
        answered_at = (
            int(answered_us) / 1e6
            if answered_us.isdigit() and answered_us != "0"
            else (self._clock())
        )
        self._take_over(conn, uuid, answered_at)

    def _take_over(
        self, conn: EslConnection, uuid: str, answered_at: float, adopted: bool = False
    ) -> None:
        """Manage an answered call from now on: record it, publish it, announce."""
        answered = datetime.fromtimestamp(answered_at, UTC)
        moved = False
        with self._db() as db:
            res = control_repo.reservation_for_control(db, uuid)
            if res is None or res["status"] != "open":
                return  # not a call Apolo reserved for (the other leg, an internal call)
            if not res["max_duration"]:
                # authorization leaves it to us (one round trip fewer on the hot path): the
                # longest call the reservation pays for, as authorize computed it but from
                # the real answer, across the rate changes the call meets
                paid = paid_time(db, res, self.policy.block_seconds, answered)
                if paid is None or not paid.seconds:
                    return
                res["max_duration"], moved = paid.seconds, paid.moved
            control_repo.mark_answered(db, int(res["id"]), self.node, answered)
        call = Call(
            uuid, str(res["account"]), int(res["id"]), answered_at, int(res["max_duration"])
        )
        self.calls[uuid] = call
        self._publish(call)
        if (adopted and int(res["extensions"] or 0) > 0) or moved:
            # extended before we lost sight of it: the switch may still hold the old hangup,
            # or none at all if a worker died between sched_del and sched_hangup; or a rate
            # changes between authorization and the end of the paid time, so the hangup the
            # switch got at authorization (priced as if answered then) may be wrong
            self._reschedule(conn, call)
            return
        left = decide.seconds_left(call.answered_at, call.paid_seconds, self._clock())
        for command in decide.announce_commands(uuid, left, self.policy):
            self._api(conn, command)

    # ------------------------------------------------------------------ periodic work
    def tick(self, conn: EslConnection, now: float) -> None:
        for call in list(self.calls.values()):
            action = decide.next_action(
                call.answered_at, call.paid_seconds, now, self.policy, call.retry_at
            )
            if action == decide.EXTEND:
                self._extend(conn, call, now)
            elif action == decide.KILL and now - call.killed_at > 5:
                self._kill(conn, call, now)

    def _extend(self, conn: EslConnection, call: Call, now: float) -> None:
        grace = timedelta(seconds=self.cs.base.reservation_grace_seconds)
        with self._db() as db:
            ext = extend_call(db, call.uuid, call.paid_seconds, self.policy, grace)
        if not ext.extended:
            final = ext.reason in FINAL
            call.retry_at = float("inf") if final else now + self.cs.retry_seconds
            log.info("%s: no extension for %s (%s)", self.node, call.uuid, ext.reason)
            return
        call.paid_seconds = ext.paid_seconds
        call.reschedule_pending = True
        self._publish(call, reserved=str(ext.amount))
        log.info("%s: extended %s to %ds (+%s)", self.node, call.uuid, ext.paid_seconds, ext.added)
        self._reschedule(conn, call)

    def _reschedule(self, conn: EslConnection, call: Call) -> None:
        left = decide.seconds_left(call.answered_at, call.paid_seconds, self._clock())
        for command in decide.reschedule_commands(call.uuid, left, self.policy):
            self._api(conn, command)
        call.reschedule_pending = False

    def _kill(self, conn: EslConnection, call: Call, now: float) -> None:
        over = now - call.answered_at - call.paid_seconds
        reply = self._api(conn, uuid_kill_api(call.uuid, self.policy.cause))
        call.killed_at = now
        reason = (
            f"still up {over:.1f}s past its paid {call.paid_seconds}s;"
            f" uuid_kill {self.policy.cause} -> {reply.strip()}"
        )
        with self._db() as db:
            control_repo.record(
                db,
                "overrun_killed",
                call.uuid,
                node=self.node,
                reservation_id=call.reservation_id,
                account_id=None,
                amount=None,
                reason=reason,
            )
        log.warning("%s: killed %s: %s", self.node, call.uuid, reason)

    def refresh_channels(self, conn: EslConnection) -> None:
        uuids = channel_uuids(self._api(conn, "show channels as json"))
        for uuid in [u for u in self.calls if u not in uuids]:  # ended while we were away
            self.calls.pop(uuid)
            self._reconciler.note_hangup(uuid)
            self._live(lambda u=uuid: live_calls.remove(self._redis, u, self.node))  # type: ignore[misc]
        self._adopt(conn, uuids)
        self._restore_live()
        self._reconciler.snapshot(self.node, uuids)
        self._reconciler.run()

    def _restore_live(self) -> None:
        """Publish again the calls the live table lost (Redis flushed, or restarted empty)."""
        if not self.calls:
            return
        try:
            listed = cast(set[str], self._redis.smembers(live_calls.node_key(self.node)))
        except redis.RedisError as exc:
            log.warning("%s: live table unavailable (%s)", self.node, exc)
            return
        for call in self.calls.values():
            if call.uuid not in listed:
                self._publish(call)

    def _adopt(self, conn: EslConnection, uuids: set[str]) -> None:
        """Take over reserved calls answered while no CHANNEL_ANSWER could reach us.

        A channel still ringing is left for its CHANNEL_ANSWER; the next listing looks again.
        """
        unmanaged = sorted(u for u in uuids if u not in self.calls)
        if not unmanaged:
            return
        with self._db() as db:
            reserved = control_repo.open_reserved(db, unmanaged)
        for uuid in reserved:
            answered_at = decide.answered_epoch(
                self._api(conn, f"uuid_getvar {uuid} answered_time")
            )
            if answered_at is None or uuid in self.calls:
                continue
            log.info("%s: adopting %s, answered at %.6f", self.node, uuid, answered_at)
            self._take_over(conn, uuid, answered_at, adopted=True)

    # ------------------------------------------------------------------ helpers
    def _api(self, conn: EslConnection, command: str) -> str:
        reply = conn.api(command, self.cs.command_timeout)
        if reply.startswith("-"):
            log.warning("%s: %s -> %s", self.node, command, reply.strip())
        return reply

    def _ttl(self, call: Call) -> int:
        left = call.answered_at + call.paid_seconds - self._clock()
        return max(60, int(left) + self.cs.base.reservation_grace_seconds)

    def _publish(self, call: Call, **extra: str) -> None:
        state = {**call.state(), **extra}
        self._live(
            lambda: live_calls.record_answered(self._redis, self.node, state, self._ttl(call))
        )

    def _live(self, action: Callable[[], None]) -> None:
        try:
            action()
        except redis.RedisError as exc:  # the live table is a view; PostgreSQL stays the record
            log.warning("%s: live table not updated (%s)", self.node, exc)

    def _load_calls(self) -> None:
        try:
            states = live_calls.for_node(self._redis, self.node)
        except redis.RedisError as exc:
            log.warning("%s: live table unavailable at start (%s)", self.node, exc)
            return
        for s in states:
            try:
                self.calls[s["uuid"]] = Call(
                    s["uuid"],
                    s.get("account", ""),
                    int(s["reservation_id"]),
                    float(s["answered_at"]),
                    int(s["max_duration"]),
                    # the worker before us may have died in the middle of a move, leaving the
                    # switch without a hangup: put it where the paid time ends
                    reschedule_pending=True,
                )
            except (KeyError, ValueError):
                log.warning("%s: unreadable live call %r skipped", self.node, s.get("uuid"))
