"""The node's in-memory object store: bytes-bounded, many Vary variants per primary key.

Bodies are kept as ``bytes`` next to the stored :class:`~cdn_core.entry.StoredEntry` heads. Which
objects stay is the eviction policy's call (:class:`~cdn_core.eviction.S3FifoPolicy`); the store
only carries out its :class:`~cdn_core.eviction.Admission` answers. The store implements
:class:`cdn_core.purge.PurgeTarget` so that the control plane can apply purges to it, with an
index of surrogate keys for tag purges.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from cdn_core.entry import StoredEntry
from cdn_core.eviction import EvictionPolicy, S3FifoPolicy
from cdn_core.purge import PurgeKind, PurgeRule, matches

Variant = tuple[tuple[str, str], ...]
SlotKey = tuple[str, Variant]

# What a stored head costs beyond its field bytes (dicts, the entry object): a rough constant.
_HEAD_OVERHEAD_BYTES = 256


class Slot:
    """One stored variant: its head, its body, and what the adapter derived from the head.

    ``prepared`` is the adapter's memo of work that depends only on the stored head (the
    client response fields), so that a hit does not redo it; it is reset when the head changes.
    """

    __slots__ = ("body", "entry", "prepared")

    def __init__(self, entry: StoredEntry, body: bytes) -> None:
        self.entry = entry
        self.body = body
        self.prepared: object = None


def object_size(entry: StoredEntry, body: bytes) -> int:
    """The bytes an object is charged for: its body plus an estimate of its head."""
    head = sum(len(name) + len(value) + 4 for name, value in entry.response.headers)
    return len(body) + head + _HEAD_OVERHEAD_BYTES


class CacheStore:
    """Objects by primary key and variant, within ``capacity_bytes``."""

    def __init__(
        self,
        capacity_bytes: int,
        *,
        policy: EvictionPolicy | None = None,
        on_evict: Callable[[int], None] | None = None,
    ) -> None:
        self.policy: EvictionPolicy = policy if policy is not None else S3FifoPolicy(capacity_bytes)
        self._objects: dict[str, dict[Variant, Slot]] = {}
        self._tags: dict[str, set[SlotKey]] = {}
        self._on_evict = on_evict
        self.evictions = 0

    # -- reads -----------------------------------------------------------------------------

    def candidates(self, key: str) -> Sequence[StoredEntry]:
        """Every stored variant of ``key`` (the input of ``decide_lookup``)."""
        variants = self._objects.get(key)
        if variants is None:
            return ()
        return [slot.entry for slot in variants.values()]

    def body(self, entry: StoredEntry) -> bytes | None:
        """The body stored with ``entry``'s variant, or None when it is gone; counts a hit."""
        slot = self.slot(entry)
        return None if slot is None else slot.body

    def slot(self, entry: StoredEntry) -> Slot | None:
        """The stored variant ``entry`` belongs to, or None when it is gone; counts a hit."""
        slot = self._slot(entry)
        if slot is not None:
            self.policy.touch((entry.key, entry.variant))
        return slot

    def _slot(self, entry: StoredEntry) -> Slot | None:
        variants = self._objects.get(entry.key)
        return None if variants is None else variants.get(entry.variant)

    @property
    def used_bytes(self) -> int:
        return self.policy.used_bytes

    def __len__(self) -> int:
        return len(self.policy)

    # -- writes ----------------------------------------------------------------------------

    def put(self, entry: StoredEntry, body: bytes) -> bool:
        """Store ``body`` under ``entry`` if the policy admits it; return whether it did."""
        slot_key: SlotKey = (entry.key, entry.variant)
        admission = self.policy.admit(slot_key, object_size(entry, body))
        for evicted in admission.evicted:
            self._forget(evicted)
        if admission.evicted:
            count = sum(1 for k in admission.evicted if k != slot_key)
            self.evictions += count
            if self._on_evict is not None and count:
                self._on_evict(count)
        if not admission.admitted:
            self._forget(slot_key)
            return False
        self._forget(slot_key)
        self._objects.setdefault(entry.key, {})[entry.variant] = Slot(entry, body)
        for tag in entry.surrogate_keys:
            self._tags.setdefault(tag, set()).add(slot_key)
        return True

    def replace_head(self, entry: StoredEntry) -> bool:
        """Keep the stored body but swap in a freshened head (RFC 9111 §4.3.4)."""
        slot = self._slot(entry)
        if slot is None:
            return False
        self._untag(slot.entry)
        slot.entry = entry
        slot.prepared = None
        for tag in entry.surrogate_keys:
            self._tags.setdefault(tag, set()).add((entry.key, entry.variant))
        return True

    def invalidate(self, key: str) -> int:
        """Remove every variant of primary key ``key`` (RFC 9111 §4.4); return how many."""
        variants = self._objects.get(key)
        if not variants:
            return 0
        slot_keys = [(key, variant) for variant in variants]
        for slot_key in slot_keys:
            self.policy.remove(slot_key)
            self._forget(slot_key)
        return len(slot_keys)

    def _forget(self, slot_key: Hashable) -> None:
        assert isinstance(slot_key, tuple)
        key: str = slot_key[0]
        variant: Variant = slot_key[1]
        variants = self._objects.get(key)
        if variants is None:
            return
        slot = variants.pop(variant, None)
        if slot is not None:
            self._untag(slot.entry)
        if not variants:
            del self._objects[key]

    def _untag(self, entry: StoredEntry) -> None:
        for tag in entry.surrogate_keys:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard((entry.key, entry.variant))
                if not keys:
                    del self._tags[tag]

    # -- PurgeTarget -----------------------------------------------------------------------

    def purge(self, rule: PurgeRule, *, now: float) -> int:
        """Remove (or, for a soft rule, mark stale at ``now``) every object ``rule`` matches."""
        matched = [
            slot
            for slot in self._purge_scope(rule)
            if matches(
                rule, host=slot.entry.host, target=slot.entry.target, tags=slot.entry.surrogate_keys
            )
        ]
        for slot in matched:
            entry = slot.entry
            if rule.soft:
                slot.entry = entry.soft_purged(now=now)
                slot.prepared = None
            else:
                self.policy.remove((entry.key, entry.variant))
                self._forget((entry.key, entry.variant))
        return len(matched)

    def _purge_scope(self, rule: PurgeRule) -> list[Slot]:
        if rule.kind is PurgeKind.TAG:
            slot_keys = {k for tag in rule.values for k in self._tags.get(tag, ())}
            return [self._objects[key][variant] for key, variant in slot_keys]
        return [slot for variants in self._objects.values() for slot in variants.values()]

    def drop_all(self) -> int:
        """Forget every object (the purge log moved past what this node can prove)."""
        count = 0
        for key in list(self._objects):
            count += self.invalidate(key)
        self._tags.clear()
        return count
