"""Every Redis key the control plane uses, all under ``cdn:{cluster}:``.

======================  ======  ==========================================================
key                     type    holds
======================  ======  ==========================================================
``node:{name}``         string  the node's latest :class:`NodeReport` (JSON), TTL = node_ttl
``nodes``               set     names that ever registered (a name without its key is down)
``epoch``               string  random id of this Redis' log; changes if Redis lost its data
``purges``              stream  the purge log: one entry per purge, field ``rule`` (JSON)
``acks:{purge_id}``     hash    node -> ack time (wall clock), expires after a day
``ackfeed``             stream  one entry per ack batch, so waiters block instead of polling
``pos:{node}``          string  the node's applied log position (``epoch/entry-id``)
======================  ======  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds the keys of one cluster."""

    cluster: str

    @property
    def prefix(self) -> str:
        return f"cdn:{self.cluster}:"

    def node(self, name: str) -> str:
        return f"{self.prefix}node:{name}"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}nodes"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}epoch"

    @property
    def purges(self) -> str:
        return f"{self.prefix}purges"

    def acks(self, purge_id: str) -> str:
        return f"{self.prefix}acks:{purge_id}"

    @property
    def ack_feed(self) -> str:
        return f"{self.prefix}ackfeed"

    def position(self, node: str) -> str:
        return f"{self.prefix}pos:{node}"
