"""One HTTP/1.1 connection: llhttp's callbacks, the pipeline, keep-alive, timeouts.

Theory of operation
-------------------
:class:`HttpProtocol` is an ``asyncio.Protocol`` that owns an ``httptools.HttpRequestParser``.
``data_received`` feeds the parser, whose callbacks build the requests of that read:
``on_url``/``on_header`` collect a head (counted by :class:`~edge.server.framing.HeadBudget`),
``on_headers_complete`` applies :func:`~edge.server.framing.decide_framing` and makes the
:class:`~edge.server.request.Request`, ``on_body``/``on_message_complete`` feed its body.
Each parsed request joins ``_pipeline``; once the read is parsed, :meth:`_next` answers.

The pipeline: requests are answered strictly in order, one at a time, each handler in a task
of its own (asyncio.timeout and cancellation need one); the requests behind it wait. At
``max_pipelined`` waiting requests, reading pauses; while the client does not read what was
written (the transport paused writing), no further answer is started. A refusal (a framing
error, a limit, a timeout) takes its place in the pipeline like a request, so it is written
after the answers to the requests before it; parsing stops there, since the server no
longer knows where the next request would start, and the connection closes after it.

Reading pauses for two reasons, tracked as flags: the pipeline is full, or a body buffer
is over ``body_buffer_bytes`` (a handler reads slower than its client sends).

Timers (:class:`~edge.server.deadline.Deadline`): ``_idle`` closes a connection without a
request in progress after ``keepalive_timeout_s`` (a new one, after the head timeout if
shorter), and cuts one whose client stops reading for ``write_timeout_s``; ``_receive``
bounds a head from its first byte (``head_timeout_s``: 408) and the gaps in a body
(``body_timeout_s``: 408), and is off while the server itself holds the client up.

Closing: after a refusal, or any response that ends the connection, the server half-closes
(``write_eof``) and discards what the client still sends until it closes too, for at most
``linger_s``. Closing a socket with unread input makes the kernel send a reset, which can
destroy the answer before the client has read it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

from edge.server.connections import ConnectionRegistry
from edge.server.deadline import Deadline
from edge.server.flow import FlowControl
from edge.server.framing import (
    Framing,
    HeadBudget,
    Refusal,
    body_over_limit,
    decide_framing,
    refusal_for_parser_error,
)
from edge.server.limits import ServerLimits
from edge.server.request import (
    EMPTY_BODY,
    HTTP_11,
    VERSIONS,
    BodyError,
    BodyStream,
    HttpVersion,
    Request,
)
from edge.server.writer import CONTINUE, Prebuilt, Response, ResponseWriter

log = logging.getLogger(__name__)

# What a handler returns: a response for the server to write, or None when it streamed one.
Answer = Response | Prebuilt | None
Handler = Callable[[Request], Awaitable[Answer]]

_PAUSED_PIPELINE = 1
_PAUSED_BODY = 2
_LINGER_MAX_BYTES = 1024 * 1024

HEAD_TIMEOUT = Refusal(408, "the request head did not arrive in time")
BODY_TIMEOUT = Refusal(408, "the request body stalled")
BODY_CUT = Refusal(400, "the client ended the connection inside the request body")
INTERNAL_ERROR = Refusal(500, "the server failed to answer this request", close=False)
PARSER_FAILURE = Refusal(500, "the server failed to read this request")
OVERLOADED = Refusal(503, "too many open connections; retry later")


class _Refused(Exception):
    """Raised in a parser callback to stop llhttp with ``refusal`` as the answer."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class HttpProtocol(asyncio.Protocol):
    """The server side of one HTTP/1.1 connection."""

    def __init__(
        self,
        handler: Handler,
        limits: ServerLimits,
        registry: ConnectionRegistry,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._registry = registry
        self._loop = loop
        self._parser = httptools.HttpRequestParser(self)
        self._budget = HeadBudget(limits)
        self._transport: asyncio.Transport | None = None
        self._flow: FlowControl | None = None
        self._remote: str | None = None
        self._is_ssl = False
        self._context = contextvars.copy_context()  # each request runs in a copy of it
        # The message being parsed.
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._in_head = False
        self._progress = False
        self._receiving: Request | None = None
        self._body_bytes = 0
        self._awaiting_continue = False  # the body waits for our 100 Continue
        # Answering.
        self._active: Request | None = None
        self._task: asyncio.Task[None] | None = None
        self._pipeline: deque[Request | Refusal] = deque()
        # Connection state.
        self._paused_by = 0
        self._paused_bodies = 0
        self._stopped = False  # no more requests are parsed
        self._draining = False
        self._write_blocked = False  # a response waits for the client to read (see _next)
        self._lingering = False
        self._linger_bytes = 0
        self._peer_eof = False
        self._lost = False
        self._idle = Deadline(loop, self._on_idle_timeout)
        self._receive = Deadline(loop, self._on_receive_timeout)

    # What the rest of the server sees.

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None, "not connected"
        return self._transport

    @property
    def writing_paused(self) -> bool:
        return self._flow is not None and not self._flow.writable

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def is_idle(self) -> bool:
        return self._active is None and not self._pipeline and not self._in_head

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        limits = self._limits
        transport.set_write_buffer_limits(high=limits.write_buffer_high_bytes)
        self._flow = FlowControl(transport, timeout_s=limits.write_timeout_s)
        peer = transport.get_extra_info("peername")
        self._remote = peer[0] if isinstance(peer, tuple) else None
        self._is_ssl = transport.get_extra_info("sslcontext") is not None
        if not self._registry.admit(self):
            self._refuse_connection()
            return
        self._idle.set(min(limits.keepalive_timeout_s, limits.head_timeout_s))

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stopped = True
        self._idle.cancel()
        self._receive.cancel()
        if self._flow is not None:
            self._flow.connection_lost()
        if self._receiving is not None:
            self._receiving.content.fail(BodyError(BODY_CUT))
            self._receiving = None
        self._pipeline.clear()
        self._registry.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            if self._lingering:
                self._discard(len(data))
            return
        self._progress = False
        was_in_head = self._in_head
        try:
            self._feed(data)
        except _Refused as exc:
            self._refuse(exc.refusal)
        else:
            if self._in_head and was_in_head and not self._progress:
                # A whole read inside one field: llhttp buffers it without telling us.
                refusal = self._budget.add_pending(len(data))
                if refusal is not None:
                    self._refuse(refusal)
        if self._active is None and self._pipeline:
            self._next()

    def eof_received(self) -> bool:
        if self._lingering:
            self.transport.close()
            return False
        self._peer_eof = True
        self._stop_parsing()
        if self._receiving is not None:
            self._receiving.content.fail(BodyError(BODY_CUT))
            self._receiving = None
        self._in_head = False
        if self._active is None and not self._pipeline:
            return False  # the transport closes itself
        return not self._is_ssl  # answer what was asked, then close (see _next)

    def pause_writing(self) -> None:
        assert self._flow is not None
        self._flow.pause()

    def resume_writing(self) -> None:
        assert self._flow is not None
        self._flow.resume()
        if self._write_blocked:
            self._write_blocked = False
            self._idle.clear()
            self._next()

    # Parsing.

    def _feed(self, data: bytes) -> None:
        """Feed llhttp, turning what it raises into :class:`_Refused`."""
        view: bytes | memoryview = data
        while True:
            try:
                self._parser.feed_data(view)
                return
            except httptools.HttpParserUpgrade as exc:
                # A bodyless Upgrade or CONNECT request is served as a plain one (framing
                # refuses those with a body); llhttp stopped after its head: go on.
                offset = int(exc.args[0])
                view = memoryview(data)[offset:] if type(view) is bytes else view[offset:]
                if not view:
                    return
            except httptools.HttpParserCallbackError as exc:
                context = exc.__context__
                if isinstance(context, _Refused):
                    raise context from None
                log.error("a parser callback failed", exc_info=context)
                raise _Refused(PARSER_FAILURE) from None
            except httptools.HttpParserError as exc:
                raise _Refused(refusal_for_parser_error(exc)) from None

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._fields = []
        self._budget.reset()
        self._idle.clear()
        if not self._paused_by:
            self._receive.set(self._limits.head_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._progress = True
        self._url += url
        refusal = self._budget.add_target(len(url))
        if refusal is not None:
            raise _Refused(refusal)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._progress = True
        if self._receiving is not None:  # a trailer field of a chunked body: not kept
            refusal = self._budget.add_trailer_field()
        else:
            refusal = self._budget.add_field(len(name), len(value))
            self._fields.append((name, value))
        if refusal is not None:
            raise _Refused(refusal)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._receive.clear()
        parser = self._parser
        version = parser.get_http_version()
        framing = decide_framing(
            version,
            self._fields,
            upgrade=parser.should_upgrade(),
            max_body_bytes=self._limits.max_body_bytes,
        )
        if isinstance(framing, Refusal):
            raise _Refused(framing)
        request = self._make_request(parser, VERSIONS[version], framing)
        if framing.body_exists:
            self._receiving = request
            self._body_bytes = 0
            self._awaiting_continue = framing.expect_continue
            self._arm_body_timer()
        self._enqueue(request)

    def _make_request(
        self, parser: httptools.HttpRequestParser, version: HttpVersion, framing: Framing
    ) -> Request:
        method = parser.get_method().decode("ascii")
        content: BodyStream = EMPTY_BODY
        if framing.body_exists:
            content = BodyStream(self, high_bytes=self._limits.body_buffer_bytes, eof=False)
        return Request(
            method=method,
            raw_path=self._url.decode("latin-1"),
            version=version,
            raw_headers=tuple(self._fields),
            host=framing.host.decode("utf-8", "surrogateescape"),
            remote=self._remote,
            content_length=framing.content_length,
            body_exists=framing.body_exists,
            keep_alive=parser.should_keep_alive(),
            transport=self.transport,
            writer=ResponseWriter(self, version=version, head_request=method == "HEAD"),
            content=content,
        )

    def on_body(self, body: bytes) -> None:
        request = self._receiving
        assert request is not None
        self._body_bytes += len(body)
        if request.content_length is None and self._body_bytes > self._limits.max_body_bytes:
            raise _Refused(body_over_limit(self._limits.max_body_bytes))
        request.content.feed(body)
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        request = self._receiving
        if request is not None:
            self._receiving = None
            self._awaiting_continue = False
            self._receive.clear()
            request.content.feed_eof()

    # The pipeline.

    def _enqueue(self, item: Request | Refusal) -> None:
        """Queue a parsed request (or a refusal); :meth:`_next` answers it in turn."""
        self._pipeline.append(item)
        if len(self._pipeline) >= self._limits.max_pipelined:
            self._pause_reading(_PAUSED_PIPELINE)

    def _next(self) -> None:
        """Answer queued requests while they complete at once; then go idle (or close).

        A loop, not recursion: one read can hold thousands of tiny pipelined requests.
        """
        while self._active is None and not self._lost:
            if self._draining:
                self._close(linger=True)
                return
            if not self._pipeline:
                if self._stopped:
                    self._close(linger=True)
                elif not self._in_head:
                    self._idle.set(self._limits.keepalive_timeout_s)
                return
            if self.writing_paused:
                # The client is not reading; answer more once it does (resume_writing).
                self._write_blocked = True
                self._idle.set(self._limits.write_timeout_s)
                return
            item = self._pipeline.popleft()
            if len(self._pipeline) < self._limits.max_pipelined:
                self._resume_reading(_PAUSED_PIPELINE)
            self._dispatch(item)

    def _dispatch(self, item: Request | Refusal) -> None:
        if isinstance(item, Refusal):
            self._answer_refusal(item)
            return
        self._active = item
        self._idle.clear()
        # Every handler runs in a task of its own: asyncio.timeout(), current_task() and
        # cancellation need one (an eager first step outside a task broke them on 3.11).
        context = self._context.copy()  # not the current one: it may be the last request's
        self._task = self._loop.create_task(self._finish(item), context=context)

    async def _finish(self, request: Request) -> None:
        try:
            await self._respond(request, request.writer)
        finally:
            self._task = None
        self._settle(request)
        self._next()

    def _settle(self, request: Request) -> None:
        """The response to ``request`` is written (or cut): close if it said so."""
        self._active = None
        request.content.detach()
        if request.writer.close or self._lost:
            self._close(linger=True)

    async def _respond(self, request: Request, writer: ResponseWriter) -> None:
        try:
            response = await self._handler(request)
            if response is not None:
                writer.send(response)
            elif not writer.finished:
                self._unfinished_stream(request, writer)
        except BodyError as exc:
            self._answer_error(writer, exc.refusal)
        except asyncio.CancelledError:
            writer.abort()
            raise
        except Exception:
            if self._lost or self.transport.is_closing():
                log.debug("the client of %r went away", request)
                writer.abort()
                return
            # The request's fields stay out of the log: they may carry credentials.
            log.exception("the handler failed on %r", request)
            self._answer_error(writer, INTERNAL_ERROR)

    def _unfinished_stream(self, request: Request, writer: ResponseWriter) -> None:
        if not writer.started:
            log.error("the handler returned None without answering %r", request)
            self._answer_error(writer, INTERNAL_ERROR)
        else:
            log.error("the handler returned before finishing its response to %r", request)
            writer.abort()

    def _answer_error(self, writer: ResponseWriter, refusal: Refusal) -> None:
        if writer.started:
            writer.abort()
        else:
            writer.send_refusal(refusal)

    def _answer_refusal(self, refusal: Refusal) -> None:
        """Write the server's own answer in the pipeline's order, then close."""
        log.info("refused a request from %s: %d %s", self._remote, refusal.status, refusal.reason)
        writer = ResponseWriter(self, version=HTTP_11, head_request=False)
        writer.send_refusal(refusal)
        self._close(linger=True)

    def _refuse(self, refusal: Refusal) -> None:
        """A framing error, a limit or a timeout: answer it in order; parse nothing more."""
        self._stop_parsing()
        self._in_head = False
        request, self._receiving = self._receiving, None
        if request is None:
            self._enqueue(refusal)
            return
        # Inside a body: its handler (running, or still queued) gets the refusal instead.
        # (The running handler learns it when it reads; the connection closes after it.)
        request.content.fail(BodyError(refusal))
        if self._pipeline and self._pipeline[-1] is request:
            self._pipeline[-1] = refusal
            request.content.detach()

    # The writer's channel.

    def closes_after_response(self) -> bool:
        request = self._active
        return (
            self._draining
            or (self._stopped and not self._pipeline)  # else the queue is answered first
            or request is None
            or not request.keep_alive
            or not request.content.is_eof()
        )

    async def drain(self) -> None:
        assert self._flow is not None
        await self._flow.drain()

    # The body streams' controller.

    def pause_body(self) -> None:
        self._paused_bodies += 1
        self._pause_reading(_PAUSED_BODY)

    def resume_body(self) -> None:
        # Counted: a queued request's full buffer holds reading up as well as the active one's.
        self._paused_bodies -= 1
        if not self._paused_bodies:
            self._resume_reading(_PAUSED_BODY)

    def body_wanted(self, stream: BodyStream) -> None:
        request = self._active
        if request is None or request.content is not stream or stream.is_eof():
            return
        if not self._awaiting_continue or self._receiving is not request:
            return
        self._awaiting_continue = False
        if not request.writer.started and not self.transport.is_closing():
            self.transport.write(CONTINUE)
        self._arm_body_timer()

    # Reading, timers, closing.

    def _pause_reading(self, reason: int) -> None:
        if not self._paused_by and not self._stopped:
            self.transport.pause_reading()
            self._receive.clear()
        self._paused_by |= reason

    def _resume_reading(self, reason: int) -> None:
        if not self._paused_by & reason:
            return
        self._paused_by &= ~reason
        if self._paused_by or self._stopped:
            return
        self.transport.resume_reading()
        if self._in_head:
            self._receive.set(self._limits.head_timeout_s)
        else:
            self._arm_body_timer()

    def _arm_body_timer(self) -> None:
        """Time the gaps in a body, unless the server is what holds it up (paused reading, a
        100 Continue not sent yet)."""
        if self._receiving is not None and not self._paused_by and not self._awaiting_continue:
            self._receive.set(self._limits.body_timeout_s)

    def _stop_parsing(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._receive.clear()
            if not self._paused_by and not self.transport.is_closing():
                self.transport.pause_reading()

    def _on_idle_timeout(self) -> None:
        if self._write_blocked or self._lingering:
            # The client neither reads nor closes: closing would wait for a flush forever.
            self.transport.abort()
        elif self.is_idle():
            self.transport.close()

    def _on_receive_timeout(self) -> None:
        if self._in_head:
            self._refuse(HEAD_TIMEOUT)
        elif self._receiving is not None:
            self._refuse(BODY_TIMEOUT)
        if self._active is None:
            self._next()

    def _close(self, *, linger: bool) -> None:
        """End the connection once what was written is flushed; with ``linger``, half-close
        first and discard what the client still sends (see the module docstring)."""
        self._stop_parsing()
        self._pipeline.clear()
        transport = self.transport
        if transport.is_closing() or self._lingering:
            return
        if not linger or self._peer_eof or self._is_ssl or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        transport.write_eof()
        transport.resume_reading()
        self._idle.set(self._limits.linger_s)

    def _discard(self, size: int) -> None:
        self._linger_bytes += size
        if self._linger_bytes > _LINGER_MAX_BYTES:
            self.transport.close()

    def _refuse_connection(self) -> None:
        """Over ``max_connections``: a 503 at once, without reading the request."""
        self._stopped = True
        writer = ResponseWriter(self, version=HTTP_11, head_request=False)
        writer.send_refusal(OVERLOADED, [("Retry-After", "1")])
        self._close(linger=True)

    # Shutdown (HttpServer.close).

    def begin_drain(self) -> None:
        """Finish the response in progress (with ``Connection: close``), then close; an idle
        connection closes now."""
        self._draining = True
        if self._lost:
            return
        if self._active is None:
            self._close(linger=False)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        if self._task is not None:
            self._task.cancel()
