"""Unsafe methods (POST, PUT, DELETE, ...): passed through, never stored, and invalidating.

The request body is read first, up to :data:`BUFFER_BYTES` (as nginx buffers request bodies):
a body that breaks (malformed, stalled, abandoned, or over ``proxy.max_request_body_bytes``:
413) is answered without the origin ever seeing the request, a slow client does not hold an
origin connection, and the request goes up with its exact length. A larger body is streamed
up as it arrives once that much has been read. A successful answer invalidates the stored
responses for the target and for its ``Location`` and ``Content-Location`` on the same host
(RFC 9111 §4.4).
"""

from __future__ import annotations

from cdn_core.cache_policy import invalidated_keys
from cdn_core.cache_status import Forward
from cdn_core.config import ProxyConfig
from cdn_core.errors import UpstreamError
from cdn_core.http import ResponseHead
from edge.exchange import Exchange
from edge.forward import BodyFailed, buffered_body, request_body
from edge.limits import RequestRejected
from edge.miss import MissPath, PassOn
from edge.parts import Parts
from edge.server import Answer
from overlay.upstream import RequestBody

BUFFER_BYTES = 1024 * 1024


class PassThrough:
    """The unsafe methods of one node."""

    def __init__(self, parts: Parts, *, misses: MissPath, proxy: ProxyConfig) -> None:
        self._answers = parts.answers
        self._sender = parts.sender
        self._store = parts.store
        self._misses = misses
        self._limit = proxy.max_request_body_bytes

    async def handle(self, x: Exchange) -> Answer:
        request, head = x.request, x.head
        up_head = self._sender.head_for(head, x.client_ip, full_object=False)
        failed: list[RequestRejected] = []
        body: RequestBody = None
        if request.body_exists:
            chunks = request_body(request, limit=self._limit, failed=failed)
            try:
                body = await buffered_body(
                    chunks, buffer_bytes=BUFFER_BYTES, length=request.content_length
                )
            except BodyFailed:
                return self._answers.reject(failed[0])  # the upstream never saw it
        try:
            response = await self._sender.send(x.upstream, up_head, body)
        except Exception as exc:
            if failed:  # the client's body broke the upstream request: answer the client
                return self._answers.reject(failed[0])
            if isinstance(exc, UpstreamError):
                return self._answers.upstream_failed(head, None, Forward.METHOD, exc)
            raise
        answer = ResponseHead(status=response.status, headers=response.headers)
        for key in invalidated_keys(head, answer):
            self._store.invalidate(key)
        status = self._answers.status(hit=False, fwd=Forward.METHOD, fwd_status=response.status)
        return await self._misses.pass_on(x, PassOn(response, status))
