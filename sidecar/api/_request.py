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
from sidecar.request_guard import InvalidText, text_problem
from sidecar.services.cdr_batcher import CdrBatcher
from sidecar.services.rate_catalog import RateCatalog

# deeper than any request shape of the API (the deepest, import-legacy, is 3 levels)
MAX_JSON_DEPTH = 32


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a key given twice, which value a reader
    takes depends on the reader (Python takes the last), so neither is taken."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            shown = key.encode("unicode_escape").decode("ascii")[:100]
            raise _invalid(f"the key {shown!r} appears more than once in an object")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _invalid(f"{name} is not a JSON number")


def parse_json(data: bytes, check_text: bool = True) -> Any:
    """RFC 8259 JSON, strictly: numbers with a fraction or exponent become Decimal (never
    float), NaN/Infinity and repeated keys are refused, nesting is at most
    ``MAX_JSON_DEPTH`` levels; every string and key must be storable as text (400
    ``invalid_text``) unless ``check_text`` is false (the caller checks the fields it uses).
    Raises ApiError 400 ``invalid_json``."""
    try:
        value = json.loads(
            data or b"null",
            parse_float=Decimal,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:  # the C decoder's own guard, long before the thread's stack
        raise _invalid(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError):
        raise _invalid("the body is not valid JSON") from None
    _check_tree(value, check_text)
    return value


def _check_tree(value: Any, check_text: bool) -> None:
    """Depth, and every string and key storable as text (no NUL, no lone surrogate)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "body")]  # (node, depth, nearest key)
    while stack:
        node, depth, name = stack.pop()
        if isinstance(node, str):
            if check_text and (problem := text_problem(node)) is not None:
                raise InvalidText(f"the JSON value of {name}", problem)
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _invalid(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(node, list):
            stack.extend((item, depth + 1, name) for item in node)
            continue
        for key, item in node.items():
            if check_text and (problem := text_problem(key)) is not None:
                raise InvalidText(f"a JSON key in {name}", problem)
            stack.append((item, depth + 1, key))


def json_object(data: bytes, check_text: bool = True) -> dict[str, Any]:
    """A JSON object (see :func:`parse_json`)."""
    body = parse_json(data, check_text)
    if not isinstance(body, dict):
        raise _invalid("the body must be a JSON object")
    return body


def json_body(check_text: bool = True) -> dict[str, Any]:
    """The JSON object of the request (see :func:`parse_json`)."""
    return json_object(request.get_data(cache=False), check_text)


def settings() -> Settings:
    return current_app.config["SETTINGS"]  # type: ignore[no-any-return]


def catalog() -> RateCatalog:
    return current_app.extensions["apolo_rates"]  # type: ignore[no-any-return]


def cdr_batcher() -> CdrBatcher:
    return current_app.extensions["apolo_cdrs"]  # type: ignore[no-any-return]


def redis_client() -> redis.Redis:
    return redis_for(settings())
