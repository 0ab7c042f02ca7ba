"""The shield's front door: only authenticated overlay hops get in.

:class:`OverlayGuard` is the guard (:data:`edge.app.Guard`) the shield role puts in front of its
caching engine. For each request it:

0. applies an edge's message rules (:mod:`edge.limits`: a GET or HEAD with a body, TRACE,
   a field that is not UTF-8...): 400 or 405;
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

from cdn_core.cache_key import normalize_host
from cdn_core.config import Config
from cdn_core.errors import UpstreamError
from cdn_core.hop import HopRefused, check_hop
from cdn_core.http import FRAMING_FIELDS, RequestHead, strip_hop_by_hop
from cdn_core.overlay_auth import Invalid, verify
from edge.admission import request_head
from edge.forward import relay
from edge.limits import RequestRejected, check_head, check_message
from edge.server import Answer, Handler, Request, Response
from overlay.peers import OVERLAY_ERROR_HEADER, PeerClient
from overlay.upstream import StreamBody, Timeouts

log = logging.getLogger(__name__)


class OverlayGuard:
    """The checks and the relay of the shield's ingress, for node ``node``."""

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

    async def __call__(self, request: Request, handler: Handler) -> Answer:
        """The :data:`edge.app.Guard` of the shield's data plane."""
        try:
            # The same message rules as an edge's (edge.limits), before anything is relayed.
            check_head(request.raw_headers, self.config.proxy)
            check_message(request.method, has_body=request.body_exists)
        except RequestRejected as exc:
            return self._refuse(exc.status, "bad-request", close=exc.close)
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

    def _refuse(self, status: int, reason: str, *, close: bool = False) -> Response:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        fields = [(OVERLAY_ERROR_HEADER, reason), ("Cache-Control", "no-store")]
        body = f"overlay hop refused: {reason}\n".encode()
        return Response(status, fields, body, close=close)

    async def _relay(self, request: Request, head: RequestHead, route: tuple[str, ...]) -> Answer:
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
        fields = [
            (name, value)
            for name, value in strip_hop_by_hop(upstream.headers).without(*FRAMING_FIELDS)
        ]
        await relay(request, upstream, status=upstream.status, fields=fields, keep_copy_up_to=None)
        return None


def head_of(request: Request) -> RequestHead:
    """The request as a :class:`RequestHead` (host normalised as in cache keys), as the sending
    edge signed it (:func:`edge.admission.request_head`)."""
    return request_head(request, host=normalize_host(request.host), target=request.raw_path)
