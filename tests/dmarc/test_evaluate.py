"""DMARC evaluation over a scripted resolver: the From: field, the alignment matrix,
sp/np, t=y, overrides, several Author Domains and DNS failures.

Spec: DMARCbis (draft-ietf-dmarc-dmarcbis-41) §4.4, §4.7, §4.10.1, §5.3, §11.5, §B.1,
§B.3.1, §B.4; RFC 9990.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address

import pytest

from postel.dmarc import (
    DMARC_AUTHOR_DOMAINS_MAX,
    AuthorDomains,
    Disposition,
    Method,
    MultipleAuthors,
    Override,
    Policy,
    PolicyOverride,
    PolicyTag,
    Reason,
    Result,
    evaluate,
)
from postel.resolver import DnsPermError, DnsTempError
from postel.spf import Result as SpfResult

from .scripted import ScriptedResolver

PASS = "pass"


def zone(**records: str) -> ScriptedResolver:
    """``zone(example_com="v=DMARC1; ...")``: underscores in names stand for dots."""
    return ScriptedResolver(
        {f"_dmarc.{name.replace('_', '.')}": [text] for name, text in records.items()},
        existing=["mail.example.com", "news.example.com", "foo.example.com"],
    )


async def test_spf_aligned_pass() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    result = await evaluate(b"Alice <alice@example.com>", (PASS, "example.com"), [], dns)
    assert result.result is Result.PASS and result.disposition is Disposition.NONE
    assert result.spf_aligned and not result.dkim_aligned
    assert result.reasons == (Reason.SPF_ALIGNED,)
    assert result.policy_domain == "example.com" and result.author_domain == "example.com"
    assert dns.txt_names == ["_dmarc.example.com"]  # equal names need no walk (§4.10.2)


async def test_fail_applies_p() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    result = await evaluate(b"alice@example.com", ("fail", "example.com"), [], dns)
    assert result.result is Result.FAIL and result.disposition is Disposition.REJECT
    assert result.requested is Policy.REJECT and result.policy_tag is PolicyTag.P
    assert result.reasons == (Reason.NOT_ALIGNED,)


@pytest.mark.parametrize("method", [Method.SPF, Method.DKIM])
@pytest.mark.parametrize(
    ("mode", "author", "identifier", "aligned"),
    [
        ("r", "example.com", "example.com", True),
        ("s", "example.com", "example.com", True),
        ("r", "example.com", "mail.example.com", True),  # §B.1.1 example 2
        ("s", "example.com", "mail.example.com", False),
        ("r", "news.example.com", "example.com", True),  # §B.1.2 example 2
        ("s", "news.example.com", "example.com", False),
        ("r", "news.example.com", "foo.example.com", True),  # §4.4 table 1
        ("s", "news.example.com", "foo.example.com", False),
        ("r", "news.example.com", "NEWS.Example.COM.", True),  # case and trailing dot
        ("r", "news.example.com", "example.net", False),  # §B.1 example 3
        ("s", "news.example.com", "example.net", False),
        ("r", "example.com", "evil.com", False),
    ],
)
async def test_alignment_matrix(
    method: Method, mode: str, author: str, identifier: str, aligned: bool
) -> None:
    tag = "aspf" if method is Method.SPF else "adkim"
    dns = zone(example_com=f"v=DMARC1; p=quarantine; {tag}={mode}")
    spf = (PASS, identifier) if method is Method.SPF else None
    dkim = [(PASS, identifier)] if method is Method.DKIM else []
    result = await evaluate(AuthorDomains.of(author), spf, dkim, dns)
    assert result.result is (Result.PASS if aligned else Result.FAIL)
    assert result.spf_aligned is (aligned and method is Method.SPF)
    assert result.dkim_aligned is (aligned and method is Method.DKIM)
    if not aligned:
        assert result.disposition is Disposition.QUARANTINE


async def test_only_pass_results_are_identifiers() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    for outcome in ("fail", "softfail", "neutral", "temperror", "none", "policy"):
        result = await evaluate(
            b"a@example.com", (outcome, "example.com"), [(outcome, "example.com")], dns
        )
        assert result.result is Result.FAIL and result.checks == ()


async def test_spf_result_enum_is_accepted() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    result = await evaluate(b"a@example.com", (SpfResult.PASS, "example.com"), [], dns)
    assert result.result is Result.PASS


async def test_any_aligned_dkim_signature_passes() -> None:
    dns = zone(example_com="v=DMARC1; p=reject; adkim=s")
    dkim = [("pass", "esp.example.net"), ("fail", "example.com"), ("pass", "example.com")]
    result = await evaluate(b"a@example.com", None, dkim, dns)
    assert result.result is Result.PASS and result.dkim_aligned
    assert [(c.domain, c.aligned) for c in result.checks] == [
        ("esp.example.net", False),
        ("example.com", True),
    ]


async def test_b31_smtp_session_example() -> None:
    dns = zone(example_com="v=DMARC1; p=reject; aspf=r; rua=mailto:dmarc-feedback@example.com")
    result = await evaluate(
        b"sender@example.com", (PASS, "mail.example.com"), [(PASS, "example.com")], dns
    )
    assert result.result is Result.PASS and result.spf_aligned and result.dkim_aligned


async def test_b43_psd_example_spf_aligns_dkim_does_not() -> None:
    dns = ScriptedResolver(
        {
            "_dmarc.bank.example": ["v=DMARC1; p=reject; psd=y"],
            "_dmarc.giant.bank.example": ["v=DMARC1; p=quarantine"],
        }
    )
    result = await evaluate(
        b"ceo@giant.bank.example",
        (PASS, "mail.giant.bank.example"),
        [(PASS, "mail.mega.bank.example")],
        dns,
    )
    assert result.result is Result.PASS and result.spf_aligned and not result.dkim_aligned
    assert result.organizational_domain == "giant.bank.example"
    unaligned = await evaluate(
        b"ceo@giant.bank.example", None, [(PASS, "mail.mega.bank.example")], dns
    )
    assert unaligned.result is Result.FAIL and unaligned.disposition is Disposition.QUARANTINE


async def test_a_public_suffix_record_does_not_align_its_registrants() -> None:
    dns = ScriptedResolver({"_dmarc.example": ["v=DMARC1; p=reject; psd=y"]})
    result = await evaluate(b"x@victim.example", (PASS, "attacker.example"), [], dns)
    assert result.result is Result.FAIL
    assert result.policy_domain == "example" and result.policy_tag is PolicyTag.P
    assert result.organizational_domain == "victim.example"


async def test_no_policy_record_is_none() -> None:
    dns = ScriptedResolver({})
    result = await evaluate(b"a@example.org", ("fail", "example.org"), [], dns)
    assert result.result is Result.NONE and result.reasons == (Reason.NO_POLICY_RECORD,)


async def test_invalid_policy_without_rua_is_none() -> None:
    dns = zone(example_com="v=DMARC1; p=bogus")
    result = await evaluate(b"a@example.com", None, [], dns)
    assert result.result is Result.NONE and result.reasons == (Reason.POLICY_INVALID,)


async def test_invalid_policy_with_rua_acts_as_p_none() -> None:
    dns = zone(example_com="v=DMARC1; p=bogus; rua=mailto:r@example.com")
    result = await evaluate(b"a@example.com", None, [], dns)
    assert result.result is Result.FAIL and result.disposition is Disposition.NONE
    assert Reason.POLICY_FALLBACK_NONE in result.reasons


async def test_sp_applies_to_an_existing_subdomain() -> None:
    dns = zone(example_com="v=DMARC1; p=reject; sp=quarantine; np=reject")
    result = await evaluate(b"a@mail.example.com", None, [], dns)
    assert result.policy_tag is PolicyTag.SP and result.disposition is Disposition.QUARANTINE
    assert ("A", "mail.example.com") in dns.queries


async def test_np_applies_to_a_non_existent_subdomain() -> None:
    dns = zone(example_com="v=DMARC1; p=none; sp=quarantine; np=reject")
    result = await evaluate(b"a@ghost.example.com", None, [], dns)
    assert result.result is Result.FAIL and result.policy_tag is PolicyTag.NP
    assert result.disposition is Disposition.REJECT
    assert Reason.NONEXISTENT_SUBDOMAIN in result.reasons


async def test_np_falls_back_to_p_and_is_not_asked_when_equal() -> None:
    dns = zone(example_com="v=DMARC1; p=reject; np=reject")
    result = await evaluate(b"a@ghost.example.com", None, [], dns)
    assert result.policy_tag is PolicyTag.P and result.disposition is Disposition.REJECT
    assert not any(kind == "A" for kind, _ in dns.queries)
    no_np = zone(example_com="v=DMARC1; p=quarantine")
    result = await evaluate(b"a@ghost.example.com", None, [], no_np)
    assert result.policy_tag is PolicyTag.P and result.disposition is Disposition.QUARANTINE


async def test_np_does_not_apply_to_the_domain_itself() -> None:
    dns = zone(example_com="v=DMARC1; p=none; np=reject")
    result = await evaluate(b"a@example.com", None, [], dns)
    assert result.policy_tag is PolicyTag.P and result.disposition is Disposition.NONE


@pytest.mark.parametrize(
    ("policy", "disposition"),
    [
        ("reject", Disposition.QUARANTINE),
        ("quarantine", Disposition.NONE),
        ("none", Disposition.NONE),
    ],
)
async def test_testing_lowers_one_step(policy: str, disposition: Disposition) -> None:
    dns = zone(example_com=f"v=DMARC1; p={policy}; t=y")
    result = await evaluate(b"a@example.com", None, [], dns)
    assert result.result is Result.FAIL and result.testing
    assert result.disposition is disposition and result.requested is Policy(policy)
    assert (result.override is PolicyOverride.POLICY_TEST_MODE) is (policy != "none")


async def test_pct_zero_is_testing() -> None:
    dns = zone(example_com="v=DMARC1; p=reject; pct=0")
    result = await evaluate(b"a@example.com", None, [], dns)
    assert result.disposition is Disposition.QUARANTINE and Reason.TESTING in result.reasons


async def test_override_only_touches_a_failure() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    override = Override(PolicyOverride.TRUSTED_FORWARDER, "arc=pass i=1 sealer lists.example")
    failed = await evaluate(b"a@example.com", None, [], dns, override=override)
    assert failed.result is Result.FAIL and failed.disposition is Disposition.NONE
    assert failed.override is PolicyOverride.TRUSTED_FORWARDER
    assert failed.requested is Policy.REJECT and failed.detail == override.comment
    passed = await evaluate(b"a@example.com", (PASS, "example.com"), [], dns, override=override)
    assert passed.result is Result.PASS and passed.override is None


@pytest.mark.parametrize(
    ("fields", "result", "reason"),
    [
        ([], Result.NONE, Reason.NO_FROM),
        ([b""], Result.NONE, Reason.NO_AUTHOR_DOMAIN),
        ([b"undisclosed-recipients:;"], Result.NONE, Reason.NO_AUTHOR_DOMAIN),
        ([b"<<<>>>"], Result.PERMERROR, Reason.INVALID_AUTHOR_DOMAIN),
        ([b"alice"], Result.PERMERROR, Reason.INVALID_AUTHOR_DOMAIN),
        ([b"alice@[192.0.2.1]"], Result.PERMERROR, Reason.INVALID_AUTHOR_DOMAIN),
        ([b"alice@exa_mple-.com"], Result.PERMERROR, Reason.INVALID_AUTHOR_DOMAIN),
        ([b"alice@example..com"], Result.PERMERROR, Reason.INVALID_AUTHOR_DOMAIN),
        ([b"alice@" + b"a" * 64 + b".com"], Result.PERMERROR, Reason.INVALID_AUTHOR_DOMAIN),
    ],
)
async def test_unusable_from(fields: list[bytes], result: Result, reason: Reason) -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    outcome = await evaluate(fields, None, [], dns)
    assert outcome.result is result and outcome.reasons == (reason,)
    assert dns.queries == []


async def test_from_with_display_name_group_and_idn() -> None:
    dns = ScriptedResolver({"_dmarc.xn--bcher-kva.example": ["v=DMARC1; p=reject"]})
    value = "=?utf-8?q?B=C3=BCcher?= <info@Bücher.example>".encode()
    result = await evaluate(value, (PASS, "xn--bcher-kva.example"), [], dns)
    assert result.result is Result.PASS and result.author_domain == "xn--bcher-kva.example"
    grouped = await evaluate(b"team: a@example.com;", None, [], zone(example_com="v=DMARC1"))
    assert grouped.author_domain == "example.com"


async def test_one_from_with_two_addresses_in_one_domain_is_one_author() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    result = await evaluate(b"a@example.com, b@EXAMPLE.com", (PASS, "example.com"), [], dns)
    assert result.result is Result.PASS and result.author_domains == ("example.com",)


async def test_several_author_domains_strictest_failure_wins() -> None:
    dns = ScriptedResolver(
        {
            "_dmarc.example.com": ["v=DMARC1; p=quarantine"],
            "_dmarc.example.org": ["v=DMARC1; p=reject"],
        }
    )
    value = b"a@example.com, b@example.org, c@example.net"
    result = await evaluate(value, (PASS, "example.com"), [], dns)
    assert result.result is Result.FAIL and result.disposition is Disposition.REJECT
    assert result.author_domain == "example.org"
    assert result.author_domains == ("example.com", "example.org", "example.net")
    stopped = await evaluate(value, None, [], dns, multiple_authors=MultipleAuthors.NO_DMARC)
    assert stopped.result is Result.NONE
    assert stopped.reasons == (Reason.TOO_MANY_AUTHOR_DOMAINS,)


async def test_several_author_domains_all_passing() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    result = await evaluate(
        b"a@example.com, b@mail.example.com", None, [(PASS, "example.com")], dns
    )
    assert result.result is Result.PASS


async def test_too_many_author_domains() -> None:
    value = ", ".join(f"u@d{i}.example" for i in range(DMARC_AUTHOR_DOMAINS_MAX + 1))
    dns = ScriptedResolver({})
    result = await evaluate(value.encode(), None, [], dns)
    assert result.result is Result.PERMERROR
    assert result.reasons == (Reason.TOO_MANY_AUTHOR_DOMAINS,) and dns.queries == []


async def test_temperror_when_the_policy_query_fails() -> None:
    dns = ScriptedResolver({"_dmarc.example.com": DnsTempError("SERVFAIL")})
    result = await evaluate(b"a@example.com", (PASS, "example.com"), [], dns)
    assert result.result is Result.TEMPERROR and result.reasons == (Reason.DNS_TEMPERROR,)


async def test_temperror_higher_up_the_walk() -> None:
    dns = ScriptedResolver({"_dmarc.com": DnsTempError("timeout")})
    result = await evaluate(b"a@mail.example.com", None, [], dns)
    assert result.result is Result.TEMPERROR


async def test_permerror_on_a_permanent_dns_failure() -> None:
    dns = ScriptedResolver({"_dmarc.example.com": DnsPermError("answer too large")})
    result = await evaluate(b"a@example.com", None, [], dns)
    assert result.result is Result.PERMERROR and result.reasons == (Reason.DNS_PERMERROR,)


async def test_alignment_walk_failure_is_temperror_unless_something_else_aligns() -> None:
    records: dict[str, list[str] | Exception] = {
        "_dmarc.example.com": ["v=DMARC1; p=reject"],
        "_dmarc.mail.example.com": DnsTempError("SERVFAIL"),
    }
    result = await evaluate(
        b"a@example.com", (PASS, "mail.example.com"), [], ScriptedResolver(records)
    )
    assert result.result is Result.TEMPERROR
    both = await evaluate(
        b"a@example.com",
        (PASS, "mail.example.com"),
        [(PASS, "example.com")],
        ScriptedResolver(records),
    )
    assert both.result is Result.PASS and both.dkim_aligned


async def test_existence_check_failure_is_temperror() -> None:
    records = {"_dmarc.example.com": ["v=DMARC1; p=none; np=reject"]}
    dns = ScriptedResolver(records)

    async def broken_a(name: str) -> tuple[IPv4Address, ...]:
        raise DnsTempError("SERVFAIL")

    dns.a = broken_a  # type: ignore[method-assign]
    result = await evaluate(b"a@ghost.example.com", None, [], dns)
    assert result.result is Result.TEMPERROR


async def test_timeout_is_temperror() -> None:
    class Slow(ScriptedResolver):
        async def txt(self, name: str) -> tuple[bytes, ...]:
            await asyncio.sleep(5)
            return ()

    result = await evaluate(b"a@example.com", None, [], Slow({}), timeout=0.05)
    assert result.result is Result.TEMPERROR and result.reasons == (Reason.TIMEOUT,)


async def test_unrelated_signers_cause_no_walk() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    dkim = [(PASS, f"d{i}.example.net") for i in range(50)]
    result = await evaluate(b"a@example.com", (PASS, "bounce.example.org"), dkim, dns)
    assert result.result is Result.FAIL
    assert dns.txt_names == ["_dmarc.example.com"]


@pytest.mark.parametrize(
    "fields",
    [
        [b"a@example.org", b"b@example.com"],
        [b"b@example.com", b"a@example.org"],
        [b"b@example.com", b"b@example.com"],
        [b"undisclosed-recipients:;", b"<b@example.com>"],
    ],
)
async def test_several_from_fields_are_each_evaluated(fields: list[bytes]) -> None:
    """A second From: field must not take a p=reject domain out of DMARC (RFC 5322
    §3.6 allows one): the strictest failing policy wins. Spec: DMARCbis §11.5."""
    dns = zone(example_com="v=DMARC1; p=reject", example_org="v=DMARC1; p=none")
    outcome = await evaluate(fields, (PASS, "example.org"), [], dns)
    assert outcome.result is Result.FAIL and outcome.disposition is Disposition.REJECT
    assert outcome.author_domain == "example.com"


async def test_several_from_fields_with_a_bad_domain_are_permerror() -> None:
    dns = zone(example_com="v=DMARC1; p=reject")
    outcome = await evaluate([b"a@example.com", b"b@exa..mple"], None, [], dns)
    assert outcome.result is Result.PERMERROR
