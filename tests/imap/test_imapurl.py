"""IMAP URL parsing for CATENATE and URLAUTH. Spec: RFC 5092 §3, §5; RFC 4467 §3."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import ProtocolError
from postel.imap.fetch_items import Section, SectionText
from postel.imap.imapurl import AccessKind, ImapUrlError, parse_imap_url


def test_relative_url_with_section_and_partial() -> None:
    url = parse_imap_url(
        "/Sent%20Items;UIDVALIDITY=7/;UID=20/;SECTION=1.2.MIME/;PARTIAL=5.10", absolute=False
    )
    assert (url.mailbox, url.uidvalidity, url.uid) == ("Sent Items", 7, 20)
    assert url.section == Section((1, 2), SectionText.MIME)
    assert url.partial == (5, 10)
    assert url.user is None and url.access is None


def test_absolute_urlauth_url() -> None:
    text = (
        "imap://joe%40example.com@example.com/INBOX/;uid=3;expire=2030-01-01T00:00:00Z"
        ";urlauth=user+ann%40example.com:internal:0123abcd"
    )
    url = parse_imap_url(text, absolute=True)
    assert url.user == "joe@example.com" and url.host == "example.com"
    assert url.expire == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert (url.access, url.access_user) == (AccessKind.USER, "ann@example.com")
    assert (url.mechanism, url.token) == ("internal", "0123abcd")
    assert url.rump == text[: text.index(":internal:")]


def test_rump_without_verifier() -> None:
    text = "imap://u@h/INBOX/;uid=1;urlauth=authuser"
    url = parse_imap_url(text, absolute=True)
    assert url.rump == text and url.mechanism is None and url.access is AccessKind.AUTHUSER


@pytest.mark.parametrize(
    "text",
    [
        "/INBOX",
        "/INBOX/;uid=0",
        "/;uid=1",
        "//host/INBOX/;uid=1",
        "/INBOX/;uid=1/;section=BOGUS",
        "/INBOX/;uid=1/;section=",
        "/INBOX/;uid=1/;section=01",
        "/INBOX/;uid=1/;section=2.01.MIME",
        "/INBOX/;uid=1/;section=1.0",
        "/INBOX/;uid=1;urlauth=nobody",
        "/INBOX/;uid=1;expire=yesterday;urlauth=anonymous",
        "/%FF/;uid=1",
    ],
)
def test_bad_relative_urls(text: str) -> None:
    with pytest.raises(ImapUrlError):
        parse_imap_url(text, absolute=False)


@pytest.mark.parametrize(
    "template",
    [
        "/INBOX/;uid={n}",
        "/INBOX;uidvalidity={n}/;uid=1",
        "/INBOX/;uid=1/;partial={n}",
        "/INBOX/;uid=1/;partial=0.{n}",
        "imap://u@h/INBOX/;uid={n}",
    ],
)
def test_every_number_of_a_url_is_an_unsigned_32_bit_number(template: str) -> None:
    """UID, UIDVALIDITY and PARTIAL are RFC 3501 numbers: 4294967295 is the largest;
    one more is a bad URL (CATENATE answers BADURL), never a store error later.
    Spec: RFC 5092 §11; RFC 4469 §5; RFC 4467 §9."""
    for n, ok in ((4294967295, True), (4294967296, False), (9999999999, False)):
        text = template.format(n=n)
        absolute = text.startswith("imap:")
        if ok:
            parse_imap_url(text, absolute=absolute)
        else:
            with pytest.raises(ImapUrlError, match="above 4294967295"):
                parse_imap_url(text, absolute=absolute)


def test_absolute_needs_scheme_and_user() -> None:
    for text in ("/INBOX/;uid=1", "imap://host/INBOX/;uid=1", "imap://u@h"):
        with pytest.raises(ImapUrlError):
            parse_imap_url(text, absolute=True)


@given(st.text(max_size=200), st.booleans())
def test_parser_raises_only_protocol_errors(text: str, absolute: bool) -> None:
    with contextlib.suppress(ProtocolError):
        parse_imap_url(text, absolute=absolute)
