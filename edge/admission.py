"""Admission: a server request becomes an :class:`~edge.exchange.Exchange`, or is refused.

:meth:`Admission.admit` applies the message rules of :mod:`edge.limits` (header bytes, UTF-8,
method, a body on GET or HEAD; framing, versions and body sizes are the server's), finds the
configured origin of the request's host (absolute-form targets give their authority, RFC 9112
§3.2.2; 400 without a host, 421 for a host no origin serves) and, on an edge, drops the user's
``X-Overlay-*`` fields and refuses a request that already crossed this CDN (508, RFC 8586).
:func:`request_head` is the one conversion from a server request to a :class:`RequestHead`,
which the shield's ingress uses too. Host lookups and cache keys are memoised, bounded: a hit
does not redo them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from cdn_core.cache_key import normalize_host, primary_key
from cdn_core.cache_policy import LOOKUP_METHODS
from cdn_core.config import Config, OriginConfig
from cdn_core.hop import OVERLAY_PREFIX, HopRefused, check_client_loop
from cdn_core.http import Headers, RequestHead
from edge.exchange import Exchange
from edge.limits import RequestRejected, check_head, check_message
from edge.server import Request
from overlay.upstream import Upstream

# Bounds of the memos (each is cleared when full): Host values of configured origins, and
# primary keys of (host, target) pairs.
_MAX_HOSTS = 256
_MAX_KEYS = 4096


def request_head(request: Request, *, host: str, target: str) -> RequestHead:
    """The request as the cache core sees it: fields as received (decoded as UTF-8, which
    :func:`edge.limits.check_head` guarantees), ``host`` normalised, ``target`` origin-form.

    Built from the raw fields, so that the hit path never builds the request's multidict."""
    fields = Headers(
        (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
        for name, value in request.raw_headers
    )
    return RequestHead(method=request.method, host=host, target=target, headers=fields)


class Admission:
    """The front door of one node's data plane (``from_users`` on an edge)."""

    def __init__(
        self, config: Config, upstreams: Mapping[str, Upstream], *, from_users: bool
    ) -> None:
        self._origins = {host: o for o in config.origins for host in o.hostnames}
        self._upstreams = upstreams
        self._proxy = config.proxy
        self._cluster = config.cluster
        self._from_users = from_users
        self._sites: dict[str, tuple[str, OriginConfig]] = {}
        self._keys: dict[tuple[str, str], str] = {}

    def admit(self, request: Request) -> Exchange:
        """The exchange of ``request``; raises :class:`RequestRejected` with the answer."""
        check_head(request.raw_headers, self._proxy)
        check_message(request.method, has_body=request.body_exists)
        target = request.raw_path
        if target.startswith("/"):
            host = request.host
        else:
            # RFC 9112 §3.2.2: the target's authority replaces Host.
            host, target = absolute_form(target)
        site = self._sites.get(host)
        if site is None:
            site = self._site(host)
        name, origin = site
        head = request_head(request, host=name, target=target)
        if self._from_users:
            head = self._user_head(head)
        key = self._key(head) if head.method in LOOKUP_METHODS else ""
        upstream = self._upstreams[origin.name]
        return Exchange(request=request, head=head, origin=origin, upstream=upstream, key=key)

    def origin_of(self, host: str) -> OriginConfig:
        """The origin serving the normalised ``host`` of an admitted request."""
        return self._origins[host]

    def _site(self, host: str) -> tuple[str, OriginConfig]:
        """The normalised name and the origin of a ``Host`` value; 400 or 421 when none."""
        if not host:
            raise RequestRejected(400, "the request has no Host header")
        name = normalize_host(host)
        origin = self._origins.get(name)
        if origin is None:
            raise RequestRejected(
                421, f"this CDN node does not serve the host {name!r} (not a configured origin)"
            )
        if len(self._sites) >= _MAX_HOSTS:
            self._sites.clear()
        self._sites[host] = (name, origin)
        return name, origin

    def _user_head(self, head: RequestHead) -> RequestHead:
        """A user's request minus any ``X-Overlay-*``; 508 when it already crossed this CDN."""
        headers = head.headers
        if "cdn-loop" in headers and isinstance(
            check_client_loop(headers, cluster=self._cluster), HopRefused
        ):
            raise RequestRejected(
                508, f"the request already went through the CDN {self._cluster!r} (CDN-Loop)"
            )
        # Headers holds lower-cased names.
        if any(name.startswith(OVERLAY_PREFIX) for name, _ in headers):
            kept = Headers((k, v) for k, v in headers if not k.startswith(OVERLAY_PREFIX))
            return RequestHead(method=head.method, host=head.host, target=head.target, headers=kept)
        return head

    def _key(self, head: RequestHead) -> str:
        """``primary_key(head)``, memoised per (host, target)."""
        pair = (head.host, head.target)
        key = self._keys.get(pair)
        if key is None:
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            key = self._keys[pair] = primary_key(head)
        return key


def absolute_form(target: str) -> tuple[str, str]:
    """Host and origin-form target of an absolute-form request target (RFC 9112 §3.2.2)."""
    try:
        parts = urlsplit(target)
        host = parts.hostname or ""
    except ValueError:
        raise RequestRejected(400, f"malformed request target {target[:200]!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RequestRejected(400, f"unsupported request target {target[:200]!r}")
    path = parts.path or "/"
    return host, f"{path}?{parts.query}" if parts.query else path
