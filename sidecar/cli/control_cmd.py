"""``apolo control``: the long-running mid-call control process (one per deployment)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click


@click.command("control")
def control() -> None:
    """Hold an event-socket connection to each APOLO_FREESWITCH switch; extend, warn, cut."""
    from sidecar.control.runner import Controller
    from sidecar.control.settings import load_control_settings

    try:
        settings = load_control_settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=settings.base.log_level,
        format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    try:
        controller = Controller(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    done = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    controller.start()
    click.echo(f"apolo control: {len(controller.workers)} switch(es)")
    done.wait()
    controller.stop()
