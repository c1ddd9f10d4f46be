"""The web listener: the MTA-STS policy file for our domains (RFC 8461 §3.2-§3.3) and
the health check, through httpx's ASGI transport and a real uvicorn on loopback (plain
HTTP and HTTPS with a trustme certificate)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
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
from postel.web.protocol import (
    UVICORN_LOGGER,
    ClientErrorsToDebug,
    ConnectionGate,
    quiet_client_errors,
)
from postel.web.server import (
    WEB_CONNECTIONS_PER_IP_MAX,
    WEB_HEADER_OCTETS_MAX,
    WEB_REQUEST_HEAD_TIMEOUT_S,
)

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


@pytest.mark.parametrize(
    "header",
    [
        "mta-sts.example.org:\u0663\u0664",  # ARABIC-INDIC digits: isdigit() is True
        "mta-sts.example.org:\uff18\uff10",  # FULLWIDTH digits
        "mta-sts.example.org:\u00b2",  # SUPERSCRIPT TWO
        "mta-sts.example.org:123456",  # more digits than a port has
        "mta-sts.\u212aexample.org",  # KELVIN SIGN: lower() gives ASCII "k"
        "MTA-STS.EXAMPLE.\u0130RG",  # LATIN CAPITAL I WITH DOT
        "mta-st\u017f.example.org",  # LONG S
    ],
)
def test_non_ascii_host_headers_name_no_domain(header: str) -> None:
    assert policy_domain(header) is None


async def _server(
    *,
    connections_per_ip: int = WEB_CONNECTIONS_PER_IP_MAX,
    exempt: tuple[str, ...] = (),
    head_timeout: float = WEB_REQUEST_HEAD_TIMEOUT_S,
) -> WebServer:
    server = WebServer(
        create_app(Domains("example.org"), WebSettings(POLICY)),
        _bound(),
        connections_per_ip=connections_per_ip,
        exempt=exempt,
        head_timeout=head_timeout,
    )
    await server.start()
    return server


async def _connect(
    server: WebServer, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.address
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection within ``within`` seconds (answers
    before the close are read and dropped)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


async def _get(server: WebServer, source: str = "127.0.0.1", head: bytes = b"") -> bytes:
    reader, writer = await _connect(server, source)
    writer.write(head or b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def test_connections_past_the_per_address_cap_are_closed_at_once() -> None:
    server = await _server(connections_per_ip=3)
    opened = [await _connect(server) for _ in range(5)]
    try:
        assert [await _closed(r, 0.3) for r, _ in opened] == [False] * 3 + [True] * 2
        assert server.gate.open == 3
        assert (await _get(server, "127.0.0.2")).startswith(b"HTTP/1.1 200")
        opened[0][1].close()
        await asyncio.sleep(0.1)
        assert (await _get(server)).startswith(b"HTTP/1.1 200")  # a slot is free again
    finally:
        for _, writer in opened:
            writer.close()
        await server.stop()
    assert server.gate.open == 0


async def test_exempt_networks_are_not_capped_per_address() -> None:
    server = await _server(connections_per_ip=2, exempt=("127.0.0.0/30",))
    opened = [await _connect(server) for _ in range(5)]
    try:
        assert [await _closed(r, 0.2) for r, _ in opened] == [False] * 5
    finally:
        for _, writer in opened:
            writer.close()
        await server.stop()


async def test_idle_and_trickling_connections_are_cut_at_the_head_timeout() -> None:
    server = await _server(head_timeout=0.5)
    idle = await _connect(server)
    trickling = await _connect(server)
    served = await _connect(server)
    try:
        served[1].write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await served[0].readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        served[1].write(b"GET /healthz HTTP/1.1\r\n")  # then the next head trickles
        trickling[1].write(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(8):
            await asyncio.sleep(0.1)
            for _, writer in (trickling, served):
                if not writer.is_closing():
                    writer.write(b"X: y\r\n")
        results = [await _closed(reader, 1.5) for reader, _ in (idle, trickling, served)]
        assert results == [True, True, True]
    finally:
        for _, writer in (idle, trickling, served):
            writer.close()
        await server.stop()


async def test_a_quick_head_is_served_after_a_slow_start() -> None:
    """The timer runs per head: each of several requests on a connection may take
    almost the whole head timeout."""
    server = await _server(head_timeout=0.6)
    reader, writer = await _connect(server)
    try:
        for _ in range(3):
            await asyncio.sleep(0.4)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
        await server.stop()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: " + b"a" * WEB_HEADER_OCTETS_MAX + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
        + b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: "
        + b"a" * WEB_HEADER_OCTETS_MAX
        + b"\r\n\r\n",
    ],
    ids=["one", "pipelined"],
)
async def test_a_head_over_the_bound_gets_431(head: bytes) -> None:
    server = await _server()
    try:
        answer = await _get(server, head=head)
    finally:
        await server.stop()
    assert answer.count(b"HTTP/1.1 ") == head.count(b"GET ")
    assert answer.rsplit(b"HTTP/1.1 ", 1)[1].startswith(b"431 ")


def test_client_errors_of_uvicorn_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    quiet_client_errors()
    quiet_client_errors()
    logger = logging.getLogger(UVICORN_LOGGER)
    assert sum(isinstance(f, ClientErrorsToDebug) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=UVICORN_LOGGER):
        logger.warning("Invalid HTTP request received.")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
    with caplog.at_level(logging.DEBUG, logger=UVICORN_LOGGER):
        logger.warning("Invalid HTTP request received.")
    assert caplog.records[-1].levelno == logging.DEBUG


def test_the_gate_counts_per_address_and_in_total() -> None:
    gate = ConnectionGate(per_ip=2, total=3)
    assert [gate.admit("192.0.2.1") for _ in range(3)] == [True, True, False]
    assert gate.admit("192.0.2.2") and not gate.admit("192.0.2.3")
    gate.release("192.0.2.1")
    gate.release("192.0.2.9")  # never admitted: no effect
    assert gate.open == 2 and gate.admit("192.0.2.3")
