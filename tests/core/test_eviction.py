"""cdn_core.eviction: byte-aware S3-FIFO (with the large-object fix) and the LRU baseline."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Hashable, Iterable

import pytest
from hypothesis import given, settings, strategies as st

from cdn_core.eviction import Admission, EvictionPolicy, LruPolicy, S3FifoPolicy

Factory = Callable[[int], EvictionPolicy]
FACTORIES: list[Factory] = [S3FifoPolicy, LruPolicy]


class Store:
    """What the edge's cache store does with the answers: a dict of resident sizes."""

    def __init__(self, policy: EvictionPolicy) -> None:
        self.policy = policy
        self.sizes: dict[Hashable, int] = {}

    def request(self, key: Hashable, size: int) -> bool:
        """One request; True on a hit. Checks the policy's answers as it goes."""
        if key in self.policy:
            assert key in self.sizes
            self.policy.touch(key)
            return True
        self.apply(key, size, self.policy.admit(key, size))
        return False

    def apply(self, key: Hashable, size: int, admission: Admission) -> None:
        assert len(set(admission.evicted)) == len(admission.evicted)
        for old in admission.evicted:
            assert old in self.sizes, f"{old!r} evicted but never stored (or evicted twice)"
            assert old not in self.policy
            del self.sizes[old]
        if admission.admitted:
            assert key in self.policy
            self.sizes[key] = size
        else:
            assert key not in self.policy
        self.check()

    def check(self) -> None:
        assert set(self.sizes) == {k for k in self.sizes if k in self.policy}
        assert len(self.policy) == len(self.sizes)
        assert self.policy.used_bytes == sum(self.sizes.values())
        assert self.policy.used_bytes <= self.policy.capacity_bytes


def replay(store: Store, requests: Iterable[tuple[Hashable, int]]) -> int:
    return sum(store.request(key, size) for key, size in requests)


def random_trace(seed: int, n: int, keys: int, max_size: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    sizes = {k: rng.randint(1, max_size) for k in range(keys)}
    return [(k, sizes[k]) for k in (int(rng.paretovariate(0.8)) % keys for _ in range(n))]


@pytest.mark.parametrize("factory", FACTORIES)
class TestInvariants:
    def test_capacity_never_exceeded_and_evictions_reported_once(self, factory: Factory) -> None:
        store = Store(factory(10_000))
        hits = replay(store, random_trace(seed=1, n=5_000, keys=400, max_size=1_500))
        assert 0 < hits < 5_000
        assert store.policy.used_bytes > 5_000

    def test_remove_resident_and_absent(self, factory: Factory) -> None:
        store = Store(factory(10_000))
        store.apply("a", 100, store.policy.admit("a", 100))
        store.apply("b", 50, store.policy.admit("b", 50))
        store.policy.remove("a")
        del store.sizes["a"]
        store.check()
        store.policy.remove("a")
        store.policy.remove("never-seen")
        store.check()
        assert "a" not in store.policy and "b" in store.policy
        assert store.policy.used_bytes == 50

    def test_object_larger_than_capacity_never_admitted(self, factory: Factory) -> None:
        store = Store(factory(1_000))
        for _ in range(3):
            admission = store.policy.admit("huge", 1_001)
            assert admission == Admission(admitted=False)
            store.check()

    def test_object_of_exactly_capacity_fits_alone(self, factory: Factory) -> None:
        store = Store(factory(1_000))
        store.apply("x", 10, store.policy.admit("x", 10))
        for _ in range(2):  # S3-FIFO needs a second request for a large object
            if "big" not in store.policy:
                store.apply("big", 1_000, store.policy.admit("big", 1_000))
        assert "big" in store.policy and store.sizes == {"big": 1_000}

    def test_readmit_updates_size(self, factory: Factory) -> None:
        store = Store(factory(1_000))
        store.apply("a", 10, store.policy.admit("a", 10))
        store.apply("a", 40, store.policy.admit("a", 40))
        assert store.policy.used_bytes == 40 and len(store.policy) == 1

    def test_readmit_too_large_drops_the_key(self, factory: Factory) -> None:
        policy = factory(1_000)
        policy.admit("a", 10)
        assert policy.admit("a", 5_000) == Admission(admitted=False, evicted=("a",))
        assert "a" not in policy and policy.used_bytes == 0

    def test_touch_of_absent_key_is_a_no_op(self, factory: Factory) -> None:
        policy = factory(1_000)
        policy.touch("nobody")
        assert len(policy) == 0 and policy.used_bytes == 0

    def test_zero_sized_object(self, factory: Factory) -> None:
        store = Store(factory(100))
        store.apply("empty", 0, store.policy.admit("empty", 0))
        assert "empty" in store.policy and store.policy.used_bytes == 0

    @pytest.mark.parametrize("capacity", [0, -5])
    def test_non_positive_capacity_is_refused(self, factory: Factory, capacity: int) -> None:
        with pytest.raises(ValueError, match="capacity_bytes must be positive"):
            factory(capacity)

    @pytest.mark.parametrize("capacity", ["1000", 1000.0, True, None])
    def test_non_int_capacity_is_refused(self, factory: Factory, capacity: object) -> None:
        with pytest.raises(TypeError, match="capacity_bytes must be an int"):
            factory(capacity)  # type: ignore[arg-type]

    def test_bad_sizes_are_refused_and_change_nothing(self, factory: Factory) -> None:
        policy = factory(1_000)
        policy.admit("a", 10)
        with pytest.raises(ValueError, match="must not be negative"):
            policy.admit("b", -1)
        for bad in (1.5, "10", None, False):
            with pytest.raises(TypeError, match="size must be an int"):
                policy.admit("b", bad)  # type: ignore[arg-type]
        assert "b" not in policy and policy.used_bytes == 10


def test_admission_is_a_frozen_value() -> None:
    admission = Admission(admitted=True, evicted=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        admission.admitted = False  # type: ignore[misc]
    assert admission == Admission(admitted=True, evicted=("a",))


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"small_fraction": 0.0}, "small_fraction"),
        ({"small_fraction": 1.0}, "small_fraction"),
        ({"ghost_fraction": -1.0}, "ghost_fraction"),
        ({"max_freq": 0}, "max_freq"),
    ],
)
def test_s3fifo_refuses_bad_tuning(kwargs: dict[str, float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        S3FifoPolicy(1_000, **kwargs)  # type: ignore[arg-type]


class TestS3Fifo:
    """Capacity 1000 bytes, small queue 100 bytes: easy to reason about by hand."""

    def policy(self) -> S3FifoPolicy:
        return S3FifoPolicy(1_000, small_fraction=0.1, ghost_fraction=2.0)

    def flood(self, store: Store, prefix: str, count: int, size: int = 10) -> None:
        replay(store, ((f"{prefix}{i}", size) for i in range(count)))

    def test_large_object_goes_to_ghost_then_main(self) -> None:
        store = Store(self.policy())
        first = store.policy.admit("big", 400)
        assert first == Admission(admitted=False)
        store.check()
        second = store.policy.admit("big", 400)
        store.apply("big", 400, second)
        assert second.admitted and "big" in store.policy
        # In main, it outlives a flood of one-hit wonders passing through the small queue.
        self.flood(store, "ohw", 300)
        assert "big" in store.policy

    def test_large_object_forgotten_by_the_ghost_needs_two_requests_again(self) -> None:
        store = Store(self.policy())
        assert not store.policy.admit("big", 400).admitted
        for i in range(10):  # 10 x 400 bytes of other large keys push it out of a 2000-byte ghost
            assert not store.policy.admit(f"other{i}", 400).admitted
        assert not store.policy.admit("big", 400).admitted

    def test_small_object_is_admitted_on_first_sight(self) -> None:
        store = Store(self.policy())
        store.apply("a", 100, store.policy.admit("a", 100))
        assert "a" in store.policy

    def test_one_hit_wonder_leaves_and_ghost_hit_promotes_to_main(self) -> None:
        store = Store(self.policy())
        store.request("a", 10)
        self.flood(store, "x", 100)
        assert "a" not in store.policy  # evicted from small without a hit
        store.request("a", 10)  # a ghost hit: straight into main
        self.flood(store, "y", 300)
        assert "a" in store.policy

    def test_hit_in_small_promotes_to_main(self) -> None:
        store = Store(self.policy())
        store.request("a", 10)
        assert store.request("a", 10)  # hit while in small
        self.flood(store, "x", 300)
        assert "a" in store.policy

    def test_main_gives_a_second_chance_to_hit_objects(self) -> None:
        store = Store(S3FifoPolicy(100, small_fraction=0.1))
        for key in ("a", "b"):  # 50 bytes each: too big for small, so ghost then main
            store.request(key, 50)
            store.request(key, 50)
        assert "a" in store.policy and "b" in store.policy
        store.request("a", 50)  # a hit: "a" survives the next eviction from main, "b" does not
        store.request("c", 50)
        store.request("c", 50)
        assert "a" in store.policy and "b" not in store.policy and "c" in store.policy

    def test_promoted_entries_are_evicted_when_main_is_full(self) -> None:
        store = Store(self.policy())
        for i in range(200):  # every key hit once: all get promoted, so main must evict
            store.request(f"k{i}", 10)
            store.request(f"k{i}", 10)
        assert len(store.policy) <= 100


def scan_trace(seed: int) -> list[tuple[str, int]]:
    """A hot set that fits the cache, interrupted by a long scan of objects seen once."""
    rng = random.Random(seed)
    hot = [(f"hot{rng.randrange(40)}", 10) for _ in range(2_000)]
    scan = [(f"scan{i}", 10) for i in range(3_000)]
    mixed = [(f"hot{rng.randrange(40)}", 10) if rng.random() < 0.2 else s for s in scan]
    after = [(f"hot{rng.randrange(40)}", 10) for _ in range(2_000)]
    return hot + mixed + after


def test_scan_resistance_beats_lru() -> None:
    trace = scan_trace(seed=7)
    hot_requests = [(k, s) for k, s in trace if k.startswith("hot")]
    s3 = Store(S3FifoPolicy(1_000, small_fraction=0.1))
    lru = Store(LruPolicy(1_000))
    s3_hits = replay(s3, trace)
    lru_hits = replay(lru, trace)
    assert s3_hits > lru_hits
    # The hot objects (400 bytes) stay resident through the scan under S3-FIFO: only their
    # first requests miss.
    assert len(hot_requests) - s3_hits == len({k for k, _ in hot_requests})
    assert len(hot_requests) - lru_hits > 300


OPS = st.lists(
    st.tuples(
        st.sampled_from(["admit", "touch", "remove", "request"]),
        st.integers(min_value=0, max_value=30),
        st.integers(min_value=0, max_value=1_300),
    ),
    max_size=300,
)


def half_small(capacity: int) -> EvictionPolicy:
    """S3-FIFO with a big small queue, so that random sizes exercise promotion too."""
    return S3FifoPolicy(capacity, small_fraction=0.5, ghost_fraction=1.0, max_freq=1)


@pytest.mark.parametrize("factory", [*FACTORIES, half_small])
@settings(max_examples=150, deadline=None)
@given(ops=OPS, capacity=st.integers(min_value=1, max_value=1_200))
def test_used_bytes_is_the_sum_of_resident_sizes(
    factory: Factory, ops: list[tuple[str, int, int]], capacity: int
) -> None:
    store = Store(factory(capacity))
    for op, key, size in ops:
        if op == "admit":
            admission = store.policy.admit(key, size)
            if store.sizes.pop(key, None) is not None:  # re-admission replaces the stored copy
                evicted = tuple(k for k in admission.evicted if k != key)
                admission = Admission(admitted=admission.admitted, evicted=evicted)
            store.apply(key, size, admission)
        elif op == "touch":
            store.policy.touch(key)
        elif op == "remove":
            store.policy.remove(key)
            store.sizes.pop(key, None)
        else:
            store.request(key, store.sizes.get(key, size))
        store.check()
