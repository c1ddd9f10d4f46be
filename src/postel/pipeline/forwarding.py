"""Forwarding: mail accepted on port 25 for an alias with remote targets, and bounces to
our SRS addresses, put in the outbound queue before the 250.

Each forwarded copy leaves with:

* MAIL FROM rewritten with SRS (``SRS0=HHHH=TT=domain=local@srs-domain``), so the next
  hop's SPF check sees our domain and its bounces come back to us; the null sender stays
  null (RFC 5321 §4.5.5), and a rewrite that would be too long keeps the original
  sender (logged: the next hop's SPF may then fail);
* our Received field (RFC 5321 §4.4);
* an ARC Set sealed with the DKIM RSA key of the alias's domain (the SRS domain for a
  bounce), whose ARC-Authentication-Results carries our verdict: the same results as
  the Authentication-Results field we added for local recipients, with ``arc=``. When
  sender authentication did not run (an exempt client, or ``[authentication] enabled
  = false``) the chain the message already carries is validated here and the results
  are that ``arc=`` result alone: we attest nothing we did not check. No RSA key (or a
  seal that cannot be made) forwards the message unsealed, with a warning: the next hop
  then judges it on SPF of the SRS domain and the original DKIM signatures alone.

Recipients forwarded through aliases of different domains get one queue entry per
sealing domain; a remote address reached twice is queued once. A bounce to an SRS
address of ours (valid hash, at most ``SRS_MAX_AGE_DAYS`` old) goes to the reversed
address; anything else that looks like one is refused at RCPT (550 5.1.1), so postel
is never a relay for forged bounces.

Bounds defined here: ``SEAL_INLINE_MAX`` and ``SEAL_CONCURRENCY_MAX`` (messages read
whole into memory to be sealed; RELIABILITY.md D7).

Spec: RFC 5321 §3.9 (forwarding), §4.4; RFC 7208 §3.3, Appendix D (SRS); RFC 8617 §5.1
(sealing), §4.1.3 (cv); RFC 8601 §2.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from postel import mail
from postel.clock import Clock
from postel.directory import to_a_label
from postel.dkim import (
    ArcSealError,
    ChainValidation,
    KeyAlgorithm,
    TxtResolver,
    load_keys,
    seal_message,
    verify_arc,
)
from postel.ids import QueueId, new_queue_id
from postel.mail.srs import Srs, SrsError
from postel.store import BlobRef, Store
from postel.store.queue_api import NewQueuedMessage, NewRecipient

log = logging.getLogger(__name__)

SEAL_INLINE_MAX = 1024 * 1024
"""Messages up to this size are sealed without waiting for a slot; larger ones take one
of ``SEAL_CONCURRENCY_MAX`` (each is read whole into memory)."""
SEAL_CONCURRENCY_MAX = 2
"""Large messages sealed at once (bounds memory, RELIABILITY.md D7)."""
SECONDS_PER_DAY = 86_400

_FOLD = re.compile(r"\r\n[ \t]+")
_ARC_FIELD = re.compile(rb"(?im)^arc-(seal|message-signature|authentication-results)[ \t]*:")

__all__ = [
    "SEAL_CONCURRENCY_MAX",
    "SEAL_INLINE_MAX",
    "ForwardEnvelope",
    "ForwardTarget",
    "Forwarder",
    "SrsError",
    "results_text",
]


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """One accepted RCPT TO that is forwarded: ``rcpt`` as given, ``seal_domain`` the
    domain whose key seals the copy (the alias's domain, or the SRS domain for a
    bounce; lower-case A-label), ``remote`` the addresses to queue (``local@a-label``)."""

    rcpt: str
    seal_domain: str
    remote: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ForwardEnvelope:
    """What the SMTP dialogue established, for the forwarded copies.

    ``reverse_path`` is MAIL FROM without brackets (``""``: null sender); ``protocol``
    the Received WITH value; ``auth_field`` our Authentication-Results field as added
    for local recipients (CRLF-terminated), or None when sender authentication did not
    run. Spec: RFC 5321 §4.4; RFC 8601 §2.2.
    """

    queue_id: QueueId
    reverse_path: str
    helo: str
    client_ip: str
    protocol: str
    tls: str | None
    auth_field: bytes | None
    smtputf8: bool = False


def results_text(field: bytes) -> str:
    """The results of an Authentication-Results field, after the authserv-id, on one
    line: ``b"Authentication-Results: mx;\\r\\n\\tspf=pass ...;\\r\\n\\tarc=none\\r\\n"``
    gives ``"spf=pass ...; arc=none"``. Spec: RFC 8601 §2.2; RFC 5322 §2.2.3."""
    text = _FOLD.sub(" ", field.decode("utf-8", "replace")).strip()
    _name, _colon, value = text.partition(":")
    _authserv, _semicolon, results = value.partition(";")
    return results.strip()


class Forwarder:
    """Queues forwarded copies (see the module docstring).

    Args:
        store: the outbound queue and the blobs.
        srs: the rewriting scheme (our secret and SRS domain).
        clock: the SRS day and the Received date.
        hostname: our name in the Received field.
        authserv_id: our name in the ARC-Authentication-Results.
        dkim_dir: where the DKIM keys are (``<data>/dkim``; ``postel dkim generate``).
        resolver: validates a message's ARC chain when sender authentication did not.
        on_enqueued: called after queue entries were added (wakes the delivery worker).
    """

    def __init__(
        self,
        store: Store,
        srs: Srs,
        clock: Clock,
        *,
        hostname: str,
        authserv_id: str,
        dkim_dir: Path,
        resolver: TxtResolver,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._srs = srs
        self._clock = clock
        self._hostname = hostname
        self._authserv_id = authserv_id
        self._dkim_dir = dkim_dir
        self._resolver = resolver
        self.on_enqueued = on_enqueued
        self._large = asyncio.Semaphore(SEAL_CONCURRENCY_MAX)

    @property
    def srs_domain(self) -> str:
        """The domain of our rewritten senders (lower-case)."""
        return self._srs.domain

    def is_srs(self, address: str) -> bool:
        """Whether ``address`` has the form of an SRS address of our SRS domain (not
        yet checked). Spec: the SRS paper (Shevek, 2004)."""
        return self._srs.is_srs(address)

    def reverse(self, address: str) -> str:
        """Where a bounce to our SRS ``address`` goes. Raises SrsError (bad form, bad
        hash, expired): answer 550 5.1.1. Spec: RFC 7208 Appendix D."""
        return self._srs.reverse(address, self._day())

    def rewrite(self, reverse_path: str) -> str:
        """MAIL FROM for a forwarded copy: SRS-rewritten; ``""`` stays ``""``; kept
        as it is when the rewrite would be too long. Spec: RFC 7208 Appendix D."""
        try:
            return self._srs.forward(reverse_path, self._day())
        except SrsError as exc:
            log.warning("forward.srs_failed", extra={"mail_from": reverse_path, "error": str(exc)})
            return reverse_path

    async def forward(
        self, envelope: ForwardEnvelope, targets: Sequence[ForwardTarget], blob: BlobRef
    ) -> tuple[str, ...]:
        """Queue ``blob`` (the committed content) for every remote address of
        ``targets``: one entry per sealing domain, each with our Received field and its
        ARC Set. Returns the queue ids used (the first is ``envelope.queue_id``).
        Raises StoreError or OSError when the queue or the blob store fails (then the
        caller answers 451). Spec: RFC 5321 §3.9, §6.1."""
        groups = _groups(targets)
        if not groups:
            return ()
        sender = self.rewrite(envelope.reverse_path)
        received = mail.received_field(
            from_helo=envelope.helo,
            from_ip=envelope.client_ip,
            from_rdns=None,
            by_host=self._hostname,
            protocol=envelope.protocol,
            queue_id=str(envelope.queue_id),
            recipient=None,
            tls=envelope.tls,
            date=self._clock.now(),
        )
        queue_ids: list[str] = []
        async with self._slot(blob):
            content = blob.inline if blob.inline is not None else await self._read(blob)
            message = received + content
            results = await self._results(envelope, content)
            for domain, remote in groups.items():
                seal = await self._seal(message, domain, results, envelope.queue_id)
                queue_id = str(envelope.queue_id) if not queue_ids else str(new_queue_id())
                await self._store.enqueue(
                    NewQueuedMessage(
                        queue_id=queue_id,
                        blob=blob,
                        reverse_path=sender,
                        trace_prefix=seal + received,
                        smtputf8=envelope.smtputf8,
                    ),
                    [NewRecipient(address=a, domain=_domain(a)) for a in remote],
                )
                queue_ids.append(queue_id)
                log.info(
                    "forward.queued",
                    extra={
                        "queue_id": queue_id,
                        "mail_from": f"<{sender}>",
                        "rcpt": ",".join(remote),
                        "sealed": bool(seal),
                    },
                )
        if self.on_enqueued is not None:
            self.on_enqueued()
        return tuple(queue_ids)

    def _day(self) -> int:
        return int(self._clock.now().timestamp() // SECONDS_PER_DAY)

    def _slot(self, blob: BlobRef) -> AbstractAsyncContextManager[object]:
        if blob.inline is not None and len(blob.inline) <= SEAL_INLINE_MAX:
            return contextlib.nullcontext()
        return self._large

    async def _read(self, blob: BlobRef) -> bytes:
        return await self._store.read_blob(blob)

    async def _results(self, envelope: ForwardEnvelope, content: bytes) -> str:
        """The ARC-Authentication-Results text: our verdict, or (no verdict) the
        ``arc=`` result of the chain the message carries. Spec: RFC 8617 §4.1.3, §5.1."""
        if envelope.auth_field is not None:
            results = results_text(envelope.auth_field)
            if re.search(r"(^|[;\s])arc=", results):
                return results
            return f"{results}; arc=none" if results else "arc=none"
        header = content.split(b"\r\n\r\n", 1)[0]
        if not _ARC_FIELD.search(header):
            return f"arc={ChainValidation.NONE}"
        chain = await verify_arc(content, self._resolver)
        return f"arc={chain.cv}"

    async def _seal(self, message: bytes, domain: str, results: str, queue_id: QueueId) -> bytes:
        """The ARC Set for ``message`` with ``domain``'s first RSA key; ``b""`` (logged)
        when there is none or sealing fails. Spec: RFC 8617 §5.1."""
        keys = [k for k in load_keys(self._dkim_dir, domain) if k.algorithm is KeyAlgorithm.RSA]
        if not keys:
            log.warning(
                "forward.unsealed",
                extra={
                    "queue_id": queue_id,
                    "domain": domain,
                    "reason": "no DKIM RSA key",
                    "hint": f"postel dkim generate {domain}",
                },
            )
            return b""
        try:
            return await asyncio.to_thread(
                seal_message,
                message,
                keys[0],
                authserv_id=self._authserv_id,
                results=results,
                clock=self._clock,
            )
        except ArcSealError as exc:
            log.warning(
                "forward.unsealed",
                extra={"queue_id": queue_id, "domain": domain, "reason": str(exc)},
            )
            return b""


def _groups(targets: Sequence[ForwardTarget]) -> dict[str, tuple[str, ...]]:
    """Remote addresses by sealing domain, in order; each address once overall."""
    seen: set[str] = set()
    groups: dict[str, list[str]] = {}
    for target in targets:
        for address in target.remote:
            key = address.lower()
            if key in seen:
                continue
            seen.add(key)
            groups.setdefault(target.seal_domain, []).append(address)
    return {domain: tuple(addresses) for domain, addresses in groups.items() if addresses}


def _domain(address: str) -> str:
    """The destination domain of ``address``: lower-case A-label (the queue's form)."""
    return to_a_label(address.rpartition("@")[2]).lower()
