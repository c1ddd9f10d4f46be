"""DKIM verification behaviour: result mapping (RFC 8601 §2.7.1), RFC 8301 key and
hash rules, l=, the signature bound, DNS failures, hostile input, and one run against a
real authoritative DNS server (Knot) through ``DnsPythonResolver``.

Spec: RFC 6376 §3.5, §6.1, §8.2; RFC 8301 §3; RFC 8601 §2.7.1.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

import dkim
from postel.clock import FixedClock, SystemClock
from postel.dkim import (
    DKIM_SIGNATURES_MAX,
    DkimLimits,
    DkimStatus,
    KeyAlgorithm,
    dns_record,
    generate_key,
    sign_message,
    verify_message,
)
from postel.dkim import verify as verify_module
from postel.resolver import DnsNxDomain, DnsPythonResolver, DnsTempError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dnsserver import DnsServer, DnsServerMissing

MESSAGE = (
    b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: hello\r\n"
    b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\n"
    b"Hello Bob.\r\n"
)
RSA = generate_key("example.test", "rsa1", KeyAlgorithm.RSA)
ED = generate_key("example.test", "ed1", KeyAlgorithm.ED25519)


class ScriptedResolver:
    """TXT answers (name -> records) or errors (name -> exception); else NXDOMAIN."""

    def __init__(
        self,
        records: Mapping[str, tuple[bytes, ...]] | None = None,
        errors: dict[str, Exception] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.records = dict(records or {})
        self.errors = errors or {}
        self.delay = delay
        self.queries: list[str] = []

    async def txt(self, name: str) -> tuple[bytes, ...]:
        self.queries.append(name)
        if self.delay:
            await asyncio.sleep(self.delay)
        if name in self.errors:
            raise self.errors[name]
        if name not in self.records:
            raise DnsNxDomain(name)
        return self.records[name]


def published(*keys: object) -> ScriptedResolver:
    records = {}
    for key in keys:
        name, value = dns_record(key)  # type: ignore[arg-type]
        records[name] = (value.encode(),)
    return ScriptedResolver(records)


def raw_sign(message: bytes, private: bytes, **options: object) -> bytes:
    field = dkim.sign(
        message,
        b"raw",
        b"example.test",
        private,
        include_headers=[b"from", b"to", b"subject"],
        **options,
    )
    return bytes(field) + message


def rsa_pair(bits: int) -> tuple[bytes, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


RAW_PEM, RAW_RECORD = rsa_pair(1024)
WEAK_PEM = b"""-----BEGIN RSA PRIVATE KEY-----
MIIBOQIBAAJBAMmBrwNrbBv2QVBxWNAJli6rXa/5QTUTsMoZ9lIboaMYtrAZ7Uoc
gCLPApYpNSmpkNXFk3OhY5zUAPsrHWTWnCUCAwEAAQJAGj1O4u0cGNAKVUVNQVne
OpmKC54zhYvY25hh4PNEKw6TmMXi5Z2D1zfuGwCBP2H9NXZwk2EQjE56MdPYEcz7
CQIhAOxNs1WU913xZWczq9UWVK1QX8FxMCaHZdXJbzMC/j9LAiEA2k16V0mfABf7
PGJZ+HeL8ls7SFNjBZtefrLXwafyvE8CIGcJ5pX90/N5zE65AEd1akz8jBSMp4NV
bPlQ0ZU7y+OLAiAQ4aTwUxUkoLYg+UoT2MrNtxhig3BI4rbv/UyKAT7YKQIga4Vl
4Ztz73a2luNaLMj0GQ0sz5KsheBnpBMn4bBFv5s=
-----END RSA PRIVATE KEY-----
"""
"""A 512-bit RSA key (made with ``openssl genrsa 512``; cryptography refuses to make one)."""
RAW = {"raw._domainkey.example.test": (RAW_RECORD,)}


async def test_unsigned_message_has_no_results() -> None:
    assert await verify_message(MESSAGE, ScriptedResolver()) == []


async def test_rsa_and_ed25519_signatures_by_postel_pass() -> None:
    message = sign_message(MESSAGE, ED) + sign_message(MESSAGE, RSA) + MESSAGE
    results = await verify_message(message, published(RSA, ED))
    assert [(r.result, r.header_a, r.key_bits) for r in results] == [
        (DkimStatus.PASS, "ed25519-sha256", 256),
        (DkimStatus.PASS, "rsa-sha256", 2048),
    ]
    assert results[0].header_i == "@example.test" and results[0].header_s == "ed1"


async def test_rsa_sha1_is_permerror() -> None:
    """RFC 8301 §3.1: rsa-sha1 signatures are never valid."""
    resolver = ScriptedResolver(RAW)
    (result,) = await verify_message(
        raw_sign(MESSAGE, RAW_PEM, signature_algorithm=b"rsa-sha1"), resolver
    )
    assert result.result is DkimStatus.PERMERROR and "8301" in result.reason
    assert resolver.queries == []


async def test_rsa_key_below_1024_bits_is_permerror() -> None:
    """RFC 8301 §3.2: keys of fewer than 1024 bits are never valid."""
    weak = serialization.load_pem_private_key(WEAK_PEM, password=None)
    public = weak.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem, record = WEAK_PEM, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    resolver = ScriptedResolver({"raw._domainkey.example.test": (record,)})
    (result,) = await verify_message(raw_sign(MESSAGE, pem), resolver)
    assert result.result is DkimStatus.PERMERROR and "512 bits" in result.reason


async def test_dns_temporary_failure_is_temperror() -> None:
    name = "raw._domainkey.example.test"
    resolver = ScriptedResolver(errors={name: DnsTempError("SERVFAIL")})
    (result,) = await verify_message(raw_sign(MESSAGE, RAW_PEM), resolver)
    assert result.result is DkimStatus.TEMPERROR


async def test_slow_dns_is_temperror() -> None:
    resolver = ScriptedResolver(RAW, delay=1.0)
    (result,) = await verify_message(
        raw_sign(MESSAGE, RAW_PEM), resolver, limits=DkimLimits(timeout_s=0.05)
    )
    assert result.result is DkimStatus.TEMPERROR and "timed out" in result.reason


@pytest.mark.parametrize("records", [{}, {"raw._domainkey.example.test": ()}])
async def test_missing_key_record_is_permerror(records: dict[str, tuple[bytes, ...]]) -> None:
    (result,) = await verify_message(raw_sign(MESSAGE, RAW_PEM), ScriptedResolver(records))
    assert result.result is DkimStatus.PERMERROR and "no key record" in result.reason


async def test_revoked_key_is_permerror() -> None:
    resolver = ScriptedResolver({"raw._domainkey.example.test": (b"v=DKIM1; k=rsa; p=",)})
    (result,) = await verify_message(raw_sign(MESSAGE, RAW_PEM), resolver)
    assert result.result is DkimStatus.PERMERROR and "revoked" in result.reason


async def test_changed_body_fails() -> None:
    signed = sign_message(MESSAGE, RSA) + MESSAGE.replace(b"Hello", b"Goodbye")
    (result,) = await verify_message(signed, published(RSA))
    assert result.result is DkimStatus.FAIL and "body hash" in result.reason


async def test_body_length_tag_reports_unsigned_content() -> None:
    """RFC 6376 §8.2: content past l= is not covered by the signature."""
    signed = raw_sign(MESSAGE, RAW_PEM, length=True)
    (plain,) = await verify_message(signed, ScriptedResolver(RAW))
    assert plain.result is DkimStatus.PASS and plain.body_length_limited
    assert not plain.unsigned_body_content
    (appended,) = await verify_message(signed + b"Click here.\r\n", ScriptedResolver(RAW))
    assert appended.result is DkimStatus.PASS and appended.unsigned_body_content


async def test_expired_signature_is_permerror_by_the_injected_clock() -> None:
    signed = sign_message(MESSAGE, RSA) + MESSAGE
    t_value = int(dkim.util.parse_tag_value(signed.split(b":", 1)[1].split(b"\r\nFrom")[0])[b"t"])
    with_x = signed.replace(b"t=", f"x={t_value + 60}; t=".encode(), 1)
    later = FixedClock(dt.datetime.fromtimestamp(t_value + 3600, dt.UTC))
    (result,) = await verify_message(with_x, published(RSA), clock=later)
    assert result.result is DkimStatus.PERMERROR and "expired" in result.reason


@pytest.mark.parametrize(
    ("change", "status", "why"),
    [
        ((b"v=1", b"v=2"), DkimStatus.PERMERROR, "version"),
        ((b"d=example.test", b"d=exa(mple.test"), DkimStatus.NEUTRAL, "d="),
        ((b"bh=", b"xx="), DkimStatus.NEUTRAL, "bh"),
        ((b"c=relaxed/relaxed", b"c=odd/relaxed"), DkimStatus.NEUTRAL, "c="),
        ((b"i=@example.test", b"i=@other.test"), DkimStatus.PERMERROR, "i="),
        ((b"a=rsa-sha256", b"a=rsa-md5"), DkimStatus.PERMERROR, "algorithm"),
        ((b"; s=rsa1", b"; s=rsa1; s=rsa1"), DkimStatus.NEUTRAL, "syntax"),
    ],
)
async def test_malformed_signature_results(
    change: tuple[bytes, bytes], status: DkimStatus, why: str
) -> None:
    field = sign_message(MESSAGE, RSA)
    assert change[0] in field
    (result,) = await verify_message(field.replace(*change, 1) + MESSAGE, published(RSA))
    assert result.result is status and why in result.reason


async def test_from_not_signed_is_permerror() -> None:
    field = dkim.sign(MESSAGE, b"raw", b"example.test", RAW_PEM, include_headers=[b"from"])
    unsigned_from = bytes(field).replace(b"h=from", b"h=to")
    (result,) = await verify_message(unsigned_from + MESSAGE, ScriptedResolver(RAW))
    assert result.result is DkimStatus.PERMERROR and "From" in result.reason


async def test_signatures_past_the_bound_are_reported_not_evaluated() -> None:
    field = sign_message(MESSAGE, RSA)
    resolver = published(RSA)
    results = await verify_message(field * (DKIM_SIGNATURES_MAX + 3) + MESSAGE, resolver)
    assert len(results) == DKIM_SIGNATURES_MAX + 1
    assert all(r.result is DkimStatus.PASS for r in results[:-1])
    assert results[-1].result is DkimStatus.POLICY and "3 more" in results[-1].reason
    assert len(set(resolver.queries)) == 1


async def test_malformed_header_block_is_permerror() -> None:
    message = sign_message(MESSAGE, RSA) + b"not a header line\r\n" + MESSAGE
    (result,) = await verify_message(message, published(RSA))
    assert result.result is DkimStatus.PERMERROR


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_hostile_signature_field_never_raises(noise: bytes) -> None:
    field = b"DKIM-Signature: " + noise.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
    results = asyncio.run(verify_message(field + MESSAGE, published(RSA)))
    assert len(results) <= 1
    assert all(r.result is not DkimStatus.PASS for r in results)


# --- A real DNS server ------------------------------------------------------------------
SOA = "$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n"


def zone_txt(name: str, value: str, origin: str) -> str:
    chunks = " ".join(f'"{value[i : i + 200]}"' for i in range(0, len(value), 200))
    return f"{name.removesuffix('.' + origin)} IN TXT {chunks}\n"


async def test_postel_signature_verifies_through_knot_dns() -> None:
    """Keys published in a real zone, fetched by DnsPythonResolver; a SERVFAIL zone
    gives temperror. Spec: RFC 6376 §3.6.2, §6.1.2."""
    zone = SOA + "".join(zone_txt(*dns_record(key), "example.test") for key in (RSA, ED))
    try:
        server = DnsServer({"example.test": zone}, servfail_zones=["broken.test"]).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        resolver = DnsPythonResolver([server.nameserver], clock=SystemClock())
        message = sign_message(MESSAGE, RSA) + sign_message(MESSAGE, ED) + MESSAGE
        results = await verify_message(message, resolver)
        assert [(r.result, r.key_bits) for r in results] == [
            (DkimStatus.PASS, 2048),
            (DkimStatus.PASS, 256),
        ]
        broken = generate_key("broken.test", "s1", KeyAlgorithm.ED25519)
        (temp,) = await verify_message(sign_message(MESSAGE, broken) + MESSAGE, resolver)
        assert temp.result is DkimStatus.TEMPERROR
    finally:
        server.stop()


_OLD_BASE64 = re.compile(rb"^[A-Za-z0-9+/\s]*=?\s*=?\s*$")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"A", b"z", b"+", b"/", b"=", b" ", b"\t", b"\r\n ", b"\n", b"!"]),
        max_size=14,
    ).map(b"".join)
)
def test_base64_tag_check_is_the_definition(value: bytes) -> None:
    """The linear pattern accepts exactly what ``[b64 WSP]* [= WSP*]{0,2}`` does."""
    assert (verify_module._BASE64.fullmatch(value) is not None) == (
        _OLD_BASE64.match(value) is not None
    )


@pytest.mark.parametrize("filler", [b" ", b"\r\n ", b"= "])
def test_a_huge_folded_tag_value_is_checked_at_once(filler: bytes) -> None:
    """Whitespace runs in b= or bh= cost linear time (a signature of 4 KB of spaces
    used to take seconds). Spec: RFC 6376 §8.4 (verifier cost)."""
    value = b"A" + filler * 50_000 + b"!"
    tags = {b"b": value, b"bh": b"AAAA"}
    assert verify_module._syntax_problem(tags, "example.test", "sel") == "b= or bh= is not base64"


@pytest.mark.parametrize(
    "filler",
    [b" " * 800, b"\r\n " * 400, b"=" * 800, b"\t=" * 400],
    ids=["spaces", "folds", "equals", "tab-equals"],
)
async def test_a_signature_of_whitespace_runs_is_judged_at_once(filler: bytes) -> None:
    """Tag values made of long whitespace (or '=') runs: the verdict comes back with no
    regular expression backtracking over them (the hang guard is far above the few
    milliseconds this takes). Spec: RFC 6376 §3.5, §8.4."""
    signature = (
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=sel; h=from;\r\n bh=AAAA; b=A"
        + b"\r\n ".join([filler] * 5)
        + b"!\r\n"
    )
    message = signature + b"From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n"
    (result,) = await asyncio.wait_for(verify_message(message, ScriptedResolver()), 30)
    assert result.result is DkimStatus.NEUTRAL
