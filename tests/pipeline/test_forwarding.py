"""Forwarded copies: SRS-rewritten MAIL FROM, our Received field, an ARC Set sealed with
the alias domain's key that validates, one queue entry per sealing domain.

Spec: RFC 7208 Appendix D (SRS); RFC 8617 §5.1, §5.2; RFC 5321 §4.4.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from postel.clock import FixedClock
from postel.dkim import ChainValidation, KeyAlgorithm, dns_record, generate_key, verify_arc
from postel.dkim.keys import write_key
from postel.ids import QueueId
from postel.mail.authres import MethodResult, render
from postel.mail.srs import Srs
from postel.pipeline.forwarding import ForwardEnvelope, Forwarder, ForwardTarget, results_text
from postel.resolver import DnsNxDomain
from postel.store import BlobRef
from postel.store.queue_api import NewQueuedMessage, NewRecipient

CLOCK = FixedClock(dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC))
SECRET = b"s" * 32
CONTENT = (
    b"From: user@r.test\r\nTo: fwd@a.test\r\nSubject: hi\r\n"
    b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@r.test>\r\n\r\nHello.\r\n"
)
FIELD = render(
    "mx.a.test",
    [
        MethodResult("spf", "pass", None, (("smtp.mailfrom", "user@r.test"),)),
        MethodResult("dkim", "none"),
        MethodResult("dmarc", "pass", None, (("header.from", "r.test"),)),
        MethodResult("arc", "none"),
        MethodResult("iprev", "permerror", "no PTR", (("policy.iprev", "127.0.0.4"),)),
    ],
)


class FakeStore:
    def __init__(self) -> None:
        self.queued: list[tuple[NewQueuedMessage, list[NewRecipient]]] = []

    async def enqueue(self, message: NewQueuedMessage, recipients: Sequence[NewRecipient]) -> int:
        self.queued.append((message, list(recipients)))
        return len(self.queued)

    async def read_blob(self, ref: BlobRef) -> bytes:
        raise AssertionError("inline blobs only here")


class KeyResolver:
    def __init__(self, records: dict[str, str]) -> None:
        self.records = records

    async def txt(self, name: str) -> tuple[bytes, ...]:
        if name not in self.records:
            raise DnsNxDomain(name)
        return (self.records[name].encode(),)


def forwarder(tmp_path: Path, store: FakeStore, resolver: KeyResolver) -> Forwarder:
    return Forwarder(
        store,  # type: ignore[arg-type]
        Srs(SECRET, "a.test"),
        CLOCK,
        hostname="mx.a.test",
        authserv_id="mx.a.test",
        dkim_dir=tmp_path / "dkim",
        resolver=resolver,
    )


def envelope(reverse_path: str, auth_field: bytes | None = FIELD) -> ForwardEnvelope:
    return ForwardEnvelope(
        queue_id=QueueId("QID1"),
        reverse_path=reverse_path,
        helo="mx.r.test",
        client_ip="127.0.0.4",
        protocol="ESMTP",
        tls=None,
        auth_field=auth_field,
    )


def blob(content: bytes = CONTENT) -> BlobRef:
    return BlobRef(key="k", size=len(content), inline=content)


def test_results_text_unfolds_the_field() -> None:
    text = results_text(FIELD)
    assert text.startswith("spf=pass smtp.mailfrom=user@r.test; dkim=none;")
    assert 'arc=none; iprev=permerror reason="no PTR" policy.iprev=127.0.0.4' in text
    assert "\r" not in text and "\n" not in text


async def test_forwarded_copy_is_rewritten_received_and_sealed(tmp_path: Path) -> None:
    key = generate_key("a.test", "s1", KeyAlgorithm.RSA)
    write_key(tmp_path / "dkim", key)
    name, value = dns_record(key)
    store = FakeStore()
    fwd = forwarder(tmp_path, store, KeyResolver({name: value}))
    ids = await fwd.forward(
        envelope("user@r.test"),
        [
            ForwardTarget("fwd@a.test", "a.test", ("bob@b.test", "carol@c.test")),
            ForwardTarget("other@a.test", "a.test", ("BOB@b.test",)),
        ],
        blob(),
    )
    assert ids == ("QID1",)
    ((message, recipients),) = store.queued
    assert [(r.address, r.domain) for r in recipients] == [
        ("bob@b.test", "b.test"),
        ("carol@c.test", "c.test"),
    ]
    assert message.reverse_path.startswith("SRS0=") and message.reverse_path.endswith("@a.test")
    assert Srs(SECRET, "a.test").reverse(message.reverse_path, 20_786) == "user@r.test"
    prefix = message.trace_prefix
    assert prefix.startswith(b"ARC-Seal: i=1;")
    assert b"\r\nReceived: from mx.r.test" in prefix and b"by mx.a.test" in prefix
    assert b"ARC-Authentication-Results: i=1; mx.a.test;" in prefix
    assert b"spf=pass" in prefix and b"arc=none" in prefix
    chain = await verify_arc(prefix + CONTENT, KeyResolver({name: value}))
    assert chain.cv is ChainValidation.PASS
    assert chain.oldest_pass_domain == "a.test"


async def test_null_sender_stays_null_and_groups_by_domain(tmp_path: Path) -> None:
    store = FakeStore()
    fwd = forwarder(tmp_path, store, KeyResolver({}))
    ids = await fwd.forward(
        envelope(""),
        [
            ForwardTarget("SRS0=x@a.test", "a.test", ("user@r.test",)),
            ForwardTarget("list@c.test", "c.test", ("dave@d.test",)),
        ],
        blob(),
    )
    assert len(ids) == 2 and ids[0] == "QID1" and ids[1] != "QID1"
    assert [m.reverse_path for m, _ in store.queued] == ["", ""]
    # No DKIM key: forwarded unsealed, with our Received field only.
    assert all(m.trace_prefix.startswith(b"Received: ") for m, _ in store.queued)


async def test_without_a_verdict_the_seal_attests_only_the_chain(tmp_path: Path) -> None:
    key = generate_key("a.test", "s1", KeyAlgorithm.RSA)
    write_key(tmp_path / "dkim", key)
    store = FakeStore()
    fwd = forwarder(tmp_path, store, KeyResolver(dict([dns_record(key)])))
    await fwd.forward(
        envelope("user@r.test", auth_field=None),
        [ForwardTarget("fwd@a.test", "a.test", ("bob@b.test",))],
        blob(),
    )
    prefix = store.queued[0][0].trace_prefix.replace(b"\r\n ", b" ")
    assert b"ARC-Authentication-Results: i=1; mx.a.test; arc=none\r\n" in prefix


async def test_srs_reverse_and_own_domain_senders(tmp_path: Path) -> None:
    fwd = forwarder(tmp_path, FakeStore(), KeyResolver({}))
    rewritten = fwd.rewrite("user@r.test")
    assert fwd.is_srs(rewritten) and fwd.reverse(rewritten) == "user@r.test"
    assert fwd.rewrite("") == ""
    assert fwd.rewrite("me@a.test") == "me@a.test"
