"""GET /v1/openapi.json: the OpenAPI 3.1 description of every route of the app.

The skeleton comes from the app itself (paths, methods, path parameters and their types,
the roles each route's ``require`` allows); what a person must write — summaries, query
parameters, request bodies — comes from :data:`OPERATIONS`, one entry per route.
``tests/api/test_openapi.py`` fails when a route has no entry or an entry no route.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from werkzeug.routing import Rule

from sidecar.api.controls import OPERATIONS as CONTROL_OPERATIONS
from sidecar.api.number_rules import RULE_BODY, RULE_UPDATE
from sidecar.api.rates import PLAN_BODY, PLAN_UPDATE, RATE_BODY, RATE_UPDATE
from sidecar.api.timings import TIMING_BODY, TIMING_UPDATE
from sidecar.auth import FREESWITCH_PREFIX, require
from sidecar.freeswitch.caller_facts import IDENTITY_VARIABLES

bp = Blueprint("openapi", __name__, url_prefix="/v1")

Json = dict[str, Any]
UNDESCRIBED_ENDPOINTS = frozenset({"static"})  # files, not API operations
_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")
_TYPES: dict[str, Json] = {"int": {"type": "integer", "minimum": 0}, "float": {"type": "number"}}


def _q(name: str, description: str, schema: Json | None = None, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _json_body(schema: Json, required: bool = True) -> Json:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


MONEY: Json = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,4})?$", "examples": ["10.00"]}
TIMESTAMP: Json = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339, UTC",
    "examples": ["2026-12-05T11:19:59.123456Z"],
}
IDEMPOTENCY_KEY: Json = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A retry with the same key and request answers the stored response and "
    "moves no money (header Idempotent-Replayed: true); the same key with a different "
    "request is a 409. Keys are scoped per caller.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_ACCOUNT_FIELDS: Json = {
    "name": {"type": "string"},
    "plan": {"type": "string"},
    "type": {"enum": ["prepaid", "postpaid"]},
    "status": {"enum": ["active", "suspended", "closed"]},
    "credit_limit": MONEY,
    "max_calls": {"type": ["integer", "null"], "minimum": 1},
    "low_balance_threshold": {"oneOf": [MONEY, {"type": "null"}]},
    "anis": {"type": "array", "items": {"type": "string"}},
    "sip_users": {
        "type": "array",
        "items": {"type": "string", "examples": ["1001@pbx.example"]},
        "description": "authenticated SIP users (digest username @ directory domain) this "
        "account pays for; each belongs to one account",
    },
}
_TIME_RANGE = [
    _q("from", "start (inclusive)", TIMESTAMP, required=True),
    _q("to", "end (exclusive)", TIMESTAMP, required=True),
]
_CDR_FILTERS = [
    _q("from", "start_at on or after", TIMESTAMP),
    _q("to", "start_at before", TIMESTAMP),
    _q("account", "account number"),
    _q("caller", "caller number"),
    _q("callee", "callee number"),
    _q("destination", "destination prefix (digits)"),
    _q("hangup_cause", "FreeSWITCH hangup cause"),
    _q("answered", "true or false", {"type": "boolean"}),
    _q("min_cost", "cost at least", MONEY),
    _q("source", "freeswitch or cucm"),
    _q("billing_status", "charged, unanswered, unrated or not_billed"),
    _q("uuid", "call uuid"),
]
_FILE_BODY: Json = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
            "schema": {"type": "string", "contentEncoding": "binary"}
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "contentEncoding": "binary"}},
                "required": ["file"],
            }
        },
    },
}

_NULLABLE_TIMESTAMP: Json = {"oneOf": [TIMESTAMP, {"type": "null"}]}
_CDR: Json = {
    "type": "object",
    "properties": {
        "call_uuid": {"type": "string"},
        "leg": {"type": "string"},
        "account": {"type": ["string", "null"]},
        "start_at": TIMESTAMP,
        "answer_at": _NULLABLE_TIMESTAMP,
        "end_at": _NULLABLE_TIMESTAMP,
        "received_at": TIMESTAMP,
        "billsec": {"type": "integer"},
        "billed_seconds": {"type": ["integer", "null"]},
        "cost": {**MONEY, "description": "0.0000 when nobody was charged"},
        "billing_status": {"type": "string"},
        "caller": {"type": ["string", "null"], "description": "as the switch sent it"},
        "caller_normalized": {"type": ["string", "null"], "description": "E.164 digits"},
        "callee": {"type": ["string", "null"], "description": "as the switch sent it"},
        "destination": {"type": ["string", "null"], "description": "the callee as rated"},
        "spans": {
            "type": "array",
            "description": "the call priced in spans (a rate each); [] when nothing was",
            "items": {
                "type": "object",
                "properties": {
                    "rate_id": {"type": "integer"},
                    "start": TIMESTAMP,
                    "seconds": {"type": "integer"},
                    "rate_per_minute": {"type": "string"},
                    "amount": {"type": "string", "description": "seconds x rate / 60, 6 decimals"},
                },
            },
        },
    },
}

# (OpenAPI path, method) -> the hand-written part of the operation
OPERATIONS: dict[tuple[str, str], Json] = {
    ("/healthz", "get"): {"summary": "Health of PostgreSQL, Redis and the rate watcher"},
    ("/metrics", "get"): {
        "summary": "Prometheus counters: authorizations by result/reason, CDRs by billing "
        "status, errors by code (e.g. database_unavailable); no authentication"
    },
    ("/v1/openapi.json", "get"): {"summary": "This description"},
    ("/v1/session", "post"): {
        "summary": "Dashboard login: sets the session cookie, answers the CSRF token",
        "description": "HttpOnly, SameSite=Strict cookie; cookie-authenticated POST, PATCH "
        "and DELETE requests must send the token in X-CSRF-Token. Failed logins are limited "
        "per username and address (429 with Retry-After). Only Content-Type: "
        "application/json (else 415); a cross-site browser request is refused (403).",
        "requestBody": _json_body(
            {
                "type": "object",
                "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
            }
        ),
    },
    ("/v1/session", "get"): {"summary": "The caller, and the session's CSRF token"},
    ("/v1/session", "delete"): {"summary": "Logout: ends the session, clears the cookie"},
    ("/v1/authorize", "post"): {
        "summary": "May this call connect, for how long (reserves the money)",
        "description": "The hook sends the call and the channel variables that say who is "
        "calling; the sidecar decides who pays (accountcode of an authenticated user, "
        "authenticated SIP user, or declared trunk), or refuses with unidentified_caller. "
        "A string no call can have (empty, over 128 characters, a NUL byte, bytes that are not "
        "UTF-8), in a field or a variable, is answered with a denial (reason invalid_request), "
        "never a 4xx: the hook would let the call through on a non-200 when it fails open.",
        "requestBody": _json_body(
            {
                "type": "object",
                "required": ["uuid", "caller", "callee"],
                "properties": {
                    **{k: {"type": "string"} for k in ("uuid", "caller", "callee")},
                    "switch": {"type": "string", "description": "whose number rules apply"},
                    "variables": {
                        "type": "object",
                        "maxProperties": 64,
                        "description": "channel variables; only these count: "
                        + ", ".join(IDENTITY_VARIABLES),
                        "properties": {
                            v: {"type": "string", "maxLength": 512} for v in IDENTITY_VARIABLES
                        },
                        "additionalProperties": {"type": "string", "maxLength": 512},
                    },
                },
            }
        ),
    },
    ("/freeswitch/cdr", "post"): {
        "summary": "mod_xml_cdr posts a CDR (form, base64, plain text or XML)",
        "parameters": [_q("uuid", "the call uuid mod_xml_cdr appends")],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "text/xml": {"schema": {"type": "string"}},
            },
        },
    },
    ("/freeswitch/dialplan", "post"): {
        "summary": "mod_xml_curl dialplan binding: bridge with a scheduled hangup, or reject",
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
        },
        "x-response-content-type": "text/xml",
    },
    ("/cucm/cdr", "post"): {
        "summary": "A CUCM CDR or CMR flat file from the CDR Repository",
        "parameters": [_q("name", "the file name (or header X-Apolo-File-Name)")],
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
    ("/v1/accounts", "get"): {
        "summary": "List accounts by number (keyset pages)",
        "parameters": [
            _q("status", "active, suspended or closed"),
            _q("type", "prepaid or postpaid"),
            _q("plan", "rate plan name"),
            _q("q", "number prefix or name substring (any case)"),
            _q("after", "the `next` of the previous page"),
            _q("limit", "1-500, default 50", {"type": "integer", "minimum": 1, "maximum": 500}),
        ],
    },
    ("/v1/accounts", "post"): {
        "summary": "Create an account (audited)",
        "requestBody": _json_body(
            {
                "type": "object",
                "required": ["number", "plan", "type"],
                "properties": {"number": {"type": "string"}, "balance": MONEY, **_ACCOUNT_FIELDS},
            }
        ),
    },
    ("/v1/accounts/{number}", "get"): {
        "summary": "An account with its open reservations and latest ledger rows"
    },
    ("/v1/accounts/{number}", "patch"): {
        "summary": "Update plan, type, credit limit, status, ANIs, max calls, threshold (audited)",
        "requestBody": _json_body(
            {
                "type": "object",
                "minProperties": 1,
                "properties": _ACCOUNT_FIELDS,
                "additionalProperties": False,
            }
        ),
    },
    ("/v1/accounts/{number}/suspend", "post"): {"summary": "Suspend: new calls are refused"},
    ("/v1/accounts/{number}/reactivate", "post"): {"summary": "Reactivate a suspended account"},
    ("/v1/accounts/{number}/recharges", "post"): {
        "summary": "Recharge (ledger row and audit entry)",
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": _json_body(
            {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": MONEY, "note": {"type": "string", "maxLength": 500}},
            }
        ),
    },
    ("/v1/accounts/bulk-recharges", "post"): {
        "summary": "Bulk recharge from CSV or XLSX: all rows or none, bad rows listed by line",
        "description": "Columns account (or extension), amount, optional note. 422 lists "
        "every bad row and changes nothing; `dry_run=true` answers the preview.",
        "parameters": [
            IDEMPOTENCY_KEY,
            _q("dry_run", "validate and preview only", {"type": "boolean"}),
            _q("note", "ledger note of rows without one"),
        ],
        "requestBody": _FILE_BODY,
    },
    ("/v1/calls/active", "get"): {
        "summary": "Live calls from Redis",
        "parameters": [_q("node", "host:port of one switch")],
    },
    ("/v1/cdrs", "get"): {
        "summary": "CDRs newest first, filtered, keyset pages (`cursor` = `next_cursor`)",
        "parameters": [
            *_CDR_FILTERS,
            _q("limit", "1-1000", {"type": "integer"}),
            _q("cursor", "next_cursor", {"type": "integer"}),
        ],
        "response": {
            "type": "object",
            "properties": {
                "cdrs": {"type": "array", "items": _ref("Cdr")},
                "next_cursor": {"type": ["integer", "null"]},
            },
        },
    },
    ("/v1/cdrs/{call_uuid}", "get"): {"summary": "The legs of one call with their ledger rows"},
    ("/v1/cdrs/export.csv", "get"): {
        "summary": "CDRs as CSV, streamed",
        "parameters": _CDR_FILTERS,
        "x-response-content-type": "text/csv",
    },
    ("/v1/fac", "get"): {
        "summary": "Forced Authorization Codes",
        "parameters": [_q("account", "account number")],
    },
    ("/v1/fac", "post"): {
        "summary": "Create a Forced Authorization Code (audited)",
        "requestBody": _json_body({"type": "object"}),
    },
    ("/v1/fac/{fac_id}", "get"): {"summary": "One Forced Authorization Code"},
    ("/v1/fac/{fac_id}", "patch"): {
        "summary": "Update a Forced Authorization Code (audited)",
        "requestBody": _json_body({"type": "object"}),
    },
    ("/v1/fac/{fac_id}", "delete"): {"summary": "Delete a Forced Authorization Code (audited)"},
    ("/v1/rate-plans", "get"): {"summary": "Rate plans"},
    ("/v1/rate-plans", "post"): {
        "summary": "Create a rate plan (time zone, parent plan for fallback)",
        "requestBody": _json_body(PLAN_BODY),
    },
    ("/v1/rate-plans/{name}", "get"): {"summary": "One rate plan"},
    ("/v1/rate-plans/{name}", "patch"): {
        "summary": "Change a plan's time zone or parent (audited; a cycle is a 409)",
        "requestBody": _json_body(PLAN_UPDATE),
    },
    ("/v1/rate-plans/{name}/timings", "get"): {"summary": "The plan's timings"},
    ("/v1/rate-plans/{name}/timings", "post"): {
        "summary": "Create a timing: weekdays, a daily window, dates (plan's time zone)",
        "requestBody": _json_body(TIMING_BODY),
    },
    ("/v1/rate-plans/{name}/timings/{timing}", "patch"): {
        "summary": "Replace a timing's days, window and dates",
        "requestBody": _json_body(TIMING_UPDATE),
    },
    ("/v1/rate-plans/{name}/timings/{timing}", "delete"): {
        "summary": "Delete a timing no rate names"
    },
    ("/v1/number-rules", "get"): {
        "summary": "Number normalization rules, in the order they are tried",
        "parameters": [
            _q("plan", "a rate plan's rules"),
            _q("switch", "a FreeSWITCH switch's rules"),
            _q("cucm_cluster", "a CUCM cluster's rules"),
            _q("direction", "callee or caller"),
        ],
    },
    ("/v1/number-rules", "post"): {
        "summary": "Add a rule (strip, add, length range) for callees or callers",
        "requestBody": _json_body(RULE_BODY),
    },
    ("/v1/number-rules/{rule_id}", "patch"): {
        "summary": "Change a rule",
        "requestBody": _json_body(RULE_UPDATE),
    },
    ("/v1/number-rules/{rule_id}", "delete"): {"summary": "Delete a rule"},
    ("/v1/number-rules/normalize", "get"): {
        "summary": "What a number becomes with a source's and a plan's rules",
        "parameters": [
            _q("number", "as a switch would send it", required=True),
            _q("direction", "callee (default) or caller"),
            _q("plan", "rate plan"),
            _q("switch", "FreeSWITCH switch name"),
            _q("cucm_cluster", "CUCM cluster id"),
        ],
    },
    ("/v1/rate-plans/{name}", "delete"): {"summary": "Delete a rate plan"},
    ("/v1/rate-plans/{name}/rates", "get"): {
        "summary": "Rates of a plan, searched, keyset pages",
        "parameters": [
            _q("prefix", "prefixes starting with"),
            _q("match", "a number: the prefixes it starts with"),
            _q("name", "name substring, any case"),
            _q("cursor", "next_cursor", {"type": "integer"}),
            _q("limit", "page size", {"type": "integer"}),
        ],
    },
    ("/v1/rate-plans/{name}/rates", "post"): {
        "summary": "Add a rate",
        "requestBody": _json_body(RATE_BODY),
    },
    ("/v1/rate-plans/{name}/warnings", "get"): {"summary": "Overlapping and shadowed prefixes"},
    ("/v1/rate-plans/{name}/import", "post"): {
        "summary": "Import a rate CSV (the CLI's format), streamed; all rows or none",
        "parameters": [_q("replace", "delete the plan's rates first", {"type": "boolean"})],
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
    },
    ("/v1/rate-plans/{name}/import-legacy", "post"): {
        "summary": "Import the legacy zones / prefixes / rate_zones tables",
        "requestBody": _json_body(
            {"type": "object", "required": ["zones", "prefixes", "rate_zones"]}
        ),
    },
    ("/v1/rate-plans/{name}/export.csv", "get"): {
        "summary": "Rates of a plan as CSV, streamed",
        "x-response-content-type": "text/csv",
    },
    ("/v1/rates/{rate_id}", "get"): {"summary": "One rate"},
    ("/v1/rates/{rate_id}", "patch"): {
        "summary": "Update a rate",
        "requestBody": _json_body(RATE_UPDATE),
    },
    ("/v1/rates/{rate_id}", "delete"): {"summary": "Delete a rate"},
    ("/v1/reports/traffic", "get"): {
        "summary": "Calls, minutes, revenue, ASR, ACD per hour, day, account or destination",
        "parameters": [
            *_TIME_RANGE,
            _q("group", "hour, day, account or destination"),
            _q("account", "account number"),
        ],
    },
    ("/v1/reports/top-destinations", "get"): {
        "summary": "Top destinations",
        "parameters": [*_TIME_RANGE, _q("limit", "1-1000", {"type": "integer"})],
    },
    ("/v1/rerating/preview", "post"): {
        "summary": "What re-pricing CDRs in a range would change (changes nothing)",
        "requestBody": _json_body({"type": "object", "required": ["from", "to"]}),
    },
    ("/v1/rerating/apply", "post"): {
        "summary": "Re-price CDRs in a range; differences become ledger adjustments",
        "requestBody": _json_body({"type": "object", "required": ["from", "to"]}),
    },
    ("/v1/rerating/runs", "get"): {"summary": "Past rerating runs"},
    ("/v1/alerts/low-balance", "get"): {"summary": "Low-balance alerts"},
    ("/v1/trunks", "get"): {
        "summary": "Declared trunks",
        "response": {
            "type": "object",
            "properties": {"trunks": {"type": "array", "items": _ref("Trunk")}},
        },
    },
    ("/v1/trunks", "post"): {
        "summary": "Declare a trunk (audited)",
        "description": "Calls whose INVITE comes from one of its CIDRs are the trunk's: "
        "billed to its account, or by the caller ID / billing header where trusted. "
        "Refused: a CIDR overlapping another trunk's (409 trunk_overlap), an unknown "
        "account (404), a trunk with neither an account nor a trusted source (400).",
        "requestBody": _json_body(
            {
                "type": "object",
                "required": ["name", "cidrs"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                    "cidrs": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "examples": ["203.0.113.0/24"]},
                    },
                    "account": {"type": ["string", "null"]},
                    "trust_caller_id": {"type": "boolean", "default": False},
                    "trust_billing_header": {"type": "boolean", "default": False},
                },
            }
        ),
        "response": _ref("Trunk"),
    },
    ("/v1/trunks/{name}", "delete"): {"summary": "Delete a trunk (audited)"},
    **CONTROL_OPERATIONS,
}
_TRUNK: Json = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "cidrs": {"type": "array", "items": {"type": "string"}},
        "account": {"type": ["string", "null"]},
        "trust_caller_id": {"type": "boolean"},
        "trust_billing_header": {"type": "boolean"},
        "created_at": TIMESTAMP,
    },
}

_ERROR: Json = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def openapi_path(rule: Rule) -> tuple[str, list[Json]]:
    """``/v1/rates/<int:rate_id>`` -> ``/v1/rates/{rate_id}`` and its path parameters."""
    parameters: list[Json] = []

    def replace(match: re.Match[str]) -> str:
        schema = _TYPES.get(match.group("conv") or "", {"type": "string"})
        parameters.append(
            {"name": match.group("name"), "in": "path", "required": True, "schema": dict(schema)}
        )
        return "{" + match.group("name") + "}"

    return _CONVERTER.sub(replace, rule.rule), parameters


def routes(app: Flask) -> list[tuple[str, str, Rule]]:
    """(OpenAPI path, method, rule) of every API operation of ``app``."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDESCRIBED_ENDPOINTS or rule.endpoint.startswith("web."):
            continue
        path, _ = openapi_path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), rule))
    return found


def _security(roles: tuple[str, ...] | None, path: str) -> tuple[list[Json], str]:
    if roles is None:
        return [], "No authentication."
    if path.startswith(FREESWITCH_PREFIX):
        return [{"freeswitchBasic": []}], "FreeSWITCH's basic-auth credentials only."
    schemes: list[Json] = [{"bearerToken": []}]  # every role, switch included, has tokens
    if any(r in ("admin", "operator", "viewer") for r in roles):
        schemes.append({"sessionCookie": []})
    if "switch" in roles:
        schemes.append({"freeswitchBasic": []})
    return schemes, "Roles: " + ", ".join(roles) + "."


def build_document(app: Flask) -> Json:
    paths: dict[str, dict[str, Json]] = {}
    for path, method, rule in routes(app):
        _, path_parameters = openapi_path(rule)
        written = dict(OPERATIONS.get((path, method), {}))
        roles: tuple[str, ...] | None = getattr(
            app.view_functions[rule.endpoint], "apolo_roles", None
        )
        security, who = _security(roles, path)
        success: Json = {"description": "success"}
        if "response" in written:
            success["content"] = {"application/json": {"schema": written.pop("response")}}
        responses: dict[str, Json] = {
            "2XX": success,
            "400": {"$ref": "#/components/responses/Error"},
        }
        if roles is not None:
            responses["401"] = {"$ref": "#/components/responses/Error"}
            responses["403"] = {"$ref": "#/components/responses/Error"}
        if method in ("post", "put", "patch"):  # a body over the route's limit, any framing
            responses["413"] = {"$ref": "#/components/responses/Error"}
        operation: Json = {
            "operationId": f"{rule.endpoint}.{method}",
            "summary": written.pop("summary", rule.endpoint),
            "description": (written.pop("description", "") + " " + who).strip(),
            "security": security,
            "x-apolo-roles": list(roles or ()),
            "parameters": path_parameters + written.pop("parameters", []),
            "responses": responses,
            **written,
        }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Apolo",
            "version": "1",
            "description": "Real-time call billing for FreeSWITCH. Money is always a decimal "
            "string; timestamps are RFC 3339 in UTC (`2026-12-05T11:19:59.123456Z`); every "
            'error is {"error": {"code", "message", "details"}}.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer", "description": "apo_… token"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "apolo_session"},
                "freeswitchBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "APOLO_FS_USER / APOLO_FS_PASSWORD; source address "
                    "limited by APOLO_FS_ALLOW when set",
                },
            },
            "schemas": {
                "Error": _ERROR,
                "Money": MONEY,
                "Timestamp": TIMESTAMP,
                "Cdr": _CDR,
                "Trunk": _TRUNK,
            },
            "responses": {
                "Error": {
                    "description": "error",
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
        },
    }


@bp.get("/openapi.json")
@require("admin", "operator", "viewer")
def openapi_json():  # type: ignore[no-untyped-def]
    document = current_app.extensions.get("apolo_openapi")
    if document is None:
        document = build_document(current_app._get_current_object())  # type: ignore[attr-defined]
        current_app.extensions["apolo_openapi"] = document
    return jsonify(document)
