"""The Zipf sampler and the workload of one user."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from loadtest.workload import Workload, ZipfSampler, popular_order


def test_probabilities_follow_the_zipf_law_and_sum_to_one():
    zipf = ZipfSampler(100, alpha=0.9)
    total = sum(zipf.probability(rank) for rank in range(100))
    assert total == pytest.approx(1.0)
    # p(k) / p(1) = 1 / k**alpha
    assert zipf.probability(9) / zipf.probability(0) == pytest.approx(10**-0.9)


def test_samples_match_the_law():
    zipf = ZipfSampler(50, alpha=0.9)
    rng = random.Random(7)
    draws = Counter(zipf.sample(rng) for _ in range(50_000))
    assert set(draws) <= set(range(50))
    for rank in (0, 1, 4, 20):
        assert draws[rank] / 50_000 == pytest.approx(zipf.probability(rank), abs=0.01)
    assert draws[0] > draws[1] > draws[10]


def test_one_item_is_always_drawn():
    zipf = ZipfSampler(1)
    rng = random.Random(1)
    assert {zipf.sample(rng) for _ in range(100)} == {0}
    assert zipf.probability(0) == 1.0


@pytest.mark.parametrize(("n", "alpha", "message"), [(0, 0.9, "at least one"), (5, 0, "positive")])
def test_bad_parameters_are_refused(n, alpha, message):
    with pytest.raises(ValueError, match=message):
        ZipfSampler(n, alpha)


def test_probability_of_an_unknown_rank_is_an_error():
    with pytest.raises(ValueError, match="rank must be in 0..2"):
        ZipfSampler(3).probability(3)


def test_workload_mixes_popular_objects_and_unique_one_hit_wonders():
    workload = Workload([5, 3, 9], rng=random.Random(3), token="u1", one_hit_share=0.1)
    requests = [workload.next_request() for _ in range(5000)]
    one_hit = [r for r in requests if r.one_hit]
    assert len(one_hit) / 5000 == pytest.approx(0.1, abs=0.02)
    assert len({r.path for r in one_hit}) == len(one_hit)  # each asked for once
    assert all("?v=u1-" in r.path for r in one_hit)
    popular = Counter(r.path for r in requests if not r.one_hit)
    assert set(popular) == {"/obj/5", "/obj/3", "/obj/9"}
    assert popular["/obj/5"] > popular["/obj/3"] > popular["/obj/9"]


def test_workload_without_one_hit_wonders():
    workload = Workload([1], rng=random.Random(0), token="t", one_hit_share=0.0)
    assert {workload.next_request().path for _ in range(50)} == {"/obj/1"}


@pytest.mark.parametrize(
    ("ids", "share", "message"), [([], 0.1, "at least one"), ([1], 1.5, "one_hit_share")]
)
def test_bad_workloads_are_refused(ids, share, message):
    with pytest.raises(ValueError, match=message):
        Workload(ids, rng=random.Random(0), token="t", one_hit_share=share)


def test_popular_order_is_a_seeded_permutation():
    ids = list(range(20))
    assert sorted(popular_order(ids, seed=1)) == ids
    assert popular_order(ids, seed=1) == popular_order(ids, seed=1)
    assert popular_order(ids, seed=1) != popular_order(ids, seed=2)
