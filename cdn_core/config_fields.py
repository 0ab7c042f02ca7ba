"""Reading one TOML table of the config: which keys were read, and the typed field converters.

:class:`Section` remembers the keys it was asked for so that any other key is refused; the
converters turn a raw TOML value into a typed one or raise ``ValueError`` with the reason, which
:class:`Section` wraps into a :class:`ConfigError` naming the dotted key and the value.
:class:`FieldDefaults` hands a loader the defaults declared on a config dataclass's fields.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cdn_core.errors import ConfigError
from cdn_core.forwarding import NEVER_PASSED as _NEVER_PASSED
from cdn_core.http import HOP_BY_HOP
from cdn_core.units import parse_duration, parse_size

T = TypeVar("T")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?"
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:[0-9]{1,5})?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Section:
    """A view of one TOML table that records which keys were read, to reject the rest."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(path or "<root>", data, "expected a table")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default: object = None, *, required: bool = False) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise ConfigError(self.key(name), None, "is required")
            return default
        return self.data[name]

    def get(self, name: str, convert: Callable[[object], T], default: T) -> T:
        self.seen.add(name)
        if name not in self.data:
            return default
        return self._convert(name, convert)

    def need(self, name: str, convert: Callable[[object], T]) -> T:
        self.seen.add(name)
        if name not in self.data:
            raise ConfigError(self.key(name), None, "is required")
        return self._convert(name, convert)

    def _convert(self, name: str, convert: Callable[[object], T]) -> T:
        value = self.data[name]
        try:
            return convert(value)
        except ConfigError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigError(self.key(name), value, str(exc)) from None

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(self.key(unknown[0]), self.data[unknown[0]], "unknown key")


@contextmanager
def section(data: object, path: str) -> Iterator[Section]:
    section = Section(data, path)
    yield section
    section.finish()


class FieldDefaults:
    """The declared defaults of a dataclass's fields, read as attributes.

    Loaders of sections with required keys (which cannot build a default instance) read their
    defaults from here, so that each default is written once: on its dataclass field.
    """

    def __init__(self, cls: type[Any]) -> None:
        fields = dataclasses.fields(cls)
        self._values = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no default for {name!r}") from None


def non_empty_str(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def name(value: object) -> str:
    text = non_empty_str(value)
    if not _NAME.fullmatch(text):
        raise ValueError("expected a name of letters, digits, '-', '_' or '.'")
    return text


def integer(low: int, high: int | None = None) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected an integer from {low} to {high or 'any'}")
        return value

    return convert


def number(low: float, high: float | None = None) -> Callable[[object], float]:
    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        if value < low or (high is not None and value > high):
            raise ValueError(
                f"expected a number from {low} to {high if high is not None else 'any'}"
            )
        return float(value)

    return convert


def duration(value: object) -> float:
    return parse_duration(value)


def positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("expected a duration above zero")
    return seconds


def size(value: object) -> int:
    return parse_size(value)


def one_of(kind: type[enum.Enum]) -> Callable[[object], Any]:
    def convert(value: object) -> Any:
        try:
            return kind(value)
        except ValueError:
            choices = " | ".join(str(m.value) for m in kind)
            raise ValueError(f"expected one of {choices}") from None

    return convert


def host_port(value: object) -> HostPort:
    text = non_empty_str(value)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^:\[\]]+):([0-9]{1,5})", text)
    if match is None:
        raise ValueError("expected host:port, such as '127.0.1.1:8080' or '[::1]:8080'")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise ValueError("port must be from 1 to 65535")
    return HostPort(host, port)


def hostname(value: object) -> str:
    text = non_empty_str(value).lower()
    if not _HOSTNAME.fullmatch(text):
        raise ValueError("expected a DNS hostname")
    return text.rstrip(".")


def host_header(value: object) -> str:
    """A ``Host`` value: a hostname or IP literal, with an optional port."""
    text = non_empty_str(value)
    if not _HOST_HEADER.fullmatch(text):
        raise ValueError("expected a Host value such as 'origin.example' or 'origin.example:8080'")
    return text.lower()


def passed_field(value: object) -> str:
    """A request field name for ``pass_headers`` (an RFC 9110 §5.1 token), lower-cased."""
    text = non_empty_str(value).lower()
    if not _TOKEN.fullmatch(text):
        raise ValueError("expected a header field name (letters, digits and -!#$%&'*+.^_`|~)")
    if text in _NEVER_PASSED or text in HOP_BY_HOP or text.startswith("x-overlay-"):
        raise ValueError(f"{text!r} is computed by each node and cannot be passed through")
    return text


def ip(value: object) -> str:
    text = non_empty_str(value)
    return str(ipaddress.ip_address(text))


def url(value: object) -> str:
    text = non_empty_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError("the URL's port is not a number from 0 to 65535") from None
    return text.rstrip("/")


def control_plane(value: object) -> str:
    text = non_empty_str(value)
    if text != "memory" and urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis:// URL or 'memory'")
    return text


def list_of(
    convert: Callable[[object], T], *, min_len: int = 1
) -> Callable[[object], tuple[T, ...]]:
    def convert_list(value: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise ValueError("expected a list")
        if len(value) < min_len:
            raise ValueError(f"expected at least {min_len} item(s)")
        return tuple(convert(item) for item in value)

    return convert_list


def network(value: object) -> IPNetwork:
    return ipaddress.ip_network(non_empty_str(value), strict=False)


def probe_address(value: object) -> HostPort:
    text = non_empty_str(value)
    if "://" not in text:
        return host_port(text)
    parts = urlsplit(url(text))
    return HostPort(parts.hostname or "", parts.port or 80)


def probe_url(value: object) -> str | None:
    text = non_empty_str(value)
    return url(text) if "://" in text else None


def resolve(path: str, base_dir: str | None) -> str:
    """``path`` made absolute against ``base_dir`` (string arithmetic only: no file is read)."""
    if base_dir is None or posixpath.isabs(path):
        return path
    return posixpath.normpath(posixpath.join(base_dir, path))


def resolve_opt(path: str | None, base_dir: str | None) -> str | None:
    return None if path is None else resolve(path, base_dir)


def tables(data: Mapping[str, Any], name: str) -> list[tuple[str, object]]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise ConfigError(name, value, "expected an array of tables ([[...]])")
    return [(f"{name}[{i}]", item) for i, item in enumerate(value)]
