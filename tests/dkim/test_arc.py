"""ARC sealing and validation with postel's keys: a two-hop chain, tampering,
bounds, DNS trouble and refused inputs.

Spec: RFC 8617 §4.2.1, §5.1, §5.2.
"""

from __future__ import annotations

import datetime as dt

import pytest

from postel.clock import FixedClock
from postel.dkim import (
    ARC_FIELDS_MAX,
    ArcSealError,
    ChainValidation,
    DkimKey,
    KeyAlgorithm,
    dns_record,
    generate_key,
    seal_message,
    verify_arc,
)
from postel.resolver import DnsNxDomain, DnsTempError

MESSAGE = (
    b"From: Alice <alice@example.test>\r\nTo: list@lists.test\r\nSubject: hello\r\n"
    b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\n"
    b"Hello list.\r\n"
)
CLOCK = FixedClock(dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC))
HOP1 = generate_key("lists.test", "arc1", KeyAlgorithm.RSA)
HOP2 = generate_key("relay.test", "arc2", KeyAlgorithm.RSA)


class ScriptedResolver:
    def __init__(self, *keys: object, errors: dict[str, Exception] | None = None) -> None:
        self.records: dict[str, tuple[bytes, ...]] = {}
        for key in keys:
            name, value = dns_record(key)  # type: ignore[arg-type]
            self.records[name] = (value.encode(),)
        self.errors = errors or {}

    async def txt(self, name: str) -> tuple[bytes, ...]:
        if name in self.errors:
            raise self.errors[name]
        if name not in self.records:
            raise DnsNxDomain(name)
        return self.records[name]


def hop(message: bytes, key: DkimKey, results: str, authserv_id: str) -> bytes:
    return (
        seal_message(message, key, authserv_id=authserv_id, results=results, clock=CLOCK) + message
    )


async def test_message_without_arc_is_none() -> None:
    result = await verify_arc(MESSAGE, ScriptedResolver())
    assert result.cv is ChainValidation.NONE and result.instances == 0


async def test_two_hop_chain_passes() -> None:
    first = hop(MESSAGE, HOP1, "arc=none; dkim=pass header.d=example.test", "lists.test")
    assert first.startswith(b"ARC-Seal: i=1;")
    resolver = ScriptedResolver(HOP1, HOP2)
    one = await verify_arc(first, resolver)
    assert one.cv is ChainValidation.PASS and one.instances == 1
    second = hop(first, HOP2, f"arc={one.cv.value}", "relay.test")
    two = await verify_arc(second, resolver)
    assert two.cv is ChainValidation.PASS and two.instances == 2
    assert [(s.instance, s.seal_domain, s.ams_valid) for s in two.sets] == [
        (2, "relay.test", True),
        (1, "lists.test", True),
    ]
    assert two.oldest_pass == 0 and two.oldest_pass_domain == "lists.test"
    assert b"i=2; relay.test;" in second.split(b"ARC-Authentication-Results:")[1][:40]


async def test_changed_body_fails_the_chain() -> None:
    sealed = hop(MESSAGE, HOP1, "arc=none", "lists.test")
    result = await verify_arc(sealed.replace(b"Hello list.", b"Buy now."), ScriptedResolver(HOP1))
    assert result.cv is ChainValidation.FAIL


async def test_missing_key_fails_and_temporary_dns_trouble_is_flagged() -> None:
    sealed = hop(MESSAGE, HOP1, "arc=none", "lists.test")
    name = dns_record(HOP1)[0]
    assert (await verify_arc(sealed, ScriptedResolver())).cv is ChainValidation.FAIL
    result = await verify_arc(sealed, ScriptedResolver(errors={name: DnsTempError("SERVFAIL")}))
    assert result.cv is ChainValidation.FAIL and result.dns_temporary_failure


async def test_too_many_arc_fields_fail_without_dns() -> None:
    fields = b"ARC-Authentication-Results: i=1; x.test; arc=none\r\n" * (ARC_FIELDS_MAX + 1)
    result = await verify_arc(fields + MESSAGE, ScriptedResolver())
    assert result.cv is ChainValidation.FAIL and str(ARC_FIELDS_MAX) in result.reason


async def test_sealing_discards_foreign_authentication_results() -> None:
    """An Authentication-Results field claiming our authserv-id in the received
    message is not consolidated into our AAR. Spec: RFC 8601 §5."""
    forged = b"Authentication-Results: lists.test; dkim=pass header.d=bank.test\r\n" + MESSAGE
    sealed = seal_message(forged, HOP1, authserv_id="lists.test", results="arc=none", clock=CLOCK)
    assert b"bank.test" not in sealed
    assert (await verify_arc(sealed + forged, ScriptedResolver(HOP1))).cv is ChainValidation.PASS


@pytest.mark.parametrize(
    ("authserv_id", "results"),
    [("lists.test", "arc=none\r\nX-Injected: yes"), ("lists\n.test", "arc=none"), ("", "arc=none")],
)
def test_header_injection_is_refused(authserv_id: str, results: str) -> None:
    with pytest.raises(ArcSealError):
        seal_message(MESSAGE, HOP1, authserv_id=authserv_id, results=results, clock=CLOCK)


def test_ed25519_key_is_refused() -> None:
    key = generate_key("lists.test", "ed", KeyAlgorithm.ED25519)
    with pytest.raises(ArcSealError, match="rsa-sha256"):
        seal_message(MESSAGE, key, authserv_id="lists.test", results="arc=none", clock=CLOCK)


def test_chain_without_arc_result_is_not_extended() -> None:
    sealed = hop(MESSAGE, HOP1, "arc=none", "lists.test")
    with pytest.raises(ArcSealError):
        seal_message(sealed, HOP2, authserv_id="relay.test", results="spf=pass", clock=CLOCK)


def test_first_seal_with_a_pass_claim_is_refused() -> None:
    with pytest.raises(ArcSealError):
        seal_message(MESSAGE, HOP1, authserv_id="lists.test", results="arc=pass", clock=CLOCK)
