"""DKIM verification against the conformance vectors in ``vectors/dkim`` (see its
SOURCE.md): the RFC 8463 Appendix A example, dkimpy's own test data, and 144
sign/mutate vectors; the key records are served by a scripted resolver.

Spec: RFC 6376 §3.4, §3.6.1, §6.1; RFC 8463 Appendix A; RFC 8301 §3.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

import dkim
from postel.clock import FixedClock
from postel.dkim import DkimKey, DkimResult, DkimStatus, KeyAlgorithm, sign_message
from postel.dkim.sign import SigningError
from postel.dkim.verify import verify_message
from postel.resolver import DnsNxDomain

VECTORS = Path(__file__).resolve().parent / "vectors" / "dkim"
DATA = VECTORS / "dkimpy-data"
GENERATED = VECTORS / "generated-by-dkimpy"
RFC8463 = VECTORS / "rfc8463-appendix-a"
EXPECTED = json.loads((GENERATED / "expected.json").read_text())


class ScriptedResolver:
    """TXT answers from a table (name -> records); any other name is NXDOMAIN."""

    def __init__(self, records: Mapping[str, str | bytes]) -> None:
        self.records = {
            name.rstrip(".").lower(): value if isinstance(value, bytes) else value.encode()
            for name, value in records.items()
        }
        self.queries: list[str] = []

    async def txt(self, name: str) -> tuple[bytes, ...]:
        name = name.rstrip(".").lower()
        self.queries.append(name)
        if name not in self.records:
            raise DnsNxDomain(name)
        return (self.records[name],)


def crlf(data: bytes) -> bytes:
    """LF line ends to CRLF (dkimpy's data files are LF; SOURCE.md)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def data_file(name: str) -> bytes:
    return (DATA / name).read_bytes()


def key_record(name: str) -> str:
    return data_file(name).decode().strip()


FOOTBALL = {
    "brisbane._domainkey.football.example.com": (
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    ),
    "test._domainkey.football.example.com": key_record("test.txt"),
}


async def verify(
    message: bytes, records: Mapping[str, str | bytes], at: int | None = None
) -> list[DkimResult]:
    clock = FixedClock(dt.datetime.fromtimestamp(at, dt.UTC)) if at is not None else None
    return await verify_message(message, ScriptedResolver(records), clock=clock)


# --- RFC 8463 Appendix A ----------------------------------------------------------------
def rfc8463_records() -> dict[str, str | bytes]:
    records: dict[str, str | bytes] = {}
    for line in (RFC8463 / "dns-records.txt").read_text().splitlines():
        if line.startswith(";") or not line.strip():
            continue
        name, _, rest = line.partition(" IN TXT ")
        records[name.strip()] = rest.strip().strip('"')
    return records


async def test_rfc8463_appendix_a_both_signatures_pass() -> None:
    results = await verify((RFC8463 / "message.eml").read_bytes(), rfc8463_records())
    assert [(r.result, r.header_a, r.header_s, r.key_bits) for r in results] == [
        (DkimStatus.PASS, "ed25519-sha256", "brisbane", 256),
        (DkimStatus.PASS, "rsa-sha256", "test", 1024),
    ]
    assert {r.header_d for r in results} == {"football.example.com"}
    assert all(r.header_i == "@football.example.com" and len(r.header_b) == 8 for r in results)


# --- generated-by-dkimpy ----------------------------------------------------------------
@pytest.mark.parametrize("case", EXPECTED["cases"], ids=lambda case: case["file"][:-4])
async def test_generated_vector(case: dict[str, object], caplog: pytest.LogCaptureFixture) -> None:
    """The expected result; a failing signature is reported in the result, never as a
    WARNING or ERROR line (its cause is text the sender controls)."""
    caplog.set_level(logging.DEBUG, logger="postel")
    message = (GENERATED / str(case["file"])).read_bytes()
    (result,) = await verify(message, EXPECTED["dns"], at=EXPECTED["verify_time_unix"])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert result.result == case["expected"], result.reason
    assert result.header_a == case["algorithm"]
    assert result.body_length_limited is case["l_tag"]
    appended = case["mutation"] in ("body-text-appended", "body-extra-empty-lines-appended")
    if case["l_tag"] and case["mutation"] == "body-text-appended":
        assert result.unsigned_body_content, "content past l= must be reported"
    if not case["l_tag"] or not appended:
        assert not result.unsigned_body_content


# --- dkimpy's data ----------------------------------------------------------------------
async def test_dkimpy_rfc6376_signed_ed25519_and_rsa_pass() -> None:
    results = await verify(crlf(data_file("rfc6376.signed.msg")), FOOTBALL)
    assert [r.result for r in results] == [DkimStatus.PASS, DkimStatus.PASS]
    assert [r.header_a for r in results] == ["ed25519-sha256", "rsa-sha256"]


async def test_dkimpy_rfc6376_signed_rsa_passes() -> None:
    (result,) = await verify(crlf(data_file("rfc6376.signed.rsa.msg")), FOOTBALL)
    assert result.result is DkimStatus.PASS


async def test_dkimpy_signed_without_t_and_with_x_added_fails() -> None:
    results = await verify(crlf(data_file("rfc6376.signed.no_t.msg")), FOOTBALL)
    assert results and all(r.result is DkimStatus.FAIL for r in results)


async def test_dkimpy_exim_ed25519_prototype_passes() -> None:
    records: dict[str, str | bytes] = {"sed._domainkey.test.ex": key_record("eximtest.dns")}
    (result,) = await verify(crlf(data_file("ed25519test2.msg")), records)
    assert result.result is DkimStatus.PASS, result.reason
    assert (result.header_d, result.header_s, result.key_bits) == ("test.ex", "sed", 256)


async def test_dkimpy_bad_domain_is_neutral_without_a_lookup() -> None:
    resolver = ScriptedResolver({"test._domainkey.legitimate.com": key_record("test.txt")})
    (result,) = await verify_message(crlf(data_file("test.message.baddomain")), resolver)
    assert result.result is DkimStatus.NEUTRAL and "d=" in result.reason
    assert resolver.queries == []


def rsa_test_key(name: str = "test.private", domain: str = "example.com") -> DkimKey:
    return DkimKey(domain, "test", KeyAlgorithm.RSA, data_file(name), "")


def ed25519_test_key(domain: str = "example.com") -> bytes:
    return data_file("ed25519test.key").strip()


UNSIGNED = [
    "rfc6376.msg",
    "test.message",
    "test2.message",
    "test_extra.message",
    "message.mbox",
    "rfc6376.w1258.msg",
    "ed25519test.msg",
]


@pytest.mark.parametrize("name", UNSIGNED)
@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
async def test_dkimpy_unsigned_input_round_trip(name: str, algorithm: KeyAlgorithm) -> None:
    message = crlf(data_file(name))
    if algorithm is KeyAlgorithm.RSA:
        field = sign_message(message, rsa_test_key())
        record = key_record("test.txt")
    else:
        field = dkim.sign(
            message,
            b"test",
            b"example.com",
            ed25519_test_key(),
            signature_algorithm=b"ed25519-sha256",
            canonicalize=(b"relaxed", b"relaxed"),
        )
        record = key_record("ed25519test.dns")
    records: dict[str, str | bytes] = {"test._domainkey.example.com": record}
    # test2.message carries a gmail.com signature already: ours is the topmost one,
    # and the other's key is not published here.
    result, *others = await verify(field + message, records)
    assert result.result is DkimStatus.PASS, result.reason
    assert all(other.result is DkimStatus.PERMERROR for other in others)
    header, _, body = message.partition(b"\r\n\r\n")
    changed_body, *_ = await verify(field + header + b"\r\n\r\n" + body + b"tampered\r\n", records)
    assert changed_body.result is DkimStatus.FAIL
    changed_from = re.sub(rb"(?m)^From:", b"From: Mallory <m@evil.example>,", header, count=1)
    assert changed_from != header
    changed_header, *_ = await verify(field + changed_from + b"\r\n\r\n" + body, records)
    assert changed_header.result is DkimStatus.FAIL


def test_dkimpy_message_without_from_is_not_signed_by_dkimpy() -> None:
    with pytest.raises(dkim.ParameterError):
        dkim.sign(
            crlf(data_file("test_nofrom.message")),
            b"test",
            b"example.com",
            data_file("test.private"),
        )


def test_dkimpy_message_without_from_is_not_signed_by_postel() -> None:
    with pytest.raises(SigningError):
        sign_message(crlf(data_file("test_nofrom.message")), rsa_test_key())


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("badk.txt", "key type"),
        ("badversion.txt", "unusable"),
        ("test_tlsrpt.txt", "tlsrpt"),
    ],
)
async def test_dkimpy_malformed_key_record_is_permerror(record: str, why: str) -> None:
    message = crlf(data_file("test.message"))
    field = sign_message(message, rsa_test_key())
    (result,) = await verify(field + message, {"test._domainkey.example.com": key_record(record)})
    assert result.result is DkimStatus.PERMERROR
    assert why in result.reason


async def test_dkimpy_altered_public_key_does_not_pass() -> None:
    message = crlf(data_file("test.message"))
    field = sign_message(message, rsa_test_key())
    records: dict[str, str | bytes] = {"test._domainkey.example.com": key_record("test_bad.txt")}
    (result,) = await verify(field + message, records)
    assert result.result in (DkimStatus.FAIL, DkimStatus.PERMERROR)


async def test_dkimpy_second_key_pair_passes() -> None:
    message = crlf(data_file("test2.message"))
    field = sign_message(message, rsa_test_key("test2.private"))
    records: dict[str, str | bytes] = {"test._domainkey.example.com": key_record("test2.txt")}
    result, *_ = await verify(field + message, records)
    assert result.result is DkimStatus.PASS


@pytest.mark.parametrize(
    ("private", "public"),
    [
        ("1024_testkey.key", "1024_testkey_wo_markers.pub.txt"),
        ("1024_testkey.key", "1024_testkey_wo_markers.pub.rsa.txt"),
        ("2048_testkey.key", "2048_testkey_wo_markers.pub.txt"),
        ("2048_testkey.key", "2048_testkey_wo_markers.pub.rsa.txt"),
        ("2048_testkey_PKCS8.key", "2048_testkey_PKCS8.key.pub.txt"),
    ],
)
async def test_dkimpy_key_formats(private: str, public: str) -> None:
    """SubjectPublicKeyInfo and PKCS#1 public keys in p= (RFC 6376 §3.6.1 names the
    former; dkimpy accepts both)."""
    message = crlf(data_file("test.message"))
    field = sign_message(message, rsa_test_key(private))
    record = key_record(public)
    (result,) = await verify(field + message, {"test._domainkey.example.com": record})
    assert result.result is DkimStatus.PASS, result.reason
    assert result.key_bits == int(private[:4])
