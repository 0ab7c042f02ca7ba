"""HTTP message heads as plain values, independent of any server or client library.

The cache core reasons about :class:`RequestHead` and :class:`ResponseHead`; adapters convert
aiohttp objects to and from them. Bodies never enter the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

# RFC 9110 §7.6.1: connection-specific fields a proxy never forwards.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


# RFC 9112 §6: how a message's body is delimited. Each hop computes its own for the body it
# sends; they are never copied from one hop to the next (cdn_core.forwarding).
FRAMING_FIELDS = ("content-length", "transfer-encoding")


class Headers:
    """An immutable, ordered, case-insensitive multi-map of header fields.

    Names are stored lower-cased; values keep their order, so repeated fields survive.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: tuple[tuple[str, str], ...] = tuple((k.lower(), v) for k, v in pairs)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        name = name.lower()
        for key, value in self._items:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._items if key == name]

    def get_joined(self, name: str) -> str | None:
        """All values of ``name`` joined with ``", "`` (RFC 9110 §5.3), or None if absent."""
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        name = name.lower()
        return any(k == name for k, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and other._items == self._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def names(self) -> set[str]:
        return {k for k, _ in self._items}

    def without(self, *names: str) -> Headers:
        drop = {n.lower() for n in names}
        return Headers([(k, v) for k, v in self._items if k not in drop])

    def with_set(self, name: str, value: str) -> Headers:
        """A copy where ``name`` has exactly one value, ``value`` (appended at the end)."""
        name = name.lower()
        return Headers([*((k, v) for k, v in self._items if k != name), (name, value)])

    def with_added(self, name: str, value: str) -> Headers:
        return Headers([*self._items, (name.lower(), value)])

    def merged(self, updates: Headers, *, exclude: frozenset[str] = frozenset()) -> Headers:
        """This head's fields, with every field present in ``updates`` replaced (RFC 9111 §3.2)."""
        replace = updates.names() - exclude
        kept = [(k, v) for k, v in self._items if k not in replace]
        return Headers([*kept, *((k, v) for k, v in updates if k in replace)])


def split_unquoted(value: str, separator: str = ",") -> list[str]:
    """Split a field value on ``separator`` outside quoted strings (RFC 9110 §5.6.1, §5.6.4).

    Parts are returned as they are, empty ones included; backslash escapes inside quotes are
    kept for the caller to undo.
    """
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def connection_tokens(headers: Headers) -> frozenset[str]:
    """Field names listed in ``Connection`` (RFC 9110 §7.6.1), lower-cased."""
    tokens: set[str] = set()
    for value in headers.get_all("connection"):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


def strip_hop_by_hop(headers: Headers) -> Headers:
    """Remove the hop-by-hop fields, including every field that ``Connection`` names."""
    return headers.without(*HOP_BY_HOP, *connection_tokens(headers))


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    """A request as the cache sees it: ``host`` is lower-cased without port."""

    method: str
    host: str
    target: str
    headers: Headers = field(default_factory=Headers)
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.target}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHead:
    status: int
    headers: Headers = field(default_factory=Headers)
