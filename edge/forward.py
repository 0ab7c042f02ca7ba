"""Moving bodies: upstream responses to the client (tee'd into the store) and request bodies up.

:func:`relay` streams an upstream body to the client chunk by chunk and, when asked, keeps a copy
for the store, giving the copy up as soon as it passes ``max_object_bytes``. A client that goes
away does not stop the copy: the store (and the requests coalesced behind this one) still get
the object. :func:`read_all` buffers a body for the cases that must see it whole first
(HEAD, Range and conditional requests on a miss, background refreshes).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from cdn_core.errors import UpstreamError
from cdn_core.http import Headers
from edge.limits import RequestRejected
from edge.server import BodyError, ClientDisconnected, Request
from overlay.upstream import StreamBody, UpstreamResponse

log = logging.getLogger(__name__)

_NO_BODY_STATUSES = frozenset({204, 304})
Field = tuple[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Relayed:
    """What :func:`relay` did: the bytes sent and the stored copy."""

    sent_bytes: int
    body: bytes | None  # the complete body when a copy was kept and it is complete


def declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)


async def relay(
    request: Request,
    upstream: UpstreamResponse,
    *,
    status: int,
    fields: list[Field],
    keep_copy_up_to: int | None,
    on_complete: Callable[[bytes | None], None] | None = None,
    prefix: list[bytes] | None = None,
) -> Relayed:
    """Stream ``upstream``'s body to the client; keep a copy up to ``keep_copy_up_to`` bytes.

    The response goes out through ``request.writer`` (flow-controlled: a slow client slows
    the relay, it never makes the node buffer the object). ``on_complete`` runs with the
    complete copy (or None) before the response is finished, so the object is in the store
    before the client has its last byte.
    """
    length = declared_length(upstream.headers)
    if status in _NO_BODY_STATUSES or status < 200:
        length = None
    writer = request.writer
    keep = keep_copy_up_to is not None
    chunks: list[bytes] = []
    size = 0
    client_ok = await _start(request, status, fields, length)
    complete = False
    try:
        async for chunk in _chain(prefix or [], upstream.body()):
            size += len(chunk)
            if keep:
                if keep_copy_up_to is not None and size > keep_copy_up_to:
                    keep, chunks = False, []
                else:
                    chunks.append(chunk)
            if client_ok:
                client_ok = await _write(request, chunk, length, size)
            elif not keep:
                break  # nobody wants the rest
        else:
            complete = length is None or size == length
    except UpstreamError as exc:
        log.warning("upstream failed mid-body after %d bytes: %s", size, exc)
    finally:
        upstream.release()
    body = b"".join(chunks) if keep and complete else None
    if on_complete is not None:
        on_complete(body)
    if not complete:
        # The status line is gone already: a truncated body must not look complete, so the
        # connection is cut instead of finishing a chunked or short body.
        writer.abort()
    elif client_ok:
        try:
            await writer.finish()
        except (ClientDisconnected, ValueError):
            writer.abort()
    return Relayed(sent_bytes=size, body=body)


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


async def _start(request: Request, status: int, fields: list[Field], length: int | None) -> bool:
    try:
        await request.writer.start(status, fields, length=length)
    except ClientDisconnected:
        return False
    return True


async def _write(request: Request, chunk: bytes, length: int | None, size: int) -> bool:
    if length is not None and size > length:
        # RFC 9112 §6.3: more than Content-Length is not part of this response.
        return False
    try:
        await request.writer.write(chunk)
    except ClientDisconnected:
        return False
    return True


async def read_all(upstream: UpstreamResponse, *, limit: int) -> tuple[bytes | None, list[bytes]]:
    """Read the whole body; (body, []) when complete within ``limit``.

    Past ``limit`` it stops and returns (None, chunks read so far) with the rest unread, so the
    caller can stream them and the rest with :func:`relay` (``prefix=``).
    """
    length = declared_length(upstream.headers)
    chunks: list[bytes] = []
    size = 0
    async for chunk in upstream.body():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None, chunks
    if length is not None and size != length:
        raise UpstreamError(f"the origin sent {size} body bytes of {length} announced")
    return b"".join(chunks), []


async def request_body(
    request: Request, *, limit: int, failed: list[RequestRejected]
) -> AsyncIterator[bytes]:
    """The client's request body as a stream. Past ``limit``, or when the server could not
    read it to its end (:class:`~edge.server.BodyError`), it stops and puts the answer the
    client gets into ``failed``: the upstream client only sees the stream break."""
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                reason = f"request body is over the limit of {limit} bytes"
                failed.append(RequestRejected(413, reason, close=True))
                raise BodyFailed
            yield chunk
    except BodyError as exc:
        refusal = exc.refusal
        failed.append(RequestRejected(refusal.status, refusal.reason, close=refusal.close))
        raise BodyFailed from exc


class BodyFailed(Exception):
    """The client's request body stopped; the answer it gets is in ``request_body``'s list."""


async def buffered_body(
    chunks: AsyncIterator[bytes], *, buffer_bytes: int, length: int | None
) -> StreamBody | bytes:
    """The body whole when it fits in ``buffer_bytes``, else what was read and the rest as a
    stream. Raises :class:`BodyFailed` when the body breaks before that."""
    head: list[bytes] = []
    size = 0
    async for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size > buffer_bytes:
            return StreamBody(_chain(head, chunks), length)
    return b"".join(head)
