"""One run over TLS with the generated development certificate."""

from __future__ import annotations

import ssl

from client.sdk import ParleyClient, RestClient
from tests.conftest import ServerProcess


async def test_https_and_wss_with_generated_cert(
    server_factory: type[ServerProcess], tmp_path: object
) -> None:
    import pathlib

    certs = pathlib.Path(str(tmp_path))
    crt, key = certs / "dev.crt", certs / "dev.key"
    srv = server_factory("--cert-file", str(crt), "--key-file", str(key), tls=True)  # type: ignore[call-arg]
    assert crt.exists() and key.exists()
    assert (key.stat().st_mode & 0o077) == 0
    ctx = ssl.create_default_context(cafile=str(crt))
    async with RestClient(srv.url, api_key=srv.api_key, verify=ctx) as rest:
        await rest.create_user("tls-a", "A")
        await rest.create_user("tls-b", "B")
        async with (
            ParleyClient(srv.ws_url, await rest.issue_token("tls-a"), ssl=ctx) as a,
            ParleyClient(srv.ws_url, await rest.issue_token("tls-b"), ssl=ctx) as b,
        ):
            sent = await a.send_text("tls-b", "over tls")
            got = await b.next_event("message")
            assert got.message["id"] == sent["id"]
