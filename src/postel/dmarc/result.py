"""The outcome of DMARC evaluation: result, disposition, domains and reasons.

Pure values. ``Result`` is the Authentication-Results ``dmarc=`` value; ``Disposition``
what the Domain Owner Assessment Policy asks for after the testing flag and any local
override; ``PolicyOverride`` the override reasons of aggregate reports (RFC 9990);
``Reason`` stable codes saying why the evaluation ended as it did.

Spec: RFC 9989 (draft-ietf-dmarc-dmarcbis-41 §4.7, §5.3.5, §5.3.6, §9.2, §B.3.1);
RFC 8601 §2.7 (result names); RFC 9990 (PolicyOverrideType).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from postel.dmarc.discovery import PolicyTag
from postel.dmarc.record import AlignmentMode, DmarcRecord, Policy


class Result(StrEnum):
    """The DMARC result. Spec: DMARCbis §5.3.5, §5.3.6, §9.2; RFC 8601 §2.7."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    """No DMARC Policy Record applies, or the message has no single usable Author Domain."""
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Disposition(StrEnum):
    """What to do with the message as far as DMARC asks. Spec: DMARCbis §4.7, §5.3.6."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class PolicyOverride(StrEnum):
    """Why the disposition is less than the Domain Owner Assessment Policy.

    ``POLICY_TEST_MODE`` is set by evaluation itself (``t=y``); the others are given by
    the caller. Spec: RFC 9990 (PolicyOverrideType); DMARCbis §4.7 (t), §B.3.1.
    """

    TRUSTED_FORWARDER = "trusted_forwarder"
    """A forwarder known to break SPF and DKIM, or a trusted ARC sealer (RFC 8617)."""
    MAILING_LIST = "mailing_list"
    LOCAL_POLICY = "local_policy"
    OTHER = "other"
    POLICY_TEST_MODE = "policy_test_mode"


class Reason(StrEnum):
    """Stable codes for logs and Authentication-Results comments. Spec: DMARCbis §5.3."""

    NO_FROM = "no_from"
    NO_AUTHOR_DOMAIN = "no_author_domain"
    INVALID_AUTHOR_DOMAIN = "invalid_author_domain"
    TOO_MANY_AUTHOR_DOMAINS = "too_many_author_domains"
    NO_POLICY_RECORD = "no_policy_record"
    POLICY_INVALID = "policy_invalid"
    POLICY_FALLBACK_NONE = "policy_fallback_none"
    SPF_ALIGNED = "spf_aligned"
    DKIM_ALIGNED = "dkim_aligned"
    NOT_ALIGNED = "not_aligned"
    DNS_TEMPERROR = "dns_temperror"
    DNS_PERMERROR = "dns_permerror"
    TIMEOUT = "timeout"
    TESTING = "testing"
    OVERRIDDEN = "overridden"
    NONEXISTENT_SUBDOMAIN = "nonexistent_subdomain"


class Method(StrEnum):
    """An authentication mechanism underlying DMARC. Spec: DMARCbis §4.3."""

    SPF = "spf"
    DKIM = "dkim"


@dataclass(frozen=True, slots=True)
class Override:
    """A local override the caller asks for: ``reason`` and a ``comment`` for logs and
    reports. Applied only to a DMARC ``fail``: the result stays ``fail``, the
    disposition becomes ``none``. Spec: DMARCbis §5.3.6, §B.3.1; RFC 9990."""

    reason: PolicyOverride
    comment: str = ""


@dataclass(frozen=True, slots=True)
class IdentifierCheck:
    """One Authenticated Identifier checked: ``method``, ``domain`` (A-label),
    ``mode`` of alignment applied and whether it is ``aligned`` (None when a DNS error
    left it undecided). Spec: DMARCbis §4.4, §5.3.4."""

    method: Method
    domain: str
    mode: AlignmentMode
    aligned: bool | None


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """The DMARC evaluation of one message.

    ``result`` and ``disposition`` are what the caller acts on. ``requested`` is the
    Domain Owner Assessment Policy that applied (from tag ``policy_tag``) before the
    testing flag and any override; ``override`` says why ``disposition`` is lower.
    ``author_domains`` lists every Author Domain (A-labels); when there are several,
    the other fields describe the one whose outcome decided ``result`` (a ``fail``
    with the strictest policy first). ``policy_domain`` is where the record was found,
    ``organizational_domain`` the Author Domain's (None when not determined).
    ``checks`` lists the identifiers examined; ``reasons`` the codes, ``detail`` text.

    Spec: DMARCbis §4.10.1, §5.3.4-§5.3.6, §11.5; RFC 9990.
    """

    result: Result
    disposition: Disposition = Disposition.NONE
    author_domain: str | None = None
    author_domains: tuple[str, ...] = ()
    policy_domain: str | None = None
    organizational_domain: str | None = None
    record: DmarcRecord | None = None
    requested: Policy | None = None
    policy_tag: PolicyTag | None = None
    testing: bool = False
    override: PolicyOverride | None = None
    spf_aligned: bool = False
    dkim_aligned: bool = False
    checks: tuple[IdentifierCheck, ...] = ()
    reasons: tuple[Reason, ...] = ()
    detail: str = ""
