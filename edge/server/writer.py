"""Responses: the values a handler returns, and the writer that puts them on the wire.

Theory of operation
-------------------
Every response is written with one ``transport.writelines`` call, and every status line is
``HTTP/1.1`` (RFC 9110 §6.2), from a table built once. A handler answers in one of three ways:

* :class:`Response`: status, fields and a body; the server adds the framing
  (``Content-Length``), ``Date`` (cached per second) and ``Connection`` as needed;
* :class:`Prebuilt`: the hit fast path. ``head`` is the stored status line and fields, ``tail``
  the per-request fields, the blank line and the body (a ``memoryview``, not copied); the
  server inserts only the ``Connection`` field (:func:`connection_field`) between them;

The head of a response is joined into one ``bytes`` (a few hundred bytes copied) and written
with the body in one ``writelines([head, body])``: every extra buffer costs more in the
transport's ``writev`` than the copy (measured: 5 buffers instead of 2 cost ~15% of a 1 KiB
hit), while the body itself is never copied.
* streaming through :class:`ResponseWriter` (``start``/``write``/``finish``), which frames an
  unknown length as chunked (close-delimited for HTTP/1.0) and awaits the transport's flow
  control after each write, so a slow client never makes the node buffer a whole object.

Whether the connection closes after a response is decided when its head is written, by the
connection (:meth:`Channel.closes_after_response`): the client asked for it, the server is
draining, or the request body was not received to its end. A body that cannot be completed
is cut (:meth:`ResponseWriter.abort`): a truncated response must never look complete.

Fields are never checked for syntax beyond line breaks: a CR or LF in a name or value (header
injection) raises ``ValueError``, as do hop-by-hop framing fields a handler must not set
(``Connection``, ``Transfer-Encoding``) and a ``Content-Length`` that contradicts the body.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol

from edge.server.flow import ClientDisconnected
from edge.server.framing import Refusal
from edge.server.request import HTTP_10, HttpVersion

Field = tuple[str, str]

STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CONNECTION_CLOSE = b"Connection: close\r\n"
CONNECTION_KEEP_ALIVE = b"Connection: keep-alive\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"
LAST_CHUNK = b"0\r\n\r\n"
_BODYLESS_STATUSES = frozenset({204, 304})
_FORBIDDEN_FIELDS = frozenset({"connection", "transfer-encoding"})


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``; a code without a registered reason gets none."""
    line = STATUS_LINES.get(status)
    if line is not None:
        return line
    if not 100 <= status <= 599:
        raise ValueError(f"status {status} is not a three-digit HTTP status")
    return f"HTTP/1.1 {status} \r\n".encode()


class _DateCache:
    __slots__ = ("field", "second")

    def __init__(self) -> None:
        self.second = -1
        self.field = b""


_date = _DateCache()


def date_field() -> bytes:
    """``Date: <IMF-fixdate>\\r\\n`` for the current second (RFC 9110 §6.6.1), built once a
    second."""
    second = int(time.time())
    if second != _date.second:
        _date.field = b"Date: " + formatdate(second, usegmt=True).encode() + b"\r\n"
        _date.second = second
    return _date.field


def connection_field(*, close: bool, version: HttpVersion) -> bytes:
    """The ``Connection`` field a response needs: ``close`` when the connection ends after
    it, ``keep-alive`` for an HTTP/1.0 client it stays open for, else none (``b""``)."""
    if close:
        return CONNECTION_CLOSE
    if version == HTTP_10:
        return CONNECTION_KEEP_ALIVE
    return b""


class Response:
    """A complete response; the server adds framing, ``Date`` and ``Connection``.

    ``fields`` are written as given (names as given, in order). A ``Content-Length`` among
    them is kept (it must match the body, except on HEAD, where it describes the body a GET
    would get and no body is sent); otherwise one is added from ``body``. 1xx, 204 and 304
    get neither framing nor body. ``close`` ends the connection after this response.
    """

    __slots__ = ("body", "close", "fields", "status")

    def __init__(
        self,
        status: int,
        fields: Sequence[Field] = (),
        body: bytes | memoryview = b"",
        *,
        close: bool = False,
    ) -> None:
        self.status = status
        self.fields = fields
        self.body = body
        self.close = close

    def __repr__(self) -> str:
        return f"<Response {self.status}, {len(self.body)} body bytes>"


class Prebuilt:
    """A response in wire form: ``head`` (status line and stored fields, no ``Date``,
    ``Connection`` or framing), then ``tail`` (per-request fields, ``Content-Length``, the
    blank line, and last the body). The server writes ``head``, the ``Connection`` field if
    needed, and ``tail`` in one ``writelines``, everything before the body joined (the body
    is not copied); ``status`` is for the server's bookkeeping. Never for HEAD."""

    __slots__ = ("head", "status", "tail")

    def __init__(
        self, head: bytes, tail: Sequence[bytes | memoryview], *, status: int = 200
    ) -> None:
        self.head = head
        self.tail = tail
        self.status = status

    def __repr__(self) -> str:
        return f"<Prebuilt {self.status}, {len(self.tail)} tail parts>"


class Channel(Protocol):
    """What a writer needs from its connection."""

    @property
    def transport(self) -> asyncio.Transport: ...

    def closes_after_response(self) -> bool: ...

    async def drain(self) -> None: ...


class _State(enum.Enum):
    IDLE = "idle"
    STREAMING = "streaming"
    DONE = "done"
    ABORTED = "aborted"


class _Framing(enum.Enum):
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until close"
    NONE = "none"


def _encode_fields(fields: Sequence[Field]) -> bytes:
    text = "".join([f"{name}: {value}\r\n" for name, value in fields])
    # Each field adds exactly one CR and one LF; any more is an injected line.
    if text.count("\n") != len(fields) or text.count("\r") != len(fields):
        raise ValueError("a response field name or value contains CR or LF")
    return text.encode("utf-8", "surrogateescape")


def _scan_fields(fields: Sequence[Field]) -> tuple[str | None, bool]:
    """The Content-Length value among ``fields`` (if any) and whether Date is there."""
    length: str | None = None
    has_date = False
    for name, value in fields:
        lowered = name.lower()
        if lowered == "content-length":
            length = value.strip()
        elif lowered == "date":
            has_date = True
        elif lowered in _FORBIDDEN_FIELDS:
            raise ValueError(f"the server sets {name}; a handler must not")
    return length, has_date


class ResponseWriter:
    """Writes the one response to one request; the handler's streaming interface.

    ``write`` on a client that went away raises :class:`ClientDisconnected` (a
    ``ConnectionError``): a relay loop must stop, and an exception cannot be ignored by
    accident the way a ``False`` can.
    """

    __slots__ = (
        "_channel",
        "_framing",
        "_head_request",
        "_remaining",
        "_state",
        "_transport",
        "_version",
        "close",
        "status",
    )

    def __init__(self, channel: Channel, *, version: HttpVersion, head_request: bool) -> None:
        self._channel = channel
        self._transport = channel.transport
        self._version = version
        self._head_request = head_request
        self._state = _State.IDLE
        self._framing = _Framing.NONE
        self._remaining = 0
        self.close = False
        self.status = 0

    @property
    def started(self) -> bool:
        """Whether any of the final response has been handed to the transport."""
        return self._state is not _State.IDLE

    @property
    def finished(self) -> bool:
        """Whether the response was written to its end (or cut off)."""
        return self._state is _State.DONE or self._state is _State.ABORTED

    @property
    def aborted(self) -> bool:
        return self._state is _State.ABORTED

    # Streaming.

    async def write_interim(self, status: int, fields: Sequence[Field] = ()) -> None:
        """A 1xx response (103 Early Hints) before the final one; none to HTTP/1.0 clients
        (RFC 9110 §15.2)."""
        if not 100 <= status < 200 or status == 101:
            raise ValueError(f"{status} is not an interim status this server sends")
        self._check_state(_State.IDLE)
        if self._version == HTTP_10:
            return
        self._checked_transport().write(status_line(status) + _encode_fields(fields) + b"\r\n")
        await self._channel.drain()

    async def start(self, status: int, fields: Sequence[Field], *, length: int | None) -> None:
        """Write the head of a streamed response with ``length`` body bytes to follow
        (``None``: unknown, so chunked on HTTP/1.1, until close on HTTP/1.0)."""
        self._check_state(_State.IDLE)
        if status < 200:
            raise ValueError("an interim response goes through write_interim()")
        declared, has_date = _scan_fields(fields)
        transport = self._checked_transport()
        self.close = self._channel.closes_after_response()
        parts = [status_line(status), _encode_fields(fields)]
        parts.append(self._stream_framing(status, length, declared))
        if not has_date:
            parts.append(date_field())
        parts += (connection_field(close=self.close, version=self._version), b"\r\n")
        self.status = status
        self._state = _State.STREAMING
        transport.write(b"".join(parts))
        await self._channel.drain()

    def _stream_framing(self, status: int, length: int | None, declared: str | None) -> bytes:
        no_body = status in _BODYLESS_STATUSES or self._head_request
        if length is not None and declared is not None and declared != str(length):
            raise ValueError("Content-Length in fields contradicts length=")
        if no_body:
            self._framing = _Framing.NONE
            if declared is None and length is not None and status not in _BODYLESS_STATUSES:
                return b"Content-Length: %d\r\n" % length
            return b""
        if declared is not None and length is None:
            raise ValueError("a streamed Content-Length goes in length=")
        if length is not None:
            self._framing = _Framing.LENGTH
            self._remaining = length
            return b"" if declared is not None else b"Content-Length: %d\r\n" % length
        if self._version == HTTP_10:
            self._framing = _Framing.UNTIL_CLOSE
            self.close = True
            return b""
        self._framing = _Framing.CHUNKED
        return CHUNKED

    async def write(self, data: bytes | memoryview) -> None:
        """Send body bytes, then wait while the transport is paused (flow control)."""
        self._check_state(_State.STREAMING)
        size = len(data)
        if not size:
            return  # an empty chunk would end a chunked body
        framing = self._framing
        if framing is _Framing.NONE:
            if self._head_request:
                return
            raise ValueError(f"a {self.status} response has no body")
        transport = self._checked_transport()
        if framing is _Framing.CHUNKED:
            transport.writelines([b"%x\r\n" % size, data, b"\r\n"])
        else:
            if framing is _Framing.LENGTH:
                if size > self._remaining:
                    raise ValueError("more body bytes than the Content-Length announced")
                self._remaining -= size
            transport.write(data)
        await self._channel.drain()

    async def finish(self) -> None:
        """End the body: the last chunk when chunked. A length-delimited body that is short
        is cut off instead (``ValueError``): the client must not take it as complete."""
        self._check_state(_State.STREAMING)
        if self._framing is _Framing.CHUNKED:
            self._checked_transport().write(LAST_CHUNK)
        elif self._framing is _Framing.LENGTH and self._remaining:
            missing = self._remaining
            self.abort()
            raise ValueError(f"finish() with {missing} announced body bytes unsent")
        self._state = _State.DONE
        await self._channel.drain()

    def abort(self) -> None:
        """Cut the connection: what was sent of the response stays visibly incomplete."""
        if self._state is not _State.DONE:
            self._state = _State.ABORTED
        self.close = True
        self._transport.abort()

    # Complete responses, written by the server.

    def send(self, response: Response | Prebuilt) -> None:
        """Write a complete response with one ``writelines``."""
        self._check_state(_State.IDLE)
        if type(response) is Prebuilt:
            parts = self._prebuilt_parts(response)
        elif isinstance(response, Response):
            parts = self._response_parts(response)
        else:
            raise TypeError(f"a handler returns Response, Prebuilt or None, not {response!r}")
        self._state = _State.DONE
        if not self._transport.is_closing():
            self._transport.writelines(parts)

    def _prebuilt_parts(self, response: Prebuilt) -> list[bytes | memoryview]:
        if self._head_request:
            raise ValueError("a Prebuilt response carries a body; HEAD needs a Response")
        self.status = response.status
        self.close = close = self._channel.closes_after_response()
        *fields, body = response.tail
        field = connection_field(close=close, version=self._version)
        if field:
            return [b"".join([response.head, field, *fields]), body]
        return [b"".join([response.head, *fields]), body]

    def _response_parts(self, response: Response) -> list[bytes | memoryview]:
        status, body = response.status, response.body
        if status < 200:
            raise ValueError("an interim response goes through write_interim()")
        declared, has_date = _scan_fields(response.fields)
        head = [status_line(status), _encode_fields(response.fields)]
        send_body = not self._head_request
        if status in _BODYLESS_STATUSES:
            if body:
                raise ValueError(f"a {status} response has no body")
            send_body = False
        elif declared is None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        elif send_body and declared != str(len(body)):
            raise ValueError("Content-Length in fields contradicts the body")
        if not has_date:
            head.append(date_field())
        self.status = status
        self.close = close = response.close or self._channel.closes_after_response()
        head += (connection_field(close=close, version=self._version), b"\r\n")
        if send_body and body:
            return [b"".join(head), body]
        return [b"".join(head)]

    def send_refusal(self, refusal: Refusal, fields: Sequence[Field] = ()) -> None:
        """The server's own answer to a request it refuses (or could not serve)."""
        body = refusal.body()
        all_fields = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Cache-Control", "no-store"),
            *fields,
        ]
        self.send(Response(refusal.status, all_fields, body, close=refusal.close))

    # Helpers.

    def _check_state(self, expected: _State) -> None:
        if self._state is not expected:
            raise RuntimeError(f"the response is {self._state.value}, not {expected.value}")

    def _checked_transport(self) -> asyncio.Transport:
        transport = self._transport
        if transport.is_closing():
            raise ClientDisconnected("the connection is closed")
        return transport
