"""The Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response

from sidecar.config import load_settings
from sidecar.db import connect_cli, discard_request, finish_request
from sidecar.errors import register_error_handlers
from sidecar.jsonfmt import ApoloJSONProvider
from sidecar.redis_store import redis_for
from sidecar.request_guard import install as install_request_guard
from sidecar.services import live_calls
from sidecar.services.account_directory import AccountDirectory
from sidecar.services.cdr_batcher import CdrBatcher
from sidecar.services.cdr_ingest import IngestResult
from sidecar.services.rate_catalog import RateCatalog


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_settings(**(overrides or {}))
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    app = Flask(__name__)
    app.json = ApoloJSONProvider(app)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_document_bytes
    directory = AccountDirectory()
    app.extensions["apolo_accounts"] = directory
    app.extensions["apolo_rates"] = RateCatalog(
        lambda: connect_cli(settings.database_url),
        settings.rate_poll_seconds,
        on_accounts_changed=directory.invalidate,
        database_url=settings.database_url,
        index_dir=settings.index_dir,
    )

    def forget_live_calls(results: list[IngestResult]) -> None:
        fresh = [r.uuid for r in results if not r.duplicate]
        if fresh:
            live_calls.remove_many(redis_for(settings), fresh)

    app.extensions["apolo_cdrs"] = CdrBatcher(
        lambda: connect_cli(settings.database_url),
        app.extensions["apolo_rates"],
        on_commit=forget_live_calls,
    )
    register_error_handlers(app)
    install_request_guard(app)  # body limits, storable text, no framing: every route

    from sidecar.api import (
        accounts,
        authorize,
        calls,
        cdrs,
        controls,
        cucm,
        fac,
        freeswitch_cdr,
        freeswitch_dialplan,
        health,
        metrics,
        number_rules,
        openapi,
        rates,
        reports,
        session,
        timings,
        trunks,
    )

    for module in (
        health, authorize, accounts, cdrs, calls, freeswitch_cdr, freeswitch_dialplan, cucm, fac,
        session, openapi, rates, reports, metrics, trunks, controls, timings, number_rules,
    ):  # fmt: skip
        app.register_blueprint(module.bp)

    from sidecar.web import bp as dashboard

    app.register_blueprint(dashboard)  # server-rendered pages under /dashboard

    @app.after_request
    def _commit(response: Response) -> Response:
        # one transaction per request, committed here so no 2xx leaves before the commit;
        # error responses roll back, so a refused request changes nothing
        finish_request(commit=response.status_code < 400)
        return response

    @app.teardown_request
    def _cleanup(_exc: BaseException | None) -> None:
        discard_request()

    return app
