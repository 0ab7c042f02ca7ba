"""The server over TLS (``ssl=``): requests, keep-alive, and closing after ``Connection: close``.

The certificate is a throwaway self-signed one made with ``openssl``.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from edge.server import ServerLimits, start_server
from tests.edge.server.conftest import WAIT_S, RawClient, Recorder, get


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("the TLS test needs openssl on PATH")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=WAIT_S * 6,
    )
    return cert, key


async def test_requests_over_tls(certificate: tuple[Path, Path], recorder: Recorder) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    client_context.check_hostname = False
    server = await start_server(
        recorder, host="127.0.0.1", port=0, limits=ServerLimits(), ssl=server_context
    )
    try:
        client = await RawClient.connect(server.port, ssl=client_context)
        await client.send(get("/a"))
        assert (await client.response()).status == 200
        await client.send(get("/b", b"Connection: close\r\n"))
        response = await client.response()
        assert response.get("Connection") == "close"
        assert await client.is_closed()
        client.close()
        assert recorder.paths == ["/a", "/b"]
    finally:
        await server.close(drain_s=1.0)
