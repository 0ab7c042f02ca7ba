"""Logs never carry what a client wrote in its request head.

When aiohttp's HTTP parser refuses a request (a control byte, an over-long field, a bad
``Content-Length``), the exception's message quotes the offending bytes, and aiohttp's server
logger writes it at ERROR with a traceback. That line may be an ``Authorization`` or ``Cookie``
field: a client that sends the cluster secret with one bad byte would put the secret in the
node's log. :class:`ParseErrorRedaction`, installed on ``aiohttp.server`` by
:func:`install`, rewrites those records to the error's kind without the quoted input and
without the traceback; :func:`redacted` does the same for the node's own messages. aiohttp
serves only the admin listener now; the data plane's own server (:mod:`edge.server`) never
logs a header value.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"
_QUOTES = ("b'", 'b"', ": '", ': "')


def redacted(exc: BaseException) -> str:
    """The message of a parse error up to the input it quotes: ``Invalid header value char``."""
    text = " ".join(str(getattr(exc, "message", "") or exc).split())
    cut = min((i for i in (text.find(q) for q in _QUOTES) if i >= 0), default=len(text))
    return text[:cut].rstrip(" :") or type(exc).__name__


class ParseErrorRedaction(logging.Filter):
    """Keeps a refused request's record, without the bytes the client sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "refused a malformed request: %s (%s)"
            record.args = (redacted(exc), type(exc).__name__)
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Put the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ParseErrorRedaction) for f in logger.filters):
        logger.addFilter(ParseErrorRedaction())
