"""What a node forwards upstream from a user's request, and what it never forwards.

Theory of operation. An edge faces users, so every field of a user request is untrusted. The
fields the edge sends toward the origin are computed here, as a value, from the fields it
received:

- **Framing** (``Content-Length``, ``Transfer-Encoding``) is never copied: the node that sends a
  body computes its framing for the body it actually sends (RFC 9112 §6, RFC 9110 §9.3.1). A
  request whose body is not forwarded therefore carries no framing fields upstream, so the next
  hop cannot wait for bytes that never come and take them from the next request on a reused
  connection (request smuggling).
- **Hop-by-hop** fields (RFC 9110 §7.6.1) and ``Expect`` (answered by this node) stay here.
- **Unkeyed** fields that origins commonly trust to build URLs, redirects or links
  (:data:`UNKEYED_CLIENT_FIELDS`: ``X-Forwarded-Host``, ``Forwarded``, ``X-Original-URL``...)
  are dropped from user requests: the cache key does not hold them, so a response shaped by
  them would be served to every other user (cache poisoning). An operator who needs one of
  them names it in ``[[origins]] pass_headers``; it is then forwarded and, so that it cannot
  poison, added to the ``Vary`` of every response stored for that origin
  (:func:`vary_with`): each value gets its own stored variant. A user field whose name has
  an underscore is dropped too (unless passed by that exact name): CGI, WSGI and PHP origins
  read ``X_Forwarded_Host`` as ``X-Forwarded-Host``.
- The edge then sets its own ``X-Forwarded-For`` (the user's address: a client-sent chain is
  not trusted), ``X-Forwarded-Proto`` and ``Via``.
- ``Host`` is never a client's: the upstream ``Host`` is the configured hostname the request
  was matched to (RFC 9112 §3.2.2: with an absolute-form target, its authority replaces
  ``Host``), or the origin's ``host_header`` at the last hop.
"""

from __future__ import annotations

from collections.abc import Collection

from cdn_core.http import FRAMING_FIELDS, Headers, split_unquoted, strip_hop_by_hop

# Fields a user may not set on a request toward the origin (see the module docstring).
UNKEYED_CLIENT_FIELDS = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-original-url",
        "x-original-host",
        "x-rewrite-url",
        "x-host",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-real-ip",
        "true-client-ip",
    }
)

# Fields no configuration can pass through (they are the node's own to compute).
NEVER_PASSED = frozenset({"host", "expect", "via", *FRAMING_FIELDS})


def without_framing(headers: Headers) -> Headers:
    """``headers`` minus ``Content-Length`` and ``Transfer-Encoding`` (RFC 9112 §6)."""
    return headers.without(*FRAMING_FIELDS)


def upstream_fields(
    headers: Headers,
    *,
    host: str,
    via: str,
    client_ip: str | None,
    from_user: bool,
    passed: Collection[str] = (),
    scheme: str = "http",
) -> Headers:
    """The fields a node sends upstream for a request it received with ``headers``.

    Args:
        headers: the received request's fields (names lower-case).
        host: the configured hostname the request was matched to (lower-case, no port).
        via: this node's ``Via`` member, e.g. ``"1.1 edge-1"``.
        client_ip: the address the request came from.
        from_user: True on an edge (a user's request: unkeyed fields are dropped and the
            forwarding fields are this node's); False on a shield (an authenticated hop whose
            forwarding fields the edge set).
        passed: lower-case names from ``[[origins]] pass_headers`` that users may set.
        scheme: the scheme the user spoke, for ``X-Forwarded-Proto``.

    Returns:
        The fields without framing, hop-by-hop fields or ``Expect``, with ``Host`` and
        ``Via`` (and, from a user, ``X-Forwarded-For`` and ``X-Forwarded-Proto``) set.
    """
    out = without_framing(strip_hop_by_hop(headers)).without("expect", "host")
    if from_user:
        drop = UNKEYED_CLIENT_FIELDS.difference(passed)
        if any(_is_dropped(name, drop, passed) for name, _ in out):
            out = Headers((k, v) for k, v in out if not _is_dropped(k, drop, passed))
        if client_ip:
            out = out.with_set("x-forwarded-for", client_ip)
        out = out.with_set("x-forwarded-proto", scheme)
    previous = out.get_joined("via")
    out = out.with_set("via", f"{previous}, {via}" if previous else via)
    return out.with_set("host", host)


def _is_dropped(name: str, drop: frozenset[str], passed: Collection[str]) -> bool:
    # CGI, WSGI and PHP origins read X_Forwarded_Host as X-Forwarded-Host: a user field with an
    # underscore is dropped unless passed by its exact name (as nginx drops them by default).
    return name in drop or ("_" in name and name not in passed)


def vary_with(headers: Headers, names: Collection[str]) -> Headers:
    """A response's fields with every name of ``names`` listed in ``Vary`` (RFC 9110 §12.5.5).

    Used for the ``pass_headers`` of an origin: a request field that reaches the origin but is
    not part of the cache key must select the stored variant, or it could poison the cache.
    A ``Vary: *`` response is returned as it is (it is never reused anyway).
    """
    if not names:
        return headers
    listed = [m.strip() for v in headers.get_all("vary") for m in split_unquoted(v) if m.strip()]
    present = {m.lower() for m in listed}
    if "*" in present:
        return headers
    missing = [n for n in names if n.lower() not in present]
    if not missing:
        return headers
    return headers.with_set("vary", ", ".join([*listed, *missing]))
