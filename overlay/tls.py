"""Mutual TLS between overlay nodes: one cluster CA, every node holding a cert it signed.

The peer client (:mod:`overlay.peers`) connects with :func:`client_context`; a shield's data
listener accepts with :func:`server_context` (both from ``[overlay.tls]``).

A node accepts a peer only with a certificate chaining to the cluster CA (``CERT_REQUIRED`` on
both sides). Peers are addressed by IP and any node of the cluster may be any peer, so the
authentication is membership of the CA, not a host name: hostname checking is off.
"""

from __future__ import annotations

import ssl

from cdn_core.config import TlsConfig
from cdn_core.errors import ConfigError


def client_context(tls: TlsConfig) -> ssl.SSLContext:
    """The context a node uses to connect to its peers (presents its own certificate)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _load(context, tls)
    return context


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The context of a node's overlay listener: clients must present a cluster certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = ssl.CERT_REQUIRED
    _load(context, tls)
    return context


def _load(context: ssl.SSLContext, tls: TlsConfig) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("overlay.tls.ca_file", tls.ca_file, f"cannot load: {exc}") from None
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "overlay.tls.cert_file", tls.cert_file, f"cannot load with key_file: {exc}"
        ) from None
