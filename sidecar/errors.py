"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from sidecar.metrics import ERRORS

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        if request.blueprint == "web" and exc.status < 500:  # a dashboard page: a page
            return render_template("error.html", message=exc.message), exc.status
        response = jsonify(error_body(exc.code, exc.message, exc.details))
        response.status_code = exc.status
        if exc.status >= 500:
            ERRORS.labels(exc.code).inc()
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = exc.details.get("scheme", "Bearer")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:  # werkzeug's form limits: the same code as the body limit's
            code = "body_too_large"
        response = jsonify(error_body(code, exc.description or exc.name or "error"))
        response.status_code = exc.code or 500
        if response.status_code >= 500:
            ERRORS.labels(code).inc()
        return response

    @app.errorhandler(psycopg.OperationalError)
    def _db_down(exc: psycopg.OperationalError):  # type: ignore[no-untyped-def]
        log.error("database unavailable: %s", exc)
        ERRORS.labels("database_unavailable").inc()
        response = jsonify(error_body("database_unavailable", "the database is unavailable"))
        response.status_code = 503
        return response

    @app.errorhandler(psycopg.DataError)
    def _bad_value(exc: psycopg.DataError):  # type: ignore[no-untyped-def]
        # A value PostgreSQL refused (out of range, not storable): the request's fault, and
        # its transaction rolls back. The checks before SQL should have caught it: log it.
        log.warning("value refused by the database: %s", exc)
        response = jsonify(error_body("invalid_value", "a value is out of range or invalid"))
        response.status_code = 400
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error")
        ERRORS.labels("internal_error").inc()
        response = jsonify(error_body("internal_error", "internal error"))
        response.status_code = 500
        return response
