"""The error tree of the whole project.

Every exception raised by project code derives from :class:`CdnError`::

    CdnError
    ├── ConfigError          bad configuration: names the dotted key path and the bad value
    ├── RoutingError
    │   └── NoHealthyEdge    no edge can be chosen for a client
    ├── UpstreamError        carries ``status_hint`` (502 or 504) for the client response
    │   ├── UpstreamTimeout
    │   └── UpstreamUnavailable
    ├── InvalidTransition    a lifecycle table has no entry for (state, input)
    └── PurgeError           a purge could not be recorded or confirmed

Expected outcomes (a miss, a stale entry, a down node) are values, not exceptions.
"""

from __future__ import annotations


class CdnError(Exception):
    """Root of every error raised by the project."""


class ConfigError(CdnError):
    """A configuration value is missing, unknown or malformed."""

    def __init__(self, key: str, value: object, why: str) -> None:
        self.key = key
        self.value = value
        self.why = why
        super().__init__(f"{key}: {why} (got {value!r})")


class RoutingError(CdnError):
    """A routing decision could not be made."""


class NoHealthyEdge(RoutingError):
    """No edge is configured for the decision."""


class UpstreamError(CdnError):
    """The next hop toward the origin failed."""

    status_hint = 502


class UpstreamTimeout(UpstreamError):
    """The next hop did not answer in time."""

    status_hint = 504


class UpstreamUnavailable(UpstreamError):
    """The next hop refused the connection, reset it, or sent garbage."""

    status_hint = 502


class InvalidTransition(CdnError):
    """A state machine received an input its table has no entry for."""

    def __init__(self, state: object, event: object) -> None:
        self.state = state
        self.event = event
        super().__init__(f"no transition from {state!r} on {event!r}")


class PurgeError(CdnError):
    """A purge could not be recorded or confirmed."""
