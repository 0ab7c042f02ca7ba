"""The data plane's own HTTP/1.1 server: asyncio Protocol, llhttp parser, prebuilt writes.

``start_server(handler, host=..., port=..., limits=ServerLimits())`` serves each request to
``handler(request) -> Response | Prebuilt | None``. Modules: ``framing`` (RFC 9112 rules, pure),
``request`` (the request and its body stream), ``writer`` (responses and the writer),
``protocol`` (one connection), ``serve`` (listen, drain), with ``limits``, ``flow``,
``deadline`` and ``connections`` beside them.
"""

from edge.server.connections import ConnectionStats as ConnectionStats
from edge.server.flow import ClientDisconnected as ClientDisconnected
from edge.server.framing import Refusal as Refusal
from edge.server.limits import ServerLimits as ServerLimits
from edge.server.protocol import Answer as Answer, Handler as Handler
from edge.server.request import (
    BodyError as BodyError,
    BodyStream as BodyStream,
    HttpVersion as HttpVersion,
    Request as Request,
)
from edge.server.serve import HttpServer as HttpServer, start_server as start_server
from edge.server.writer import (
    Prebuilt as Prebuilt,
    Response as Response,
    ResponseWriter as ResponseWriter,
    connection_field as connection_field,
    date_field as date_field,
)

__all__ = [
    "Answer",
    "BodyError",
    "BodyStream",
    "ClientDisconnected",
    "ConnectionStats",
    "Handler",
    "HttpServer",
    "HttpVersion",
    "Prebuilt",
    "Refusal",
    "Request",
    "Response",
    "ResponseWriter",
    "ServerLimits",
    "connection_field",
    "date_field",
    "start_server",
]
