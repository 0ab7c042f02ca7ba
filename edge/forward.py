"""Moving bodies: upstream responses to the client (tee'd into the store) and request bodies up.

:func:`relay` streams an upstream body to the client chunk by chunk and, when asked, keeps a copy
for the store, giving the copy up as soon as it passes ``max_object_bytes``. A client that goes
away does not stop the copy: the store (and the requests coalesced behind this one) still get
the object. :func:`read_all` buffers a body for the cases that must see it whole first
(HEAD, Range and conditional requests on a miss, background refreshes).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from cdn_core.errors import UpstreamError
from cdn_core.http import Headers
from edge.upstream import UpstreamResponse

log = logging.getLogger(__name__)

_CLIENT_GONE = (ConnectionError, RuntimeError)
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True, slots=True, kw_only=True)
class Relayed:
    """What :func:`relay` did: the response sent, the bytes sent, and the stored copy."""

    response: web.StreamResponse
    sent_bytes: int
    body: bytes | None  # the complete body when a copy was kept and it is complete


def declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)


async def relay(
    request: web.BaseRequest,
    upstream: UpstreamResponse,
    *,
    status: int,
    headers: CIMultiDict[str],
    keep_copy_up_to: int | None,
    on_complete: Callable[[bytes | None], None] | None = None,
    prefix: list[bytes] | None = None,
) -> Relayed:
    """Stream ``upstream``'s body to the client; keep a copy up to ``keep_copy_up_to`` bytes.

    ``on_complete`` runs with the complete copy (or None) before the response is finished, so
    the object is in the store before the client has seen the last byte's acknowledgement.
    """
    length = declared_length(upstream.headers)
    response = web.StreamResponse(status=status, headers=headers)
    if length is not None and status not in _NO_BODY_STATUSES and status >= 200:
        response.content_length = length
    keep = keep_copy_up_to is not None
    chunks: list[bytes] = []
    size = 0
    client_ok = await _prepare(response, request)
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
                client_ok = await _write(response, chunk)
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
        _abort(request)
    elif client_ok:
        await _finish(response)
    return Relayed(response=response, sent_bytes=size, body=body)


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


async def _prepare(response: web.StreamResponse, request: web.BaseRequest) -> bool:
    try:
        await response.prepare(request)
    except _CLIENT_GONE:
        return False
    return True


async def _write(response: web.StreamResponse, chunk: bytes) -> bool:
    try:
        await response.write(chunk)
    except _CLIENT_GONE:
        return False
    return True


async def _finish(response: web.StreamResponse) -> None:
    with contextlib.suppress(*_CLIENT_GONE):
        await response.write_eof()


def _abort(request: web.BaseRequest) -> None:
    # The status line is gone already: a truncated body must not look complete, so the
    # connection is cut instead of finishing a chunked or short body.
    transport = request.transport
    if transport is not None:
        transport.abort()


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
    request: web.BaseRequest, *, limit: int, exceeded: list[bool]
) -> AsyncIterator[bytes]:
    """The client's request body as a stream, stopped (and ``exceeded`` flagged) past ``limit``."""
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            exceeded.append(True)
            raise _BodyTooLarge
        yield chunk


class _BodyTooLarge(Exception):
    pass
