"""What every endpoint of Prometheus's HTTP API shares: its parameters, its envelope, its errors.

Parameters come as Go's ``Request.FormValue`` finds them: an urlencoded form
body first, then the query string, then the fields of a ``multipart/form-data``
body (Go appends those after the URL's values); the first of repeated values
counts for single-valued parameters. A body that does not parse carries no
parameters (Go ignores the error there too), except one over the size limit,
which is refused.

Answers use the envelope ``{"status": "success", "data": ..., "warnings": [...],
"infos": [...]}`` (``warnings``/``infos`` only when there are any) and errors
``{"status": "error", "errorType": ..., "error": ...}`` with Prometheus's HTTP
codes (400 bad_data, 422 execution, 503 timeout/canceled, 500 internal).
:class:`PrometheusRoute` renders every :class:`~watchkeeper.errors.WatchkeeperError`
an endpoint raises that way, whatever its path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.routing import APIRoute

from watchkeeper.errors import QueryError, WatchkeeperError

__all__ = [
    "MAX_FORM_BYTES",
    "PrometheusRoute",
    "Params",
    "bad_param",
    "error_response",
    "limit_param",
    "ok",
    "ok_raw",
    "one",
    "request_params",
    "unescape_name",
]

MAX_FORM_BYTES = 10 * 1024 * 1024  # Go's ParseForm: a larger urlencoded body is refused
MAX_MULTIPART_BYTES = 32 * 1024 * 1024  # Go's ParseMultipartForm(32 MiB) as FormValue calls it
TRUNCATED = "results truncated due to limit"
_INT_RE = re.compile(r"[+-]?[0-9]+")

#: parameter name -> its values in the order Go's ``r.Form`` holds them
Params = dict[str, list[str]]

_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "canceled": 503,
           "unavailable": 503, "not_found": 404, "internal": 500}


async def _body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise QueryError(f"error parsing form values: the request body is larger than "
                             f"{limit // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _multipart_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The plain fields of a multipart/form-data body (file parts are not parameters, as in
    Go's ``FormValue``); nothing when the body does not parse."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    try:
        message = BytesParser(policy=HTTP).parsebytes(head + body)
    except Exception:  # a malformed body is one without parameters
        return []
    if not message.is_multipart():
        return []
    out = []
    for part in message.iter_parts():
        if part.get_content_disposition() != "form-data" or part.get_filename() is not None:
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        out.append((name, raw.decode("utf-8", errors="replace")))
    return out


async def request_params(request: Request) -> Params:
    """Every parameter of ``request``, as Go's ``r.Form`` after ``ParseMultipartForm``.

    Raises QueryError (bad_data) for a form body over Go's size limit.
    """
    ctype_header = request.headers.get("content-type", "")
    ctype = ctype_header.split(";", 1)[0].strip().lower()
    before: list[tuple[str, str]] = []
    after: list[tuple[str, str]] = []
    if request.method in ("POST", "PUT", "PATCH"):
        if ctype == "application/x-www-form-urlencoded":
            # invalid UTF-8 becomes U+FFFD, which the query parser then refuses with its position
            text = (await _body(request, MAX_FORM_BYTES)).decode("utf-8", errors="replace")
            before = parse_qsl(text, keep_blank_values=True, errors="replace")
        elif ctype == "multipart/form-data":
            after = _multipart_fields(ctype_header, await _body(request, MAX_MULTIPART_BYTES))
    out: Params = {}
    for k, v in (*before, *request.query_params.multi_items(), *after):
        out.setdefault(k, []).append(v)
    return out


def one(params: Params, key: str) -> str | None:
    """The first value of ``key`` (Go's ``FormValue``), None when absent."""
    vals = params.get(key)
    return vals[0] if vals else None


def bad_param(name: str, exc: QueryError) -> QueryError:
    """``exc`` as Prometheus words an error in a parameter: ``invalid parameter "query": ...``."""
    if exc.message.startswith("invalid parameter "):
        return exc
    err = QueryError(f'invalid parameter "{name}": {exc.message}', hint=exc.hint)
    err.error_type = exc.error_type
    err.http_status = exc.http_status
    return err


def limit_param(params: Params) -> int | None:
    """``limit`` as Prometheus reads it: None for absent, empty or 0 (no limit).

    Raises QueryError naming the parameter for text that is not an integer, or a negative one.
    """
    text = one(params, "limit")
    if text is None or text == "":
        return None
    if not _INT_RE.fullmatch(text):  # what Go's strconv.Atoi takes (int() takes "1_0", " 1")
        raise QueryError(f'invalid parameter "limit": strconv.Atoi: parsing {json.dumps(text)}: '
                         "invalid syntax")
    value = int(text)
    if value < 0:
        raise QueryError('invalid parameter "limit": limit must be non-negative')
    return value or None


def _envelope(data: bytes | None, warnings: list[str], infos: list[str]) -> bytes:
    out = b'{"status":"success"'
    if data is not None:
        out += b',"data":' + data
    if warnings:
        out += b',"warnings":' + json.dumps(warnings, ensure_ascii=False).encode()
    if infos:
        out += b',"infos":' + json.dumps(infos, ensure_ascii=False).encode()
    return out + b"}"


def ok(data: Any, warnings: list[str] | None = None, infos: list[str] | None = None) -> Response:
    """The success envelope around ``data`` (any JSON-able value)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return ok_raw(text.encode(), warnings, infos)


def ok_raw(data: bytes, warnings: list[str] | None = None, infos: list[str] | None = None) -> Response:
    """The success envelope around a ``data`` object already serialised as JSON."""
    return Response(_envelope(data, warnings or [], infos or []), media_type="application/json")


def error_response(exc: WatchkeeperError) -> Response:
    """``exc`` in Prometheus's error envelope, with the HTTP status of its error type."""
    if isinstance(exc, QueryError):
        kind = exc.error_type
        status = _STATUS.get(kind, exc.http_status)
    else:
        status = exc.http_status
        kind = "bad_data" if status < 500 else ("unavailable" if status == 503 else "internal")
    body = {"status": "error", "errorType": kind, "error": exc.message}
    return Response(json.dumps(body, ensure_ascii=False).encode(), status_code=status,
                    media_type="application/json")


class PrometheusRoute(APIRoute):
    """A route whose errors leave in Prometheus's envelope (whatever the app's handlers do
    for other paths), so every endpoint of this API answers clients such as Grafana alike."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except WatchkeeperError as exc:
                return error_response(exc)

        return handle


# -- label names as Prometheus 3 writes them in URL paths ---------------------------------------
def unescape_name(name: str) -> str:
    """A label name from a URL path: ``U__`` names use Prometheus 3's value-encoding escaping
    (``U__http_2e_status`` is ``http.status``, ``__`` is ``_``); anything that is not a
    well-formed escape is the name as written (as Prometheus's ``UnescapeName``)."""
    if not name.startswith("U__"):
        return name
    text = name[3:]
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "_":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= n:
            return name
        if text[i] == "_":
            out.append("_")
            i += 1
            continue
        j = text.find("_", i)
        digits = text[i:j] if j != -1 else ""
        if not digits or len(digits) > 6 or any(d not in "0123456789abcdefABCDEF" for d in digits):
            return name
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return name
        out.append(chr(code))
        i = j + 1
    return "".join(out)
