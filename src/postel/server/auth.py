"""Login for every protocol: passwords and SASL exchanges checked against the store,
with the shared failed-login delay and per-IP ban.

IMAP (LOGIN, AUTHENTICATE), POP3 (USER/PASS, AUTH) and SMTP AUTH all come here, so one
mechanism counts failures (``AbuseEvent.AUTH_FAILURE``), delays answers after repeated
failures (``AbuseTracker.auth_delay``) and bans an address past the threshold. A driver
supplies only its framing: a coroutine that sends a challenge and returns the client's
decoded response.

An unknown account and a wrong password take the same path and the same time (the
password hash is checked against a dummy hash), so replies never reveal which accounts
exist.

Spec: RFC 4422 §3 (SASL exchange), RFC 9051 §6.2.2-6.2.3, RFC 1939 §7, RFC 5034,
RFC 4954; RELIABILITY.md D6 (abuse), test 10 (failed-login delay).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from postel import sasl
from postel.abuse import AbuseEvent, AbuseTracker
from postel.clock import Clock
from postel.config import AuthConfig
from postel.directory import make_credentials, verify_password
from postel.store import Account, Credentials, Store

log = logging.getLogger(__name__)

VERIFIED_CACHE_MAX = 10_000
"""Remembered successful password checks (oldest dropped first); bounds memory."""
PASSWORD_CHECKS_MAX = 2
"""Password hashes checked at once: each argon2id check takes 64 MiB (RFC 9106 §4,
second recommended option), so a flood of logins costs at most this many times that
(RELIABILITY.md D7); the others wait their turn."""

Ask = Callable[[bytes], Awaitable["bytes | sasl.Cancelled"]]
"""Send a server challenge (raw octets; the driver base64-encodes and frames it) and
return the client's decoded response, or ``sasl.CANCELLED``. Raises sasl.SaslError for
a malformed response line."""


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of a login. ``account`` is None on failure; ``banned`` says the
    client's address was banned by this failure (the session should close);
    ``cancelled`` that the client aborted the exchange (RFC 4422 §3.5)."""

    account: Account | None
    banned: bool = False
    cancelled: bool = False
    server_final: bytes | None = None
    """Additional data with success (SCRAM's ``v=``), for protocols that carry it."""


def plaintext_allowed(config: AuthConfig, ip: str, tls_active: bool) -> bool:
    """Whether passwords may travel in plaintext on this connection: over TLS, or from
    a loopback address when ``[auth] plaintext_on_loopback`` allows it (the embedded
    default does). The one rule of IMAP, POP3 and submission.
    Spec: RFC 8314 §3; RFC 9051 §6.2.3; RFC 2595 §4; RFC 4954 §4."""
    if tls_active:
        return True
    if not config.plaintext_on_loopback:
        return False
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Checks credentials for all protocols.

    ``secret`` (at least 16 octets, stable across restarts) derives the fake SCRAM salts
    given for unknown accounts. Password hashing runs in a worker thread.
    """

    def __init__(
        self,
        store: Store,
        abuse: AbuseTracker,
        secret: bytes,
        *,
        clock: Clock,
        cache_seconds: float = 0.0,
    ) -> None:
        self._store = store
        self._abuse = abuse
        self._secret = secret
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self._dummy: Credentials | None = None
        self._hash_slots = asyncio.Semaphore(PASSWORD_CHECKS_MAX)

    async def login(
        self, ip: str, username: str, password: str, *, protocol: str = ""
    ) -> AuthResult:
        """A plaintext login (IMAP LOGIN, POP3 USER/PASS); ``protocol`` names the
        service in the log. Spec: RFC 9051 §6.2.3, RFC 1939 §7."""
        account = await self._lookup(username)
        ok = await self._check_password(account, password)
        return await self._finish(ip, username, account if ok else None, protocol, "password")

    async def authenticate(
        self, ip: str, mechanism: str, initial: bytes | None, ask: Ask, *, protocol: str = ""
    ) -> AuthResult:
        """Run a SASL exchange. ``initial`` is the decoded initial response (SASL-IR,
        RFC 4959), or None if the client sent none. Raises sasl.UnsupportedMechanism
        for an unknown name and sasl.SaslError for a malformed response line.

        Spec: RFC 4422 §3, §5.
        """
        mech = sasl.start(mechanism, nonce_source=sasl.random_nonce, fake_salt_secret=self._secret)
        step = mech.step(initial)
        account: Account | None = None
        username = ""
        while True:
            match step:
                case sasl.Challenge(data=data):
                    response = await ask(data)
                    if isinstance(response, sasl.Cancelled):
                        return AuthResult(None, cancelled=True)
                    step = mech.step(response)
                case sasl.NeedCredentials(authcid=authcid):
                    username = authcid
                    account = await self._lookup(authcid)
                    step = mech.provide_credentials(_scram(account))
                case sasl.VerifyPassword(authcid=authcid, password=password):
                    username = authcid
                    account = await self._lookup(authcid)
                    step = mech.password_result(await self._check_password(account, password))
                case sasl.Success(authcid=authcid, server_final=final):
                    if account is None:  # not reachable: a mechanism succeeds only on credentials
                        account = await self._lookup(authcid)
                    result = await self._finish(ip, authcid, account, protocol, mechanism)
                    return AuthResult(result.account, result.banned, server_final=final)
                case sasl.Failure(reason=reason):
                    log.info("auth.sasl.failed", extra={"mechanism": mechanism, "reason": reason})
                    return await self._finish(ip, username, None, protocol, mechanism)

    async def _lookup(self, username: str) -> Account | None:
        if not username or len(username) > sasl.AUTHCID_MAX or "@" not in username:
            return None
        return await self._store.get_account(username)

    async def _check_password(self, account: Account | None, password: str) -> bool:
        if account is not None and self._cached(account, password):
            return True
        # The same work for an unknown account, so timing does not reveal which exist.
        credentials = (
            account.credentials if account is not None else await self._dummy_credentials()
        )
        async with self._hash_slots:
            ok = await asyncio.to_thread(verify_password, credentials, password)
        if ok and account is not None:
            self._remember(account, password)
        return ok and account is not None

    def _cache_key(self, account: Account, password: str) -> bytes:
        # Keyed by the stored hash too: a new password makes every old entry useless.
        material = "\0".join((account.address, account.credentials.password_hash, password))
        return hmac.digest(self._secret, material.encode("utf-8", "surrogatepass"), "sha256")

    def _cached(self, account: Account, password: str) -> bool:
        if self._cache_seconds <= 0:
            return False
        key = self._cache_key(account, password)
        until = self._verified.get(key)
        if until is None:
            return False
        if until < self._clock.monotonic():
            del self._verified[key]
            return False
        return True

    def _remember(self, account: Account, password: str) -> None:
        if self._cache_seconds <= 0:
            return
        key = self._cache_key(account, password)
        self._verified[key] = self._clock.monotonic() + self._cache_seconds
        self._verified.move_to_end(key)
        while len(self._verified) > VERIFIED_CACHE_MAX:
            self._verified.popitem(last=False)

    async def _dummy_credentials(self) -> Credentials:
        if self._dummy is None:
            async with self._hash_slots:
                if self._dummy is None:
                    self._dummy = await asyncio.to_thread(make_credentials, "postel-dummy-password")
        return self._dummy

    async def _finish(
        self, ip: str, username: str, account: Account | None, protocol: str, method: str
    ) -> AuthResult:
        where = {"proto": protocol, "method": method.upper(), "ip": ip}
        if account is not None:
            log.info("auth.succeeded", extra={**where, "user": account.address})
            return AuthResult(account)
        banned = self._abuse.record(ip, AbuseEvent.AUTH_FAILURE)
        log.info("auth.failed", extra={**where, "user": username[:64], "banned": banned})
        delay = self._abuse.auth_delay(ip)
        if delay > 0 and not banned:
            await asyncio.sleep(delay)
        return AuthResult(None, banned=banned)


def _scram(account: Account | None) -> sasl.ScramCredentials | None:
    if account is None:
        return None
    c = account.credentials
    return sasl.ScramCredentials(
        salt=c.scram_salt,
        iterations=c.scram_iterations,
        stored_key=c.scram_stored_key,
        server_key=c.scram_server_key,
    )
