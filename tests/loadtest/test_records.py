"""Reading the edge's verdict from Cache-Status (RFC 9211)."""

from __future__ import annotations

import pytest

from loadtest.records import (
    RequestRecord,
    edge_member,
    is_edge_hit,
    member_params,
    split_list,
)

# The shield adds its member first, the edge (nearest the user) last: RFC 9211 §2.
MISS_AT_EDGE_HIT_AT_SHIELD = "shield-us-1; hit; ttl=30, edge-eu-1; fwd=uri-miss; fwd-status=200"
HIT_AT_EDGE = "shield-us-1; fwd=uri-miss; stored, edge-eu-1; hit; ttl=29"


@pytest.mark.parametrize(
    ("header", "hit"),
    [
        (HIT_AT_EDGE, True),
        (MISS_AT_EDGE_HIT_AT_SHIELD, False),
        ("edge-eu-1; hit", True),
        ("edge-eu-1;hit;ttl=3", True),
        ("edge-eu-1; fwd=stale; fwd-status=304", False),
        ('edge-eu-1; fwd=miss; detail="hit, or not"', False),
        ('"odd, name"; hit', True),
        ("edge-eu-1; hit=?0", False),
        ("", False),
        (None, False),
        (" , ", False),
    ],
)
def test_edge_hit(header, hit):
    assert is_edge_hit(header) is hit


def test_the_edge_member_is_the_last():
    assert edge_member(HIT_AT_EDGE) == "edge-eu-1; hit; ttl=29"
    assert edge_member(None) is None


def test_split_list_keeps_commas_inside_quoted_strings():
    value = 'a; detail="x, \\"y\\", z", b; hit'
    assert split_list(value) == ['a; detail="x, \\"y\\", z"', "b; hit"]


def test_member_params():
    name, params = member_params('edge-eu-1; fwd=uri-miss; stored; detail="a;b"')
    assert name == "edge-eu-1"
    assert params == {"fwd": "uri-miss", "stored": "?1", "detail": '"a;b"'}


def test_record_round_trips_through_json_and_judges_itself():
    record = RequestRecord(
        region="eu",
        path="/obj/1",
        started_at=10.0,
        ttfb_ms=5.0,
        total_ms=6.0,
        status=200,
        cache_status=HIT_AT_EDGE,
        edge="127.0.1.1",
    )
    assert RequestRecord.from_json(record.to_json()) == record
    assert record.ok and record.edge_hit
    failed = RequestRecord(
        region="eu",
        path="/obj/1",
        started_at=0.0,
        ttfb_ms=None,
        total_ms=1.0,
        status=None,
        cache_status=None,
        edge=None,
        error="connect: refused",
    )
    assert not failed.ok and not failed.edge_hit
    server_error = RequestRecord(
        region="eu",
        path="/x",
        started_at=0.0,
        ttfb_ms=1.0,
        total_ms=1.0,
        status=503,
        cache_status=None,
        edge="e",
    )
    assert not server_error.ok
