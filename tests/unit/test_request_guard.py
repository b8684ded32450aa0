"""The body reader and the JSON parser every route goes through (no server needed)."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from sidecar.api._request import MAX_JSON_DEPTH, parse_json
from sidecar.errors import ApiError
from sidecar.request_guard import BodyIncomplete, BodyTooLarge, InvalidText, WholeBody, text_problem


class Broken(io.BytesIO):
    """A connection that fails after its first bytes (gunicorn raising mid-body)."""

    def read(self, size: int | None = -1) -> bytes:
        if self.tell():
            raise ValueError("invalid chunk size")
        return super().read(4)


def test_a_chunked_body_up_to_the_limit_is_read_whole() -> None:
    assert WholeBody(io.BytesIO(b"x" * 100), None, 100).read() == b"x" * 100
    assert WholeBody(io.BytesIO(b""), None, 100).read() == b""


def test_one_byte_past_the_limit_is_413_never_a_cut_body() -> None:
    body = WholeBody(io.BytesIO(b"x" * 101), None, 100)
    with pytest.raises(BodyTooLarge) as raised:
        body.read()
    assert raised.value.status == 413 and raised.value.details == {"limit_bytes": 100}
    streamed = WholeBody(io.BytesIO(b"x" * 150), None, 100)
    assert len(streamed.read(100)) == 100  # a streaming reader gets the limit ...
    with pytest.raises(BodyTooLarge):
        streamed.read(10)  # ... and the error on the next read, not an end of body


def test_a_body_shorter_than_its_content_length_is_400() -> None:
    with pytest.raises(BodyIncomplete) as raised:
        WholeBody(io.BytesIO(b'{"a": 1}'), 20, 100).read()
    assert raised.value.status == 400 and "8 of 20" in raised.value.message
    assert WholeBody(io.BytesIO(b'{"a": 1}trailing'), 8, 100).read() == b'{"a": 1}'


def test_a_broken_stream_is_400() -> None:
    with pytest.raises(BodyIncomplete):
        WholeBody(Broken(b"0123456789"), None, 100).read()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("plain", None), ("ñandú €", None), ("a\x00b", "holds a NUL byte"),
     ("\ud800", "is not valid Unicode text")],
)  # fmt: skip
def test_text_problem(value: str, problem: str | None) -> None:
    assert text_problem(value) == problem


def test_strict_json() -> None:
    assert parse_json(b'{"a": 1.50, "b": [1, {"c": "d"}]}') == {
        "a": Decimal("1.50"), "b": [1, {"c": "d"}],
    }  # fmt: skip
    deep_ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(deep_ok) is not None
    bad = {
        b'{"a": 1, "a": 2}': "more than once",
        b'{"x": {"a": 1, "a": 1}}': "more than once",
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1): "nested",
        b"[" * 100_000 + b"]" * 100_000: "nested",
        b'{"a": NaN}': "NaN",
        b'{"a": -Infinity}': "Infinity",
        b'{"a": 1': "not valid JSON",
        b"\xff": "not valid JSON",
    }
    for raw, message in bad.items():
        with pytest.raises(ApiError) as raised:
            parse_json(raw)
        assert raised.value.code == "invalid_json" and message in raised.value.message, raw[:40]
    for raw in (b'{"a": "x\\u0000"}', b'{"a\\u0000": 1}', b'["\\ud800"]'):
        with pytest.raises(InvalidText):
            parse_json(raw)
    assert parse_json(b'{"a": "x\\u0000"}', check_text=False) == {"a": "x\x00"}
