"""Wire the workers of every configured switch together (used by ``apolo control``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sidecar.control.reconcile import Reconciler
from sidecar.control.settings import ControlSettings
from sidecar.control.worker import SwitchWorker
from sidecar.db import pool_for
from sidecar.redis_store import redis_for


class Controller:
    def __init__(self, settings: ControlSettings, clock: Callable[[], float] | None = None) -> None:
        if not settings.switches:
            raise ValueError("APOLO_FREESWITCH names no switch (host:port:password,...)")
        base = settings.base
        pool = pool_for(base.database_url, max(2, len(settings.switches) + 1), base.db_timeout)
        extra = {} if clock is None else {"clock": clock}
        self.reconciler = Reconciler(
            [s.node for s in settings.switches],
            pool.connection,
            settings.reconcile_grace_seconds,
            max_snapshot_age=2 * settings.reconcile_seconds + 5,
            **extra,
        )
        redis_client = redis_for(base)
        self.workers = [
            SwitchWorker(s, settings, pool.connection, redis_client, self.reconciler, **extra)
            for s in settings.switches
        ]
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            thread = threading.Thread(
                target=worker.run, args=(self.stop_event,), name=f"esl-{worker.node}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
