"""What both roles use to talk to other nodes.

- :mod:`overlay.upstream`: the upstream seam, where a cache miss goes next (protocols only);
- :mod:`overlay.client`: the one aiohttp client every outgoing hop goes through;
- :mod:`overlay.direct`: straight to an origin;
- :mod:`overlay.peers`: an overlay hop to another node (wrapped, signed, optionally mTLS);
- :mod:`overlay.path`: the edge's way to the origin through the shields (path planning);
- :mod:`overlay.tls`: the cluster's mutual TLS contexts.

The snapshot feed these parts route on lives in :mod:`controlplane.feed`, which the router
shares.
"""
