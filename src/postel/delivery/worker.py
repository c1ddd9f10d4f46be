"""The outbound delivery worker: lease due mail, find the hosts, send, settle.

Every ``poll_interval`` seconds, at once after ``wake()``, and whenever half of the
leases it holds are done, the worker leases due recipients from the store (one
``Lease`` = one message's recipients at one domain) and puts them in the lane of their
domain (lanes.py). Each lane resolves its domain's hosts (``find_route``, again after
``ROUTE_REUSE_S``) and is served by as few connections as its backlog needs: at most
``connections_max`` in all and ``connections_per_domain_max`` per domain, each
carrying up to ``messages_per_connection_max`` transactions before it reconnects. A
connection whose lane is empty stays open for ``CONNECTION_IDLE_S`` (a connection
cache, as Postfix's), unless another lane waits for the room. Each message is settled
as soon as its transaction ends, one outcome per recipient: 2yz delivered, 4yz or
connection/DNS trouble deferred (the store's BackoffPolicy says when to retry), 5yz
failed with the reply kept for the DSN.

``stop()`` stops leasing, lets transactions in flight finish for a grace period, then
cancels the rest: leases not yet started are handed back (due at once), a lease whose
transaction was cut short just expires and becomes due again.

Spec: RFC 5321 §4.5.4.1 (retry strategy), §5.1 (hosts, all tried before deferring),
§4.2.1 (reply classes), §6.1 (a message whose fate is unknown is retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any

from postel.clock import Clock
from postel.errors import PostelError, ProtocolError, StoreError
from postel.resolver import Resolver
from postel.smtp.grammar import Path
from postel.smtp.params import RcptParams
from postel.smtp.reply import Reply
from postel.store import Store
from postel.store.queue_api import Lease, Outcome, QueueRecipientId

from .lanes import CONNECTION_IDLE_S, CONNECTION_SPREAD_S, Lane
from .link import client_tls_context
from .mx import NoRoute, Route, Target, find_route
from .session import Envelope, OutboundSession, SessionError, format_reply
from .settings import (
    STOP_GRACE_S,
    DeliveryConfig,
    MessageSigner,
    NoSigning,
    OpportunisticTls,
    TlsDecision,
    TlsMode,
    TlsPolicy,
)
from .smarthost import SmarthostTls, smarthost_route

log = logging.getLogger(__name__)

NO_HOST_REPLY = "451 4.4.1 No host could be reached"
"""The deferral reason when no target of a route was tried successfully."""
UNRECORDED_PER_CONNECTION_MAX = 3
"""Messages one connection may have had accepted by the peer without their outcome
recorded yet: a connection ends a message (its final dot or BDAT LAST) only once the
outcome of the message this many before it is committed, so a crash repeats at most
this many of its messages. Fewer would make connections wait for each commit in step
and group commits small (measured over loopback: 9 outcomes a commit with one, 18 with
two, 26 with three, 47 unbounded; bench/outbound.sh). Local policy; RELIABILITY.md D1,
RFC 5321 §6.1 (at-least-once)."""


def outcome_of(reply: Reply) -> Outcome:
    """2yz delivered, 4yz deferred, 5yz failed, the reply kept. Spec: RFC 5321 §4.2.1."""
    text = format_reply(reply)
    if reply.code // 100 == 2:
        return Outcome.delivered(text)
    if reply.code // 100 == 5:
        return Outcome.failed(text)
    return Outcome.deferred(text)


def _no_route_outcome(route: NoRoute) -> Outcome:
    return Outcome.failed(route.reply) if route.permanent else Outcome.deferred(route.reply)


class DeliveryWorker:
    """Delivers the outbound queue of ``store`` (see the module docstring).

    Usage: ``task = asyncio.create_task(worker.run())``; ``worker.wake()`` after an
    enqueue; ``await worker.stop()`` at shutdown (``run`` then returns). ``rng`` orders
    MX hosts of equal preference; ``tls_policy`` (default: opportunistic TLS) and
    ``signer`` (default: none) are the hooks for MTA-STS/DANE and DKIM.
    Spec: RFC 5321 §4.5.4.1, §5.1.
    """

    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        config: DeliveryConfig,
        *,
        clock: Clock,
        rng: random.Random,
        tls_policy: TlsPolicy | None = None,
        signer: MessageSigner | None = None,
        holder_is_gone: Callable[[str], bool] | None = None,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._config = config
        self._clock = clock
        self._rng = rng
        self._tls_policy: TlsPolicy = tls_policy or OpportunisticTls()
        self._signer: MessageSigner = signer or NoSigning()
        self._holder_is_gone = holder_is_gone
        self._lanes: dict[tuple[str, bool], Lane] = {}
        self._per_domain: dict[str, int] = {}
        """Connection tasks per destination domain (both lanes of a domain)."""
        self._connection_tasks = 0
        """Connection tasks in all."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._held = 0
        """Leases taken and not yet settled or handed back."""
        self._wake = asyncio.Event()
        self._stopping = False
        self._draining = False
        """``run_once``: connections QUIT as soon as their lane is empty."""
        self._contexts: dict[bool, ssl.SSLContext] = {}

    # -- life cycle ------------------------------------------------------------------------
    def wake(self) -> None:
        """Look at the queue now (new mail was queued)."""
        self._wake.set()

    async def run(self) -> None:
        """Hand back the leases of workers that are gone, then lease and deliver until
        ``stop``. Store trouble is logged and retried at the next poll.
        Spec: RFC 5321 §4.5.4.1; RELIABILITY.md D2 (repair at start)."""
        await self.release_gone_leases()
        while not self._stopping:
            self._wake.clear()
            await self._lease_and_dispatch()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.poll_interval):
                    await self._wake.wait()

    async def release_gone_leases(self) -> int:
        """End the leases of holders ``holder_is_gone`` names (a killed process of this
        node), so their mail is due now instead of when the lease would have run out.
        Returns the recipients freed; store trouble is logged (the leases then expire).
        Spec: RFC 5321 §6.1; RELIABILITY.md D2."""
        if self._holder_is_gone is None:
            return 0
        try:
            holders = await self._store.lease_holders()
            gone = [h for h in holders if h != self._config.worker_name and self._holder_is_gone(h)]
            freed = await self._store.release_leases(gone) if gone else 0
        except StoreError:
            log.exception("delivery.lease_recovery_failed")
            return 0
        if freed:
            log.info("delivery.leases_released", extra={"holders": len(gone), "recipients": freed})
        return freed

    async def run_once(self) -> int:
        """Lease once and deliver everything leased; returns how many leases were taken.
        For tests and ``postel queue flush``-like callers. Spec: RFC 5321 §4.5.4.1."""
        taken = await self._lease_and_dispatch()
        self._draining = True
        try:
            for lane in self._lanes.values():
                lane.work.set()
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            self._draining = False
        return taken

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop leasing; wait up to ``grace`` seconds for deliveries in flight, then
        cancel them (their leases expire or are handed back)."""
        self._stopping = True
        self._wake.set()
        waiting = [lane for lane in self._lanes.values() if not lane.connections]
        for lane in self._lanes.values():
            lane.work.set()  # idle connections QUIT
        await asyncio.gather(*(self._hand_back_lane(lane) for lane in waiting))
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- leasing ---------------------------------------------------------------------------
    async def _lease_and_dispatch(self) -> int:
        config = self._config
        room = config.lease_batch - self._held
        if room <= 0 or self._stopping:
            return 0
        per_domain = min(
            config.lease_batch,
            config.connections_per_domain_max * config.messages_per_connection_max,
        )
        try:
            leases = await self._store.lease(
                config.worker_name,
                self._clock.now(),
                limit=room,
                lease_for=config.lease_seconds,
                per_domain_max=per_domain,
            )
        except StoreError:
            log.exception("delivery.lease_failed")
            return 0
        if self._stopping:
            await self._hand_back(leases)
            return 0
        touched: dict[tuple[str, bool], Lane] = {}
        for lease in leases:
            key = (lease.domain, lease.message.requiretls)
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = Lane(lease.domain, lease.message.requiretls)
            lane.pending.append(lease)
            touched[key] = lane
        self._held += len(leases)
        for lane in touched.values():
            self._staff(lane)
        return len(leases)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _finished(self, count: int = 1) -> None:
        """``count`` leases were settled or handed back: lease more once half the
        batch is free (one lease query refills many lanes)."""
        before = self._held
        self._held -= count
        refill = self._config.lease_batch // 2
        if self._held == 0 or (before > refill >= self._held):
            self._wake.set()

    # -- lanes -------------------------------------------------------------------------------
    def _staff(self, lane: Lane) -> None:
        """Start connections for ``lane`` as its backlog asks, within the per-domain
        and overall bounds and its fair share of the latter (one lane of many does not
        take all the room); wake its idle connections. When the lane gets none, idle
        connections of other lanes are asked to make room."""
        lane.work.set()
        fair = max(1, self._config.connections_max // len(self._lanes))  # a share for each
        missing = min(lane.wanted(), fair) - lane.connections
        if missing <= 0:
            return
        domain_room = self._config.connections_per_domain_max - self._per_domain.get(lane.domain, 0)
        room = self._config.connections_max - self._connection_tasks
        start = min(missing, domain_room, room)
        for _ in range(max(0, start)):
            # The first connection starts at once, the others spread out (CONNECTION_SPREAD_S)
            delay = self._rng.uniform(0, CONNECTION_SPREAD_S) if lane.connections else 0.0
            lane.connections += 1
            self._per_domain[lane.domain] = self._per_domain.get(lane.domain, 0) + 1
            self._connection_tasks += 1
            self._spawn(self._serve_lane(lane, delay))
        if lane.connections == 0:
            for other in self._lanes.values():
                if not other.pending and other.connections:
                    other.work.set()  # idle: make room (see _await_work)

    def _starved(self) -> bool:
        """Whether a lane with mail waits without any connection, kept out by the
        overall bound (a lane already served waits its turn: taking a busy lane's
        connection away would only trade one handshake for another)."""
        return any(lane.pending and not lane.connections for lane in self._lanes.values())

    def _lane_done(self, lane: Lane) -> None:
        """One connection of ``lane`` ended: drop the lane when nothing is left, start
        connections where the freed room is wanted."""
        lane.connections -= 1
        self._connection_tasks -= 1
        left = self._per_domain[lane.domain] - 1
        if left:
            self._per_domain[lane.domain] = left
        else:
            del self._per_domain[lane.domain]
        if lane.connections == 0 and not lane.pending and self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]
        for other in list(self._lanes.values()):
            if other.pending and not self._stopping:
                self._staff(other)

    async def _lane_route(self, lane: Lane) -> Route | NoRoute:
        """The lane's route, looked up again after ``ROUTE_REUSE_S``. Spec: RFC 5321 §5.1."""
        async with lane.routing:
            if lane.route is None or not lane.route_fresh(self._clock.monotonic()):
                lane.route = await self._route(lane.domain)
                lane.routed_at = self._clock.monotonic()
            return lane.route

    async def _await_work(self, lane: Lane) -> bool:
        """An idle connection of ``lane`` waits for more of its leases: True when some
        arrived, False when it should QUIT (idle for ``CONNECTION_IDLE_S``, stopping,
        draining, or another lane needs the room)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECTION_IDLE_S
        while not lane.pending:
            if self._stopping or self._draining or self._starved():
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            lane.work.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await lane.work.wait()
        return True

    async def _route(self, domain: str) -> Route | NoRoute:
        bind = self._config.bind_address
        if self._config.smarthost is not None:
            return await smarthost_route(
                self._config.smarthost,
                domain,
                self._resolver,
                max_addresses=self._config.addresses_per_attempt_max,
                ipv4=bind is None or bind.version == 4,
                ipv6=self._config.ipv6 and (bind is None or bind.version == 6),
            )
        return await find_route(
            domain,
            self._resolver,
            self._rng,
            max_hosts=self._config.mx_hosts_max,
            max_addresses=self._config.addresses_per_attempt_max,
            ipv4=bind is None or bind.version == 4,
            ipv6=self._config.ipv6 and (bind is None or bind.version == 6),
        )

    # -- one connection --------------------------------------------------------------------
    async def _serve_lane(self, lane: Lane, delay: float = 0.0) -> None:
        """One connection of ``lane``: deliver its leases one transaction at a time,
        reconnecting (to the next target after a failure) as needed; linger idle for
        more (see ``_await_work``). When no target answers and no other connection
        serves the lane, its leases are deferred. With ``lane.requiretls`` only over
        TLS with a verified certificate (RFC 8689 §4.2.1). ``delay``: seconds to wait
        before connecting. Spec: RFC 5321 §5.1."""
        session: OutboundSession | None = None
        current: Lease | None = None
        targets: deque[Target] = deque()
        resume = False  # after a failure: go on with the targets not yet tried
        last_error = NO_HOST_REPLY
        settling: deque[asyncio.Task[None]] = deque(maxlen=UNRECORDED_PER_CONNECTION_MAX)
        try:
            if delay:
                await asyncio.sleep(delay)
            while True:
                if not lane.pending:
                    if session is None or not await self._await_work(lane):
                        break
                    continue
                if self._stopping:
                    if lane.connections == 1:  # the last one: nobody will take them
                        await self._hand_back_lane(lane)
                    break
                if session is None:
                    route = await self._lane_route(lane)
                    if isinstance(route, NoRoute):
                        await self._no_route(lane, route)
                        break
                    if not resume:
                        targets = deque(route.targets)
                    session, last_error = await self._connect(
                        lane.domain, targets, last_error, requiretls=lane.requiretls
                    )
                    if session is None:
                        if lane.connections == 1:  # nobody else can deliver them
                            await self._defer_all(lane, last_error)
                        break
                    continue
                current = lane.pending.popleft()
                kept = session.transactions > 0  # a connection kept open between messages
                try:
                    before = settling[0] if len(settling) == settling.maxlen else None
                    settling.append(await self._deliver(session, current, before))
                except SessionError as exc:
                    session.abort()
                    if kept:
                        # The peer may close a connection while it idles (RFC 5321
                        # §4.5.3.2.7): the message goes again at once, on a new one.
                        log.info(
                            "delivery.reconnect",
                            extra={"queue_id": current.message.queue_id, "reply": exc.reply},
                        )
                        lane.pending.appendleft(current)
                        session, current, resume = None, None, False
                        continue
                    session, last_error, resume = None, exc.reply, True
                    log.info(
                        "delivery.deferred",
                        extra={"queue_id": current.message.queue_id, "reply": exc.reply},
                    )
                    deferred = Outcome.deferred(exc.reply)
                    await self._settle(current, dict.fromkeys(_ids(current), deferred))
                    self._finished()
                current = None
                if session is not None and (
                    not session.usable
                    or session.transactions >= self._config.messages_per_connection_max
                ):
                    await session.close()
                    session, resume = None, False
                    if self._starved():
                        break  # let a waiting lane have this room
        except asyncio.CancelledError:
            await asyncio.shield(self._hand_back_lane(lane))
            raise
        finally:
            if session is not None:
                if self._stopping or current is not None:
                    session.abort()
                else:
                    await session.close()
            self._lane_done(lane)

    async def _connect(
        self, domain: str, targets: deque[Target], last_error: str, *, requiretls: bool = False
    ) -> tuple[OutboundSession | None, str]:
        """Open a session to the next target that answers; every target tried is used
        up. Returns (None, the last error) when none is left. Spec: RFC 5321 §5.1;
        RFC 8689 §4.2.1 (REQUIRETLS: verified TLS only)."""
        while targets:
            target = targets.popleft()
            if self._config.smarthost is not None:
                return await self._open_smarthost(target, last_error)
            decision = await self._tls_policy.decide(domain, target.host)
            if requiretls and decision.mode is not TlsMode.REFUSE:
                decision = TlsDecision(TlsMode.REQUIRED, True, decision.server_hostname)
            if decision.mode is TlsMode.REFUSE:  # RFC 8461 §4.1: not an allowed MX
                last_error = (
                    f"451 4.7.5 MTA-STS policy of {domain} does not allow MX host {target.host}"
                )
                log.info("delivery.host_refused", extra={"domain": domain, "reply": last_error})
                continue
            try:
                session = await self._open(target, decision)
            except SessionError as exc:
                if not (exc.tls_failed and decision.mode is TlsMode.OPPORTUNISTIC):
                    log.info(
                        "delivery.connect_failed", extra={"domain": domain, "reply": exc.reply}
                    )
                    last_error = exc.reply
                    continue
                log.info("delivery.tls_failed", extra={"domain": domain, "reply": exc.reply})
                try:  # opportunistic: plaintext beats no delivery (RFC 7435 §1.3)
                    session = await self._open(target, TlsDecision(TlsMode.OFF))
                except SessionError as again:
                    last_error = again.reply
                    continue
            return session, last_error
        return None, last_error

    async def _open_smarthost(
        self, target: Target, last_error: str
    ) -> tuple[OutboundSession | None, str]:
        """A session to the smarthost: its own port, TLS verified (STARTTLS or
        implicit) unless configured off, AUTH when configured; no MTA-STS (the relay is
        not the recipient domain's MX). Spec: RFC 6409 §3; RFC 8314 §3.3; RFC 4954."""
        relay = self._config.smarthost
        assert relay is not None
        if relay.tls is SmarthostTls.NONE:
            decision = TlsDecision(TlsMode.OFF)
        else:
            decision = TlsDecision(TlsMode.REQUIRED, True, relay.host)
        credentials = None
        if relay.username is not None and relay.password is not None:
            credentials = (relay.username, relay.password)
        try:
            session = await self._open(
                target,
                decision,
                port=relay.port,
                implicit_tls=relay.tls is SmarthostTls.IMPLICIT,
                credentials=credentials,
            )
        except SessionError as exc:
            log.info("delivery.connect_failed", extra={"host": relay.host, "reply": exc.reply})
            return None, exc.reply
        return session, last_error

    async def _open(
        self,
        target: Target,
        decision: TlsDecision,
        *,
        port: int | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> OutboundSession:
        context = None
        if decision.mode is not TlsMode.OFF:
            context = self._contexts.get(decision.verify)
            if context is None:
                context = self._contexts[decision.verify] = client_tls_context(
                    verify=decision.verify, ca_file=self._config.ca_file
                )
        return await OutboundSession.open(
            target,
            self._config,
            decision,
            context,
            port=port,
            implicit_tls=implicit_tls,
            credentials=credentials,
        )

    # -- one message -----------------------------------------------------------------------
    async def _deliver(
        self, session: OutboundSession, lease: Lease, settling: asyncio.Task[None] | None
    ) -> asyncio.Task[None]:
        """One transaction for ``lease``, then settle it (``_settle_soon``). The end
        of its content waits for ``settling``, the settle of an earlier message of this
        connection (see UNRECORDED_PER_CONNECTION_MAX). Returns the settling task.
        Raises SessionError (the lease is then not settled here).
        Spec: RELIABILITY.md D1; RFC 5321 §6.1."""
        outcomes: dict[QueueRecipientId, Outcome] = {}
        message = lease.message
        try:
            reverse = Path.parse(message.reverse_path) if message.reverse_path else Path(None)
        except ProtocolError:
            bad = Outcome.failed("553 5.1.7 Bad reverse-path in the queue")
            return self._settle_soon(lease, dict.fromkeys(_ids(lease), bad))
        sendable: list[tuple[QueueRecipientId, Path, RcptParams]] = []
        passed_on: list[QueueRecipientId] = []
        for r in lease.recipients:
            try:
                path = Path.parse(r.address, allow_null=False, allow_postmaster=False)
            except ProtocolError:
                outcomes[r.id] = Outcome.failed("553 5.1.3 Bad recipient address in the queue")
                continue
            sendable.append((r.id, path, RcptParams(notify=r.notify, orcpt=r.orcpt)))
        if sendable:
            signature = await self._signer.signature(message)
            envelope = Envelope(
                reverse_path=reverse,
                recipients=tuple((p, rp) for _, p, rp in sendable),
                size=message.size + len(signature),
                body=message.body,
                smtputf8=message.smtputf8,
                requiretls=message.requiretls,
                ret=message.ret,
                envid=message.envid,
            )
            replies = await session.send(envelope, self._content(lease, signature, settling))
            for (rid, _, _), reply in zip(sendable, replies, strict=True):
                outcomes[rid] = outcome_of(reply)
            if session.extensions.dsn:  # NOTIFY went on: the peer reports success now
                passed_on = [rid for rid, _, _ in sendable]
            log.info(
                "delivery.sent",
                extra={
                    "queue_id": message.queue_id,
                    "domain": lease.domain,
                    "host": session.target.host,
                    "tls": session.tls_active,
                    "replies": "; ".join(format_reply(r) for r in replies),
                },
            )
        return self._settle_soon(lease, outcomes, passed_on)

    def _settle_soon(
        self,
        lease: Lease,
        outcomes: Mapping[QueueRecipientId, Outcome],
        passed_on: Sequence[QueueRecipientId] = (),
    ) -> asyncio.Task[None]:
        """Settle ``lease`` in a task of its own, returned: the connection prepares
        its next transaction while the outcome is committed (group commit gathers the
        settles of all connections). Spec: RELIABILITY.md D1."""

        async def settle() -> None:
            try:
                await self._settle(lease, outcomes, dsn_passed_on=passed_on)
            finally:
                self._finished()

        return self._spawn(settle())

    async def _content(
        self, lease: Lease, signature: bytes, settling: asyncio.Task[None] | None
    ) -> AsyncIterator[bytes]:
        """The message's octets; the last is given only once ``settling`` is done."""
        if signature:
            yield signature
        async for chunk in self._store.open_queued_message(lease.message.id):
            yield chunk
        if settling is not None and not settling.done():
            await asyncio.wait((settling,))

    async def _settle(
        self,
        lease: Lease,
        outcomes: Mapping[QueueRecipientId, Outcome],
        *,
        dsn_passed_on: Sequence[QueueRecipientId] = (),
    ) -> None:
        """Record ``outcomes``; ``dsn_passed_on``: recipients whose NOTIFY went to a
        DSN-capable server (it, not we, reports their success). Spec: RFC 3461 §5.2.2."""
        try:
            result = await self._store.settle(
                lease,
                outcomes,
                self._clock.now(),
                self._config.backoff,
                dsn_passed_on=dsn_passed_on,
            )
        except PostelError:
            log.exception("delivery.settle_failed", extra={"queue_id": lease.message.queue_id})
            return
        if result.lost:
            log.warning(
                "delivery.lease_lost",
                extra={"queue_id": lease.message.queue_id, "lost": len(result.lost)},
            )

    async def _hand_back(self, leases: Sequence[Lease]) -> None:
        """Leases never started: due again at once (settled without outcomes)."""
        await asyncio.gather(*(self._settle(lease, {}) for lease in leases))

    async def _hand_back_lane(self, lane: Lane) -> None:
        """Hand back every lease still waiting in ``lane``."""
        leases = lane.take_all()
        try:
            await self._hand_back(leases)
        finally:
            self._finished(len(leases))

    async def _defer_all(self, lane: Lane, reply: str) -> None:
        """No target answered: every lease waiting in ``lane`` is deferred with
        ``reply``. Spec: RFC 5321 §4.5.4.1."""
        leases = lane.take_all()
        outcome = Outcome.deferred(reply)
        try:
            await asyncio.gather(
                *(self._settle(lease, dict.fromkeys(_ids(lease), outcome)) for lease in leases)
            )
        finally:
            self._finished(len(leases))

    async def _no_route(self, lane: Lane, route: NoRoute) -> None:
        """The domain has no route: its waiting leases fail or are deferred with the
        reason. Spec: RFC 5321 §5.1; RFC 7505 §4."""
        log.info("delivery.no_route", extra={"domain": lane.domain, "reply": route.reply})
        leases = lane.take_all()
        outcome = _no_route_outcome(route)
        try:
            await asyncio.gather(
                *(self._settle(lease, dict.fromkeys(_ids(lease), outcome)) for lease in leases)
            )
        finally:
            self._finished(len(leases))


def _ids(lease: Lease) -> list[QueueRecipientId]:
    return [r.id for r in lease.recipients]


def local_process_gone(holder: str) -> bool:
    """Whether the lease holder ``holder`` (``"<node>:<pid>"``, the worker names the
    composition root gives) is a process of this node that no longer runs. Holders of
    other nodes are never judged here: their leases expire. Spec: RELIABILITY.md D2."""
    node, _, pid = holder.rpartition(":")
    if node != os.uname().nodename or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists, as another user
        return False
    return False
