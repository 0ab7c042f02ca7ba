"""Locust scenario: users in every client network of a running overlay (such as `cdn lab`).

    cdn lab --run-dir /tmp/lab &
    LOADTEST_RUN_DIR=/tmp/lab LOADTEST_OUT=/tmp/report \\
        locust -f loadtest/locustfile.py --headless -u 30 -r 30 -t 60s

Each user belongs to a client network (users are dealt to networks in turn), binds its sockets
to its own address in that network's prefix, resolves the hostname at the router with its /24
as client subnet, honours the TTL, and fetches Zipf-popular objects (plus one-hit wonders) from
the edge it was given. At the end ``LOADTEST_OUT`` gets ``report.json`` and ``summary.txt``
(``records.jsonl`` too when ``LOADTEST_RECORDS=1``). Other knobs: ``LOADTEST_LABEL``,
``LOADTEST_ALPHA`` (0.9), ``LOADTEST_ONE_HIT`` (0.1), ``LOADTEST_MAX_BYTES`` (1 MiB),
``LOADTEST_WAIT`` (``0.1-0.5`` seconds between requests), ``LOADTEST_SEED``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from locust import User, between, events, task

from loadtest.report import summary_text
from loadtest.scenario import Scenario, settings_from_environment

log = logging.getLogger("loadtest")
SETTINGS = settings_from_environment()
_scenario: list[Scenario] = []
# gevent makes this lock cooperative: users that start while the scenario is being set up
# (its setup does network I/O, so it yields) wait for that one scenario instead of making more.
_scenario_lock = threading.Lock()


def current_scenario() -> Scenario:
    with _scenario_lock:
        if not _scenario:
            _scenario.append(Scenario.start(SETTINGS))
        return _scenario[0]


def _on_test_start(environment: Any, **_: Any) -> None:
    current_scenario()


def _on_test_stop(environment: Any, **_: Any) -> None:
    if _scenario:
        report = _scenario[0].finish()
        log.info("load test report:\n%s", summary_text(report))
        print(summary_text(report), flush=True)


events.test_start.add_listener(_on_test_start)  # type: ignore[no-untyped-call]
events.test_stop.add_listener(_on_test_stop)  # type: ignore[no-untyped-call]


class RegionUser(User):
    """A user in one client network, fetching through the edge the router names."""

    wait_time = between(*SETTINGS.wait_s)

    def on_start(self) -> None:
        self.client, self.workload = current_scenario().new_user()

    def on_stop(self) -> None:
        self.client.close()

    @task
    def fetch(self) -> None:
        request = self.workload.next_request()
        record = self.client.get(request.path)
        current_scenario().records.append(record)
        kind = "one-hit" if request.one_hit else "obj"
        self.environment.events.request.fire(
            request_type="GET",
            name=f"{record.region} {kind}",
            response_time=record.total_ms,
            response_length=record.body_bytes,
            exception=None if record.ok else RuntimeError(record.error or f"HTTP {record.status}"),
            context={"ttfb_ms": record.ttfb_ms, "cache_status": record.cache_status},
        )
