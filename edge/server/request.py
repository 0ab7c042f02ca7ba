"""The request a handler receives, and its flow-controlled body stream.

Theory of operation
-------------------
The protocol builds a :class:`Request` when llhttp reports a complete head, and feeds the body
into its :class:`BodyStream` as it is parsed, possibly while the handler of an earlier
pipelined request still runs. The stream buffers what the handler has not read; past
``body_buffer_bytes`` it asks its connection to stop reading from the socket, and once the
handler has read it down to half it asks to resume. So a client can never make the node
buffer more than that per connection, however large the body.

A request with ``Expect: 100-continue`` gets its ``100 Continue`` only when the handler first
waits for body bytes (:meth:`BodyController.body_wanted`): a handler that answers without
reading never invites the body.

If the body cannot be read to its end (it grew over the limit, was malformed, stalled, or the
client went away), the stream raises :class:`BodyError` carrying the server's answer; a
handler that lets it propagate gets that answer written for it.

``headers`` is built on first use: the hit path may need only ``host`` and the raw fields.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from edge.server.framing import Refusal

if TYPE_CHECKING:
    from edge.server.writer import ResponseWriter


class HttpVersion(NamedTuple):
    major: int
    minor: int


HTTP_10 = HttpVersion(1, 0)
HTTP_11 = HttpVersion(1, 1)
VERSIONS = {"1.0": HTTP_10, "1.1": HTTP_11}


class BodyError(Exception):
    """The request body could not be read to its end; ``refusal`` is the server's answer."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class BodyController(Protocol):
    """What a body stream asks of its connection."""

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...

    def body_wanted(self, stream: BodyStream) -> None: ...


class BodyStream:
    """A request body as it arrives: ``async for chunk in stream.iter_any()`` or ``read()``."""

    __slots__ = (
        "_chunks",
        "_control",
        "_eof",
        "_exc",
        "_high_bytes",
        "_paused",
        "_size",
        "_waiter",
        "_wanted",
    )

    def __init__(self, control: BodyController | None, *, high_bytes: int, eof: bool) -> None:
        self._control = control
        self._high_bytes = high_bytes
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = eof
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._wanted = False

    # The connection's side.

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self._high_bytes and not self._paused and self._control is not None:
            self._paused = True
            self._control.pause_body()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """The body ends here, unfinished: readers get ``exc`` once the buffer is read."""
        if not self._eof and self._exc is None:
            self._exc = exc
            self._wake()

    def detach(self) -> None:
        """The request is answered: drop what nobody will read, and stop holding up reading."""
        self._chunks.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            if self._control is not None:
                self._control.resume_body()

    @property
    def wanted(self) -> bool:
        """Whether a reader has waited for bytes (what ``100 Continue`` waits for)."""
        return self._wanted

    # The handler's side.

    def is_eof(self) -> bool:
        """Whether the whole body has been received (read or not)."""
        return self._eof

    @property
    def buffered_bytes(self) -> int:
        return self._size

    async def readany(self) -> bytes:
        """The next received piece of the body, ``b""`` at its end."""
        while not self._chunks:
            if self._eof:
                return b""
            if self._exc is not None:
                raise self._exc
            await self._wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size <= self._high_bytes // 2:
            self._paused = False
            if self._control is not None:
                self._control.resume_body()
        return chunk

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive."""
        while chunk := await self.readany():
            yield chunk

    async def read(self) -> bytes:
        """The whole body."""
        parts = [chunk async for chunk in self.iter_any()]
        return b"".join(parts)

    async def _wait(self) -> None:
        if not self._wanted:
            self._wanted = True
            if self._control is not None:
                self._control.body_wanted(self)
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


EMPTY_BODY = BodyStream(None, high_bytes=1, eof=True)


class Request:
    """One parsed request, handed to the handler with its body still streaming.

    Attributes:
        method: ``"GET"``; raw_path: the target exactly as sent; version: ``HttpVersion``.
        headers: the fields, values decoded as UTF-8 with ``surrogateescape`` (built on use).
        raw_headers: the fields as received, names as sent.
        host: the ``Host`` value (``""`` if none); remote: the peer's IP address.
        content_length: as announced (``None`` without one); body_exists: CL > 0 or chunked.
        keep_alive: what the client asked for (``Connection``, the version).
        transport: the connection's transport; writer: answers this request by streaming.
        content: the body stream.
    """

    __slots__ = (
        "_headers",
        "body_exists",
        "content",
        "content_length",
        "host",
        "keep_alive",
        "method",
        "raw_headers",
        "raw_path",
        "remote",
        "transport",
        "version",
        "writer",
    )

    def __init__(
        self,
        *,
        method: str,
        raw_path: str,
        version: HttpVersion,
        raw_headers: tuple[tuple[bytes, bytes], ...],
        host: str,
        remote: str | None,
        content_length: int | None,
        body_exists: bool,
        keep_alive: bool,
        transport: asyncio.Transport,
        writer: ResponseWriter,
        content: BodyStream,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.version = version
        self.raw_headers = raw_headers
        self.host = host
        self.remote = remote
        self.content_length = content_length
        self.body_exists = body_exists
        self.keep_alive = keep_alive
        self.transport = transport
        self.writer = writer
        self.content = content
        self._headers: CIMultiDictProxy[str] | None = None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            self._headers = CIMultiDictProxy(
                CIMultiDict(
                    (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
                    for name, value in self.raw_headers
                )
            )
        return self._headers

    async def read(self) -> bytes:
        """The whole body (see :meth:`BodyStream.read`)."""
        return await self.content.read()

    def __repr__(self) -> str:
        # Never the fields: they may carry credentials.
        return f"<Request {self.method} {self.raw_path.split('?', 1)[0]!r}>"
