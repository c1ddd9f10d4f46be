"""MTA-STS for outbound delivery: discover, fetch, cache and apply other domains'
policies as the worker's ``TlsPolicy``.

For mail to ``domain`` the ``_mta-sts.<domain>`` TXT record is looked up with postel's
resolver. When its ``id`` differs from the cached policy's (or nothing is cached), the
policy file is fetched from ``https://mta-sts.<domain>/.well-known/mta-sts.txt``:
the name's A (then AAAA) addresses come from the same resolver, the request goes to
each address in turn on ``https_port`` (443; tests use another) with the name as TLS
SNI and Host, the certificate verified for that name against the system's trust store
plus ``ca_file``. No redirect is followed, the answer must be ``200`` and
``text/plain``, at most ``POLICY_SIZE_MAX`` octets, within ``FETCH_TIMEOUT_S``.

Policies are cached per domain until ``max_age`` runs out, in memory and in a small
JSON file (written atomically) so a restart keeps them. A failed fetch leaves a cached
unexpired policy in force and is not repeated for ``FETCH_RETRY_S``; without a cached
policy the domain is treated as having none.

Decisions: ``enforce`` and an MX host matching the policy: TLS required with a
certificate valid for the host; a host not matching: ``TlsMode.REFUSE`` (the worker
skips it). ``testing``: opportunistic TLS, and ``mta_sts.would_fail`` is logged for a
host not matching. ``none`` or no policy: opportunistic TLS.

Bounds defined here (local policy unless cited): ``FETCH_TIMEOUT_S``,
``FETCH_RETRY_S``, ``POLICY_ADDRESSES_MAX``, ``CACHE_DOMAINS_MAX``,
``CACHE_FILE_MAX``.

Spec: RFC 8461 §3.1-§3.3 (discovery, fetch), §4 (validation), §5 (application),
§5.1 (policy refresh and cache); RFC 6125 (certificate names).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import ssl
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Protocol

import httpx

from postel.clock import Clock
from postel.errors import MtaStsError
from postel.mtasts import POLICY_SIZE_MAX, Policy, PolicyMode, parse_policy, select_sts_record
from postel.resolver import DnsError, DnsTempError, Resolver

from .link import client_tls_context
from .settings import TlsDecision, TlsMode

log = logging.getLogger(__name__)

WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"
"""Where the policy file lives on ``mta-sts.<domain>``. Spec: RFC 8461 §3.2."""
HTTPS_PORT = 443
"""The policy host's port. Spec: RFC 8461 §3.3 (HTTPS)."""
FETCH_TIMEOUT_S = 30.0
"""Seconds one policy fetch (all addresses together) may take (local policy; RFC 8461
§3.3 asks senders to bound the fetch)."""
FETCH_RETRY_S = 300.0
"""Seconds before a failed fetch of the same domain and id is tried again (local
policy; keeps one unreachable policy host from slowing every delivery attempt)."""
POLICY_ADDRESSES_MAX = 4
"""Addresses of ``mta-sts.<domain>`` tried for one fetch (local policy)."""
CACHE_DOMAINS_MAX = 10_000
"""Domains whose policies are cached; past it the soonest-expiring go first (local
policy)."""
CACHE_FILE_MAX = 16 * 1024 * 1024
"""Octets of the cache file: ``dump_cache`` leaves out the soonest-expiring policies
until the file fits, and a larger file (not written by postel) is ignored at start
(local policy)."""
CACHE_FILE_NAME = "mta-sts-cache.json"
"""The cache file's name under the data directory."""
_CACHE_VERSION = 1
_REQUEST_HEADERS = {"Accept-Encoding": "identity"}
"""The body is read as sent, never inflated: ask for no content coding (httpx offers
gzip by default). Spec: RFC 9110 §12.5.3."""


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """A fetched policy: its ``id`` (from the TXT record), the ``policy`` and when it
    expires (``fetched`` + ``max_age``, UTC). Spec: RFC 8461 §5.1."""

    domain: str
    id: str
    policy: Policy
    fetched: dt.datetime
    expires: dt.datetime


class PolicyFetcher(Protocol):
    """Fetches the policy file of ``domain``. Raises MtaStsError for any failure.
    Spec: RFC 8461 §3.3."""

    async def fetch(self, domain: str) -> Policy: ...


def verified_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context verifying certificates and names against the system's trust
    store plus the PEM anchors in ``ca_file``. Raises ConfigError when ``ca_file``
    cannot be loaded. Spec: RFC 8461 §3.3, §4.2; RFC 6125."""
    return client_tls_context(verify=True, ca_file=ca_file)


class HttpsPolicyFetcher:
    """Fetches ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` as the module
    docstring says. ``resolver`` gives the policy host's addresses; ``ssl_context``
    must verify (see ``verified_tls_context``). Spec: RFC 8461 §3.3."""

    def __init__(
        self,
        resolver: Resolver,
        ssl_context: ssl.SSLContext,
        *,
        https_port: int = HTTPS_PORT,
        timeout: float = FETCH_TIMEOUT_S,
    ) -> None:
        self._resolver = resolver
        self._ssl = ssl_context
        self._port = https_port
        self._timeout = timeout

    async def fetch(self, domain: str) -> Policy:
        """The parsed policy of ``domain``. Raises MtaStsError (DNS, connection, TLS,
        HTTP status, media type, size, syntax, timeout). Spec: RFC 8461 §3.2, §3.3."""
        host = f"mta-sts.{domain}"
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await self._addresses(host)
                reasons: list[str] = []
                async with httpx.AsyncClient(
                    verify=self._ssl, follow_redirects=False, trust_env=False, timeout=None
                ) as client:
                    for address in addresses:
                        try:
                            return parse_policy(await self._get(client, host, address))
                        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
                            reasons.append(f"{address}: {exc or type(exc).__name__}")
        except TimeoutError:
            raise MtaStsError(f"fetching the MTA-STS policy of {domain} timed out") from None
        raise MtaStsError(f"MTA-STS policy host {host} unreachable: {'; '.join(reasons)}")

    async def _addresses(self, host: str) -> list[IPv4Address | IPv6Address]:
        found: list[IPv4Address | IPv6Address] = []
        for lookup in (self._resolver.a, self._resolver.aaaa):
            with contextlib.suppress(DnsError):
                found.extend(await lookup(host))
        if not found:
            raise MtaStsError(f"MTA-STS policy host {host} has no address")
        return found[:POLICY_ADDRESSES_MAX]

    async def _get(
        self, client: httpx.AsyncClient, host: str, address: IPv4Address | IPv6Address
    ) -> bytes:
        url = httpx.URL(scheme="https", host=str(address), port=self._port, path=WELL_KNOWN_PATH)
        async with client.stream(
            "GET", url, headers=_REQUEST_HEADERS | {"Host": host}, extensions={"sni_hostname": host}
        ) as response:
            if response.status_code != 200:  # redirects included: RFC 8461 §3.3
                raise MtaStsError(f"{host} answered HTTP {response.status_code}")
            media = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "text/plain":
                raise MtaStsError(f"{host} sent the policy as {media or 'no type'}")
            coding = response.headers.get("content-encoding", "identity").strip().lower()
            if coding != "identity":  # we asked for identity (RFC 9110 §12.5.3)
                raise MtaStsError(f"{host} sent the policy with Content-Encoding {coding[:40]!r}")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > POLICY_SIZE_MAX:
                raise MtaStsError(f"{host}'s policy is larger than {POLICY_SIZE_MAX} octets")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > POLICY_SIZE_MAX:
                    raise MtaStsError(f"{host}'s policy is larger than {POLICY_SIZE_MAX} octets")
            return bytes(body)


class MtaStsPolicy:
    """The delivery worker's ``TlsPolicy`` under MTA-STS (see the module docstring).

    Args:
        resolver: looks up ``_mta-sts.<domain>`` TXT (and the policy host's address
            when ``fetcher`` is not given).
        clock: wall-clock time for expiry (cached policies outlive restarts).
        cache_file: the JSON cache (None: memory only).
        ca_file: extra PEM trust anchors for the policy fetch.
        https_port: the policy host's port (443).
        fetcher: replaces the HTTPS fetch (tests).

    Raises ConfigError when ``ca_file`` cannot be loaded. Spec: RFC 8461 §3-§5.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        clock: Clock,
        cache_file: Path | None = None,
        ca_file: Path | None = None,
        https_port: int = HTTPS_PORT,
        fetcher: PolicyFetcher | None = None,
    ) -> None:
        self._resolver = resolver
        self._clock = clock
        self._cache_file = cache_file
        self._fetcher: PolicyFetcher = fetcher or HttpsPolicyFetcher(
            resolver, verified_tls_context(ca_file), https_port=https_port
        )
        self._cache: dict[str, CachedPolicy] = (
            load_cache(cache_file, clock.now()) if cache_file is not None else {}
        )
        self._failed: dict[tuple[str, str], float] = {}
        self._inflight: dict[str, asyncio.Task[Policy | None]] = {}
        self._write_lock = asyncio.Lock()

    async def decide(self, domain: str, host: str) -> TlsDecision:
        """The TLS for MX ``host`` of ``domain`` under the domain's policy.
        Spec: RFC 8461 §4.1, §4.2, §5."""
        policy = await self.policy(domain)
        if policy is None or policy.mode is PolicyMode.NONE:
            return TlsDecision(TlsMode.OPPORTUNISTIC)
        matched = policy.matches(host)
        if policy.mode is PolicyMode.ENFORCE:
            if matched:
                return TlsDecision(TlsMode.REQUIRED, verify=True, server_hostname=host)
            log.info("mta_sts.mx_refused", extra={"domain": domain, "host": host})
            return TlsDecision(TlsMode.REFUSE)
        if not matched:
            log.info("mta_sts.would_fail", extra={"domain": domain, "host": host})
        return TlsDecision(TlsMode.OPPORTUNISTIC)

    def cached(self, domain: str) -> CachedPolicy | None:
        """The cached, unexpired policy of ``domain``. Spec: RFC 8461 §5.1."""
        entry = self._cache.get(domain.lower())
        if entry is not None and entry.expires <= self._clock.now():
            return None
        return entry

    async def policy(self, domain: str) -> Policy | None:
        """The policy in force for ``domain`` now, or None. Never raises for DNS,
        network or syntax trouble. Spec: RFC 8461 §3.1, §5.1."""
        domain = domain.lower().rstrip(".")
        task = self._inflight.get(domain)
        if task is None:
            task = asyncio.create_task(self._refresh(domain))
            self._inflight[domain] = task
            task.add_done_callback(lambda _: self._inflight.pop(domain, None))
        return await asyncio.shield(task)

    async def _refresh(self, domain: str) -> Policy | None:
        cached = self.cached(domain)
        try:
            answer = await self._resolver.txt(f"_mta-sts.{domain}")
        except DnsTempError as exc:
            log.info("mta_sts.txt_failed", extra={"domain": domain, "error": str(exc)})
            answer = ()
        except DnsError:
            answer = ()
        record = select_sts_record(answer)
        if record is None or (cached is not None and cached.id == record.id):
            return cached.policy if cached is not None else None
        key = (domain, record.id)
        retry_at = self._failed.get(key)
        if retry_at is not None and self._clock.monotonic() < retry_at:
            return cached.policy if cached is not None else None
        try:
            policy = await self._fetcher.fetch(domain)
        except MtaStsError as exc:
            self._failed[key] = self._clock.monotonic() + FETCH_RETRY_S
            self._forget_old_failures()
            log.warning(
                "mta_sts.fetch_failed",
                extra={"domain": domain, "id": record.id, "error": str(exc)},
            )
            return cached.policy if cached is not None else None
        self._failed.pop(key, None)
        now = self._clock.now()
        entry = CachedPolicy(
            domain, record.id, policy, now, now + dt.timedelta(seconds=policy.max_age)
        )
        self._remember(entry)
        log.info(
            "mta_sts.policy_fetched",
            extra={"domain": domain, "id": record.id, "mode": str(policy.mode)},
        )
        await self._save()
        return policy

    def _remember(self, entry: CachedPolicy) -> None:
        self._cache[entry.domain] = entry
        if len(self._cache) > CACHE_DOMAINS_MAX:
            now = self._clock.now()
            for domain in [d for d, e in self._cache.items() if e.expires <= now]:
                del self._cache[domain]
            while len(self._cache) > CACHE_DOMAINS_MAX:
                soonest = min(self._cache.values(), key=lambda e: e.expires)
                del self._cache[soonest.domain]

    def _forget_old_failures(self) -> None:
        now = self._clock.monotonic()
        for key in [k for k, at in self._failed.items() if at <= now]:
            del self._failed[key]
        while len(self._failed) > CACHE_DOMAINS_MAX:
            del self._failed[next(iter(self._failed))]

    async def _save(self) -> None:
        if self._cache_file is None:
            return
        path = self._cache_file
        async with self._write_lock:
            text = dump_cache(self._cache.values())
            try:
                await asyncio.to_thread(write_atomically, path, text)
            except OSError as exc:
                log.warning("mta_sts.cache_write_failed", extra={"error": str(exc)})


def dump_cache(entries: Iterable[CachedPolicy], size_max: int = CACHE_FILE_MAX) -> str:
    """The cache file's JSON text for ``entries``, at most ``size_max`` octets: when
    they do not all fit, the soonest-expiring are left out (logged)."""
    rows = [
        (
            e.expires,
            json.dumps(
                {
                    "domain": e.domain,
                    "id": e.id,
                    "policy": e.policy.to_text(),
                    "fetched": e.fetched.timestamp(),
                    "expires": e.expires.timestamp(),
                },
                separators=(",", ":"),
            ),
        )
        for e in entries
    ]
    head = f'{{"version":{_CACHE_VERSION},"policies":['
    kept: list[str] = []
    size = len(head) + len("]}")
    for _, row in sorted(rows, key=lambda r: r[0], reverse=True):
        if size + len(row) + 1 > size_max:
            break
        kept.append(row)
        size += len(row) + 1
    if len(kept) < len(rows):
        log.info("mta_sts.cache_file_full", extra={"kept": len(kept), "left": len(rows)})
    return head + ",".join(kept) + "]}"  # ASCII: json.dumps escapes the rest


def load_cache(path: Path, now: dt.datetime) -> dict[str, CachedPolicy]:
    """The unexpired policies of the cache file at ``path``; a missing, oversized,
    damaged or not regular file (a FIFO, a device, a directory), or a damaged entry, is
    logged and skipped: never raises. Spec: RFC 8461 §5.1."""
    data = _read_cache_file(path)
    if data is None:
        return {}
    try:
        document = json.loads(data)
        rows = document["policies"] if document.get("version") == _CACHE_VERSION else []
    except (ValueError, AttributeError, KeyError, TypeError, RecursionError):
        log.warning("mta_sts.cache_damaged", extra={"file": str(path)})
        return {}
    out: dict[str, CachedPolicy] = {}
    for row in rows if isinstance(rows, list) else []:
        entry = _entry(row)
        if entry is not None and entry.expires > now:
            out[entry.domain] = entry
    return out


def _read_cache_file(path: Path) -> bytes | None:
    """At most ``CACHE_FILE_MAX`` octets of the regular file at ``path`` (symlinks
    followed), or None (logged unless missing). Opened non-blocking, so a FIFO in its
    place cannot hang the start."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("mta_sts.cache_unreadable", extra={"error": str(exc)})
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.warning("mta_sts.cache_not_a_file", extra={"file": str(path)})
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= CACHE_FILE_MAX and (chunk := os.read(fd, CACHE_FILE_MAX + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        log.warning("mta_sts.cache_unreadable", extra={"error": str(exc)})
        return None
    finally:
        os.close(fd)
    if size > CACHE_FILE_MAX:
        log.warning("mta_sts.cache_too_large", extra={"size": size})
        return None
    return b"".join(chunks)


def _entry(row: object) -> CachedPolicy | None:
    if not isinstance(row, dict):
        return None
    try:
        domain, policy_id, text = row["domain"], row["id"], row["policy"]
        fetched, expires = float(row["fetched"]), float(row["expires"])
        if not (isinstance(domain, str) and isinstance(policy_id, str) and isinstance(text, str)):
            return None
        policy = parse_policy(text.encode())
        return CachedPolicy(
            domain,
            policy_id,
            policy,
            dt.datetime.fromtimestamp(fetched, dt.UTC),
            dt.datetime.fromtimestamp(expires, dt.UTC),
        )
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError, MtaStsError):
        return None


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a temporary file in the same directory, fsync'd,
    renamed over it, then the directory fsync'd. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
