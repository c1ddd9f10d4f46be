"""MTA-STS for outbound delivery: policies fetched over real HTTPS from a server on
127.0.0.1 with a trustme CA, cached, refreshed and applied; the worker skips hosts a
policy in enforce mode does not list and never falls back to plaintext when TLS is
required. Spec: RFC 8461 §3-§5."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
import trustme

from postel.clock import FixedClock, SystemClock
from postel.delivery import DeliveryConfig, DeliveryWorker, TlsDecision, TlsMode
from postel.delivery.mtasts import (
    FETCH_RETRY_S,
    HttpsPolicyFetcher,
    MtaStsPolicy,
    load_cache,
    verified_tls_context,
)
from postel.errors import ConfigError, MtaStsError
from postel.mtasts import POLICY_SIZE_MAX, Policy, PolicyMode
from postel.resolver import DnsNxDomain, DnsPythonResolver, DnsTempError, MxAnswer
from postel.store import Store
from postel.store.queue_api import RecipientState

from .conftest import FAST_TIMEOUTS
from .test_worker import enqueue, recipients

DOMAIN = "example.test"
POLICY_HOST = f"mta-sts.{DOMAIN}"
ENFORCE = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmx: *.backup.example.test\r\nmax_age: 86400\r\n"
TESTING = ENFORCE.replace(b"enforce", b"testing")
NONE = b"version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n"
START = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


# -- a policy host: HTTPS on 127.0.0.1 ---------------------------------------------------
@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})
    body: bytes = ENFORCE
    length: bool = True


@dataclass
class PolicyHost:
    port: int
    answer: Answer
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(path, Host header) of each request."""


async def _serve_one(
    host: PolicyHost, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    host.requests.append((path, headers.get("host", "")))
    a = host.answer
    out = [f"HTTP/1.1 {a.status} X"] + [f"{k}: {v}" for k, v in a.headers.items()]
    if a.length:
        out.append(f"Content-Length: {len(a.body)}")
    out.append("Connection: close")
    writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + a.body)
    try:
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


async def start_policy_host(
    ca: trustme.CA, name: str = POLICY_HOST
) -> tuple[PolicyHost, asyncio.Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    host = PolicyHost(0, Answer())
    server = await asyncio.start_server(
        lambda r, w: _serve_one(host, r, w), "127.0.0.1", 0, ssl=context
    )
    host.port = server.sockets[0].getsockname()[1]
    return host, server


@pytest.fixture
async def policy_host(ca: trustme.CA) -> AsyncIterator[PolicyHost]:
    host, server = await start_policy_host(ca)
    yield host
    server.close()
    await server.wait_closed()


# -- a resolver from dicts ---------------------------------------------------------------
class Resolver:
    """TXT and A answers from dicts; an exception value is raised; missing is NXDOMAIN."""

    def __init__(self, txt: dict[str, tuple[bytes, ...] | Exception] | None = None) -> None:
        self.txt_answers: dict[str, tuple[bytes, ...] | Exception] = txt or {}
        self.a_answers: dict[str, tuple[IPv4Address, ...]] = {
            POLICY_HOST: (IPv4Address("127.0.0.1"),)
        }

    async def mx(self, domain: str) -> MxAnswer:
        raise AssertionError("not used")

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        if name not in self.a_answers:
            raise DnsNxDomain(name)
        return self.a_answers[name]

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        return ()

    async def txt(self, name: str) -> tuple[bytes, ...]:
        got = self.txt_answers.get(name)
        if got is None:
            raise DnsNxDomain(name)
        if isinstance(got, Exception):
            raise got
        return got

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        raise AssertionError("not used")


def sts(policy_id: str) -> dict[str, tuple[bytes, ...] | Exception]:
    return {f"_mta-sts.{DOMAIN}": (b"v=spf1 -all", f"v=STSv1; id={policy_id}".encode())}


def make_policy(
    resolver: Resolver,
    host: PolicyHost,
    ca_file: Path | None,
    clock: FixedClock | None = None,
    cache_file: Path | None = None,
) -> MtaStsPolicy:
    return MtaStsPolicy(
        resolver,
        clock=clock or FixedClock(START),
        cache_file=cache_file,
        ca_file=ca_file,
        https_port=host.port,
    )


REQUIRED_MX = TlsDecision(TlsMode.REQUIRED, verify=True, server_hostname="mx.example.test")
OPPORTUNISTIC = TlsDecision(TlsMode.OPPORTUNISTIC)


# -- decisions ---------------------------------------------------------------------------
async def test_enforce_requires_verified_tls_and_refuses_unlisted_hosts(
    policy_host: PolicyHost, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = make_policy(Resolver(sts("1")), policy_host, ca_file)
    assert await policy.decide(DOMAIN, "mx.example.test") == REQUIRED_MX
    assert await policy.decide(DOMAIN, "MX2.backup.example.test") == TlsDecision(
        TlsMode.REQUIRED, verify=True, server_hostname="MX2.backup.example.test"
    )
    with caplog.at_level(logging.INFO, logger="postel.delivery.mtasts"):
        assert await policy.decide(DOMAIN, "evil.example.org") == TlsDecision(TlsMode.REFUSE)
    assert any(r.msg == "mta_sts.mx_refused" for r in caplog.records)
    # the request went to the well-known path with the policy host's name (SNI + Host)
    assert policy_host.requests == [("/.well-known/mta-sts.txt", POLICY_HOST)]


async def test_testing_mode_is_opportunistic_and_logs_would_fail(
    policy_host: PolicyHost, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy_host.answer.body = TESTING
    policy = make_policy(Resolver(sts("1")), policy_host, ca_file)
    with caplog.at_level(logging.INFO, logger="postel.delivery.mtasts"):
        assert await policy.decide(DOMAIN, "mx.example.test") == OPPORTUNISTIC
        assert not [r for r in caplog.records if r.msg == "mta_sts.would_fail"]
        assert await policy.decide(DOMAIN, "other.example.org") == OPPORTUNISTIC
    failed = [r for r in caplog.records if r.msg == "mta_sts.would_fail"]
    assert len(failed) == 1 and getattr(failed[0], "host", None) == "other.example.org"


async def test_mode_none_and_no_record_are_opportunistic(
    policy_host: PolicyHost, ca_file: Path
) -> None:
    policy_host.answer.body = NONE
    policy = make_policy(Resolver(sts("1")), policy_host, ca_file)
    assert await policy.decide(DOMAIN, "anything.example.org") == OPPORTUNISTIC
    assert (await policy.policy(DOMAIN)) == Policy(PolicyMode.NONE, (), 86400)
    nothing = make_policy(Resolver(), policy_host, ca_file)
    assert await nothing.decide("other.test", "mx.other.test") == OPPORTUNISTIC
    several = Resolver({f"_mta-sts.{DOMAIN}": (b"v=STSv1; id=1", b"v=STSv1; id=2")})
    assert await make_policy(several, policy_host, ca_file).decide(DOMAIN, "x.y") == OPPORTUNISTIC
    assert len(policy_host.requests) == 1  # only the first policy was fetched


# -- cache and refresh -------------------------------------------------------------------
async def test_cached_until_the_id_changes_or_max_age_runs_out(
    policy_host: PolicyHost, ca_file: Path
) -> None:
    resolver = Resolver(sts("1"))
    clock = FixedClock(START)
    policy = make_policy(resolver, policy_host, ca_file, clock)
    for _ in range(3):
        assert await policy.decide(DOMAIN, "mx.example.test") == REQUIRED_MX
    assert len(policy_host.requests) == 1
    resolver.txt_answers = sts("2")
    policy_host.answer.body = TESTING
    assert await policy.decide(DOMAIN, "mx.example.test") == OPPORTUNISTIC
    assert len(policy_host.requests) == 2
    clock.advance(86400 - 1)
    await policy.decide(DOMAIN, "mx.example.test")
    assert len(policy_host.requests) == 2
    clock.advance(1)  # expired: fetched again although the id is the same
    await policy.decide(DOMAIN, "mx.example.test")
    assert len(policy_host.requests) == 3


async def test_concurrent_decisions_share_one_fetch(policy_host: PolicyHost, ca_file: Path) -> None:
    policy = make_policy(Resolver(sts("1")), policy_host, ca_file)
    decisions = await asyncio.gather(*(policy.decide(DOMAIN, "mx.example.test") for _ in range(8)))
    assert set(decisions) == {REQUIRED_MX}
    assert len(policy_host.requests) == 1


async def test_a_failed_fetch_keeps_the_cached_policy_and_is_not_retried_at_once(
    policy_host: PolicyHost, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = Resolver(sts("1"))
    clock = FixedClock(START)
    policy = make_policy(resolver, policy_host, ca_file, clock)
    assert await policy.decide(DOMAIN, "mx.example.test") == REQUIRED_MX
    resolver.txt_answers = sts("2")
    policy_host.answer = Answer(status=500, body=b"oops")
    with caplog.at_level(logging.WARNING, logger="postel.delivery.mtasts"):
        assert await policy.decide(DOMAIN, "mx.example.test") == REQUIRED_MX
        assert await policy.decide(DOMAIN, "evil.example.org") == TlsDecision(TlsMode.REFUSE)
    assert [r.msg for r in caplog.records].count("mta_sts.fetch_failed") == 1
    assert len(policy_host.requests) == 2
    clock.advance(FETCH_RETRY_S)
    policy_host.answer = Answer(body=TESTING)
    assert await policy.decide(DOMAIN, "evil.example.org") == OPPORTUNISTIC
    assert len(policy_host.requests) == 3


async def test_dns_trouble_keeps_the_cached_policy(policy_host: PolicyHost, ca_file: Path) -> None:
    resolver = Resolver(sts("1"))
    policy = make_policy(resolver, policy_host, ca_file)
    assert await policy.decide(DOMAIN, "mx.example.test") == REQUIRED_MX
    resolver.txt_answers = {f"_mta-sts.{DOMAIN}": DnsTempError("SERVFAIL")}
    assert await policy.decide(DOMAIN, "mx.example.test") == REQUIRED_MX
    resolver.txt_answers = {}  # the record removed: the cached policy still holds (§5.1)
    assert await policy.decide(DOMAIN, "evil.example.org") == TlsDecision(TlsMode.REFUSE)
    assert len(policy_host.requests) == 1


async def test_policies_survive_a_restart(
    policy_host: PolicyHost, ca_file: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "data" / "mta-sts-cache.json"
    clock = FixedClock(START)
    first = make_policy(Resolver(sts("1")), policy_host, ca_file, clock, cache)
    assert await first.decide(DOMAIN, "mx.example.test") == REQUIRED_MX
    document = json.loads(cache.read_text())
    assert document["policies"][0]["id"] == "1"
    assert not [p for p in cache.parent.iterdir() if p.name != cache.name]  # no temp file left
    policy_host.answer = Answer(status=404, body=b"")  # the policy host is down now
    second = make_policy(Resolver(sts("1")), policy_host, ca_file, clock, cache)
    assert await second.decide(DOMAIN, "evil.example.org") == TlsDecision(TlsMode.REFUSE)
    assert len(policy_host.requests) == 1  # same id: served from the restored cache
    clock.advance(86400)
    assert load_cache(cache, clock.now()) == {}  # expired entries are not restored


@pytest.mark.parametrize(
    "text",
    [b"", b"not json", b'{"version": 1, "policies": [{"domain": 1}]}', b"[]", b'{"version": 9}'],
)
def test_a_damaged_cache_file_is_ignored(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "cache.json"
    path.write_bytes(text)
    assert load_cache(path, START) == {}


# -- what a fetch refuses ----------------------------------------------------------------
async def fetch(host: PolicyHost, ca_file: Path | None, name: str = DOMAIN) -> Policy:
    fetcher = HttpsPolicyFetcher(Resolver(), verified_tls_context(ca_file), https_port=host.port)
    return await fetcher.fetch(name)


async def test_fetch_returns_the_parsed_policy(policy_host: PolicyHost, ca_file: Path) -> None:
    policy_host.answer.headers = {"Content-Type": "Text/Plain; charset=utf-8"}
    assert (await fetch(policy_host, ca_file)).mode is PolicyMode.ENFORCE


async def test_a_redirect_is_not_followed(policy_host: PolicyHost, ca_file: Path) -> None:
    policy_host.answer = Answer(
        status=301, headers={"Location": f"https://{POLICY_HOST}/elsewhere.txt"}, body=b""
    )
    with pytest.raises(MtaStsError, match="301"):
        await fetch(policy_host, ca_file)
    assert [path for path, _ in policy_host.requests] == ["/.well-known/mta-sts.txt"]


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
async def test_an_oversized_policy_is_refused(
    policy_host: PolicyHost, ca_file: Path, length: bool
) -> None:
    policy_host.answer = Answer(
        body=ENFORCE + b"x-pad: " + b"a" * POLICY_SIZE_MAX + b"\r\n", length=length
    )
    with pytest.raises(MtaStsError, match="larger"):
        await fetch(policy_host, ca_file)


async def test_another_media_type_is_refused(policy_host: PolicyHost, ca_file: Path) -> None:
    policy_host.answer.headers = {"Content-Type": "text/html"}
    with pytest.raises(MtaStsError, match="text/html"):
        await fetch(policy_host, ca_file)


async def test_a_bad_policy_is_refused(policy_host: PolicyHost, ca_file: Path) -> None:
    policy_host.answer.body = b"<html>parked domain</html>"
    with pytest.raises(MtaStsError):
        await fetch(policy_host, ca_file)


async def test_an_untrusted_certificate_is_refused(policy_host: PolicyHost) -> None:
    with pytest.raises(MtaStsError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await fetch(policy_host, None)  # the trustme CA is not in the system store


async def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, ca_file: Path) -> None:
    host, server = await start_policy_host(ca, name="mta-sts.other.test")
    try:
        with pytest.raises(MtaStsError, match=r"certificate|hostname"):
            await fetch(host, ca_file)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_policy_host_without_address_is_refused(ca_file: Path) -> None:
    with pytest.raises(MtaStsError, match="no address"):
        await fetch(PolicyHost(1, Answer()), ca_file, name="nowhere.test")


async def test_nobody_listening_is_refused(ca_file: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MtaStsError, match="unreachable"):
        await fetch(PolicyHost(port, Answer()), ca_file)


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        verified_tls_context(tmp_path / "missing.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError):
        verified_tls_context(bad)


# -- the worker under a policy -----------------------------------------------------------
@dataclass
class SmtpServer:
    """A receiving MTA offering STARTTLS with ``context``; counts connections, TLS
    handshakes and MAIL commands."""

    context: ssl.SSLContext
    port: int = 0
    connections: int = 0
    tls_sessions: int = 0
    mails_in_plaintext: int = 0
    delivered: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        tls = False
        writer.write(b"220 mx.example.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    offer = b"" if tls else b"250-STARTTLS\r\n"
                    writer.write(b"250-mx.example.test\r\n" + offer + b"250 8BITMIME\r\n")
                elif verb == b"STAR":
                    writer.write(b"220 go ahead\r\n")
                    await writer.drain()
                    await writer.start_tls(self.context)
                    tls = True
                    self.tls_sessions += 1
                    continue
                elif verb == b"MAIL":
                    self.mails_in_plaintext += 0 if tls else 1
                    writer.write(b"250 ok\r\n")
                elif verb == b"RCPT":
                    writer.write(b"250 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    await writer.drain()
                    while (await reader.readline()) != b".\r\n":
                        pass
                    self.delivered += 1
                    writer.write(b"250 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def start_smtp(context: ssl.SSLContext) -> tuple[SmtpServer, asyncio.Server]:
    smtp = SmtpServer(context)
    server = await asyncio.start_server(smtp.handle, "127.0.0.1", 0)
    smtp.port = server.sockets[0].getsockname()[1]
    return smtp, server


class FixedDecision:
    def __init__(self, decision: TlsDecision) -> None:
        self.decision = decision
        self.asked: list[tuple[str, str]] = []

    async def decide(self, domain: str, host: str) -> TlsDecision:
        self.asked.append((domain, host))
        return self.decision


def worker(
    store: Store,
    resolver: DnsPythonResolver,
    port: int,
    decision: TlsDecision,
    ca_file: Path | None = None,
) -> DeliveryWorker:
    config = DeliveryConfig(
        hostname="client.example.net",
        port=port,
        timeouts=FAST_TIMEOUTS,
        ipv6=False,
        ca_file=ca_file,
    )
    return DeliveryWorker(
        store,
        resolver,
        config,
        clock=SystemClock(),
        rng=random.Random(1),
        tls_policy=FixedDecision(decision),
    )


async def test_worker_skips_hosts_the_policy_refuses(
    store: Store, resolver: DnsPythonResolver, ca: trustme.CA
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.example.test").configure_cert(context)
    smtp, server = await start_smtp(context)
    try:
        await enqueue(store, "S1", "b@example.test")
        await worker(store, resolver, smtp.port, TlsDecision(TlsMode.REFUSE)).run_once()
    finally:
        server.close()
    r = (await recipients(store, "S1"))["b@example.test"]
    assert r.state is RecipientState.DEFERRED
    assert r.last_reply is not None and r.last_reply.startswith("451 4.7.5 MTA-STS policy")
    assert smtp.connections == 0


async def test_required_tls_with_a_bad_certificate_never_falls_back_to_plaintext(
    store: Store, resolver: DnsPythonResolver, ca_file: Path
) -> None:
    other = trustme.CA()  # a CA the client does not trust
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.issue_cert("mx.example.test").configure_cert(context)
    smtp, server = await start_smtp(context)
    try:
        await enqueue(store, "S2", "b@example.test")
        await worker(store, resolver, smtp.port, REQUIRED_MX, ca_file).run_once()
    finally:
        server.close()
    r = (await recipients(store, "S2"))["b@example.test"]
    assert r.state is RecipientState.DEFERRED
    assert r.last_reply is not None and "4.7.5" in r.last_reply
    assert smtp.connections == 1 and smtp.mails_in_plaintext == 0 and smtp.delivered == 0


async def test_required_tls_with_a_valid_certificate_delivers(
    store: Store, resolver: DnsPythonResolver, ca: trustme.CA, ca_file: Path
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.example.test").configure_cert(context)
    smtp, server = await start_smtp(context)
    try:
        await enqueue(store, "S3", "b@example.test")
        await worker(store, resolver, smtp.port, REQUIRED_MX, ca_file).run_once()
    finally:
        server.close()
    r = (await recipients(store, "S3"))["b@example.test"]
    assert r.state is RecipientState.DELIVERED, r.last_reply
    assert smtp.tls_sessions == 1 and smtp.mails_in_plaintext == 0 and smtp.delivered == 1


async def test_opportunistic_tls_still_falls_back_to_plaintext(
    store: Store, resolver: DnsPythonResolver
) -> None:
    broken = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    broken.set_ciphers("aNULL")  # no usable cipher: every handshake fails
    broken.maximum_version = ssl.TLSVersion.TLSv1_2
    smtp, server = await start_smtp(broken)
    try:
        await enqueue(store, "S4", "b@example.test")
        await worker(store, resolver, smtp.port, OPPORTUNISTIC).run_once()
    finally:
        server.close()
    r = (await recipients(store, "S4"))["b@example.test"]
    assert r.state is RecipientState.DELIVERED, r.last_reply
    assert smtp.connections == 2 and smtp.mails_in_plaintext == 1
