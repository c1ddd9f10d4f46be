"""The DNS Tree Walk, DMARC Policy Discovery and the Organizational Domain over a
scripted resolver, with the examples of DMARCbis.

Spec: DMARCbis (draft-ietf-dmarc-dmarcbis-41) §4.10, §4.10.1, §4.10.2, §5.1.8, §B.4.
"""

from __future__ import annotations

import pytest

from postel.dmarc import (
    DMARC_TREE_WALK_QUERIES_MAX,
    DmarcPermError,
    DmarcTempError,
    Policy,
    TreeWalker,
    tree_walk_targets,
)
from postel.resolver import DnsPermError, DnsTempError

from .scripted import ScriptedResolver

REC = "v=DMARC1; p=reject"


def test_targets_of_a_short_name() -> None:
    assert tree_walk_targets("a.mail.example.com") == (
        "a.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    )
    assert tree_walk_targets("com") == ("com",)


def test_targets_of_the_long_example_of_section_4_10() -> None:
    targets = tree_walk_targets("a.b.c.d.e.f.g.h.i.j.mail.example.com")
    assert targets == (
        "a.b.c.d.e.f.g.h.i.j.mail.example.com",
        "g.h.i.j.mail.example.com",
        "h.i.j.mail.example.com",
        "i.j.mail.example.com",
        "j.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    )


def test_targets_of_the_section_5_1_8_example() -> None:
    assert tree_walk_targets("mail.a.b.c.d.e.f.g.example.com")[:2] == (
        "mail.a.b.c.d.e.f.g.example.com",
        "c.d.e.f.g.example.com",
    )


@pytest.mark.parametrize("labels", range(1, 40))
def test_never_more_than_eight_queries(labels: int) -> None:
    name = ".".join(f"l{i}" for i in range(labels))
    targets = tree_walk_targets(name)
    assert len(targets) == min(labels, DMARC_TREE_WALK_QUERIES_MAX)
    assert targets[0] == name and targets[-1] == f"l{labels - 1}"


async def test_b41_simple_organizational_and_policy_example() -> None:
    dns = ScriptedResolver(
        {"_dmarc.example.com": [REC], "_dmarc.signing.example.com": ["v=DMARC1; p=none"]}
    )
    walker = TreeWalker(dns)
    assert await walker.organizational_domain("example.com") == "example.com"
    assert await walker.organizational_domain("signing.example.com") == "example.com"
    discovery = await walker.discover_policy("example.com")
    assert discovery.policy_domain == "example.com" and not discovery.subdomain
    assert dns.txt_names == ["_dmarc.example.com", "_dmarc.com", "_dmarc.signing.example.com"]


async def test_b42_deep_tree_walk_example() -> None:
    author = "a.b.c.d.e.f.g.h.i.j.k.example.com"
    dns = ScriptedResolver({"_dmarc.example.com": [REC], "_dmarc.signing.example.com": [REC]})
    walker = TreeWalker(dns)
    discovery = await walker.discover_policy(author)
    assert discovery.policy_domain == "example.com" and discovery.subdomain
    assert discovery.record is not None and discovery.record.p is Policy.REJECT
    assert dns.txt_names == [
        "_dmarc." + n
        for n in (
            author,
            "g.h.i.j.k.example.com",
            "h.i.j.k.example.com",
            "i.j.k.example.com",
            "j.k.example.com",
            "k.example.com",
            "example.com",
            "com",
        )
    ]
    assert await walker.organizational_domain(author) == "example.com"
    assert await walker.organizational_domain("signing.example.com") == "example.com"


async def test_b43_psd_example() -> None:
    dns = ScriptedResolver(
        {
            "_dmarc.bank.example": ["v=DMARC1; p=reject; psd=y"],
            "_dmarc.giant.bank.example": ["v=DMARC1; p=quarantine"],
        }
    )
    walker = TreeWalker(dns)
    assert await walker.organizational_domain("giant.bank.example") == "giant.bank.example"
    assert await walker.organizational_domain("mail.giant.bank.example") == "giant.bank.example"
    assert await walker.organizational_domain("mail.mega.bank.example") == "mega.bank.example"
    discovery = await walker.discover_policy("giant.bank.example")
    assert discovery.policy_domain == "giant.bank.example"
    assert "_dmarc.example" not in dns.txt_names  # the psd=y record stops the walk


async def test_section_4_10_2_examples() -> None:
    both = ScriptedResolver({"_dmarc.mail.example.com": [REC], "_dmarc.example.com": [REC]})
    assert await TreeWalker(both).organizational_domain("a.mail.example.com") == "example.com"
    psd_n = ScriptedResolver(
        {"_dmarc.mail.example.com": ["v=DMARC1; psd=n"], "_dmarc.example.com": [REC]}
    )
    walker = TreeWalker(psd_n)
    assert await walker.organizational_domain("a.mail.example.com") == "mail.example.com"
    assert "_dmarc.example.com" not in psd_n.txt_names
    psd_y = ScriptedResolver({"_dmarc.com": ["v=DMARC1; p=none; psd=y"]})
    assert await TreeWalker(psd_y).organizational_domain("a.mail.example.com") == "example.com"


async def test_psd_y_at_the_start_is_its_own_organizational_domain() -> None:
    dns = ScriptedResolver({"_dmarc.bank.example": ["v=DMARC1; p=reject; psd=y"]})
    assert await TreeWalker(dns).organizational_domain("bank.example") == "bank.example"


async def test_no_record_anywhere() -> None:
    dns = ScriptedResolver({})
    walker = TreeWalker(dns)
    discovery = await walker.discover_policy("mail.example.org")
    assert discovery.record is None and discovery.policy_domain is None
    assert await walker.organizational_domain("mail.example.org") == "mail.example.org"
    assert dns.txt_names == ["_dmarc.mail.example.org", "_dmarc.example.org", "_dmarc.org"]


async def test_policy_from_a_psd_when_the_organizational_domain_has_none() -> None:
    dns = ScriptedResolver({"_dmarc.example": ["v=DMARC1; p=quarantine; np=reject; psd=y"]})
    discovery = await TreeWalker(dns).discover_policy("a.b.example")
    assert discovery.policy_domain == "example" and discovery.subdomain


async def test_the_author_record_wins_without_a_walk() -> None:
    dns = ScriptedResolver({"_dmarc.mail.example.com": [REC], "_dmarc.example.com": [REC]})
    discovery = await TreeWalker(dns).discover_policy("mail.example.com")
    assert discovery.policy_domain == "mail.example.com" and not discovery.subdomain
    assert dns.txt_names == ["_dmarc.mail.example.com"]


async def test_non_dmarc_and_multiple_records_are_discarded() -> None:
    dns = ScriptedResolver(
        {
            "_dmarc.a.example.com": ["v=spf1 -all", "hello"],
            "_dmarc.b.example.com": [REC, "v=DMARC1; p=none"],
            "_dmarc.example.com": ["unrelated", "v=DMARC1; p=quarantine"],
        }
    )
    walker = TreeWalker(dns)
    for author in ("a.example.com", "b.example.com"):
        discovery = await walker.discover_policy(author)
        assert discovery.policy_domain == "example.com"
        assert discovery.record is not None and discovery.record.p is Policy.QUARANTINE


async def test_answers_are_asked_once_per_walker() -> None:
    dns = ScriptedResolver({"_dmarc.example.com": [REC]})
    walker = TreeWalker(dns)
    for name in ("a.example.com", "b.example.com", "a.example.com"):
        await walker.organizational_domain(name)
    assert sorted(dns.txt_names) == sorted(
        ["_dmarc.a.example.com", "_dmarc.example.com", "_dmarc.com", "_dmarc.b.example.com"]
    )
    assert walker.queries == 4


async def test_dns_errors_are_typed() -> None:
    dns = ScriptedResolver(
        {
            "_dmarc.example.com": DnsTempError("SERVFAIL"),
            "_dmarc.example.net": DnsPermError("oversized"),
        }
    )
    walker = TreeWalker(dns)
    with pytest.raises(DmarcTempError):
        await walker.discover_policy("mail.example.com")
    with pytest.raises(DmarcTempError):  # remembered, not asked again
        await walker.organizational_domain("example.com")
    assert dns.txt_names.count("_dmarc.example.com") == 1
    with pytest.raises(DmarcPermError):
        await walker.discover_policy("example.net")


async def test_an_oversized_record_is_a_permanent_error() -> None:
    dns = ScriptedResolver({"_dmarc.example.com": ["v=DMARC1; p=reject; x=" + "a" * 5000]})
    with pytest.raises(DmarcPermError, match="unusable"):
        await TreeWalker(dns).discover_policy("example.com")


async def test_existence() -> None:
    dns = ScriptedResolver({"_dmarc.example.com": [REC]}, existing=["www.example.com"])
    walker = TreeWalker(dns)
    assert await walker.exists("www.example.com")
    assert await walker.exists("example.com")
    assert not await walker.exists("nope.example.com")
