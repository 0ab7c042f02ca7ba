"""RFC 9112 message framing: the rules a request head must pass, as pure decisions.

Theory of operation
-------------------
llhttp (through ``httptools``) tokenises the request and is strict by default: it refuses bare
CR or LF line ends, obs-fold, control bytes in the target and in fields, invalid or repeated
``Content-Length``, ``Content-Length`` with ``Transfer-Encoding``, a repeated ``chunked`` and
unknown methods, and :func:`refusal_for_parser_error` turns what it raises into a
:class:`Refusal`. Two things llhttp leaves to its user, and this module supplies them:

* the rules it lets through, checked by :func:`decide_framing` on each complete head: the
  HTTP version (it parses ``HTTP/2.0`` and ``HTTP/0.9``), ``Transfer-Encoding`` on HTTP/1.0 and
  codings before ``chunked`` (which it accepts), the body size announced by ``Content-Length``,
  ``Host`` (absent on HTTP/1.1, or repeated), ``Expect``, and a body on an ``Upgrade`` or
  ``CONNECT`` request (llhttp would skip that body and read it as the next request);
* size limits, which llhttp has none of: :class:`HeadBudget` counts the bytes of a head while
  it arrives, so an endless target or field is refused before it is buffered.

The result of :func:`decide_framing` is a :class:`Framing` (how the body is delimited and what
the client asked for) or a :class:`Refusal` (the status, a short reason, and that the
connection closes after the answer: after a framing error the server cannot know where the
next request starts). Reasons are fixed texts of this module or of llhttp, never bytes the
client sent, so they can go into logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import NamedTuple

import httptools

from edge.server.limits import ServerLimits

Fields = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the server answers itself: ``status``, a one-line ``reason``, then close."""

    status: int
    reason: str
    close: bool = True

    def body(self) -> bytes:
        """The plain-text answer: ``"<status> <phrase>: <reason>\\n"``."""
        return f"{self.status} {HTTPStatus(self.status).phrase}: {self.reason}\n".encode()


class Framing(NamedTuple):
    """How an accepted request's body is delimited (RFC 9112 §6.3) and what the client asked."""

    content_length: int | None
    chunked: bool
    expect_continue: bool
    host: bytes

    @property
    def body_exists(self) -> bool:
        return self.chunked or bool(self.content_length)


SUPPORTED_VERSIONS = frozenset({"1.0", "1.1"})
_DIGITS = frozenset(b"0123456789")
_LENGTHS_OF_NAMES = frozenset({4, 6, 14, 17})  # host, expect, content-length, transfer-encoding
_MAX_LENGTH_DIGITS = 18  # below 2**63: no integer overflow anywhere downstream


def decide_framing(
    version: str, fields: Fields, *, upgrade: bool, max_body_bytes: int
) -> Framing | Refusal:
    """Accept a complete head, or refuse it with the status RFC 9112 gives.

    Args:
        version: the version llhttp parsed, ``"1.1"``.
        fields: the header fields as received, names as sent.
        upgrade: llhttp's ``should_upgrade()``: ``Connection: upgrade`` with ``Upgrade``, or
            ``CONNECT``. Such a request is served as a plain request, but llhttp would not
            frame its body, so one with a body is refused.
        max_body_bytes: a larger ``Content-Length`` is 413.
    """
    if version not in SUPPORTED_VERSIONS:
        return Refusal(505, f"HTTP/{version} is not supported; use HTTP/1.1")
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expects: list[bytes] = []
    hosts: list[bytes] = []
    for name, value in fields:
        # Only four names matter here; testing the length first keeps lower() off most fields.
        if len(name) not in _LENGTHS_OF_NAMES:
            continue
        lowered = name.lower()
        if lowered == b"host":
            hosts.append(value)
        elif lowered == b"content-length":
            lengths.append(value)
        elif lowered == b"transfer-encoding":
            codings.append(value)
        elif lowered == b"expect":
            expects.append(value)
    if len(hosts) == 1 and not (lengths or codings or expects):
        return Framing(None, False, False, hosts[0])  # most requests: one Host, no body
    refusal = _host_refusal(version, hosts)
    if refusal is not None:
        return refusal
    framing: tuple[int | None, bool] | Refusal
    if codings:
        framing = _chunked_framing(version, codings, lengths)
    else:
        framing = _length_framing(lengths, max_body_bytes)
    if isinstance(framing, Refusal):
        return framing
    content_length, chunked = framing
    body_exists = chunked or bool(content_length)
    if upgrade and body_exists:
        return Refusal(400, "a body on an Upgrade or CONNECT request is not supported")
    expect_continue = False
    if expects:
        if not _is_continue(expects):
            return Refusal(417, "the only expectation supported is 100-continue")
        # RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
        expect_continue = body_exists and version == "1.1"
    return Framing(content_length, chunked, expect_continue, hosts[0] if hosts else b"")


def _host_refusal(version: str, hosts: list[bytes]) -> Refusal | None:
    # RFC 9112 §3.2: a 1.1 request without Host, or any with several, MUST be answered 400.
    if len(hosts) > 1:
        return Refusal(400, "more than one Host field")
    if not hosts and version == "1.1":
        return Refusal(400, "an HTTP/1.1 request without a Host field")
    return None


def _chunked_framing(
    version: str, codings: list[bytes], lengths: list[bytes]
) -> tuple[None, bool] | Refusal:
    """RFC 9112 §6.1, §6.3: chunked must be the final coding, applied once; others are 501."""
    if lengths:
        return Refusal(400, "both Content-Length and Transfer-Encoding")
    if version == "1.0":
        return Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")
    # List elements are comma-separated; empty elements are allowed (RFC 9110 §5.6.1).
    names = [c.strip(b" \t").lower() for value in codings for c in value.split(b",")]
    names = [name for name in names if name]
    if not names or names[-1] != b"chunked" or b"chunked" in names[:-1]:
        return Refusal(400, "the final transfer coding must be chunked, and only once")
    if len(names) > 1:
        return Refusal(501, "transfer codings other than chunked are not implemented")
    return None, True


def _length_framing(lengths: list[bytes], max_body_bytes: int) -> tuple[int | None, bool] | Refusal:
    """RFC 9112 §6.3 item 5: one Content-Length of digits only, or none (no body)."""
    if not lengths:
        return None, False
    if len(lengths) > 1:
        return Refusal(400, "more than one Content-Length field")
    digits = lengths[0].strip(b" \t")
    if not digits or len(digits) > _MAX_LENGTH_DIGITS or not _DIGITS.issuperset(digits):
        return Refusal(400, "invalid Content-Length")
    length = int(digits)
    if length > max_body_bytes:
        return Refusal(413, f"the body is over the limit of {max_body_bytes} bytes")
    return length, False


def _is_continue(expects: list[bytes]) -> bool:
    return len(expects) == 1 and expects[0].strip(b" \t").lower() == b"100-continue"


def body_over_limit(max_body_bytes: int) -> Refusal:
    """A chunked body that grew over ``max_body_bytes`` while it streamed."""
    return Refusal(413, f"the body is over the limit of {max_body_bytes} bytes")


def refusal_for_parser_error(exc: httptools.HttpParserError) -> Refusal:
    """The answer to what llhttp refused: 505 for a version it rejects, else 400.

    llhttp refuses ``HTTP/1.2`` and up, and stops on the HTTP/2 preface (``PRI * HTTP/2.0``);
    both are versions this server does not speak. Its messages are fixed texts (``Invalid
    header value char``) that never quote the input.
    """
    message = str(exc)
    if "Invalid HTTP version" in message or "PRI/Upgrade" in message:
        return Refusal(505, "this server speaks HTTP/1.0 and HTTP/1.1 only")
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return Refusal(400, "invalid or unknown method")
    return Refusal(400, message.rstrip(".") or "malformed request")


class HeadBudget:
    """Counts a request head as it arrives against the size limits (414/431).

    llhttp reports the target in pieces (``on_url``) but a field only once it is complete, so
    a field still arriving is counted as ``pending``: the bytes of reads that completed no
    field. ``pending`` counts toward the request line until the target starts, toward the
    current field after that.
    """

    __slots__ = ("_limits", "fields", "head_bytes", "line_bytes", "pending")

    def __init__(self, limits: ServerLimits) -> None:
        self._limits = limits
        self.reset()

    def reset(self) -> None:
        self.line_bytes = 0
        self.head_bytes = 0
        self.fields = 0
        self.pending = 0

    def add_target(self, size: int) -> Refusal | None:
        self.line_bytes += size
        self.pending = 0
        if self.line_bytes > self._limits.max_line_bytes:
            return _LINE_TOO_LONG
        return None

    def add_field(self, name_bytes: int, value_bytes: int) -> Refusal | None:
        size = name_bytes + value_bytes + 4  # ": " and CRLF
        self.fields += 1
        self.head_bytes += size
        self.pending = 0
        limits = self._limits
        if size > limits.max_field_bytes:
            return _FIELD_TOO_LONG
        if (
            self.fields > limits.max_fields
            or self.line_bytes + self.head_bytes > limits.max_head_bytes
        ):
            return self._check_head()
        return None

    def add_trailer_field(self) -> Refusal | None:
        self.fields += 1
        return self._check_head()

    def add_pending(self, size: int) -> Refusal | None:
        self.pending += size
        limits = self._limits
        if self.line_bytes == 0 and self.fields == 0:
            if self.pending > limits.max_line_bytes:
                return _LINE_TOO_LONG
        elif self.pending > limits.max_field_bytes:
            return _FIELD_TOO_LONG
        return self._check_head()

    def _check_head(self) -> Refusal | None:
        if self.fields > self._limits.max_fields:
            return _TOO_MANY_FIELDS
        if self.line_bytes + self.head_bytes + self.pending > self._limits.max_head_bytes:
            return _HEAD_TOO_LARGE
        return None


_LINE_TOO_LONG = Refusal(414, "the request line is too long")
_FIELD_TOO_LONG = Refusal(431, "a header field is too long")
_TOO_MANY_FIELDS = Refusal(431, "too many header fields")
_HEAD_TOO_LARGE = Refusal(431, "the request head is too large")
