"""Purge rules: what a cluster-wide purge removes, and the port a cache implements to apply one.

A :class:`PurgeRule` is one entry of the purge log. Its ``values`` are canonical so that every
node matches them the same way:

- ``url``: ``host + target`` (``"www.example.test/a?b=1"``): one exact object;
- ``prefix``: ``host + path prefix`` (``"www.example.test/img/"``): every object under it;
- ``tag``: surrogate keys as the edge recorded them (``Surrogate-Key``, space separated);
- ``all``: host names: every object of that host.

The host is lowercased and carries no port; the target is the request target as the client sent
it (path and query). ``soft`` marks objects stale instead of removing them (so that
``stale-while-revalidate`` / ``stale-if-error`` still apply and the next fetch revalidates with a
conditional request, RFC 9111 §4.3), as Fastly's soft purge does.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from cdn_core.errors import PurgeError

_TAG = re.compile(r"[!-~]{1,256}")  # visible ASCII, no spaces: one surrogate key
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?")
MAX_VALUES = 1000


class PurgeKind(enum.Enum):
    URL = "url"
    PREFIX = "prefix"
    TAG = "tag"
    ALL = "all"


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeRule:
    """One purge: which objects (``kind`` + canonical ``values``), how (``soft``), and its id."""

    id: str
    kind: PurgeKind
    values: tuple[str, ...]
    soft: bool = False


class PurgeTarget(Protocol):
    """What a node's cache implements so that the control plane can apply purges to it."""

    def purge(self, rule: PurgeRule, *, now: float) -> int:
        """Remove (hard) or mark stale (soft) every object ``rule`` matches; return how many."""
        ...

    def drop_all(self) -> int:
        """Forget every object: the purge log was trimmed past this node's position."""
        ...


def cache_key_of(host: str, target: str) -> str:
    """The string ``url`` and ``prefix`` rules compare with: lowercased host, then the target."""
    return f"{host}{target}"


def matches(rule: PurgeRule, *, host: str, target: str, tags: Iterable[str] = ()) -> bool:
    """Whether ``rule`` covers the object stored for ``host`` and ``target`` with ``tags``.

    Args:
        rule: the purge.
        host: the lowercased Host of the request, without port (RFC 9110 §7.2).
        target: the request target, path and query (RFC 9112 §3.2.1 origin-form).
        tags: the object's surrogate keys.

    Returns:
        True when the object must be removed or marked stale.
    """
    if rule.kind is PurgeKind.URL:
        return cache_key_of(host, target) in rule.values
    if rule.kind is PurgeKind.PREFIX:
        key = cache_key_of(host, target)
        return any(key.startswith(value) for value in rule.values)
    if rule.kind is PurgeKind.TAG:
        return not set(rule.values).isdisjoint(tags)
    return host in rule.values


def make_rule(kind: PurgeKind | str, values: Sequence[str], *, soft: bool, id: str) -> PurgeRule:
    """Build a rule from operator input, canonicalising its values.

    Args:
        kind: ``url``, ``prefix``, ``tag`` or ``all``.
        values: absolute http(s) URLs (url, prefix), surrogate keys (tag) or host names (all).
        soft: mark stale instead of removing.
        id: the purge's unique id (acknowledgements are keyed by it).

    Returns:
        The rule with canonical values (see the module docstring).

    Raises:
        PurgeError: an unknown kind, no values, too many values, or a malformed value.
    """
    try:
        purge_kind = PurgeKind(kind)
    except ValueError:
        raise PurgeError(
            f"unknown purge kind {kind!r} (expected url | prefix | tag | all)"
        ) from None
    if not values:
        raise PurgeError(f"a {purge_kind.value} purge needs at least one value")
    if len(values) > MAX_VALUES:
        raise PurgeError(f"a purge takes at most {MAX_VALUES} values (got {len(values)})")
    if not id or not _TAG.fullmatch(id):
        raise PurgeError(f"bad purge id {id!r}")
    canonical = tuple(_canonical(purge_kind, value) for value in values)
    return PurgeRule(id=id, kind=purge_kind, values=canonical, soft=soft)


def _canonical(kind: PurgeKind, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise PurgeError(f"a {kind.value} purge value must be a non-empty string (got {value!r})")
    if kind is PurgeKind.TAG:
        if not _TAG.fullmatch(value):
            raise PurgeError(f"bad surrogate key {value!r} (visible ASCII, no spaces, <= 256)")
        return value
    if kind is PurgeKind.ALL:
        return _host(value.lower().rstrip("."), value)
    return _url_key(kind, value)


def _url_key(kind: PurgeKind, value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise PurgeError(f"bad URL {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PurgeError(f"a {kind.value} purge needs an absolute http(s) URL (got {value!r})")
    host = _host(parts.hostname.rstrip("."), value)
    target = parts.path or "/"
    if parts.query or value.endswith("?"):
        target = f"{target}?{parts.query}"
    return cache_key_of(host, target)


def _host(host: str, value: str) -> str:
    if not _HOST.fullmatch(host):
        raise PurgeError(f"bad host name in {value!r}")
    return host


def to_wire(rule: PurgeRule) -> dict[str, Any]:
    """The rule as a JSON-ready mapping (the purge log's entry format)."""
    return {"id": rule.id, "kind": rule.kind.value, "values": list(rule.values), "soft": rule.soft}


def from_wire(data: Mapping[str, Any]) -> PurgeRule:
    """Parse a rule written by :func:`to_wire`.

    Raises:
        PurgeError: a field is missing or malformed.
    """
    kind, values, soft, id = (data.get(k) for k in ("kind", "values", "soft", "id"))
    if not isinstance(values, list) or not isinstance(soft, bool) or not isinstance(id, str):
        raise PurgeError(f"malformed purge rule {dict(data)!r}")
    if not isinstance(kind, str):
        raise PurgeError(f"malformed purge kind {kind!r}")
    try:
        purge_kind = PurgeKind(kind)
    except ValueError:
        raise PurgeError(f"unknown purge kind {kind!r}") from None
    if not values or not all(isinstance(v, str) and v for v in values):
        raise PurgeError(f"malformed purge values {values!r}")
    return PurgeRule(id=id, kind=purge_kind, values=tuple(values), soft=soft)
