"""The DNS records a postel domain needs, computed from the configuration and the
domain's DKIM keys, as zone-file lines, and compared with what DNS serves (no I/O).

For ``DOMAIN`` with ``hostname`` the MX host:

==========================  =====  ==================================  ====================
name                        type   value                               spec
==========================  =====  ==================================  ====================
DOMAIN                      MX     ``10 hostname.``                    RFC 5321 §5.1
hostname                    A/AAA  the host's public addresses         RFC 1035, RFC 3596
DOMAIN                      TXT    ``v=spf1 mx -all``                  RFC 7208 §4.6, §8.4
<selector>._domainkey       TXT    ``v=DKIM1; k=...; p=...``           RFC 6376 §3.6.2.1
_dmarc                      TXT    ``v=DMARC1; p=quarantine; rua=...`` RFC 9989 (was RFC 7489 §6.3)
_mta-sts                    TXT    ``v=STSv1; id=...``                 RFC 8461 §3.1
mta-sts                     CNAME  ``hostname.`` (serves the policy)   RFC 8461 §3.2
_smtp._tls                  TXT    ``v=TLSRPTv1; rua=mailto:...``      RFC 8460 §3
_submission(s)/_imap(s)/    SRV    ``prio weight port hostname.``      RFC 6186 §3, RFC 8314
_pop3(s)._tcp                      (``0 0 0 .`` when not offered)      §5.1
==========================  =====  ==================================  ====================

SPF ends in ``-all``: every message of the domain leaves through the MX host, so any
other source is not authorised (a "fail", RFC 7208 §8.4); with a smarthost the record
ends in ``~all`` until the operator adds the smarthost's own mechanism.

Spec: RFC 1035 §5.1 (zone files), RFC 7208, RFC 6376, RFC 9989, RFC 8461, RFC 8460,
RFC 6186, RFC 8314 §5.1.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from postel.config import Config, Listen, Service
from postel.dkim import DkimKey, KeyAlgorithm, dns_record
from postel.mtasts import own_policy

TXT_STRING_MAX = 255
"""Octets in one character-string of a TXT record. Spec: RFC 1035 §3.3, §3.3.14."""
MX_PREFERENCE = 10
"""Preference of the one MX record (any value works with a single MX). RFC 5321 §5.1."""
SRV_PRIORITY_IMPLICIT_TLS = 0
SRV_PRIORITY_STARTTLS = 10
"""Implicit TLS is preferred over STARTTLS (lower priority value first).
Spec: RFC 8314 §5.1, RFC 2782."""
SRV_WEIGHT = 1
SRV_NOT_OFFERED = "0 0 0 ."
"""The SRV value saying a service is decidedly not offered. Spec: RFC 6186 §4, RFC 2782."""
DKIM_HINT = "run postel dkim generate {domain}"


class RecordType(enum.StrEnum):
    """The DNS types postel's records use. Spec: RFC 1035 §3.2.2, RFC 3596, RFC 2782."""

    A = "A"
    AAAA = "AAAA"
    MX = "MX"
    TXT = "TXT"
    SRV = "SRV"
    CNAME = "CNAME"


class Role(enum.StrEnum):
    """What a record is for; decides how served values are compared."""

    MX = "mx"
    ADDRESS = "address"
    SPF = "spf"
    DKIM = "dkim"
    DMARC = "dmarc"
    MTA_STS = "mta-sts"
    MTA_STS_HOST = "mta-sts-host"
    TLS_RPT = "tls-rpt"
    SRV = "srv"


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One record to publish. ``name``: absolute, A-labels, lower case, no trailing
    dot. ``value``: presentation form (TXT: the text, unquoted). ``placeholder`` is
    non-empty when the value is unknown and the operator fills it in (then ``value``
    is ""). ``required``: mail does not work (or is not trusted) without it."""

    name: str
    type: RecordType
    value: str
    role: Role
    purpose: str
    spec: str
    required: bool
    placeholder: str = ""


@dataclass(frozen=True, slots=True)
class DomainRecords:
    """Every record of ``domain`` plus the MTA-STS policy file and where it is served.
    Spec: RFC 8461 §3.2."""

    domain: str
    hostname: str
    records: tuple[DnsRecord, ...]
    policy_url: str
    policy_text: str


def domain_records(
    config: Config,
    domain: str,
    dkim_keys: Sequence[DkimKey],
    *,
    ipv4: Sequence[ipaddress.IPv4Address] = (),
    ipv6: Sequence[ipaddress.IPv6Address] = (),
) -> DomainRecords:
    """The records ``domain`` (lower-case A-labels) needs with ``config.hostname`` as
    its MX host. ``ipv4``/``ipv6`` are the host's public addresses; when both are
    empty the globally routable listen addresses of ``config`` are used, and with none
    of those the A record is a placeholder. Raises ValueError for an invalid
    ``[mta_sts]`` setting. Spec: see the module table."""
    hostname = config.hostname.rstrip(".").lower()
    if not ipv4 and not ipv6:
        ipv4, ipv6 = _listen_addresses(config.listen)
    policy = own_policy(config.mta_sts.mode, config.mta_sts.max_age, [hostname])
    records = [
        DnsRecord(
            domain,
            RecordType.MX,
            f"{MX_PREFERENCE} {hostname}.",
            Role.MX,
            "mail for the domain goes to the postel host",
            "RFC 5321 §5.1",
            required=True,
        ),
        *_address_records(hostname, ipv4, ipv6),
        _spf_record(config, domain),
        *_dkim_records(domain, dkim_keys),
        DnsRecord(
            f"_dmarc.{domain}",
            RecordType.TXT,
            f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
            Role.DMARC,
            "receivers quarantine mail failing SPF and DKIM alignment; reports to postmaster",
            "RFC 9989 (was RFC 7489 §6.3)",
            required=True,
        ),
        DnsRecord(
            f"_mta-sts.{domain}",
            RecordType.TXT,
            policy.txt_record,
            Role.MTA_STS,
            "senders fetch the MTA-STS policy (id changes with the policy)",
            "RFC 8461 §3.1",
            required=False,
        ),
        DnsRecord(
            f"mta-sts.{domain}",
            RecordType.CNAME,
            f"{hostname}.",
            Role.MTA_STS_HOST,
            "HTTPS host of the MTA-STS policy (postel web; TLS certificate must name it)",
            "RFC 8461 §3.2",
            required=False,
        ),
        DnsRecord(
            f"_smtp._tls.{domain}",
            RecordType.TXT,
            f"v=TLSRPTv1; rua=mailto:postmaster@{domain}",
            Role.TLS_RPT,
            "senders report TLS failures to postmaster",
            "RFC 8460 §3",
            required=False,
        ),
        *_srv_records(config.listen, domain, hostname),
    ]
    return DomainRecords(
        domain,
        hostname,
        tuple(records),
        f"https://mta-sts.{domain}/.well-known/mta-sts.txt",
        policy.text,
    )


def _listen_addresses(
    listen: Sequence[Listen],
) -> tuple[list[ipaddress.IPv4Address], list[ipaddress.IPv6Address]]:
    """The globally routable addresses postel listens on (RFC 6890), in config order."""
    ipv4: list[ipaddress.IPv4Address] = []
    ipv6: list[ipaddress.IPv6Address] = []
    for entry in listen:
        address = ipaddress.ip_address(entry.host)
        if not address.is_global:
            continue
        if isinstance(address, ipaddress.IPv4Address):
            if address not in ipv4:
                ipv4.append(address)
        elif address not in ipv6:
            ipv6.append(address)
    return ipv4, ipv6


def _address_records(
    hostname: str,
    ipv4: Sequence[ipaddress.IPv4Address],
    ipv6: Sequence[ipaddress.IPv6Address],
) -> list[DnsRecord]:
    purpose = "addresses of the MX host (SPF 'mx' matches them too)"
    records = [
        DnsRecord(hostname, RecordType.A, str(a), Role.ADDRESS, purpose, "RFC 1035 §3.4.1", True)
        for a in ipv4
    ]
    records += [
        DnsRecord(hostname, RecordType.AAAA, str(a), Role.ADDRESS, purpose, "RFC 3596 §2.2", True)
        for a in ipv6
    ]
    if records:
        return records
    return [
        DnsRecord(
            hostname,
            RecordType.A,
            "",
            Role.ADDRESS,
            purpose,
            "RFC 1035 §3.4.1",
            required=True,
            placeholder=f"<public IPv4 address of {hostname}>",
        ),
        DnsRecord(
            hostname,
            RecordType.AAAA,
            "",
            Role.ADDRESS,
            purpose,
            "RFC 3596 §2.2",
            required=False,
            placeholder=f"<public IPv6 address of {hostname}>",
        ),
    ]


def _spf_record(config: Config, domain: str) -> DnsRecord:
    if config.delivery.smarthost:
        value = "v=spf1 mx ~all"
        purpose = "senders allowed: the MX host; add the smarthost's mechanism, then -all"
        spec = "RFC 7208 §4.6, §8.5"
    else:
        value = "v=spf1 mx -all"
        purpose = "only the MX host sends the domain's mail"
        spec = "RFC 7208 §4.6, §8.4"
    return DnsRecord(domain, RecordType.TXT, value, Role.SPF, purpose, spec, required=True)


def _dkim_records(domain: str, keys: Sequence[DkimKey]) -> list[DnsRecord]:
    if not keys:
        return [
            DnsRecord(
                f"<selector>._domainkey.{domain}",
                RecordType.TXT,
                "",
                Role.DKIM,
                "public key verifying the domain's DKIM signatures",
                "RFC 6376 §3.6.2.1",
                required=True,
                placeholder=DKIM_HINT.format(domain=domain),
            )
        ]
    records: list[DnsRecord] = []
    for key in keys:
        name, value = dns_record(key)
        records.append(
            DnsRecord(
                name,
                RecordType.TXT,
                value,
                Role.DKIM,
                f"public key verifying DKIM signatures ({key.algorithm.value})",
                "RFC 6376 §3.6.2.1"
                + (", RFC 8463 §4" if key.algorithm is KeyAlgorithm.ED25519 else ""),
                required=True,
            )
        )
    return records


_SRV_SERVICES: tuple[tuple[Service, str, int, str], ...] = (
    (Service.SUBMISSIONS, "_submissions._tcp", SRV_PRIORITY_IMPLICIT_TLS, "RFC 8314 §5.1"),
    (Service.SUBMISSION, "_submission._tcp", SRV_PRIORITY_STARTTLS, "RFC 6186 §3.1"),
    (Service.IMAPS, "_imaps._tcp", SRV_PRIORITY_IMPLICIT_TLS, "RFC 6186 §3.2"),
    (Service.IMAP, "_imap._tcp", SRV_PRIORITY_STARTTLS, "RFC 6186 §3.2"),
    (Service.POP3S, "_pop3s._tcp", SRV_PRIORITY_IMPLICIT_TLS, "RFC 6186 §3.3"),
    (Service.POP3, "_pop3._tcp", SRV_PRIORITY_STARTTLS, "RFC 6186 §3.3"),
)
"""Service, SRV owner label, priority, spec."""


def _srv_records(listen: Sequence[Listen], domain: str, hostname: str) -> list[DnsRecord]:
    records: list[DnsRecord] = []
    for service, label, priority, spec in _SRV_SERVICES:
        port = _service_port(listen, service)
        if port is None:
            value = SRV_NOT_OFFERED
            purpose = f"mail clients: {service.value} is not offered"
            spec = f"{spec}, RFC 6186 §4"
        else:
            value = f"{priority} {SRV_WEIGHT} {port} {hostname}."
            purpose = f"mail clients find {service.value} on port {port}"
        records.append(
            DnsRecord(
                f"{label}.{domain}", RecordType.SRV, value, Role.SRV, purpose, spec, required=False
            )
        )
    return records


def _service_port(listen: Sequence[Listen], service: Service) -> int | None:
    """The port of ``service``: of a global address first, then of a wildcard one."""
    entries = [entry for entry in listen if entry.service is service]
    if not entries:
        return None

    def rank(entry: Listen) -> int:
        address = ipaddress.ip_address(entry.host)
        return 0 if address.is_global else 1 if address.is_unspecified else 2

    return min(entries, key=rank).port


# --- zone-file output -----------------------------------------------------------------


def txt_strings(value: str) -> list[str]:
    """``value`` as quoted character-strings of at most ``TXT_STRING_MAX`` octets each,
    ``"`` and ``\\`` escaped, other octets outside printable ASCII as ``\\DDD``.
    Spec: RFC 1035 §3.3.14, §5.1; RFC 6376 §3.6.2.2 (a DKIM key spans strings)."""
    data = value.encode("utf-8")
    chunks = [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)]
    return ['"' + _escape(chunk) + '"' for chunk in chunks or [b""]]


def _escape(chunk: bytes) -> str:
    out: list[str] = []
    for octet in chunk:
        char = chr(octet)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= octet < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)


def zone_lines(records: DomainRecords) -> list[str]:
    """Master-file lines ready to paste into the domain's zone: absolute owner names,
    class IN, the zone's default TTL; placeholders and the MTA-STS policy file as
    ``;`` comments. Spec: RFC 1035 §5.1."""
    lines = [f"; DNS records for {records.domain}, mail host {records.hostname}"]
    for record in records.records:
        if record.placeholder:
            text = record.placeholder
            lines.append(f"; {record.name}. IN {record.type} {text}  ; fill in: {record.purpose}")
            continue
        value = (
            " ".join(txt_strings(record.value)) if record.type is RecordType.TXT else record.value
        )
        lines.append(f"{record.name + '.':<40} IN {record.type.value:<5} {value}")
    lines.append(f"; MTA-STS policy file, served at {records.policy_url}:")
    lines += [f";   {line}" for line in records.policy_text.splitlines()]
    return lines


# --- comparison with what DNS serves ----------------------------------------------------


class CheckStatus(enum.StrEnum):
    """The outcome of checking one record against DNS."""

    OK = "ok"
    MISSING = "missing"
    DIFFERENT = "different"
    ERROR = "error"
    """The lookup failed (timeout, SERVFAIL, ...): nothing is known."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One record checked: ``served`` are the values DNS gave for its name and type
    (presentation form; TXT records with their strings joined), ``detail`` says why a
    status is not ``ok`` ("" when it is)."""

    record: DnsRecord
    status: CheckStatus
    served: tuple[str, ...]
    detail: str = ""


_VERSION_TAGS: dict[Role, tuple[str, str, str]] = {
    Role.DMARC: ("dmarc1", "DMARC", "RFC 9989 (was RFC 7489 §6.6.3)"),
    Role.MTA_STS: ("stsv1", "MTA-STS", "RFC 8461 §3.1"),
    Role.TLS_RPT: ("tlsrptv1", "TLS-RPT", "RFC 8460 §3"),
}
"""Roles whose TXT record starts with ``v=<version>``: version (lower case), name, and
the section that makes more than one such record an error."""


def compare(
    record: DnsRecord, served: Sequence[str], *, host_addresses: Sequence[str] = ()
) -> Finding:
    """Compare ``record`` with the values DNS serves at its name and type.

    ``host_addresses`` (for the ``mta-sts`` host only) are the MX host's addresses: the
    name may be a CNAME or carry its own A/AAAA records, and it is right when it reaches
    the same host. TXT values are compared by meaning: SPF term by term, tag=value
    records (DMARC, DKIM, MTA-STS, TLS-RPT) tag by tag, whitespace and letter case of
    values ignored except in a DKIM ``p=`` key. Spec: RFC 7208 §4.5-§4.6, RFC 6376
    §3.2 and §3.6.1, RFC 9989 (was RFC 7489 §6.4), RFC 8461 §3.1, RFC 8460 §3.
    """
    got = tuple(served)
    if record.role is Role.DKIM and record.placeholder:
        return Finding(record, CheckStatus.MISSING, got, f"no DKIM key: {record.placeholder}")
    if not got:
        return Finding(record, CheckStatus.MISSING, got, "not served")
    ok, detail = _matches(record, got, host_addresses)
    return Finding(record, CheckStatus.OK if ok else CheckStatus.DIFFERENT, got, detail)


def _matches(
    record: DnsRecord, served: tuple[str, ...], host_addresses: Sequence[str]
) -> tuple[bool, str]:
    match record.role:
        case Role.MX:
            exchange = record.value.split()[-1].lower()
            ok = any(value.split()[-1].lower() == exchange for value in served)
            return ok, "" if ok else f"no MX record names {exchange}"
        case Role.ADDRESS:
            ok = bool(record.placeholder) or _address(record.value) in map(_address, served)
            return ok, "" if ok else f"{record.value} is not among the served addresses"
        case Role.MTA_STS_HOST:
            ok = bool(set(map(_address, served)) & set(map(_address, host_addresses)))
            return ok, "" if ok else f"does not reach the addresses of {record.value}"
        case Role.SRV:
            ok = any(_srv_target(value) == _srv_target(record.value) for value in served)
            return ok, "" if ok else "no SRV record with this port and target"
        case Role.SPF:
            return _match_spf(record.value, served)
        case Role.DKIM:
            ok = any(_tags_equal(record.role, record.value, value) for value in served)
            return ok, "" if ok else "no record with this key (p=) and key type (k=)"
    return _match_versioned(record, served)


def _match_spf(expected: str, served: tuple[str, ...]) -> tuple[bool, str]:
    spf = [value for value in served if _spf_terms(value)[:1] == ["v=spf1"]]
    if not spf:
        return False, "no SPF record (v=spf1) among the TXT records"
    if len(spf) > 1:
        return False, "more than one SPF record: receivers see a permerror (RFC 7208 §4.5)"
    ok = _spf_terms(spf[0]) == _spf_terms(expected)
    return ok, "" if ok else "SPF terms differ"


def _match_versioned(record: DnsRecord, served: tuple[str, ...]) -> tuple[bool, str]:
    version, what, spec = _VERSION_TAGS[record.role]
    candidates = [value for value in served if (_tags(value) or {}).get("v") == version]
    if not candidates:
        return False, f"no {what} record (v=) among the TXT records"
    if len(candidates) > 1:
        return False, f"more than one {what} record: receivers ignore them all ({spec})"
    ok = _tags_equal(record.role, record.value, candidates[0])
    return ok, "" if ok else "tag values differ"


def _spf_terms(text: str) -> list[str]:
    """Lower-case terms, the default ``+`` qualifier dropped. Spec: RFC 7208 §4.6.1-§4.6.2."""
    return [term.lower().removeprefix("+") for term in text.split()]


def _tags(text: str, *, keep_case: frozenset[str] = frozenset()) -> dict[str, str] | None:
    """``tag=value`` pairs separated by ``;``, tag names lower-cased, whitespace removed
    from values and values lower-cased unless their tag is in ``keep_case``; None when
    the text is not a tag list. Spec: RFC 6376 §3.2, RFC 9989 (was RFC 7489 §6.4)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            return None
        key = name.strip().lower()
        value = "".join(value.split())
        tags[key] = value if key in keep_case else value.lower()
    return tags


def _tags_equal(role: Role, expected: str, served: str) -> bool:
    keep = frozenset({"p"}) if role is Role.DKIM else frozenset()
    want, got = _tags(expected, keep_case=keep), _tags(served, keep_case=keep)
    if want is None or got is None:
        return False
    if role is Role.DKIM:
        # Only the key and its type matter; k= defaults to rsa (RFC 6376 §3.6.1).
        return (want.get("p"), want.get("k", "rsa")) == (got.get("p"), got.get("k", "rsa"))
    return want == got


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _srv_target(value: str) -> tuple[str, str]:
    """(port, target) of an SRV value ``priority weight port target``. RFC 2782."""
    fields = value.split()
    if len(fields) != 4:
        return ("", value)
    return (fields[2], fields[3].lower().rstrip(".") or ".")
