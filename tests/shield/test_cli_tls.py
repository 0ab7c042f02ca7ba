"""Mutual TLS between overlay nodes, with a cluster CA and node certificates made by `openssl`.

The shield and the edge run as CLI processes, each from its own directory holding the cluster
CA and its own certificate (the same config file names ``ca.crt``/``node.crt``/``node.key``,
relative to the config). The edge's hop to the shield goes over TLS; a client without a
certificate, or with one from another CA, does not get in.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.shield.conftest import HOST, Origin
from tests.shield.processes import cluster, config_text, node_specs
from tests.shield.test_cli_overlay import first_miss_through_shield, get

OPENSSL = "openssl"
TLS_SECTION = """
[overlay.tls]
ca_file = "ca.crt"
cert_file = "node.crt"
key_file = "node.key"
"""


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA (``ca.crt``/``ca.key`` in ``directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    return directory


def make_node_cert(ca: Path, directory: Path, name: str) -> None:
    """``node.crt``/``node.key`` for ``name`` signed by ``ca``, plus the CA's ``ca.crt``."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "node.key", "-out", "node.csr", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "node.csr", "-CA", str(ca / "ca.crt"), "-CAkey", str(ca / "ca.key"),
        "-CAcreateserial", "-out", "node.crt", "-days", "2",
        cwd=directory,
    )  # fmt: skip
    (directory / "ca.crt").write_bytes((ca / "ca.crt").read_bytes())


def client_context(ca: Path, cert_dir: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca / "ca.crt"))
    context.check_hostname = False
    if cert_dir is not None:
        context.load_cert_chain(cert_dir / "node.crt", cert_dir / "node.key")
    return context


async def test_edge_to_shield_hop_over_mutual_tls(
    origin: Origin, tmp_path: Path, redis_url: str, cluster_name: str
) -> None:
    specs = node_specs(shields=1, edges=1)
    config = config_text(
        cluster=cluster_name,
        control_plane=redis_url,
        origin_url=f"http://127.0.0.1:{origin.port}",
        nodes=specs,
        extra=TLS_SECTION,
    )
    ca = make_ca(tmp_path / "ca", "cluster-ca")
    rogue = make_ca(tmp_path / "rogue-ca", "rogue-ca")
    make_node_cert(rogue, tmp_path / "rogue", "edge-9")
    nodes = tmp_path / "nodes"
    for spec in specs:
        make_node_cert(ca, nodes / spec.name, spec.name)
    timeout = aiohttp.ClientTimeout(total=15)
    async with cluster(nodes, config, specs) as running:
        async with aiohttp.ClientSession(timeout=timeout) as client:
            for spec in specs:
                running.start(spec.name)
            for spec in specs:
                await running.wait_healthy(client, spec.name)
            await running.wait_converged(redis_url, cluster_name)
            await first_miss_through_shield(client, running, "edge-1")
            edge = f"http://{running.specs['edge-1'].listen}"
            status, body, tiers = await get(client, f"{edge}/tls")
            assert (status, body, tiers) == (200, "body of /tls\n", ["shield-1", "edge-1"])
            assert "shield shield-1: serving https://" in running.log("shield-1")

            shield = f"https://{running.specs['shield-1'].listen}/tls"
            # A cluster certificate gets through TLS, then the missing tag gets a 403.
            member = client_context(ca, nodes / "edge-1")
            async with client.get(shield, headers={"Host": HOST}, ssl=member) as response:
                assert response.status == 403
            # No certificate, or one from another CA: the handshake fails.
            for context in (client_context(ca, None), client_context(ca, tmp_path / "rogue")):
                with pytest.raises(aiohttp.ClientError):
                    async with client.get(shield, headers={"Host": HOST}, ssl=context) as r:
                        await r.read()
            # Plain HTTP to the TLS listener gets nothing either.
            with pytest.raises(aiohttp.ClientError):
                async with client.get(shield.replace("https", "http", 1)) as r:
                    await r.read()
        assert origin.requests_for("/tls") == 1
