"""Request helpers shared by the blueprints."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import redis
from flask import current_app, request

from sidecar.config import Settings
from sidecar.errors import ApiError
from sidecar.redis_store import redis_for
from sidecar.services.cdr_batcher import CdrBatcher
from sidecar.services.rate_catalog import RateCatalog


def json_body() -> dict[str, Any]:
    """The JSON object of the request; numbers with a fraction become Decimal, never float."""
    try:
        body = json.loads(request.get_data(cache=False) or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def settings() -> Settings:
    return current_app.config["SETTINGS"]  # type: ignore[no-any-return]


def catalog() -> RateCatalog:
    return current_app.extensions["apolo_rates"]  # type: ignore[no-any-return]


def cdr_batcher() -> CdrBatcher:
    return current_app.extensions["apolo_cdrs"]  # type: ignore[no-any-return]


def redis_client() -> redis.Redis:
    return redis_for(settings())
