"""The error tree (cdn_core.errors): one root, key paths and hints callers rely on."""

from __future__ import annotations

import pytest

from cdn_core.errors import (
    CdnError,
    ConfigError,
    InvalidTransition,
    NoHealthyEdge,
    PurgeError,
    RoutingError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)


@pytest.mark.parametrize(
    ("kind", "parent"),
    [
        (ConfigError, CdnError),
        (RoutingError, CdnError),
        (NoHealthyEdge, RoutingError),
        (UpstreamError, CdnError),
        (UpstreamTimeout, UpstreamError),
        (UpstreamUnavailable, UpstreamError),
        (InvalidTransition, CdnError),
        (PurgeError, CdnError),
    ],
)
def test_tree(kind: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(kind, parent)


def test_upstream_errors_hint_the_client_status() -> None:
    assert UpstreamTimeout("slow").status_hint == 504
    assert UpstreamUnavailable("reset").status_hint == 502


def test_config_error_names_key_value_and_reason() -> None:
    error = ConfigError("dns.ttl_s", -1, "expected an integer from 0 to 86400")

    assert (error.key, error.value) == ("dns.ttl_s", -1)
    assert error.why == "expected an integer from 0 to 86400"
    assert str(error) == "dns.ttl_s: expected an integer from 0 to 86400 (got -1)"


def test_invalid_transition_keeps_state_and_event() -> None:
    error = InvalidTransition("fresh", "purge")

    assert error.state == "fresh" and error.event == "purge"
    assert str(error) == "no transition from 'fresh' on 'purge'"
    with pytest.raises(CdnError, match="no transition from 'fresh'"):
        raise error
