"""Inbound acceptance: from a received message to durable mailbox entries.

The SMTP driver collects the envelope and streams the content into a BlobWriter; this
module runs the checks that need the content (mail loops), builds each recipient's trace
prefix (Return-Path, Delivered-To, Received), parses the MIME structure once, and hands
every delivery to the store in one group-committed transaction. Only after that returns
may the driver answer 250.

Spec: RFC 5321 §4.4 (trace information), §6.3 (loop detection), RELIABILITY.md D1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from postel import limits, mail
from postel.clock import Clock
from postel.directory import LocalTarget
from postel.errors import PermanentFailure
from postel.ids import AccountId, QueueId
from postel.store import BlobRef, Delivered, Delivery, SpecialUse, Store

log = logging.getLogger(__name__)

PARSE_INLINE_MAX = 4 * 1024
"""Messages up to this size are parsed on the event loop: even one made of nothing but
MIME parts (about 600) parses in about 10 ms. Larger ones go to a worker thread so other
sessions are not held up (STYLE.md rule 7)."""
PARSE_CONCURRENCY_MAX = 2
"""Large messages read into memory and parsed at once (each at most the message size
limit, 50 MB by default), which bounds the memory they take together."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One accepted RCPT TO: the forward-path as given and the accounts it reached."""

    address: str
    targets: tuple[LocalTarget, ...]


@dataclass(frozen=True, slots=True)
class InboundEnvelope:
    """What the SMTP dialogue established for one transaction.

    ``reverse_path`` is ``""`` for the null sender ``<>``. ``protocol`` is the WITH value
    of the Received field (RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP...).
    """

    queue_id: QueueId
    reverse_path: str
    recipients: tuple[Recipient, ...]
    helo: str
    client_ip: str
    client_rdns: str | None
    protocol: str
    tls: str | None
    added_fields: bytes = b""
    """Header fields added after the trace fields, CRLF-terminated: Date and Message-ID
    by the submission service (RFC 6409 §8), Authentication-Results on port 25
    (RFC 8601 §5)."""
    mailbox_use: SpecialUse | None = None
    """Deliver into the accounts' mailbox with this special use (e.g. \\Junk for a
    message DMARC asks to quarantine) instead of INBOX. Spec: RFC 6154 §2."""


class MailLoop(PermanentFailure):
    """Too many Received fields, or a Delivered-To equal to the recipient: 554 5.4.6.

    Spec: RFC 5321 §6.3.
    """


class StructureTooLarge(PermanentFailure):
    """The message's MIME structure summary is larger than MIME_SUMMARY_MAX: 552 5.3.4.

    Spec: RFC 3463 §3.4; RELIABILITY.md D3.
    """


class InboundDelivery:
    """Turns an accepted message into durable mailbox entries.

    Args:
        store: where messages go.
        hostname: our name in the Received field's ``by`` clause.
        clock: source of the arrival time (INTERNALDATE and the Received date).
        received_max: more Received fields than this is a loop (limits.SMTP_RECEIVED_MAX).
    """

    def __init__(self, store: Store, hostname: str, clock: Clock, received_max: int) -> None:
        self._store = store
        self._hostname = hostname
        self._clock = clock
        self._received_max = received_max
        self._large_parses = asyncio.Semaphore(PARSE_CONCURRENCY_MAX)

    def check_loops(self, envelope: InboundEnvelope, header_block: bytes) -> tuple[str, ...]:
        """The recipients this message has already been delivered to: each RCPT TO
        address whose own address, or the address of one of the accounts it reaches, is
        in a Delivered-To field (in envelope order). The caller delivers to the others
        and reports these as failed (5.4.6), as a local delivery agent that finds the
        loop does. Raises MailLoop when the message has too many Received fields (the
        whole message loops).

        ``header_block`` is the start of the content (at most
        limits.SMTP_HEADER_BLOCK_MAX octets). Spec: RFC 5321 §6.3; RFC 9228 §4.
        """
        info = mail.trace_info(header_block)
        if info.received_count > self._received_max:
            raise MailLoop(f"too many Received header fields ({info.received_count})")
        delivered = {d.strip().lower() for d in info.delivered_to}
        if not delivered:
            return ()
        return tuple(
            rcpt.address
            for rcpt in envelope.recipients
            if any(
                address.lower() in delivered
                for address in (rcpt.address, *(t.address for t in rcpt.targets))
            )
        )

    async def deliver(self, envelope: InboundEnvelope, blob: BlobRef) -> Sequence[Delivered]:
        """Store the message for every local target, once per account and mailbox.

        ``blob`` is the committed message as received. Returns where each copy landed;
        raises StoreError if the transaction failed (then nothing is kept).
        """
        now = self._clock.now()
        summary = await self._summary(blob, envelope.added_fields)
        deliveries: list[Delivery] = []
        use = envelope.mailbox_use
        seen: set[int] = set()
        for rcpt in envelope.recipients:
            for target in rcpt.targets:
                if target.account_id in seen:
                    continue  # one copy per account, even when aliases overlap
                seen.add(target.account_id)
                prefix = self._trace_prefix(envelope, rcpt.address, target, now)
                mailbox = "INBOX" if use is None else await self._mailbox(target.account_id, use)
                deliveries.append(
                    Delivery(
                        account_id=target.account_id,
                        mailbox=mailbox,
                        blob=blob,
                        trace_prefix=prefix,
                        internal_date=now,
                        summary=summary,
                        queue_id=envelope.queue_id,
                    )
                )
        return await self._store.deliver(deliveries)

    async def _mailbox(self, account_id: AccountId, use: SpecialUse) -> str:
        """The name of the account's mailbox with special use ``use``; INBOX when it
        has none (the message must not be lost). Spec: RFC 6154 §2."""
        for box in await self._store.list_mailboxes(account_id):
            if box.special_use is use:
                return box.name
        return "INBOX"

    async def file_copy(
        self,
        account_id: AccountId,
        mailbox: str,
        blob: BlobRef,
        *,
        prefix: bytes,
        flags: frozenset[str],
        queue_id: QueueId,
    ) -> Sequence[Delivered]:
        """Store ``prefix + blob`` in ``mailbox`` of one account with ``flags`` (e.g. the
        sender's copy in Sent), durably at return. StoreError if it failed.
        Spec: RFC 6409 §8 (the message as submitted); RFC 6154 §2 (\\Sent)."""
        delivery = Delivery(
            account_id=account_id,
            mailbox=mailbox,
            blob=blob,
            trace_prefix=prefix,
            internal_date=self._clock.now(),
            summary=await self._summary(blob, prefix),
            flags=flags,
            queue_id=queue_id,
        )
        return await self._store.deliver([delivery])

    async def _summary(self, blob: BlobRef, added: bytes) -> str:
        """Parse the MIME structure once; ``added`` are the header fields stored before
        the blob for every copy (their Date and Message-ID count for the ENVELOPE).
        Small messages are parsed on the event loop; larger ones are read and parsed in
        a worker thread, at most PARSE_CONCURRENCY_MAX at a time, so memory stays bounded
        however many large messages arrive together (RELIABILITY.md D7)."""
        if blob.inline is not None and len(blob.inline) <= PARSE_INLINE_MAX:
            return _summarise(blob.inline, added)
        async with self._large_parses:
            content = await self._store.read_blob(blob)
            try:
                return await asyncio.to_thread(_summarise, content, added)
            finally:
                del content

    def _trace_prefix(
        self, envelope: InboundEnvelope, rcpt: str, target: LocalTarget, now: dt.datetime
    ) -> bytes:
        received = mail.received_field(
            from_helo=envelope.helo,
            from_ip=envelope.client_ip,
            from_rdns=envelope.client_rdns,
            by_host=self._hostname,
            protocol=envelope.protocol,
            queue_id=envelope.queue_id,
            recipient=rcpt,
            tls=envelope.tls,
            date=now,
        )
        return (
            mail.return_path_field(envelope.reverse_path)
            + mail.delivered_to_field(target.address)
            + received
            + envelope.added_fields
        )


def _summarise(content: bytes, added: bytes = b"") -> str:
    summary = mail.parse_message(content, added).to_json()
    if len(summary) > limits.MIME_SUMMARY_MAX:
        raise StructureTooLarge(
            f"MIME structure summary of {len(summary)} octets exceeds {limits.MIME_SUMMARY_MAX}"
        )
    return summary
