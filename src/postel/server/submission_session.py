"""The message submission service (ports 587 and 465): the SMTP driver with AUTH.

A submission session is an SMTP session (``smtp_session``) whose core requires AUTH
before MAIL (530 5.7.0 otherwise). Plaintext mechanisms are offered only over TLS
(STARTTLS on 587, implicit TLS on 465), or from loopback when ``[auth]
plaintext_on_loopback`` allows it; SCRAM-SHA-256 likewise, since submission without TLS
is refused by policy (RFC 8314 §3). Once authenticated, the user may send only as
the account's sender policy allows (``postel account sender``), 550 5.7.1 otherwise,
for MAIL FROM and every From: address alike: ``own`` (the default) accepts addresses
that resolve to the authenticated account alone (its address, an alias or subaddress
of it); ``domain`` also any address at the account's own domain; ``any`` every address
(and the null reverse-path). The policy is read at AUTH, so a change applies from the
next session on. Local recipients are delivered at the same durability point as inbound
mail; other recipients are accepted (relay for authenticated users) and put in the
outbound queue before the 250, with their DSN parameters (NOTIFY, ORCPT, RET, ENVID).
A local recipient that asked for NOTIFY=SUCCESS gets the sender a "delivered" report
once the message is in its mailbox.

Each account may send at most ``[abuse] max_messages_per_hour_per_account`` messages
and ``max_recipients_per_hour_per_account`` recipients per hour: past a limit MAIL or
RCPT is answered ``450 4.7.1`` (RFC 3463 §3.8 X.7.1, delivery not authorized: the
account may not send now; 4yz because the window moves on) and ``submission.limit`` is
logged. Only accepted messages count (after their 250).

Spec: RFC 6409 (submission), RFC 4954 (AUTH), RFC 8314 §3 (465), RFC 3207 (STARTTLS);
RFC 3461 §4, §5.2.3 (DSN parameters, local delivery); RFC 3463 §3.8.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import secrets
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from postel import smtp
from postel.abuse import AbuseTracker, AccountLimit
from postel.clock import Clock
from postel.config import Config
from postel.directory import (
    Directory,
    Forwarded,
    InvalidAddress,
    LocalRecipients,
    NotLocal,
    to_a_label,
)
from postel.dkim import load_keys, sign_message
from postel.dkim.sign import SigningError
from postel.errors import PermanentFailure, StoreError
from postel.ids import QueueId
from postel.mail import received_field, split_header
from postel.mail.address import parse_address_list
from postel.pipeline import InboundDelivery, InboundEnvelope, StructureTooLarge
from postel.sasl import (
    CANCELLED,
    MECHANISMS,
    Cancelled,
    SaslError,
    UnsupportedMechanism,
    decode_response,
)
from postel.server.auth import Authenticator, plaintext_allowed
from postel.server.quota_gate import MAILBOX_FULL
from postel.server.smtp_session import (
    BANNED,
    LOCAL_ERROR,
    STRUCTURE_TOO_LARGE,
    SmtpService,
    SmtpSession,
)
from postel.store import Account, BlobRef, OverQuota, SenderPolicy, SpecialUse, Store
from postel.store.queue_api import NewQueuedMessage, NewRecipient

log = logging.getLogger(__name__)

AUTH_OK = smtp.Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = smtp.Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_CANCELLED = smtp.Reply(501, "5.0.0", "Authentication cancelled")
AUTH_MALFORMED = smtp.Reply(501, "5.5.2", "Cannot decode the response")
AUTH_UNSUPPORTED = smtp.Reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_LINE_TOO_LONG = smtp.Reply(500, "5.5.6", "Authentication Exchange line is too long")
"""A response line over SMTP_COMMAND_LINE_HARD_MAX. Spec: RFC 4954 §4."""
NOT_YOURS = smtp.Reply(550, "5.7.1", "Sender address not owned by the authenticated user")
"""MAIL FROM or From: naming a sender the account's policy does not allow.
Spec: RFC 6409 §6.1, RFC 3463 (5.7.1)."""
SENDING_LIMIT = smtp.Reply(450, "4.7.1", "Sending limit of this account reached, try later")
"""MAIL or RCPT past the account's hourly limit. Spec: RFC 5321 §4.2.2 (450, a
temporary refusal); RFC 3463 §3.8 (X.7.1, delivery not authorized)."""


class _AuthLineTooLong(Exception):
    """The client's AUTH response line passed the command line bound."""


class SubmissionService(SmtpService):
    """What every submission session shares (an SmtpService with the Authenticator).

    ``implicit_tls``: the listener is port 465 (TLS from the first octet)."""

    def __init__(
        self,
        *,
        config: Config,
        directory: Directory,
        inbound: InboundDelivery,
        store: Store,
        abuse: AbuseTracker,
        ssl_context: ssl.SSLContext | None,
        clock: Clock,
        shutdown: asyncio.Event,
        authenticator: Authenticator,
        implicit_tls: bool,
    ) -> None:
        super().__init__(
            config=config,
            directory=directory,
            inbound=inbound,
            store=store,
            abuse=abuse,
            ssl_context=ssl_context,
            clock=clock,
            shutdown=shutdown,
        )
        self.authenticator = authenticator
        self.implicit_tls = implicit_tls
        self.on_enqueued: Callable[[], None] | None = None
        """Called after a message was queued (wakes the delivery worker)."""
        cfg = self.core_config
        self.core_config = smtp.ServerConfig(
            hostname=cfg.hostname,
            message_size_max=cfg.message_size_max,
            recipients_max=cfg.recipients_max,
            errors_max=cfg.errors_max,
            bare_line_endings=cfg.bare_line_endings,
            tls_available=cfg.tls_available and not implicit_tls,
            requiretls=True,
            auth_required=True,
        )

    def __call__(self) -> SubmissionSession:
        return SubmissionSession(self)


class SubmissionSession(SmtpSession):
    """One submission connection. See the module docstring."""

    service: SubmissionService

    def __init__(self, service: SubmissionService) -> None:
        super().__init__(service)
        self.account: Account | None = None
        self.remote: list[tuple[str, smtp.RcptParams]] = []
        self._rcpt_params = smtp.RcptParams()
        """The parameters of the RCPT TO being resolved."""
        self._line_waiter: asyncio.Future[None] | None = None
        self._added: tuple[str, bytes] | None = None
        """The fields ``added_fields`` chose for the current transaction's queue id."""

    # -- offering AUTH ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername") or ("", 0)
        encrypted = transport.get_extra_info("sslcontext") is not None
        self.conn.offer_auth(self._offer(str(peername[0]), encrypted))
        super().connection_made(transport)

    def _offer(self, ip: str, encrypted: bool) -> tuple[str, ...]:
        """Every mechanism where passwords may be sent (``auth.plaintext_allowed``),
        none before TLS otherwise."""
        return MECHANISMS if plaintext_allowed(self.service.config.auth, ip, encrypted) else ()

    async def start_tls(self) -> None:
        await super().start_tls()
        if self.conn.tls_active:
            self.conn.offer_auth(MECHANISMS)
            self.account = None

    # -- input while an AUTH exchange waits for a line --------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._wake()

    def eof_received(self) -> bool | None:
        result = super().eof_received()
        self._wake()
        return result

    def _wake(self) -> None:
        if self._line_waiter is not None and not self._line_waiter.done():
            self._line_waiter.set_result(None)

    async def _auth_line(self) -> bytes:
        """The client's next line of the AUTH exchange. Raises _AuthLineTooLong,
        ConnectionError, TimeoutError (the command timeout)."""
        deadline = self.loop.time() + self.service.config.smtp.command_timeout
        while True:
            event = self.conn.next_event()
            if isinstance(event, smtp.AuthLine):
                if event.too_long:
                    raise _AuthLineTooLong
                return event.line
            if not isinstance(event, smtp.NeedData) or self.closing:
                raise ConnectionError("connection closed during AUTH")
            transport = self.transport
            if transport is not None and not self.write_paused and not transport.is_reading():
                # the core has taken what was held: read on while a long line is cut
                transport.resume_reading()
            self._line_waiter = self.loop.create_future()
            async with asyncio.timeout(max(deadline - self.loop.time(), 0.0)):
                await self._line_waiter

    # -- events -------------------------------------------------------------------------

    def dispatch(self, event: smtp.Event) -> Coroutine[Any, Any, None] | None:
        match event:
            case smtp.AuthRequested(mechanism=mechanism, initial_response=initial):
                return self.auth_step(mechanism, initial)
            case smtp.MailFrom(reverse_path=path):
                return self.mail_step(event, path)
            case smtp.RcptTo(forward_path=path, params=params):
                return self.submission_rcpt_step(path, params)
        return super().dispatch(event)

    async def auth_step(self, mechanism: str, initial: str | None) -> None:
        """Run one AUTH exchange. Spec: RFC 4954 §4, §6."""

        async def ask(challenge: bytes) -> bytes | Cancelled:
            self.send(smtp.Reply(334, None, base64.b64encode(challenge).decode("ascii")))
            self.flush()
            line = await self._auth_line()
            return CANCELLED if line == b"*" else decode_response(line)

        try:
            first = None if initial is None else decode_response(initial.encode("ascii"))
            if isinstance(first, Cancelled):
                self.send(AUTH_CANCELLED)
                return
            result = await self.service.authenticator.authenticate(
                self.peer.ip, mechanism, first, ask, protocol="submission"
            )
            # SMTP carries no data with success: SCRAM's server-final is one more 334,
            # answered by an empty line (RFC 4954 §4).
            if (
                result.account is not None
                and result.server_final is not None
                and await ask(result.server_final) != b""
            ):
                self.send(AUTH_CANCELLED)
                return
        except _AuthLineTooLong:
            self.send(AUTH_LINE_TOO_LONG)
            return
        except (SaslError, UnicodeEncodeError):
            self.send(AUTH_MALFORMED)
            return
        except UnsupportedMechanism:
            self.send(AUTH_UNSUPPORTED)
            return
        if result.cancelled:
            self.send(AUTH_CANCELLED)
            return
        if result.account is None:
            self.send(AUTH_FAILED)
            if result.banned:
                self.close_with(BANNED)
            return
        self.account = result.account
        self.send(AUTH_OK)

    async def _owned(self, address: str) -> bool:
        """True when ``address`` reaches exactly the authenticated account."""
        account = self.account
        if account is None or "@" not in address:
            return False
        try:
            resolution = await self.service.directory.resolve(address)
        except (StoreError, PermanentFailure):
            return False
        return isinstance(resolution, LocalRecipients) and all(
            t.account_id == account.id for t in resolution.accounts
        )

    async def _sender_allowed(self, address: str | None) -> bool:
        """Whether the account's ``SenderPolicy`` lets it send as ``address`` (None:
        the null reverse-path, allowed by ``any`` only). Spec: RFC 6409 §6.1."""
        account = self.account
        if account is None:
            return False
        policy = account.sender_policy
        if policy is SenderPolicy.ANY:
            return True
        if address is None:
            return False
        if await self._owned(address):
            return True
        return policy is SenderPolicy.DOMAIN and _same_domain(address, account.address)

    async def mail_step(self, event: smtp.MailFrom, path: smtp.Path) -> None:
        """MAIL FROM: a sender the account's policy allows (its own addresses and
        aliases by default). Spec: RFC 6409 §6.1."""
        self.remote = []
        mailbox = None if path.mailbox is None else str(path.mailbox)
        if not await self._sender_allowed(mailbox):
            log.info(
                "submission.sender_refused",
                extra={
                    "ip": self.peer.ip,
                    "user": self.account.address if self.account else "",
                    "mail_from": str(path.mailbox) if path.mailbox else "<>",
                },
            )
            self.send(NOT_YOURS)
            return
        account = self.account
        if account is not None and not self.service.abuse.accounts.may_send_message(
            account.address
        ):
            self._limit_reached(AccountLimit.MESSAGES)
            return
        super_step = super().dispatch(event)
        assert super_step is None  # the port-25 MAIL handling answers at once

    async def submission_rcpt_step(self, path: smtp.Path, params: smtp.RcptParams) -> None:
        """RCPT TO within the account's recipient limit, its DSN parameters kept.
        Spec: RFC 6409 §5; RFC 3461 §4.1-4.2."""
        account, txn = self.account, self.txn
        if account is not None and txn is not None:
            pending = len(self.remote) + len(txn.recipients)
            if not self.service.abuse.accounts.may_add_recipient(account.address, pending):
                self._limit_reached(AccountLimit.RECIPIENTS)
                return
        self._rcpt_params = params
        await self.rcpt_step(path, params)

    def _limit_reached(self, limit: AccountLimit) -> None:
        usage = self.service.abuse.accounts.usage(self.account.address if self.account else "")
        log.warning(
            "submission.limit",
            extra={
                "ip": self.peer.ip,
                "account": self.account.address if self.account else "",
                "limit": str(limit),
                "messages": usage.messages,
                "recipients": usage.recipients,
            },
        )
        self.send(SENDING_LIMIT)

    async def recipient(self, path: smtp.Path) -> smtp.Reply:
        """Local recipients as inbound; any other domain is relayed for the
        authenticated user (queued). Spec: RFC 6409 §4.3, RFC 5321 §3.6."""
        if path.mailbox is None:
            return await super().recipient(path)
        address = f"{path.mailbox.local_part}@{path.mailbox.domain}"
        if str(path.mailbox.domain).startswith("["):
            # An address literal names a host, not a domain with MX records: the
            # delivery path routes by DNS only. Spec: RFC 5321 §4.1.3, §5.1.
            return smtp.Reply(550, "5.1.2", "Address literals are not relayed")
        try:
            resolution = await self.service.directory.resolve(address)
        except StoreError:
            return smtp.Reply(451, "4.3.0", "Temporary lookup failure")
        params, self._rcpt_params = self._rcpt_params, smtp.RcptParams()
        if isinstance(resolution, NotLocal):
            self.remote.append((address, params))
            return smtp.Reply(250, "2.1.5", "Recipient OK (relayed)")
        # Alias targets at other domains go out like any relayed recipient (the sender
        # is ours: no SRS), the alias kept as the original recipient for DSNs.
        remote = resolution.remote if isinstance(resolution, Forwarded | LocalRecipients) else ()
        if remote:
            orcpt = params.orcpt or smtp.Orcpt("rfc822", address)
            self.remote.extend((target, replace(params, orcpt=orcpt)) for target in remote)
        if isinstance(resolution, Forwarded):
            return smtp.Reply(250, "2.1.5", "Recipient OK (forwarded)")
        return await super().recipient(path)

    async def complete(self) -> smtp.Reply:
        """Deliver and queue (``_complete``); once accepted, count the message against
        the account's limits. Spec: RFC 6409 §5."""
        txn = self.txn
        assert txn is not None
        count = len(self.remote) + len(txn.recipients)
        reply = await self._complete()
        if reply.code == 250 and self.account is not None:
            self.service.abuse.accounts.record(self.account.address, count)
            if self.service.config.submission.copy_to_sent and txn.blob is not None:
                await self._copy_to_sent(self.account, txn.blob, bytes(txn.head), txn.queue_id)
        return reply

    async def _copy_to_sent(
        self, account: Account, blob: BlobRef, head: bytes, queue_id: QueueId
    ) -> None:
        """File the accepted message, with the fields postel added, in the account's
        \\Sent mailbox (or "Sent"), marked \\Seen. Best effort: the message is already
        accepted; a failure is logged. Spec: RFC 6409 §8; RFC 6154 §2."""
        store = self.service.store
        try:
            boxes = await store.list_mailboxes(account.id)
            sent = next((b.name for b in boxes if b.special_use is SpecialUse.SENT), "Sent")
            await self.service.inbound.file_copy(
                account.id,
                sent,
                blob,
                prefix=self.added_fields(head),
                flags=frozenset({"\\Seen"}),
                queue_id=queue_id,
            )
        except OverQuota as exc:  # the sender's own mailbox is full: no copy
            log.warning(
                "submission.sent_copy_over_quota", extra={"queue_id": queue_id, "error": str(exc)}
            )
        except (StoreError, OSError):
            log.exception("submission.sent_copy_failed", extra={"queue_id": queue_id})

    async def _complete(self) -> smtp.Reply:
        """Check the From: addresses, then deliver locally and queue the rest before
        the 250. Spec: RFC 6409 §6.1 (sender), RFC 5321 §6.1 (a 250 is a promise)."""
        txn = self.txn
        assert txn is not None
        if not await self._from_allowed(bytes(txn.head)):
            self.abort()
            return NOT_YOURS
        remote, self.remote = self.remote, []
        if not remote:
            return await super().complete()
        writer = txn.writer or self.service.store.blob_writer()
        txn.writer = None
        size = writer.size
        local_rcpts = [r.address for r in txn.recipients]
        try:
            ref = txn.blob = await writer.commit()
        except (StoreError, OSError):
            writer.abort()
            return LOCAL_ERROR
        received = received_field(
            from_helo=self.helo,
            from_ip=self.peer.ip,
            from_rdns=None,
            by_host=self.service.config.hostname,
            protocol=self.protocol(txn),
            queue_id=str(txn.queue_id),
            recipient=None,
            tls=self.tls,
            date=self.service.clock.now(),
        )
        added = self.added_fields(bytes(txn.head))
        try:
            signatures = await self._dkim_signatures(bytes(txn.head), added, ref)
        except (StoreError, OSError, SigningError):
            log.exception("submission.dkim_failed", extra={"queue_id": txn.queue_id})
            return LOCAL_ERROR
        message = NewQueuedMessage(
            queue_id=str(txn.queue_id),
            blob=ref,
            reverse_path=txn.reverse_path,
            trace_prefix=received + signatures + added,
            envid=txn.params.envid,
            ret=txn.params.ret,
            smtputf8=txn.params.smtputf8,
            requiretls=txn.params.requiretls,
        )
        recipients = [
            NewRecipient(
                address=a,
                domain=to_a_label(a.rsplit("@", 1)[1]).lower(),
                notify=p.notify,
                orcpt=p.orcpt,
            )
            for a, p in remote
        ]
        if txn.recipients:
            # Local recipients too, first: the same committed blob is delivered to them,
            # so a refusal (a full mailbox) leaves nothing queued for a retry to repeat.
            local = await self._deliver_committed(ref)
            if local.code != 250:
                return local
        self.txn = None
        try:
            await self.service.store.enqueue(message, recipients)
        except StoreError:
            log.exception("submission.enqueue_failed", extra={"queue_id": txn.queue_id})
            return LOCAL_ERROR
        if self.service.on_enqueued is not None:
            self.service.on_enqueued()
        log.info(
            "submission.queued",
            extra={"queue_id": txn.queue_id, "rcpt": ",".join(a for a, _ in remote)},
        )
        result = f"queued for {len(remote)} remote recipient(s)"
        if local_rcpts:
            result = f"delivered to {len(local_rcpts)} local recipient(s), " + result
        rcpts = [*local_rcpts, *(a for a, _ in remote)]
        self.log_line(txn.queue_id, txn.reverse_path, rcpts, size, result)
        return smtp.Reply(250, "2.0.0", f"Ok: queued as {txn.queue_id}")

    async def _deliver_committed(self, ref: BlobRef) -> smtp.Reply:
        """Deliver the committed blob to the local recipients: 250, 452 4.2.2 when an
        account has no room (nothing stored), or 451. Spec: RFC 3463 §3.3 (X.2.2)."""
        txn = self.txn
        assert txn is not None
        added = self.added_fields(bytes(txn.head))  # the same fields as the queued copy
        self.txn = None
        envelope = InboundEnvelope(
            queue_id=txn.queue_id,
            reverse_path=txn.reverse_path,
            recipients=tuple(txn.recipients),
            helo=self.helo,
            client_ip=self.peer.ip,
            client_rdns=None,
            protocol=self.protocol(txn),
            tls=self.tls,
            added_fields=added,
        )
        try:
            await self.service.inbound.deliver(envelope, ref)
        except OverQuota as exc:
            log.info("submission.over_quota", extra={"queue_id": txn.queue_id, "error": str(exc)})
            return MAILBOX_FULL
        except StructureTooLarge as exc:
            log.info("submission.refused", extra={"queue_id": txn.queue_id, "error": str(exc)})
            return STRUCTURE_TOO_LARGE
        except (StoreError, OSError):
            log.exception("submission.deliver_failed", extra={"queue_id": txn.queue_id})
            return LOCAL_ERROR
        return smtp.Reply(250, "2.0.0", f"Ok: queued as {txn.queue_id}")

    async def _dkim_signatures(self, head: bytes, added: bytes, ref: BlobRef) -> bytes:
        """``DKIM-Signature`` fields, one per key of the From: domain (none when the
        domain has no key), over the message as it will leave: the added fields and the
        blob. Signing runs in a thread. Spec: RFC 6376 §5, RFC 8463."""
        domain = _from_domain(head)
        if domain is None:
            return b""
        keys = load_keys(self.service.config.data_dir / "dkim", domain)
        if not keys:
            # Unsigned mail fails DMARC at receivers that require DKIM alignment.
            log.warning(
                "submission.unsigned",
                extra={"domain": domain, "hint": f"postel dkim generate {domain}"},
            )
            return b""
        content = ref.inline if ref.inline is not None else await self.service.store.read_blob(ref)
        message = added + content
        fields = [await asyncio.to_thread(sign_message, message, key) for key in keys]
        return b"".join(fields)

    def added_fields(self, head: bytes) -> bytes:
        """Date and Message-ID when the client sent none. Spec: RFC 6409 §8.2, §8.3;
        RFC 5322 §3.6.1, §3.6.4."""
        txn = self.txn
        if txn is not None and self._added is not None and self._added[0] == txn.queue_id:
            return self._added[1]  # the same fields for every copy of one message
        header = split_header(head, 0, len(head))
        names = {f.name.lower() for f in header.fields}
        out = b""
        if b"date" not in names:
            date = email.utils.format_datetime(self.service.clock.now())
            out += b"Date: " + date.encode("ascii") + b"\r\n"
        if b"message-id" not in names:
            token = secrets.token_hex(12)
            host = self.service.config.hostname
            out += f"Message-ID: <{token}@{host}>\r\n".encode("ascii", "replace")
        if txn is not None:
            self._added = (txn.queue_id, out)
        return out

    def protocol(self, txn: Any) -> str:
        """The Received WITH value of authenticated submission: ESMTPA, ESMTPSA,
        UTF8SMTPA, UTF8SMTPSA. Spec: RFC 3848 §2, RFC 6531 §3.7.4."""
        base = super().protocol(txn)
        if self.account is None:
            return base
        return base[:-1] + "SA" if base.endswith("S") else base + "A"

    async def _from_allowed(self, head: bytes) -> bool:
        """Every From: address is a sender the account's policy allows (a refusal is
        logged as ``submission.sender_refused``). Spec: RFC 6409 §6.1."""
        account = self.account
        if account is not None and account.sender_policy is SenderPolicy.ANY:
            return True
        header = split_header(head, 0, len(head))
        froms = [f for f in header.fields if f.name.lower() == b"from"]
        if not froms:
            return True  # RFC 6409 §8.1 lets the MSA add one; none to check
        for field in froms:
            for address in parse_address_list(field.value):
                if address.mailbox is None or address.host is None:
                    continue  # group syntax markers
                text = (address.mailbox + b"@" + address.host).decode("utf-8", "replace")
                if not await self._sender_allowed(text):
                    log.info(
                        "submission.sender_refused",
                        extra={
                            "ip": self.peer.ip,
                            "user": account.address if account else "",
                            "header_from": text,
                        },
                    )
                    return False
        return True


def _same_domain(address: str, account_address: str) -> bool:
    """True when ``address`` is at the domain of ``account_address`` (compared as
    lower-case A-labels; an address literal or a malformed domain never is)."""
    domain = address.rpartition("@")[2]
    try:
        return to_a_label(domain) == to_a_label(account_address.rpartition("@")[2])
    except InvalidAddress:
        return False


def _from_domain(head: bytes) -> str | None:
    """The lower-case domain of the first From: address, or None."""
    header = split_header(head, 0, len(head))
    for field in header.fields:
        if field.name.lower() == b"from":
            for address in parse_address_list(field.value):
                if address.host:
                    return address.host.decode("ascii", "replace").lower()
    return None
