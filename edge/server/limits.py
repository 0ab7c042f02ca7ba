"""The limits and timeouts of the data plane's HTTP/1.1 server, as one frozen value.

Sizes bound what one connection can make the node hold (a head, a body buffer, a pipeline, a
write buffer); timeouts bound how long a connection can hold a slot without making progress
(slowloris on the head, a stalled body, a client that stops reading, an idle keep-alive).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """What one connection may send, buffer and take; every field is positive.

    Attributes:
        max_line_bytes: the request line's target, longer is 414.
        max_field_bytes: one header field line (name, value), longer is 431.
        max_fields: header fields in one head, more is 431 (trailer fields count too).
        max_head_bytes: the whole head, more is 431.
        max_body_bytes: a request body (Content-Length up front, chunked as it streams): 413.
        body_buffer_bytes: received body bytes the handler has not read; over it the server
            stops reading from the socket until the handler has read half of them.
        max_pipelined: requests parsed ahead of the one being answered; at it, reading pauses.
        keepalive_timeout_s: an idle keep-alive connection is closed after this.
        head_timeout_s: a request head must arrive within this from its first byte (408).
        body_timeout_s: the longest gap between two pieces of a request body (408).
        write_timeout_s: how long a response waits on a client that does not read before the
            connection is cut.
        linger_s: after a refusal or an early close the server half-closes and discards what
            the client still sends, for at most this long, so that the client reads the answer
            instead of a reset.
        write_buffer_high_bytes: the transport's write high-water mark (flow control).
        max_connections: open connections; a connection over it is answered 503 and closed.
    """

    max_line_bytes: int = 8 * 1024
    max_field_bytes: int = 8 * 1024
    max_fields: int = 100
    max_head_bytes: int = 32 * 1024
    max_body_bytes: int = 16 * 1024**2
    body_buffer_bytes: int = 256 * 1024
    max_pipelined: int = 16
    keepalive_timeout_s: float = 30.0
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    write_timeout_s: float = 60.0
    linger_s: float = 2.0
    write_buffer_high_bytes: int = 64 * 1024
    max_connections: int = 10_000

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not value > 0:
                raise ValueError(f"ServerLimits.{field.name} must be positive, not {value!r}")
