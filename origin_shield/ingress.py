"""The shield's front door: only authenticated overlay hops get in.

:func:`overlay_ingress` is an aiohttp middleware the shield role installs on its data-plane app.
For each request it:

0. applies an edge's message rules (:mod:`edge.limits`: a GET or HEAD with a body, TRACE,
   a field that is not UTF-8...): 400, 405 or 505;
1. refuses a loop (this node already in ``CDN-Loop``) or a request past the hop limit: 508;
2. refuses anything without a valid authentication tag (which covers the method, Host, target
   and every end-to-end field, :mod:`cdn_core.overlay_auth`), or whose route does not name
   this node as the next hop: 403;
3. relays a request whose route goes on past this node to the next hop (a one-hop detour),
   streaming the answer back without caching it;
4. hands the rest to the caching engine, whose upstream (:mod:`origin_shield.origin`) strips
   the overlay fields before it contacts the origin.

Refusals carry ``X-Overlay-Error`` so that the sender counts them as a failed hop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from cdn_core.cache_key import normalize_host
from cdn_core.config import Config
from cdn_core.errors import UpstreamError
from cdn_core.hop import HopRefused, check_hop
from cdn_core.http import Headers, RequestHead
from cdn_core.overlay_auth import Invalid, verify
from edge.limits import RequestRejected, check_head, check_message, transfer_coding
from overlay.peers import OVERLAY_ERROR_HEADER, PeerClient
from overlay.upstream import StreamBody, Timeouts

log = logging.getLogger(__name__)


class OverlayGuard:
    """The checks and the relay of :func:`overlay_ingress`, for node ``node``."""

    def __init__(
        self,
        config: Config,
        node: str,
        secret: bytes,
        peers: PeerClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.node = node
        self._secret = secret
        self._peers = peers
        self._clock = clock
        self._known = frozenset(n.name for n in config.nodes)
        self.refused: dict[str, int] = {}

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            # The same message rules as an edge's (edge.limits), before anything is relayed.
            check_head(request.raw_headers, self.config.proxy)
            check_message(
                request.version,
                request.method,
                has_body=request.body_exists,
                transfer_coding=transfer_coding(request.headers),
            )
        except RequestRejected as exc:
            refused = self._refuse(exc.status, "bad-request")
            if exc.close:
                refused.force_close()
            return refused
        head = head_of(request)
        hop = check_hop(
            head.headers,
            cluster=self.config.cluster,
            node=self.node,
            hop_limit=self.config.overlay.hop_limit,
        )
        if isinstance(hop, HopRefused):
            return self._refuse(hop.status, hop.reason.value)
        verdict = verify(
            self._secret,
            head.headers,
            method=head.method,
            host=head.host,
            target=head.target,
            now=self._clock(),
            max_skew_s=self.config.overlay.auth_max_skew_s,
            known_nodes=self._known,
        )
        if isinstance(verdict, Invalid):
            return self._refuse(403, verdict.reason.value)
        if not verdict.route or verdict.route[0] != self.node:
            return self._refuse(403, "misrouted")
        if len(verdict.route) > 1:
            return await self._relay(request, head, verdict.route[1:])
        return await handler(request)

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        return web.Response(
            status=status,
            text=f"overlay hop refused: {reason}\n",
            headers={OVERLAY_ERROR_HEADER: reason, "Cache-Control": "no-store"},
        )

    async def _relay(
        self, request: web.Request, head: RequestHead, route: tuple[str, ...]
    ) -> web.StreamResponse:
        body = (
            StreamBody(request.content.iter_any(), request.content_length)
            if request.body_exists
            else None
        )
        timeouts = Timeouts.from_config(self.config.proxy)
        try:
            upstream = await self._peers.send(route, head, body, timeouts=timeouts)
        except UpstreamError as exc:
            log.info("relay to %s failed: %s", route[0], exc)
            return self._refuse(exc.status_hint, "relay-failed")
        response = web.StreamResponse(status=upstream.status)
        for name, value in upstream.headers:
            if name not in ("content-length", "transfer-encoding", "connection", "keep-alive"):
                response.headers.add(name, value)
        length = upstream.headers.get("content-length")
        if length is not None and length.isdigit():
            response.content_length = int(length)
        try:
            await response.prepare(request)
            async for chunk in upstream.body():
                await response.write(chunk)
            await response.write_eof()
        except (UpstreamError, ConnectionError) as exc:
            log.info("relay to %s broke mid-body: %s", route[0], exc)
        finally:
            upstream.release()
        return response


def overlay_ingress(guard: OverlayGuard) -> Middleware:
    """The aiohttp middleware of :class:`OverlayGuard`: ``app.middlewares.append(...)``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await guard.handle(request, handler)

    return middleware


def head_of(request: web.BaseRequest) -> RequestHead:
    """The request as a :class:`RequestHead` (host normalised as in cache keys).

    Fields are decoded as UTF-8, as the sending edge decoded them when it signed them
    (:func:`edge.limits.check_head` refuses any other bytes).
    """
    return RequestHead(
        method=request.method,
        host=normalize_host(request.host or ""),
        target=request.raw_path,
        headers=Headers(request.headers.items()),
    )
