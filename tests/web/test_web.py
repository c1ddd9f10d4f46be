"""The web listener: the MTA-STS policy file for our domains (RFC 8461 §3.2-§3.3) and
the health check, through httpx's ASGI transport and a real uvicorn on loopback (plain
HTTP and HTTPS with a trustme certificate)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
import trustme

from postel.ids import DomainId
from postel.mtasts import own_policy, parse_policy
from postel.store.api import Domain
from postel.web import WebServer, WebSettings, create_app, policy_domain

POLICY = own_policy("enforce", 86400, ["mx.example.org"])


class Domains:
    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.asked: list[str] = []

    async def get_domain(self, name: str) -> Domain | None:
        self.asked.append(name)
        if name not in self.names:
            return None
        return Domain(DomainId(1), name, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Domains("example.org", "b.test"), WebSettings(POLICY))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_policy_is_served_for_our_domain(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.org"})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/plain"
    assert response.text == POLICY.text
    assert parse_policy(response.content).mx == ("mx.example.org",)


@pytest.mark.parametrize(
    "host", ["MTA-STS.Example.ORG", "mta-sts.example.org.", "mta-sts.example.org:8080"]
)
async def test_host_header_forms(client: httpx.AsyncClient, host: str) -> None:
    response = await client.get("/.well-known/mta-sts.txt", headers={"Host": host})
    assert response.status_code == 200 and response.text == POLICY.text


@pytest.mark.parametrize(
    "host",
    [
        "mta-sts.other.org",  # not ours
        "example.org",  # not the policy host
        "www.example.org",
        "mta-sts.",
        "mta-sts.example.org:http",
        "[::1]:443",
        "mta-sts." + "a" * 300 + ".org",
    ],
)
async def test_other_hosts_get_404(client: httpx.AsyncClient, host: str) -> None:
    response = await client.get("/.well-known/mta-sts.txt", headers={"Host": host})
    assert response.status_code == 404


async def test_healthz_and_unknown_paths(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).text == "ok"
    assert (await client.get("/nothing")).status_code == 404
    response = await client.post(
        "/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.org"}
    )
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("header", "domain"),
    [
        ("mta-sts.example.org", "example.org"),
        ("  MTA-STS.b.test.:443 ", "b.test"),
        ("mta-sts.localhost", None),
        ("mta-sts.ex\u00e4mple.org", None),
        ("", None),
    ],
)
def test_policy_domain(header: str, domain: str | None) -> None:
    assert policy_domain(header) == domain


def _bound() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def test_real_server_over_plain_http() -> None:
    domains = Domains("example.org")
    server = WebServer(create_app(domains, WebSettings(POLICY)), _bound())
    await server.start()
    host, port = server.address
    try:
        async with httpx.AsyncClient() as http:
            got = await http.get(
                f"http://{host}:{port}/.well-known/mta-sts.txt",
                headers={"Host": "mta-sts.example.org"},
            )
            assert got.status_code == 200 and got.text == POLICY.text
            assert "server" not in got.headers
            assert (await http.get(f"http://{host}:{port}/healthz")).text == "ok"
    finally:
        await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://{host}:{port}/healthz")


async def test_real_server_over_https_with_the_configured_certificate() -> None:
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("mta-sts.example.org").configure_cert(context)
    server = WebServer(
        create_app(Domains("example.org"), WebSettings(POLICY)), _bound(), ssl_context=context
    )
    await server.start()
    host, port = server.address
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    try:
        async with httpx.AsyncClient(verify=client_context) as http:
            got = await http.get(
                f"https://{host}:{port}/.well-known/mta-sts.txt",
                headers={"Host": "mta-sts.example.org"},
                extensions={"sni_hostname": "mta-sts.example.org"},
            )
        assert got.status_code == 200 and got.text == POLICY.text
    finally:
        await server.stop()
