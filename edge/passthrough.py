"""Unsafe methods (POST, PUT, DELETE, ...): passed through, never stored, and invalidating.

The request body is streamed up as it arrives, with its own length (or chunked), and stopped
with 413 past ``proxy.max_request_body_bytes``. A successful answer invalidates the stored
responses for the target and for its ``Location`` and ``Content-Location`` on the same host
(RFC 9111 §4.4).
"""

from __future__ import annotations

from aiohttp import web

from cdn_core.cache_policy import invalidated_keys
from cdn_core.cache_status import Forward
from cdn_core.config import ProxyConfig
from cdn_core.errors import UpstreamError
from cdn_core.http import ResponseHead
from edge.exchange import Exchange
from edge.forward import request_body
from edge.limits import RequestRejected
from edge.miss import MissPath, PassOn
from edge.parts import Parts
from edge.upstream import RequestBody, StreamBody


class PassThrough:
    """The unsafe methods of one node."""

    def __init__(self, parts: Parts, *, misses: MissPath, proxy: ProxyConfig) -> None:
        self._answers = parts.answers
        self._sender = parts.sender
        self._store = parts.store
        self._misses = misses
        self._limit = proxy.max_request_body_bytes

    async def handle(self, x: Exchange) -> web.StreamResponse:
        request, head = x.request, x.head
        up_head = self._sender.head_for(head, x.client_ip, full_object=False)
        exceeded: list[bool] = []
        body: RequestBody = None
        if request.body_exists:
            chunks = request_body(request, limit=self._limit, exceeded=exceeded)
            body = StreamBody(chunks, request.content_length)
        try:
            response = await self._sender.send(x.upstream, up_head, body)
        except Exception as exc:
            if exceeded:
                reason = f"request body is over the limit of {self._limit} bytes"
                return self._answers.reject(RequestRejected(413, reason))
            if isinstance(exc, UpstreamError):
                return self._answers.upstream_failed(head, None, Forward.METHOD, exc)
            raise
        answer = ResponseHead(status=response.status, headers=response.headers)
        for key in invalidated_keys(head, answer):
            self._store.invalidate(key)
        status = self._answers.status(hit=False, fwd=Forward.METHOD, fwd_status=response.status)
        return await self._misses.pass_on(x, PassOn(response, status))
