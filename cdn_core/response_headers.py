"""Header fields on the way out: to clients, into the store, and on 304s.

Clients never see ``CDN-Cache-Control`` (RFC 9213 §2: it is meant for this CDN), the surrogate
keys ``Surrogate-Key`` / ``Cache-Tag`` (recorded per object for tag purges), nor hop-by-hop
fields (RFC 9110 §7.6.1). Every response served from the cache carries ``Age`` (RFC 9111 §5.1).
"""

from __future__ import annotations

from cdn_core.http import Headers, strip_hop_by_hop

SURROGATE_KEY_FIELDS = ("surrogate-key", "cache-tag")
CDN_ONLY_FIELDS = frozenset({"cdn-cache-control", *SURROGATE_KEY_FIELDS})

# RFC 9110 §15.4.5: the fields a 304 carries when a 200 would have carried them.
_NOT_MODIFIED_FIELDS = (
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "last-modified",
)


def client_headers(stored: Headers, *, age_s: int | None) -> Headers:
    """Headers to send a client: hop-by-hop, CDN-only fields stripped, ``Age`` set.

    Args:
        stored: the stored (or upstream) response header fields.
        age_s: the current age (RFC 9111 §4.2.3) for a cached response; None keeps the
            upstream's Age as is (pass-through responses).

    Returns:
        The header fields for the client.
    """
    headers = strip_hop_by_hop(stored).without(*CDN_ONLY_FIELDS)
    if age_s is None:
        return headers
    return headers.with_set("age", str(max(0, age_s)))


def not_modified_headers(stored: Headers, *, age_s: int) -> Headers:
    """Headers of a 304 answered from the cache (RFC 9110 §15.4.5, RFC 9111 §4.3.2)."""
    kept = Headers([(k, v) for k, v in stored if k in _NOT_MODIFIED_FIELDS])
    return kept.with_set("age", str(max(0, age_s)))


def surrogate_keys(headers: Headers) -> frozenset[str]:
    """The surrogate keys of a response: ``Surrogate-Key`` and ``Cache-Tag`` values, split on
    commas and whitespace.

    Args:
        headers: response header fields.

    Returns:
        The set of keys (case kept).
    """
    keys: set[str] = set()
    for name in SURROGATE_KEY_FIELDS:
        for value in headers.get_all(name):
            keys.update(value.replace(",", " ").split())
    return frozenset(keys)


def with_via(headers: Headers, *, node: str, protocol: str = "1.1") -> Headers:
    """Append this node to ``Via`` (RFC 9110 §7.6.3), e.g. ``"1.1 edge-eu-1"``."""
    hop = f"{protocol} {node}"
    previous = headers.get_joined("via")
    return headers.with_set("via", f"{previous}, {hop}" if previous else hop)
