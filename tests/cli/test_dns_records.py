"""`postel dns records`: the records computed for a domain, zone-file output and the
comparison of served values (no DNS traffic here; see test_dns_check.py)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from pathlib import Path

import pytest

from postel.cli import main
from postel.cli.dns_records import (
    TXT_STRING_MAX,
    CheckStatus,
    DnsRecord,
    RecordType,
    Role,
    compare,
    domain_records,
    txt_strings,
    zone_lines,
)
from postel.config import Config, DeliveryConfig, Listen, Service
from postel.dkim import KeyAlgorithm, generate_key
from postel.mtasts import own_policy


def _config(tmp_path: Path, *listen: Listen) -> Config:
    config = Config.embedded_default(tmp_path / "data", hostname="Mail.Example.org")
    return dataclasses.replace(config, listen=listen) if listen else config


PUBLIC = (
    Listen(Service.SMTP, "192.0.2.10", 25),
    Listen(Service.SMTP, "2001:db8::10", 25),
    Listen(Service.SUBMISSIONS, "0.0.0.0", 465),
    Listen(Service.SUBMISSION, "127.0.0.1", 2587),
    Listen(Service.SUBMISSION, "192.0.2.10", 587),
    Listen(Service.IMAPS, "0.0.0.0", 993),
)
"""Listen addresses in documentation ranges (RFC 5737, RFC 3849) and wildcards: none is
globally routable, so none becomes an A/AAAA record."""


def _by(records: tuple[DnsRecord, ...], name: str, rtype: RecordType) -> list[DnsRecord]:
    return [r for r in records if r.name == name and r.type is rtype]


def test_records_for_a_domain(tmp_path: Path) -> None:
    key = generate_key("example.org", "sel1", KeyAlgorithm.ED25519)
    listen = (
        Listen(Service.SMTP, "203.0.113.5", 25),  # TEST-NET-3: not global either
        Listen(Service.SMTP, "8.8.4.4", 25),
        Listen(Service.SMTP, "2a00:1450::1", 25),
        Listen(Service.IMAPS, "0.0.0.0", 993),
    )
    config = _config(tmp_path, *listen)
    records = domain_records(config, "example.org", [key])
    found = records.records
    assert records.hostname == "mail.example.org"
    mx = _by(found, "example.org", RecordType.MX)
    assert [r.value for r in mx] == ["10 mail.example.org."]
    assert [r.value for r in _by(found, "mail.example.org", RecordType.A)] == ["8.8.4.4"]
    assert [r.value for r in _by(found, "mail.example.org", RecordType.AAAA)] == ["2a00:1450::1"]
    spf = _by(found, "example.org", RecordType.TXT)
    assert [r.value for r in spf] == ["v=spf1 mx -all"]
    assert spf[0].required and "RFC 7208" in spf[0].spec
    dkim = _by(found, "sel1._domainkey.example.org", RecordType.TXT)
    assert [r.value for r in dkim] == [f"v=DKIM1; k=ed25519; p={key.public_b64}"]
    dmarc = _by(found, "_dmarc.example.org", RecordType.TXT)
    assert [r.value for r in dmarc] == ["v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"]
    policy = own_policy("testing", 604800, ["mail.example.org"])
    sts = _by(found, "_mta-sts.example.org", RecordType.TXT)
    assert [r.value for r in sts] == [policy.txt_record]
    assert records.policy_text == policy.text
    assert records.policy_url == "https://mta-sts.example.org/.well-known/mta-sts.txt"
    host = _by(found, "mta-sts.example.org", RecordType.CNAME)
    assert [r.value for r in host] == ["mail.example.org."]
    tlsrpt = _by(found, "_smtp._tls.example.org", RecordType.TXT)
    assert [r.value for r in tlsrpt] == ["v=TLSRPTv1; rua=mailto:postmaster@example.org"]
    assert all(r.spec.startswith("RFC ") and r.purpose for r in found)


def test_srv_for_offered_and_missing_services(tmp_path: Path) -> None:
    listen = (
        Listen(Service.SUBMISSIONS, "0.0.0.0", 465),
        Listen(Service.SUBMISSION, "127.0.0.1", 2587),
        Listen(Service.SUBMISSION, "0.0.0.0", 587),
        Listen(Service.IMAPS, "::", 993),
    )
    records = domain_records(_config(tmp_path, *listen), "example.org", [])
    srv = {r.name: r.value for r in records.records if r.type is RecordType.SRV}
    assert srv == {
        "_submissions._tcp.example.org": "0 1 465 mail.example.org.",
        "_submission._tcp.example.org": "10 1 587 mail.example.org.",
        "_imaps._tcp.example.org": "0 1 993 mail.example.org.",
        "_imap._tcp.example.org": "0 0 0 .",
        "_pop3s._tcp.example.org": "0 0 0 .",
        "_pop3._tcp.example.org": "0 0 0 .",
    }
    not_offered = next(r for r in records.records if r.name == "_pop3._tcp.example.org")
    assert "RFC 6186 §4" in not_offered.spec and not not_offered.required


def test_placeholders_without_public_addresses_or_keys(tmp_path: Path) -> None:
    records = domain_records(_config(tmp_path, *PUBLIC), "example.org", []).records
    a = _by(records, "mail.example.org", RecordType.A)
    aaaa = _by(records, "mail.example.org", RecordType.AAAA)
    assert [(r.value, r.required) for r in a] == [("", True)]
    assert [(r.value, r.required) for r in aaaa] == [("", False)]
    assert "IPv4" in a[0].placeholder
    dkim = [r for r in records if r.role is Role.DKIM]
    assert [r.placeholder for r in dkim] == ["run postel dkim generate example.org"]


def test_given_addresses_win(tmp_path: Path) -> None:
    records = domain_records(
        _config(tmp_path),
        "example.org",
        [],
        ipv4=[ipaddress.IPv4Address("198.51.100.7")],
        ipv6=[ipaddress.IPv6Address("2001:db8::7")],
    ).records
    addresses = [(r.type, r.value, r.required) for r in records if r.role is Role.ADDRESS]
    assert addresses == [
        (RecordType.A, "198.51.100.7", True),
        (RecordType.AAAA, "2001:db8::7", True),
    ]


def test_smarthost_softens_spf(tmp_path: Path) -> None:
    config = dataclasses.replace(
        _config(tmp_path), delivery=DeliveryConfig(smarthost="smtp.provider.example")
    )
    spf = _by(domain_records(config, "example.org", []).records, "example.org", RecordType.TXT)
    assert spf[0].value == "v=spf1 mx ~all"
    assert "smarthost" in spf[0].purpose


def test_txt_strings_are_split_at_255_octets() -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 600 + '"\\'
    strings = txt_strings(value)
    assert len(strings) == 3
    raw = [s[1:-1].replace('\\"', '"').replace("\\\\", "\\") for s in strings]
    assert [len(r.encode()) for r in raw] == [TXT_STRING_MAX, TXT_STRING_MAX, 110]
    assert "".join(raw) == value
    assert strings[-1].endswith('\\"\\\\"')
    assert txt_strings("") == ['""']
    assert txt_strings("caf\u00e9") == ['"caf\\195\\169"']


def test_zone_lines(tmp_path: Path) -> None:
    key = generate_key("example.org", "postel-rsa", KeyAlgorithm.RSA)
    records = domain_records(_config(tmp_path, *PUBLIC), "example.org", [key])
    lines = zone_lines(records)
    dkim = next(line for line in lines if line.startswith("postel-rsa._domainkey.example.org."))
    strings = re.findall(r'"([^"]*)"', dkim)
    assert len(strings) == 2  # a 2048-bit key needs two strings
    assert all(len(s) <= TXT_STRING_MAX for s in strings)
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={key.public_b64}"
    assert any(
        line.split() == ["example.org.", "IN", "MX", "10", "mail.example.org."] for line in lines
    )
    assert any(line.startswith("; mail.example.org. IN A <public IPv4") for line in lines)
    assert lines[-4:] == [
        ";   version: STSv1",
        ";   mode: testing",
        ";   mx: mail.example.org",
        ";   max_age: 604800",
    ]


def _record(role: Role, rtype: RecordType, value: str, placeholder: str = "") -> DnsRecord:
    return DnsRecord("example.org", rtype, value, role, "", "RFC", True, placeholder)


@pytest.mark.parametrize(
    ("role", "expected", "served", "status"),
    [
        (Role.SPF, "v=spf1 mx -all", ["v=spf1  +MX -all"], CheckStatus.OK),
        (
            Role.SPF,
            "v=spf1 mx -all",
            ["google-site-verification=x", "v=spf1 mx -all"],
            CheckStatus.OK,
        ),
        (Role.SPF, "v=spf1 mx -all", ["v=spf1 a -all"], CheckStatus.DIFFERENT),
        (Role.SPF, "v=spf1 mx -all", ["v=spf1 mx -all", "v=spf1 mx ~all"], CheckStatus.DIFFERENT),
        (Role.SPF, "v=spf1 mx -all", ["other"], CheckStatus.DIFFERENT),
        (Role.SPF, "v=spf1 mx -all", [], CheckStatus.MISSING),
        (Role.DMARC, "v=DMARC1; p=quarantine", ["v=DMARC1;p=Quarantine;"], CheckStatus.OK),
        (Role.DMARC, "v=DMARC1; p=quarantine", ["v=DMARC1; p=none"], CheckStatus.DIFFERENT),
        (Role.TLS_RPT, "v=TLSRPTv1; rua=mailto:a@b", ["v=TLSRPTv1;rua=mailto:a@b"], CheckStatus.OK),
        (Role.MTA_STS, "v=STSv1; id=abc", ["v=STSv1; id=abd"], CheckStatus.DIFFERENT),
        (Role.DKIM, "v=DKIM1; k=rsa; p=AbC", ["v=DKIM1; p=A b\tC"], CheckStatus.OK),
        (Role.DKIM, "v=DKIM1; k=rsa; p=AbC", ["v=DKIM1; k=rsa; p=abc"], CheckStatus.DIFFERENT),
        (Role.DKIM, "v=DKIM1; k=ed25519; p=AbC", ["v=DKIM1; p=AbC"], CheckStatus.DIFFERENT),
    ],
)
def test_txt_comparison_is_semantic(
    role: Role, expected: str, served: list[str], status: CheckStatus
) -> None:
    finding = compare(_record(role, RecordType.TXT, expected), served)
    assert finding.status is status, finding
    assert (finding.detail == "") == (status is CheckStatus.OK)


def test_other_comparisons() -> None:
    mx = _record(Role.MX, RecordType.MX, "10 mail.example.org.")
    assert compare(mx, ["20 backup.example.org.", "5 MAIL.example.org."]).status is CheckStatus.OK
    assert compare(mx, ["10 other.example."]).status is CheckStatus.DIFFERENT
    a = _record(Role.ADDRESS, RecordType.AAAA, "2001:db8::7")
    assert compare(a, ["2001:db8:0::7"]).status is CheckStatus.OK
    anything = _record(Role.ADDRESS, RecordType.A, "", placeholder="<ip>")
    assert compare(anything, ["192.0.2.1"]).status is CheckStatus.OK
    assert compare(anything, []).status is CheckStatus.MISSING
    srv = _record(Role.SRV, RecordType.SRV, "0 0 0 .")
    assert compare(srv, ["5 0 0 ."]).status is CheckStatus.OK
    assert compare(srv, ["0 1 110 mail.example.org."]).status is CheckStatus.DIFFERENT
    host = _record(Role.MTA_STS_HOST, RecordType.CNAME, "mail.example.org.")
    assert compare(host, ["192.0.2.1"], host_addresses=["192.0.2.1"]).status is CheckStatus.OK
    assert (
        compare(host, ["192.0.2.2"], host_addresses=["192.0.2.1"]).status is CheckStatus.DIFFERENT
    )
    dkim = _record(Role.DKIM, RecordType.TXT, "", placeholder="run postel dkim generate x")
    finding = compare(dkim, [])
    assert finding.status is CheckStatus.MISSING and "dkim generate" in finding.detail


def test_cli_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert main(["--data", data, "domain", "add", "other.example"]) == 0  # a store, not this domain
    capsys.readouterr()
    assert main(["--data", data, "dkim", "generate", "example.org"]) == 1
    assert "not a domain of this server" in capsys.readouterr().err
    assert main(["--data", data, "dns", "records", "example.org"]) == 1
    capsys.readouterr()
    assert main(["--data", data, "domain", "add", "example.org"]) == 0
    assert main(["--data", data, "dkim", "generate", "example.org", "--algorithm", "ed25519"]) == 0
    capsys.readouterr()
    assert main(["--data", data, "dns", "records", "Example.ORG", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(rows[0]) == {"name", "type", "value", "placeholder", "purpose", "rfc", "required"}
    a = next(r for r in rows if r["type"] == "A")
    assert a["value"] == "" and a["placeholder"].startswith("<public IPv4")
    assert any(r["name"] == "postel._domainkey.example.org" for r in rows)

    assert main(["--data", data, "dns", "records", "example.org", "--ipv4", "192.0.2.1"]) == 0
    out, err = capsys.readouterr()
    # the embedded default's hostname is localhost: the MX it gives could not work
    assert err.startswith("postel: note: the hostname 'localhost' is not a public DNS name")
    assert out.splitlines()[0].split()[:3] == ["name", "type", "value"]
    assert "192.0.2.1" in out and "mta-sts.txt" in out

    assert main(["--data", data, "dns", "records", "example.org", "--mta-sts-policy"]) == 0
    assert capsys.readouterr().out.startswith("version: STSv1\r\nmode: testing\r\n")

    assert main(["--data", data, "dns", "records", "example.org", "--ipv4", "nope"]) == 1
    err = capsys.readouterr().err
    assert err == "postel: error: --ipv4 'nope' is not an IPv4 address\n"


def test_removing_a_domain_says_where_its_dkim_keys_stay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["--data", str(data), "domain", "add", "example.org"]) == 0
    assert main(["--data", str(data), "domain", "add", "example.net"]) == 0
    assert main(["--data", str(data), "dkim", "generate", "example.org"]) == 0
    capsys.readouterr()
    assert main(["--data", str(data), "domain", "remove", "example.org"]) == 0
    out, err = capsys.readouterr()
    assert out == "removed domain example.org\n"
    assert err.startswith(f"postel: note: its DKIM keys stay in {data / 'dkim' / 'example.org'}")
    assert main(["--data", str(data), "domain", "remove", "example.net"]) == 0
    assert capsys.readouterr() == ("removed domain example.net\n", "")  # no keys: no note
