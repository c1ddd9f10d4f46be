"""The MTA-STS fetcher and cache against a hostile policy host (real HTTPS on
127.0.0.1 with a trustme CA) and hostile DNS answers and cache files: tricklers,
endless and compressed bodies, oversized records and policies, bytes that are not
UTF-8, and a cache file replaced by garbage, a symlink or a FIFO.

For every attack: ``MtaStsError`` (or no policy) within the fetch deadline, bounded
memory, and never a hang. Tests marked ``xfail(strict=True)`` expose a bug named in
their reason.

Spec: RFC 8461 §3.1 (TXT), §3.2 (policy file), §3.3 (HTTPS fetch, 64 KiB, timeouts),
§5.1 (cache); RFC 9110 §8.4, §12.5.3 (Content-Encoding, Accept-Encoding).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import logging
import os
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from postel.clock import FixedClock
from postel.delivery.mtasts import (
    CACHE_DOMAINS_MAX,
    CACHE_FILE_MAX,
    CachedPolicy,
    HttpsPolicyFetcher,
    MtaStsPolicy,
    dump_cache,
    load_cache,
    verified_tls_context,
    write_atomically,
)
from postel.errors import MtaStsError
from postel.mtasts import POLICY_SIZE_MAX, Policy, PolicyMode, parse_policy
from postel.mtasts.policy import MX_NAME_MAX, POLICY_MX_MAX, mx_matches

from .test_mtasts import DOMAIN, ENFORCE, POLICY_HOST, START, Resolver, sts
from .test_mtasts import ca as ca
from .test_mtasts import ca_file as ca_file

FETCH_DEADLINE_S = 1.5
"""The fetcher's total deadline in these tests (FETCH_TIMEOUT_S in production)."""
SLACK_S = 1.5
"""Seconds past the deadline within which a fetch must have given up."""
MiB = 1024 * 1024
HEAD_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]], Awaitable[None]]
"""What the hostile host does once it has read a request head (its headers given)."""


# -- a hostile policy host --------------------------------------------------------------
@dataclass
class HostileHost:
    port: int = 0
    behaviour: Behaviour | None = None
    sent: int = 0
    """Body octets the host managed to write."""
    requests: list[dict[str, str]] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)
            }
            self.requests.append(headers)
            assert self.behaviour is not None
            await self.behaviour(reader, writer, headers)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.sent += len(data)


@pytest.fixture
async def hostile(ca: trustme.CA) -> AsyncIterator[HostileHost]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(POLICY_HOST).configure_cert(context)
    host = HostileHost()
    server = await asyncio.start_server(host.serve, "127.0.0.1", 0, ssl=context)
    host.port = server.sockets[0].getsockname()[1]
    yield host
    server.close()
    for task in asyncio.all_tasks():  # handlers still trickling
        if task is not asyncio.current_task() and "serve" in repr(task.get_coro()):
            task.cancel()
    await server.wait_closed()


def fetcher(host: HostileHost, ca_file: Path) -> HttpsPolicyFetcher:
    return HttpsPolicyFetcher(
        Resolver(), verified_tls_context(ca_file), https_port=host.port, timeout=FETCH_DEADLINE_S
    )


async def timed_failure(host: HostileHost, ca_file: Path) -> tuple[str, float]:
    began = time.monotonic()
    with pytest.raises(MtaStsError) as failed:
        await fetcher(host, ca_file).fetch(DOMAIN)
    return str(failed.value), time.monotonic() - began


# -- slow and endless answers -----------------------------------------------------------
async def test_a_body_trickled_one_octet_at_a_time_hits_the_total_deadline(
    hostile: HostileHost,
    ca_file: Path,
) -> None:
    async def trickle(
        _r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]
    ) -> None:
        await hostile.write(w, HEAD_OK + b"Content-Length: %d\r\n\r\n" % len(ENFORCE))
        for octet in ENFORCE:
            await hostile.write(w, bytes([octet]))
            await asyncio.sleep(0.25)  # each octet well within any per-read timeout

    hostile.behaviour = trickle
    reason, elapsed = await timed_failure(hostile, ca_file)
    assert "timed out" in reason
    assert FETCH_DEADLINE_S - 0.2 < elapsed < FETCH_DEADLINE_S + SLACK_S


async def test_a_head_trickled_forever_hits_the_total_deadline(
    hostile: HostileHost,
    ca_file: Path,
) -> None:
    async def trickle(
        _r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]
    ) -> None:
        await hostile.write(w, HEAD_OK)
        while True:
            await hostile.write(w, b"X-Slow: y\r\n")
            await asyncio.sleep(0.1)

    hostile.behaviour = trickle
    reason, elapsed = await timed_failure(hostile, ca_file)
    assert "timed out" in reason and elapsed < FETCH_DEADLINE_S + SLACK_S


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_endless_body_without_length_is_cut_at_the_size_bound(
    hostile: HostileHost,
    ca_file: Path,
    chunked: bool,
) -> None:
    async def endless(
        _r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]
    ) -> None:
        line = b"mx: mx.example.test\r\n" * 3000
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Connection: close\r\n"
        await hostile.write(w, HEAD_OK + framing + b"\r\n")
        while hostile.sent < 512 * MiB:
            await hostile.write(w, b"%x\r\n%s\r\n" % (len(line), line) if chunked else line)

    hostile.behaviour = endless
    reason, elapsed = await timed_failure(hostile, ca_file)
    assert "larger than" in reason
    assert elapsed < FETCH_DEADLINE_S
    assert hostile.sent < 16 * MiB  # the client stopped reading early


async def test_a_content_length_past_the_bound_is_refused_before_the_body(
    hostile: HostileHost,
    ca_file: Path,
) -> None:
    async def huge(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]) -> None:
        await hostile.write(w, HEAD_OK + b"Content-Length: 99999999999999999999999\r\n\r\n")
        await asyncio.sleep(10)

    hostile.behaviour = huge
    reason, elapsed = await timed_failure(hostile, ca_file)
    assert ("larger than" in reason or "Content-Length" in reason) and elapsed < FETCH_DEADLINE_S


# -- Content-Encoding ---------------------------------------------------------------------
async def test_a_gzip_bomb_is_not_inflated(hostile: HostileHost, ca_file: Path) -> None:
    bomb = gzip.compress(bytes(48 * MiB), compresslevel=9)
    assert len(bomb) < POLICY_SIZE_MAX

    async def send_bomb(
        _r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]
    ) -> None:
        await hostile.write(
            w,
            HEAD_OK + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb,
        )

    hostile.behaviour = send_bomb
    tracemalloc.start()
    try:
        with pytest.raises(MtaStsError):
            await fetcher(hostile, ca_file).fetch(DOMAIN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB


async def test_a_gzip_policy_offered_by_accept_encoding_is_understood(
    hostile: HostileHost,
    ca_file: Path,
) -> None:
    async def negotiate(
        _r: asyncio.StreamReader, w: asyncio.StreamWriter, h: dict[str, str]
    ) -> None:
        if "gzip" in h.get("accept-encoding", ""):
            body, extra = gzip.compress(ENFORCE), b"Content-Encoding: gzip\r\n"
        else:
            body, extra = ENFORCE, b""
        await hostile.write(w, HEAD_OK + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    hostile.behaviour = negotiate
    policy = await fetcher(hostile, ca_file).fetch(DOMAIN)
    assert policy.mode is PolicyMode.ENFORCE
    assert hostile.requests[0].get("accept-encoding") == "identity"


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (b"gzip", gzip.compress(ENFORCE)),
        (b"deflate", zlib.compress(ENFORCE)),
        (b"br", b"\x0b\x02\x80" + ENFORCE),
        (b"GZIP", gzip.compress(ENFORCE)),
        (b"identity, gzip", gzip.compress(ENFORCE)),
    ],
)
async def test_a_content_coding_not_asked_for_is_refused(
    hostile: HostileHost,
    ca_file: Path,
    coding: bytes,
    body: bytes,
) -> None:
    """A host that encodes anyway gets a clear refusal, never a garbled parse."""

    async def encode(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]) -> None:
        head = HEAD_OK + b"Content-Encoding: " + coding + b"\r\n"
        await hostile.write(w, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    hostile.behaviour = encode
    reason, _ = await timed_failure(hostile, ca_file)
    assert "Content-Encoding" in reason


# -- hostile policy contents ---------------------------------------------------------------
async def serve_body(host: HostileHost, body: bytes) -> None:
    async def answer(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]) -> None:
        await host.write(w, HEAD_OK + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    host.behaviour = answer


@pytest.mark.parametrize(
    "body",
    [
        ENFORCE.replace(b"mx.example.test", b"mx.exa\x00mple.test"),
        ENFORCE.replace(b"enforce", b"enforce\x00"),
        b"version: STSv1\x00\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n",
        ENFORCE.replace(b"mx.example.test", b"mx.\xff\xfeexample.test"),
        b"\xef\xbb\xbf" + ENFORCE,  # a BOM before "version"
        ENFORCE.replace(b"\r\n", b"\r"),  # CR alone: one line
        ENFORCE.replace(b"86400", b"\xd9\xa3"),  # an Arabic-Indic digit
        ENFORCE.replace(b"86400", b"99999999999999999999"),
        bytes(POLICY_SIZE_MAX),
    ],
)
async def test_nul_and_bad_bytes_make_the_policy_invalid(
    hostile: HostileHost,
    ca_file: Path,
    body: bytes,
) -> None:
    await serve_body(hostile, body)
    with pytest.raises(MtaStsError):
        await fetcher(hostile, ca_file).fetch(DOMAIN)


async def test_100000_mx_lines_are_refused_quickly(hostile: HostileHost, ca_file: Path) -> None:
    head = b"version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n"
    huge = head + b"".join(b"mx: mx%d.example.test\r\n" % n for n in range(100_000))
    await serve_body(hostile, huge)
    reason, elapsed = await timed_failure(hostile, ca_file)
    assert "larger than" in reason and elapsed < FETCH_DEADLINE_S
    within = head + b"mx: a.b\n" * ((POLICY_SIZE_MAX - len(head)) // 8)
    began = time.monotonic()
    with pytest.raises(MtaStsError, match="more than"):
        parse_policy(within)
    assert time.monotonic() - began < 0.5
    at_bound = head + b"".join(b"mx: mx%d.example.test\r\n" % n for n in range(POLICY_MX_MAX))
    assert len(parse_policy(at_bound).mx) == POLICY_MX_MAX


async def test_a_64k_line_does_not_stall_the_parser() -> None:
    for line in (
        b"mx: " + b"a-" * 32000 + b"test",
        b"mx: " + b"-" * 65000,
        b"x" * 65000 + b": y",
        b"mx: *." * 10000,
    ):
        began = time.monotonic()
        with pytest.raises(MtaStsError):
            parse_policy(b"version: STSv1\r\nmode: enforce\r\nmax_age: 1\r\n" + line)
        assert time.monotonic() - began < 0.5


def _labels(length: int) -> str:
    """A name of exactly ``length`` characters made of 63-character labels."""
    labels: list[str] = []
    while sum(map(len, labels)) + len(labels) - 1 < length:
        room = length - (sum(map(len, labels)) + len(labels))
        labels.append("a" * min(63, room))
    return ".".join(labels)


def _policy_with_mx(mx: str) -> bytes:
    return b"version: STSv1\r\nmode: enforce\r\nmax_age: 1\r\nmx: " + mx.encode() + b"\r\n"


@pytest.mark.parametrize(
    "mx",
    [
        "a." * 200 + "test",
        _labels(MX_NAME_MAX + 1),
        "*." + _labels(MX_NAME_MAX - 1),
        _labels(MX_NAME_MAX + 1) + ".",
    ],
    ids=["400-short-labels", "254", "wildcard-255", "254-with-dot"],
)
def test_an_mx_longer_than_a_domain_name_is_refused(mx: str) -> None:
    with pytest.raises(MtaStsError):
        parse_policy(_policy_with_mx(mx))


@pytest.mark.parametrize(
    "mx", [_labels(MX_NAME_MAX), "*." + _labels(MX_NAME_MAX - 2), _labels(MX_NAME_MAX) + "."]
)
def test_an_mx_at_the_bound_is_kept(mx: str) -> None:
    assert parse_policy(_policy_with_mx(mx)).mx == (mx.rstrip("."),)


@pytest.mark.parametrize(
    "mx",
    [
        "mx.\u212aexample.test",  # KELVIN SIGN: lower() gives ASCII "k"
        "mx.\u0130example.test",  # LATIN CAPITAL I WITH DOT: lower() gives "i" + U+0307
        "mx.exa\u017fmple.test",  # LONG S: upper() gives ASCII "S"
        "mx.\uff45xample.test",  # FULLWIDTH e
        "mx.ex\u00e4mple.test",  # a U-label, not the A-label the policy must hold
        "*.\u212aexample.test",
    ],
)
def test_a_non_ascii_mx_is_refused(mx: str) -> None:
    with pytest.raises(MtaStsError, match="not ASCII"):
        parse_policy(ENFORCE.replace(b"mx.example.test", mx.encode()))


@pytest.mark.parametrize(
    ("pattern", "host"),
    [
        ("mx.kexample.test", "mx.\u212aexample.test"),
        ("*.kexample.test", "mx.\u212aexample.test"),
        ("mx.\u212aexample.test", "mx.kexample.test"),
        ("mx.i\u0307example.test", "mx.\u0130example.test"),
    ],
)
def test_non_ascii_names_never_match_by_case_folding(pattern: str, host: str) -> None:
    assert not mx_matches(pattern, host)


# -- hostile TXT records --------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        (("v=STSv1; " + "; ".join(f"id={n}" for n in range(1000))).encode(),),
        tuple(f"v=STSv1; id={n}".encode() for n in range(1000)),
        (b"v=STSv1; id=" + b"1" * 33,),
        (b"v=STSv1; id=abc\x00def",),
        (b"v=STSv1; id=\xff\xfe",),
        (b"v=STSv1; " + b"x=y; " * 20000 + b"id=1",),
    ],
)
async def test_hostile_txt_records_mean_no_policy_and_no_fetch(
    hostile: HostileHost,
    ca_file: Path,
    answer: tuple[bytes, ...],
) -> None:
    await serve_body(hostile, ENFORCE)
    policy = MtaStsPolicy(
        Resolver({f"_mta-sts.{DOMAIN}": answer}),
        clock=FixedClock(START),
        ca_file=ca_file,
        https_port=hostile.port,
    )
    began = time.monotonic()
    assert await policy.policy(DOMAIN) is None
    assert time.monotonic() - began < 0.5
    assert hostile.requests == []


async def test_a_failing_host_is_logged_and_gives_no_policy(
    hostile: HostileHost,
    ca_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await serve_body(hostile, ENFORCE.replace(b"enforce", b"\x00"))
    policy = MtaStsPolicy(
        Resolver(sts("1")), clock=FixedClock(START), ca_file=ca_file, https_port=hostile.port
    )
    with caplog.at_level(logging.WARNING, logger="postel.delivery.mtasts"):
        assert await policy.policy(DOMAIN) is None
    failed = [r for r in caplog.records if r.msg == "mta_sts.fetch_failed"]
    assert len(failed) == 1 and "\x00" not in failed[0].getMessage()


# -- the cache file ---------------------------------------------------------------------------
DEFAULT_POLICY = Policy(PolicyMode.ENFORCE, ("mx.example.test",), 86400)


def entry(domain: str, policy: Policy = DEFAULT_POLICY) -> CachedPolicy:
    return CachedPolicy(domain, "1", policy, START, START + dt.timedelta(seconds=policy.max_age))


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(4096),
        b"\x00" * 1000,
        b'{"version": 1, "policies": {"a": 1}}',
        b'{"version": 1, "policies": [{"domain": 1, "id": [], "policy": null}]}',
        b'{"version": 1, "policies": [{"domain": "a.test", "id": "1", "policy": "x",'
        b' "fetched": 1e400, "expires": "nan"}]}',
        b"[1, 2, 3]",
        b'"just a string"',
    ],
)
def test_a_cache_file_of_garbage_is_ignored(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "mta-sts-cache.json"
    path.write_bytes(content)
    assert load_cache(path, START) == {}


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "policies": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"version": 1, "policies": [{"domain": "a.test", "id": "1", "policy": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b', "fetched": 1, "expires": 1}]}',
        b"[" * 100_000,  # unterminated too
    ],
    ids=["in-policies", "top", "objects", "in-a-row", "unterminated"],
)
def test_a_deeply_nested_cache_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "mta-sts-cache.json"
    path.write_bytes(content)
    assert load_cache(path, START) == {}


async def test_a_cache_symlink_is_replaced_not_followed_on_write(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    cache = tmp_path / "data" / "mta-sts-cache.json"
    cache.parent.mkdir()
    cache.symlink_to(outside)
    assert load_cache(cache, START) == {}

    class Fetcher:
        async def fetch(self, domain: str) -> Policy:
            return parse_policy(ENFORCE)

    policy = MtaStsPolicy(
        Resolver(sts("1")), clock=FixedClock(START), cache_file=cache, fetcher=Fetcher()
    )
    assert await policy.policy(DOMAIN) is not None
    assert outside.read_text() == "precious\n"
    assert not cache.is_symlink() and DOMAIN in load_cache(cache, START)


def test_a_cache_symlink_to_an_endless_device_is_bounded(tmp_path: Path) -> None:
    cache = tmp_path / "mta-sts-cache.json"
    cache.symlink_to("/dev/zero")
    began = time.monotonic()
    assert load_cache(cache, START) == {}
    assert time.monotonic() - began < 2


def _fifo(cache: Path) -> None:
    os.mkfifo(cache)


def _symlink_to_fifo(cache: Path) -> None:
    fifo = cache.with_name("fifo")
    os.mkfifo(fifo)
    cache.symlink_to(fifo)


def _directory(cache: Path) -> None:
    cache.mkdir()


def _socket(cache: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(cache))
    sock.listen(1)  # left open: a listening socket in the cache's place


@pytest.mark.parametrize(
    "make", [_fifo, _symlink_to_fifo, _directory, _socket], ids=lambda f: f.__name__
)
def test_a_cache_file_that_is_no_regular_file_is_ignored_at_once(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    cache = tmp_path / "mta-sts-cache.json"
    make(cache)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(load_cache(cache, START)), daemon=True)
    thread.start()
    thread.join(1.0)
    hung = thread.is_alive()
    if hung:  # unblock the reader: open the FIFO for writing, then close it
        fd = os.open(cache, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(2.0)
    assert not hung and result == [{}]


def test_a_cache_of_large_policies_survives_a_restart(tmp_path: Path) -> None:
    mx = tuple(f"{'m' * 60}{n:03d}.{'x' * 63}.{'y' * 63}.example" for n in range(POLICY_MX_MAX))
    big = Policy(PolicyMode.ENFORCE, mx, 86400)
    domains = CACHE_FILE_MAX // len(dump_cache([entry("d.test", big)])) + 50
    assert domains < CACHE_DOMAINS_MAX  # well within the cache's own bound
    cache = tmp_path / "mta-sts-cache.json"
    text = dump_cache(entry(f"d{n}.test", big) for n in range(domains))
    assert len(text.encode()) <= CACHE_FILE_MAX
    write_atomically(cache, text)
    assert len(load_cache(cache, START)) > 0


def test_a_full_cache_file_keeps_the_latest_expiring_policies() -> None:
    entries = [
        CachedPolicy(
            f"d{n}.test",
            "1",
            DEFAULT_POLICY,
            START,
            START + dt.timedelta(seconds=1000 + (n * 7919) % 100),
        )
        for n in range(100)
    ]
    one = len(dump_cache(entries[:1])) - len(dump_cache([]))
    text = dump_cache(entries, size_max=len(dump_cache([])) + 10 * (one + 1))
    kept = [row["domain"] for row in json.loads(text)["policies"]]
    latest = sorted(entries, key=lambda e: e.expires, reverse=True)[: len(kept)]
    assert 9 <= len(kept) <= 10
    assert set(kept) == {e.domain for e in latest}
    assert json.loads(dump_cache(entries))["policies"][0]["domain"] in {e.domain for e in entries}
    assert dump_cache([], size_max=0) == dump_cache([])  # the empty document always
