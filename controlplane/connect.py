"""Opening a control-plane client: the one place that picks a store adapter.

:func:`connect` turns ``Config.control_plane`` into a :class:`~controlplane.store.ControlStore`
(:class:`~controlplane.redis_store.RedisControlStore` or the process's
:class:`~controlplane.memory_store.MemoryControlStore`). Only composition roots call it: the
``cdn`` commands, the lab, the load tests and the tests. Everything else is handed the client
it uses, and the port (:mod:`controlplane.store`) knows none of its adapters.
"""

from __future__ import annotations

from cdn_core.registry import ClusterSnapshot
from controlplane.memory_store import shared_memory_store
from controlplane.redis_store import RedisControlStore
from controlplane.store import ControlStore


def connect(url: str, cluster: str) -> ControlStore:
    """The store named by ``Config.control_plane``: a redis:// URL, or ``"memory"``.

    ``"memory"`` returns the one in-memory store of ``cluster`` in this process, so that every
    node of an in-process overlay shares it. Nothing is sent before the first call.
    """
    if url == "memory":
        return shared_memory_store(cluster)
    return RedisControlStore.from_url(url, cluster)


async def read_snapshot(url: str, cluster: str) -> ClusterSnapshot:
    """One snapshot from the store at ``url``, for a command that reads once and exits.

    Raises:
        StoreUnavailable: the store cannot be reached.
    """
    store = connect(url, cluster)
    try:
        return await store.snapshot()
    finally:
        await store.close()
