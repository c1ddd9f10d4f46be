"""Envelope grammar, ESMTP parameters and reply rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import LocalProtocolError
from postel.smtp import (
    Body,
    Mailbox,
    MailParams,
    Notify,
    Orcpt,
    Path,
    RcptParams,
    Reply,
    Ret,
    SmtpSyntaxError,
    decode_utf8_addr,
    decode_xtext,
    encode_utf8_addr,
)
from postel.smtp.params import Offered, parse_mail_params, parse_rcpt_params

OFFERED = Offered(size_max=1000, eight_bit_mime=True, binary_mime=True, smtputf8=True, dsn=True)


@pytest.mark.parametrize(
    ("text", "local", "domain"),
    [
        ("<user@example.org>", "user", "example.org"),
        ("<first.last+tag@sub.example.org>", "first.last+tag", "sub.example.org"),
        ('<"john doe"@example.org>', "john doe", "example.org"),
        ('<"a\\"b\\\\c"@example.org>', 'a"b\\c', "example.org"),
        ('<"a>b"@example.org>', "a>b", "example.org"),
        ("<user@[192.0.2.1]>", "user", "[192.0.2.1]"),
        ("<user@[IPv6:2001:db8::1]>", "user", "[IPv6:2001:db8::1]"),
        ("<@a.example,@[192.0.2.9]:user@example.org>", "user", "example.org"),
        ("<jörg@bücher.example>", "jörg", "bücher.example"),
        ("user@example.org", "user", "example.org"),
    ],
)
def test_path_parse(text: str, local: str, domain: str) -> None:
    assert Path.parse(text) == Path(Mailbox(local, domain))


def test_null_and_postmaster() -> None:
    assert Path.parse("<>").is_null
    assert str(Path.parse("<>")) == "<>"
    for text in ("<postmaster>", "<PostMaster>", "<POSTMASTER>"):
        path = Path.parse(text)
        assert path.postmaster and not path.is_null and str(path) == "<postmaster>"
    with pytest.raises(SmtpSyntaxError):
        Path.parse("<>", allow_null=False)
    with pytest.raises(SmtpSyntaxError):
        Path.parse("<postmaster>", allow_postmaster=False)


@pytest.mark.parametrize(
    "text",
    [
        "<user>",
        "<user@>",
        "<@example.org>",
        "<.user@example.org>",
        "<us..er@example.org>",
        "<user.@example.org>",
        "<user@-example.org>",
        "<user@example-.org>",
        "<user@exa_mple.org>",
        "<user@example..org>",
        "<user@[300.1.1.1]>",
        "<user@[IPv6:zz::1]>",
        "<user@[tag:content]>",
        '<"unterminated@example.org>',
        "<user@example.org",
        "<@a.example:>",
        "<@a.example user@example.org>",
        "<user@" + "a" * 250 + ".example>",
        "<user name@example.org>",
    ],
)
def test_path_syntax_errors(text: str) -> None:
    with pytest.raises(SmtpSyntaxError) as info:
        Path.parse(text)
    assert info.value.reply.code == 501


def test_non_ascii_needs_smtputf8() -> None:
    with pytest.raises(SmtpSyntaxError) as info:
        Path.parse("<jörg@example.org>", smtputf8=False)
    assert (info.value.reply.code, info.value.reply.enhanced) == (553, "5.6.7")


def test_mailbox_str_requotes() -> None:
    assert str(Mailbox("john doe", "example.org")) == '"john doe"@example.org'
    assert str(Mailbox('a"b', "example.org")) == '"a\\"b"@example.org'
    assert str(Mailbox("a.b", "[192.0.2.1]")) == "a.b@[192.0.2.1]"
    assert Mailbox("a", "[192.0.2.1]").is_address_literal
    assert not Mailbox("jörg", "example.org").is_ascii


def test_mail_params() -> None:
    params = parse_mail_params(" SIZE=100 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B314", OFFERED)
    assert params == MailParams(
        size=100, body=Body.EIGHT_BIT_MIME, smtputf8=True, ret=Ret.HDRS, envid="QQ+314"
    )
    assert parse_mail_params("", None) == MailParams()
    assert parse_mail_params("  ", OFFERED) == MailParams()


@pytest.mark.parametrize(
    ("text", "code", "enhanced"),
    [
        (" SIZE=1001", 552, "5.3.4"),
        (" SIZE=abc", 501, "5.5.4"),
        (" SIZE=" + "9" * 21, 501, "5.5.4"),
        (" SIZE=１２", 501, "5.5.4"),
        (" BODY=9BIT", 501, "5.5.4"),
        (" SMTPUTF8=yes", 501, "5.5.4"),
        (" RET=ALL", 501, "5.5.4"),
        (" ENVID=a+zz", 501, "5.5.4"),
        (" ENVID=" + "a" * 101, 501, "5.5.4"),
        (" FOO=BAR", 555, "5.5.4"),
        (" SIZE=1 SIZE=2", 501, "5.5.4"),
        (" -BAD", 501, "5.5.4"),
        (" SIZE=", 501, "5.5.4"),
    ],
)
def test_mail_param_errors(text: str, code: int, enhanced: str) -> None:
    with pytest.raises(SmtpSyntaxError) as info:
        parse_mail_params(text, OFFERED)
    assert (info.value.reply.code, info.value.reply.enhanced) == (code, enhanced)


def test_params_not_offered() -> None:
    with pytest.raises(SmtpSyntaxError) as info:
        parse_mail_params(" SIZE=1", None)
    assert info.value.reply.code == 555
    no_dsn = Offered(1000, True, False, False, False)
    for text in (" RET=FULL", " SMTPUTF8", " BODY=BINARYMIME"):
        with pytest.raises(SmtpSyntaxError):
            parse_mail_params(text, no_dsn)
    with pytest.raises(SmtpSyntaxError):
        parse_rcpt_params(" NOTIFY=NEVER", no_dsn, False)


def test_rcpt_params() -> None:
    params = parse_rcpt_params(
        " NOTIFY=success,Delay ORCPT=rfc822;bob+40example.org", OFFERED, False
    )
    assert params == RcptParams(
        notify=frozenset({Notify.SUCCESS, Notify.DELAY}), orcpt=Orcpt("RFC822", "bob@example.org")
    )
    for bad in (" NOTIFY=NEVER,SUCCESS", " NOTIFY=SOMETIMES", " ORCPT=bob", " ORCPT=rfc822;"):
        with pytest.raises(SmtpSyntaxError):
            parse_rcpt_params(bad, OFFERED, False)


def test_xtext() -> None:
    assert decode_xtext("a+2Bb+3Dc") == "a+b=c"
    with pytest.raises(SmtpSyntaxError):
        decode_xtext("a+2b")
    with pytest.raises(SmtpSyntaxError):
        decode_xtext("a=b")


def test_reply_render() -> None:
    assert Reply(250, "2.1.0", "OK").render() == b"250 2.1.0 OK\r\n"
    assert (
        Reply(250, None, ("mx", "PIPELINING", "HELP")).render()
        == b"250-mx\r\n250-PIPELINING\r\n250 HELP\r\n"
    )
    assert Reply(354, None, "").render() == b"354\r\n"
    assert Reply(550, "5.7.1", "evil\r\nRCPT TO:<x>").render() == b"550 5.7.1 evil  RCPT TO:<x>\r\n"
    assert Reply(550, "5.1.1", "jörg").render() == b"550 5.1.1 j?rg\r\n"
    assert len(Reply(250, None, "x" * 1000).render()) == 512


@pytest.mark.parametrize(
    ("code", "enhanced"), [(199, None), (600, None), (250, "5.0.0"), (250, "2.0"), (550, "5.x.0")]
)
def test_reply_validation(code: int, enhanced: str | None) -> None:
    with pytest.raises(LocalProtocolError):
        Reply(code, enhanced, "x")


@pytest.mark.parametrize("text", ["a+00b", "a+0D+0Ax", "x+09y", "z+7F", "rfc822+3Ba+0Ab"])
def test_xtext_never_decodes_to_control_characters(text: str) -> None:
    """ENVID and ORCPT are copied into DSN fields later: CR, LF, NUL and other controls
    are refused at the door. Spec: RFC 3461 §4."""
    with pytest.raises(SmtpSyntaxError) as info:
        decode_xtext(text)
    assert (info.value.reply.code, info.value.reply.enhanced) == (501, "5.5.4")


def test_requiretls_is_a_mail_parameter_only_when_offered() -> None:
    """REQUIRETLS takes no value and exists only where offered (over TLS).
    Spec: RFC 8689 §4.1."""
    offered = Offered(1000, True, True, True, True, requiretls=True)
    assert parse_mail_params(" REQUIRETLS", offered).requiretls
    assert not parse_mail_params("", offered).requiretls
    with pytest.raises(SmtpSyntaxError) as bad:
        parse_mail_params(" REQUIRETLS=YES", offered)
    assert bad.value.reply.code == 501
    with pytest.raises(SmtpSyntaxError) as not_offered:
        parse_mail_params(" REQUIRETLS", OFFERED)
    assert not_offered.value.reply.code == 555


@pytest.mark.parametrize(
    "encoded",
    [
        r"\x{ZZZ}@example.org",  # not hex
        r"\x{}@example.org",  # no digits
        r"\x{1234567}@example.org",  # more than six
        r"a\b@example.org",  # a backslash that is no escape
        "a+40b@example.org",  # xtext's escape is not utf-8-addr-xtext's
        "a=b@example.org",
        r"\x{D800}@example.org",  # a surrogate
        r"\x{110000}@example.org",  # past Unicode
        r"a\x{0A}b@example.org",  # a control character
        r"a\x{7F}b@example.org",
    ],
)
def test_a_utf8_orcpt_is_utf8_addr_xtext_or_refused(encoded: str) -> None:
    """ORCPT=utf-8;... takes RFC 6533's utf-8-addr-xtext (its one escape is
    \\x{HEX}); anything else is 501 5.5.4. Spec: RFC 6533 §3."""
    with pytest.raises(SmtpSyntaxError) as info:
        parse_rcpt_params(f" ORCPT=utf-8;{encoded}", OFFERED, False)
    assert (info.value.reply.code, info.value.reply.enhanced) == (501, "5.5.4")


@given(st.text(min_size=1, max_size=40).filter(str.isprintable))
def test_utf8_addr_xtext_round_trips(address: str) -> None:
    """What the client side encodes (ASCII only), the server side decodes to the same
    address, with and without SMTPUTF8. Spec: RFC 6533 §3."""
    encoded = encode_utf8_addr(address)
    assert encoded.isascii()
    for smtputf8 in (False, True):
        params = parse_rcpt_params(f" ORCPT=UTF-8;{encoded}", OFFERED, smtputf8)
        assert params.orcpt == Orcpt("UTF-8", address)
    assert decode_utf8_addr("j\\x{f6}rg@x.test") == "jörg@x.test"
    assert decode_utf8_addr("jörg@x.test", smtputf8=True) == "jörg@x.test"


def test_the_client_sends_a_utf8_orcpt_as_utf8_addr_xtext() -> None:
    """A relayed ORCPT keeps its type, and a utf-8 one its escape form (xtext's +XX would
    be wrong there). Spec: RFC 6533 §3; RFC 3461 §4.2."""
    from postel.smtp.client_content import rcpt_parameters

    utf8 = RcptParams(orcpt=Orcpt("UTF-8", "jörg+x@example.org"))
    assert rcpt_parameters(utf8) == ["ORCPT=UTF-8;j\\x{F6}rg\\x{2B}x@example.org"]
    rfc822 = RcptParams(orcpt=Orcpt("rfc822", "a+b@example.org"))
    assert rcpt_parameters(rfc822) == ["ORCPT=rfc822;a+2Bb@example.org"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a..b@b.example", "local part"),
        (".a@b.example", "local part"),
        ("a.@b.example", "local part"),
        ("a b@b.example", "local part"),
        ("ab", "missing @domain"),
        ("ab.", "missing @domain"),
    ],
)
def test_a_bad_mailbox_reply_names_the_part_at_fault(text: str, says: str) -> None:
    """The 501 names the part that is wrong: a bad local part is not a missing domain.
    Spec: RFC 5321 §4.1.2."""
    with pytest.raises(SmtpSyntaxError) as info:
        Mailbox.parse(text)
    assert info.value.reply.code == 501 and says in str(info.value.reply.text)
