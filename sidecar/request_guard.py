"""What every request goes through before a view may use it: whole bodies within their
route's limit, and text that PostgreSQL can store.

Bodies. Each route reads at most its limit (``APOLO_MAX_DOCUMENT_BYTES``, or what the view
declares with :func:`body_limit`). A body over it is refused whole with 413, framed with
Content-Length (refused before the view runs) or ``Transfer-Encoding: chunked`` (refused on
the first byte past the limit). A body is never cut to the limit and used: werkzeug's own
stream stops quietly at ``max_content_length`` when no Content-Length says how long the
body is, which made the first bytes of an oversized chunked upload look like a whole one.
A body that ends before its Content-Length, or whose chunk framing breaks, is 400.

Text. Query and path parameters, form fields and upload file names (and, through
:func:`sidecar.api._request.json_body`, every JSON string) must be text PostgreSQL accepts:
no NUL byte, no lone surrogate. Anything else is a 400 before it reaches SQL.

Headers. Every response forbids framing (``X-Frame-Options: DENY`` and a strict
Content-Security-Policy with ``frame-ancestors 'none'``): the dashboard is served by the
same app, and an API answer has no business inside a frame either.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Request, Response, current_app, request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.utils import cached_property

from sidecar.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])
READ_STEP = 64 * 1024
# the dashboard loads its own script and stylesheet and nothing else; it is never framed
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "body_too_large", f"the request body is larger than {limit} bytes",
            {"limit_bytes": limit},
        )  # fmt: skip


class BodyIncomplete(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, "incomplete_body", f"the request body is incomplete: {detail}")


class InvalidText(ApiError):
    def __init__(self, where: str, problem: str) -> None:
        shown = where.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()
        super().__init__(400, "invalid_text", f"{shown} {problem}", {"field": shown[:200]})


def text_problem(value: str) -> str | None:
    """Why PostgreSQL could not store ``value`` as text, or None when it can."""
    if "\x00" in value:
        return "holds a NUL byte"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text"
    return None


def check_text(where: str, value: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise InvalidText(where, problem)


def body_limit(limit: Callable[[], int]) -> Callable[[F], F]:
    """Declare the largest body a view takes (default: ``APOLO_MAX_DOCUMENT_BYTES``); read
    when the request needs it, so settings may come from the environment."""

    def mark(view: F) -> F:
        view.apolo_max_body = limit  # type: ignore[attr-defined]
        return view

    return mark


class WholeBody(io.RawIOBase):
    """The request body, read to its real end and no further than ``limit``.

    With a Content-Length (``length``) the body must have exactly that many bytes; without
    one (chunked) the server frames it, and one byte past ``limit`` is proof enough that the
    body is too large: it raises, so a cut body can never pass for a whole one."""

    def __init__(self, raw: Any, length: int | None, limit: int | None) -> None:
        super().__init__()
        self._raw = raw
        self._length = length
        self._limit = limit
        self._pos = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._ended or not len(buffer):
            return 0
        want = len(buffer)
        if self._length is not None:
            want = min(want, self._length - self._pos)
        elif self._limit is not None:
            want = min(want, self._limit + 1 - self._pos)
        if want <= 0:
            self._ended = True
            return 0
        try:
            data = self._raw.read(want)
        except Exception as exc:  # the peer went away, or gunicorn found the chunks malformed
            raise BodyIncomplete(type(exc).__name__) from exc
        if not data:
            if self._length is not None and self._pos < self._length:
                raise BodyIncomplete(f"{self._pos} of {self._length} bytes arrived")
            self._ended = True
            return 0
        self._pos += len(data)
        if self._limit is not None and self._pos > self._limit:
            raise BodyTooLarge(self._limit)
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        out = bytearray()
        while data := self.read(READ_STEP):
            out += data
        return bytes(out)


class GuardedRequest(Request):
    @property
    def max_content_length(self) -> int | None:
        if self._max_content_length is not None:
            return self._max_content_length
        view = current_app.view_functions.get(self.endpoint or "") if current_app else None
        declared: Callable[[], int] | None = getattr(view, "apolo_max_body", None)
        if declared is not None:
            return declared()
        return super().max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    @cached_property
    def stream(self) -> Any:
        limit = self.max_content_length
        length = self.content_length
        if length is not None and limit is not None and length > limit:
            raise BodyTooLarge(limit)
        if length is None and "wsgi.input_terminated" not in self.environ:
            if self.headers.get("Transfer-Encoding"):  # a server that cannot frame it
                raise ApiError(411, "length_required", "send the body with a Content-Length")
            return io.BytesIO()
        return WholeBody(self.environ["wsgi.input"], length, limit)

    def _load_form_data(self) -> None:
        super()._load_form_data()
        try:
            for key, value in self.form.items(multi=True):
                check_text("form field name", key)
                check_text(f"form field {key}", value)
            for key, upload in self.files.items(multi=True):
                check_text("form field name", key)
                check_text(f"file name of {key}", upload.filename or "")
        except InvalidText:
            # whoever catches the error finds no form to use
            self.__dict__["form"] = ImmutableMultiDict()
            self.__dict__["files"] = ImmutableMultiDict()
            raise


def _check_request() -> None:
    limit = request.max_content_length
    length = request.content_length
    if length is not None and limit is not None and length > limit:
        raise BodyTooLarge(limit)  # before the view, before a byte of it is read
    check_text("the path", request.path)
    for key, value in request.args.items(multi=True):
        check_text("query parameter name", key)
        check_text(f"query parameter {key}", value)


def _frame_nothing(response: Response) -> Response:
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def install(app: Flask) -> None:
    app.request_class = GuardedRequest
    app.before_request(_check_request)
    app.after_request(_frame_nothing)
