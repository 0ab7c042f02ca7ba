"""Cache-Control and CDN-Cache-Control directives (RFC 9111 §5.2, RFC 9213, RFC 5861).

``CDN-Cache-Control`` is parsed strictly, as the Structured Field Dictionary it is (RFC 9213
§2.1): an invalid one is ignored as a whole (:func:`targeted_cache_control`).

``Cache-Control`` parsing is tolerant and never raises: unknown directives are ignored, the
first occurrence of a repeated directive wins (RFC 9111 §4.2.1), and a malformed ``max-age`` /
``s-maxage`` value is read as 0 so that the response is treated as stale rather than fresh for
longer than the origin meant. Malformed values of the other numeric directives are ignored.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from cdn_core.http import Headers, split_unquoted
from cdn_core.structured_field import Item, StructuredFieldError, parse_dictionary

# RFC 9111 §1.2.2: delta-seconds larger than this are capped to it.
MAX_DELTA_SECONDS = 2_147_483_648

_DIRECTIVE = re.compile(
    r"""\s*(?P<name>[^\s=,;"]+)\s*(?:=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^\s,;"]*)))?\s*"""
)
_QUOTED_PAIR = re.compile(r"\\(.)")
# Parsed values are memoised (they are frozen): a stored head is parsed on every hit otherwise.
# Longer values (rare, and client-controlled) are parsed each time so the memo stays small.
_MEMO_SIZE = 4096
_MEMO_MAX_CHARS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheControl:
    """The directives of one Cache-Control (or CDN-Cache-Control) field, request or response."""

    no_store: bool = False
    no_cache: bool = False
    no_cache_fields: tuple[str, ...] = ()
    private: bool = False
    private_fields: tuple[str, ...] = ()
    public: bool = False
    max_age: int | None = None
    s_maxage: int | None = None
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    immutable: bool = False
    no_transform: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    only_if_cached: bool = False
    max_stale: float | None = None
    min_fresh: int | None = None


def parse_cache_control(value: str | None) -> CacheControl:
    """Parse a Cache-Control field value (RFC 9111 §5.2); tolerant, never raises.

    Args:
        value: the (comma-joined) field value, or None when the field is absent.

    Returns:
        The directives; ``max-stale`` without a value is ``math.inf``. Qualified ``no-cache`` and
        ``private`` set the flag and list the field names (lower-cased). Equal values give the
        same (shared, frozen) result.
    """
    return _parsed(value or "")[0]


def _parsed(value: str) -> tuple[CacheControl, bool]:
    """The directives of ``value`` and whether it has any directive at all, memoised."""
    if len(value) > _MEMO_MAX_CHARS:
        return _parse(value)
    return _parse_memo(value)


def _parse(value: str) -> tuple[CacheControl, bool]:
    directives = _directives(value)
    if not directives:
        return _NO_DIRECTIVES, False
    cc = CacheControl(
        no_store="no-store" in directives,
        no_cache="no-cache" in directives,
        no_cache_fields=_field_names(directives.get("no-cache")),
        private="private" in directives,
        private_fields=_field_names(directives.get("private")),
        public="public" in directives,
        max_age=_delta(directives, "max-age", invalid=0),
        s_maxage=_delta(directives, "s-maxage", invalid=0),
        must_revalidate="must-revalidate" in directives,
        proxy_revalidate="proxy-revalidate" in directives,
        immutable="immutable" in directives,
        no_transform="no-transform" in directives,
        stale_while_revalidate=_delta(directives, "stale-while-revalidate", invalid=None),
        stale_if_error=_delta(directives, "stale-if-error", invalid=None),
        only_if_cached="only-if-cached" in directives,
        max_stale=_max_stale(directives),
        min_fresh=_delta(directives, "min-fresh", invalid=None),
    )
    return cc, True


_parse_memo = functools.lru_cache(maxsize=_MEMO_SIZE)(_parse)
_NO_DIRECTIVES = CacheControl()
_PRAGMA_NO_CACHE = CacheControl(no_cache=True)


def targeted_cache_control(headers: Headers) -> CacheControl | None:
    """The directives of ``CDN-Cache-Control`` (RFC 9213 §2), or None when absent or unusable.

    The field is a Structured Field Dictionary (RFC 9213 §2.1, RFC 8941): one that fails to
    parse, or whose delta directives (``max-age``, ``s-maxage``, ``stale-while-revalidate``,
    ``stale-if-error``) are not non-negative Integers, is ignored as a whole, and so is an
    empty one; the cache then falls back to ``Cache-Control``.

    Args:
        headers: response header fields.

    Returns:
        The parsed targeted field, or None when this CDN should fall back to Cache-Control.
    """
    value = headers.get_joined("cdn-cache-control")
    if value is None:
        return None
    if len(value) > _MEMO_MAX_CHARS:
        return _targeted(value)
    return _targeted_memo(value)


_DELTA_DIRECTIVES = ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error")


def _targeted(value: str) -> CacheControl | None:
    try:
        members = dict(parse_dictionary(value))
    except StructuredFieldError:
        return None
    if not members:
        return None
    deltas: dict[str, int] = {}
    for name in _DELTA_DIRECTIVES:
        member = members.get(name)
        if member is None:
            continue
        number = member.value if isinstance(member, Item) else None
        if type(number) is not int or number < 0:  # a bool is an int to Python, not to SF
            return None
        deltas[name] = min(number, MAX_DELTA_SECONDS)
    return CacheControl(
        no_store="no-store" in members,
        no_cache="no-cache" in members,
        private="private" in members,
        public="public" in members,
        max_age=deltas.get("max-age"),
        s_maxage=deltas.get("s-maxage"),
        must_revalidate="must-revalidate" in members,
        proxy_revalidate="proxy-revalidate" in members,
        immutable="immutable" in members,
        no_transform="no-transform" in members,
        stale_while_revalidate=deltas.get("stale-while-revalidate"),
        stale_if_error=deltas.get("stale-if-error"),
    )


_targeted_memo = functools.lru_cache(maxsize=_MEMO_SIZE)(_targeted)


def response_cache_control(headers: Headers) -> CacheControl:
    """The directives governing this CDN's handling of a response (RFC 9213 §2.1).

    ``CDN-Cache-Control``, when present with at least one directive, takes precedence over
    ``Cache-Control``, which is then ignored entirely (as is ``Expires``, see freshness).

    Args:
        headers: response header fields.

    Returns:
        The effective directives.
    """
    targeted = targeted_cache_control(headers)
    if targeted is not None:
        return targeted
    return parse_cache_control(headers.get_joined("cache-control"))


def request_cache_control(headers: Headers) -> CacheControl:
    """The request's directives; ``Pragma: no-cache`` counts as ``no-cache`` when there is no
    Cache-Control field (RFC 9111 §5.4).

    Args:
        headers: request header fields.

    Returns:
        The effective request directives.
    """
    value = headers.get_joined("cache-control")
    if value is not None:
        return parse_cache_control(value)
    pragma = headers.get_joined("pragma")
    if pragma is not None and "no-cache" in _directives(pragma):
        return _PRAGMA_NO_CACHE
    return _NO_DIRECTIVES


def _directives(value: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for part in (p for p in split_unquoted(value) if p.strip()):
        match = _DIRECTIVE.fullmatch(part)
        if match is None:
            continue
        name = match["name"].lower()
        if match["quoted"] is not None:
            argument: str | None = _QUOTED_PAIR.sub(r"\1", match["quoted"])
        else:
            argument = match["token"]
        found.setdefault(name, argument)
    return found


def _delta(directives: dict[str, str | None], name: str, *, invalid: int | None) -> int | None:
    if name not in directives:
        return None
    argument = directives[name]
    if argument is None or not argument.isascii() or not argument.isdigit():
        return invalid
    return min(int(argument), MAX_DELTA_SECONDS)


def _max_stale(directives: dict[str, str | None]) -> float | None:
    if "max-stale" not in directives:
        return None
    if directives["max-stale"] is None:
        return math.inf
    return _delta(directives, "max-stale", invalid=None)


def _field_names(argument: str | None) -> tuple[str, ...]:
    if not argument:
        return ()
    return tuple(name.strip().lower() for name in argument.split(",") if name.strip())
