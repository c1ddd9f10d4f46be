"""Open relay matrix (RELIABILITY.md test 9): classic relay tricks sent unauthenticated.

Each case is one SMTP session: MAIL FROM, then the RCPT TO under test. A recipient that
is accepted must be local delivery: the message then has to land in one of our
accounts' INBOX (postel has no outbound queue, so anything accepted and not stored
locally would be lost or relayed). Recipients that name another domain must be refused
with 5xx. The matrix runs twice: without and with a catch-all alias on our domain (a
catch-all must never turn a relay trick into a relay).

The list follows the classic relay tests (percent hack, bang paths, source routes,
quoted local parts, address literals, forged senders, syntax variants).

Spec: RFC 5321 §3.6.1 (relaying), §4.1.1.3 (RCPT), §3.6.1 source routes, RFC 2505 §2.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from .conftest import ServerFactory
from .rawsmtp import RawSmtp
from .server import PostelServer
from .stored import read_inbox

OURS = "example.test"
REMOTE = "remote.test"
USER = "user"
CATCH = "catchall"
ACCOUNTS = (f"{USER}@{OURS}", f"{CATCH}@{OURS}", f"admin@{OURS}")


@dataclass(frozen=True, slots=True)
class Trick:
    id: str
    rcpt: bytes
    """The whole RCPT command line after ``RCPT TO:`` (without CRLF)."""
    mail_from: bytes = b"<probe@" + REMOTE.encode() + b">"
    helo: bytes = b"EHLO relay.client.test"
    remote: bool = True
    """True when the address's domain is not ours: must be 5xx. False when the domain is
    ours (routing hidden in the local part, literals of our address): then acceptance
    is allowed only as local delivery (with a catch-all, say), checked in the store."""


def _t(id_: str, rcpt: str | bytes, **kw: object) -> Trick:
    data = rcpt.encode() if isinstance(rcpt, str) else rcpt
    return Trick(id_, data, **kw)  # type: ignore[arg-type]


R, OU = REMOTE, OURS
TRICKS = [
    _t("plain-remote", f"<victim@{R}>"),
    _t("plain-remote-upper", f"<VICTIM@{R.upper()}>"),
    _t("remote-trailing-dot", f"<victim@{R}.>"),
    _t("remote-no-brackets", f"victim@{R}"),
    _t("remote-space-before", f" <victim@{R}>"),
    _t("remote-space-inside", f"< victim@{R} >"),
    _t("remote-double-brackets", f"<<victim@{R}>>"),
    _t("remote-unclosed", f"<victim@{R}"),
    _t("remote-trailing-space", f"<victim@{R}> "),
    _t("percent-hack", f"<victim%{R}@{OU}>", remote=False),
    _t("percent-hack-literal", f"<victim%{R}@[127.0.0.1]>"),
    _t("percent-hack-quoted", f'<"victim%{R}"@{OU}>', remote=False),
    _t("percent-hack-bare", f"<victim%{R}>"),
    _t("percent-double", f"<victim%{R}%{OU}@{OU}>", remote=False),
    _t("bang-path", f"<{R}!victim>"),
    _t("bang-path-ours", f"<{R}!victim@{OU}>", remote=False),
    _t("bang-path-literal", f"<{R}!victim@[127.0.0.1]>"),
    _t("source-route", f"<@{OU}:victim@{R}>"),
    _t("source-route-literal", f"<@[127.0.0.1]:victim@{R}>"),
    _t("source-route-two-hops", f"<@{OU},@{OU}:victim@{R}>"),
    _t("quoted-at", f'<"victim@{R}">'),
    _t("quoted-at-ours", f'<"victim@{R}"@{OU}>', remote=False),
    _t("quoted-at-literal", f'<"victim@{R}"@[127.0.0.1]>'),
    _t("double-at", f"<victim@{R}@{OU}>", remote=False),
    _t("double-at-literal", f"<victim@{R}@[127.0.0.1]>"),
    _t("escaped-at", f"<victim\\@{R}@{OU}>", remote=False),
    _t("quoted-escaped-quote", f'<"victim\\"@{R}"@{OU}>', remote=False),
    _t("address-literal-loopback", "<victim@[127.0.0.1]>", remote=False),
    _t("address-literal-ipv6", "<victim@[IPv6:::1]>", remote=False),
    _t("address-literal-remote", "<victim@[192.0.2.1]>"),
    _t("user-at-our-ip", f"<{USER}@[127.0.0.1]>", remote=False),
    _t("ours-trailing-dot", f"<{USER}@{OU}.>", remote=False),
    _t("ours-upper", f"<{USER.upper()}@{OU.upper()}>", remote=False),
    _t("subdomain-of-ours", f"<victim@sub.{OU}>"),
    _t("ours-as-prefix", f"<victim@{OU}.{R}>"),
    _t("ours-as-suffix", f"<victim@x{OU}>"),
    _t("idn-remote", "<victim@bücher.example>"),
    _t("idn-remote-smtputf8", "<victim@bücher.example> SMTPUTF8"),
    _t("idn-a-label", "<victim@xn--bcher-kva.example>"),
    _t("idn-homograph-of-ours", "<victim@exаmple.test>"),
    _t("comment-in-address", f"<victim(comment)@{R}>"),
    _t("two-addresses", f"<{USER}@{OU}>, <victim@{R}>"),
    _t("two-addresses-space", f"<{USER}@{OU} victim@{R}>"),
    _t("nul-byte", f"<victim@{R}\x00@{OU}>", remote=False),
    _t("orcpt-ours", f"<victim@{R}> NOTIFY=NEVER ORCPT=rfc822;{USER}@{OU}"),
    _t("postmaster-remote", f"<postmaster@{R}>"),
    _t("forged-sender-ours", f"<victim@{R}>", mail_from=f"<{USER}@{OU}>".encode()),
    _t("null-sender", f"<victim@{R}>", mail_from=b"<>"),
    _t("forged-helo-ours", f"<victim@{R}>", helo=b"EHLO mx.test"),
    _t("helo-literal", f"<victim@{R}>", helo=b"HELO [127.0.0.1]"),
    _t("local-part-remote-route", f"<{USER}+victim%{R}@{OU}>", remote=False),
]


@pytest.fixture(scope="module")
def mx(module_servers: ServerFactory) -> PostelServer:
    server = module_servers("relay", admin_address=f"admin@{OURS}")
    server.add_accounts(OURS, USER, CATCH, "admin")
    server.start()
    return server


def attempt(server: PostelServer, trick: Trick) -> tuple[int, str | None]:
    """Run one trick; returns the RCPT reply code and, when it was accepted, the
    Message-ID of the message sent to it."""
    with RawSmtp(server.address) as client:
        assert client.reply().code == 220
        hello = client.command(trick.helo)
        assert hello.code == 250, hello
        mail = client.command(b"MAIL FROM:" + trick.mail_from)
        assert mail.code == 250, mail
        rcpt = client.command(b"RCPT TO:" + trick.rcpt)
        if rcpt.code != 250 and rcpt.code != 251:
            client.send(b"QUIT\r\n")
            return rcpt.code, None
        message_id = f"<{uuid.uuid4().hex}@relay.test>"
        data = client.command("DATA")
        assert data.code == 354, data
        client.send(
            f"Message-ID: {message_id}\r\nSubject: {trick.id}\r\n\r\nrelay test\r\n.\r\n".encode()
        )
        done = client.reply()
        assert done.code == 250, f"{trick.id}: RCPT accepted but DATA answered {done}"
        client.send(b"QUIT\r\n")
        return rcpt.code, message_id


def local_copies(server: PostelServer, message_id: str) -> list[str]:
    """The accounts whose INBOX holds ``message_id``."""
    needle = f"Message-ID: {message_id}\r\n".encode()
    return [a for a in ACCOUNTS for m in read_inbox(server, a) if needle in m.content]


NAMES_OUR_USER = frozenset(
    {"user-at-our-ip", "ours-trailing-dot", "ours-upper", "local-part-remote-route"}
)
"""Tricks whose address may legitimately reach the account ``user`` itself."""


def run_matrix(server: PostelServer, accepted: list[str] | None = None) -> list[str]:
    problems: list[str] = []
    for trick in TRICKS:
        code, message_id = attempt(server, trick)
        if message_id is not None and accepted is not None:
            accepted.append(trick.id)
        if message_id is None:
            if trick.remote and not 500 <= code < 600:
                problems.append(f"{trick.id}: remote recipient answered {code}, not 5xx")
            continue
        if trick.remote:
            problems.append(f"{trick.id}: remote recipient accepted ({code})")
        copies = local_copies(server, message_id)
        if len(copies) != 1:
            problems.append(f"{trick.id}: accepted, stored in {copies} (not one local INBOX)")
    return problems


def test_relay_matrix_refuses_every_remote_destination(mx: PostelServer) -> None:
    assert len(TRICKS) >= 40
    accepted: list[str] = []
    problems = run_matrix(mx, accepted)
    assert not problems, "\n".join(problems)
    # without a catch-all, nothing but our user's own address is accepted
    assert set(accepted) <= NAMES_OUR_USER, accepted


def test_relay_matrix_with_catch_all(mx: PostelServer) -> None:
    mx.cli("alias", "add", f"@{OURS}", f"{CATCH}@{OURS}")
    try:
        problems = run_matrix(mx)
    finally:
        mx.cli("alias", "remove", f"@{OURS}")
    assert not problems, "\n".join(problems)


def test_relay_after_starttls_is_still_refused(mx: PostelServer) -> None:
    """TLS is not authentication. Spec: RFC 3207 §4.1."""
    with RawSmtp(mx.address) as client:
        client.greet()
        assert client.command("STARTTLS").code == 220
        client.start_tls(settle=0.1)
        assert client.command("EHLO relay.client.test").code == 250
        assert client.command(f"MAIL FROM:<probe@{REMOTE}>").code == 250
        rcpt = client.command(f"RCPT TO:<victim@{REMOTE}>")
        assert 500 <= rcpt.code < 600, rcpt


def test_many_remote_recipients_in_one_transaction_are_all_refused(mx: PostelServer) -> None:
    with RawSmtp(mx.address) as client:
        client.greet()
        assert client.command(f"MAIL FROM:<probe@{REMOTE}>").code == 250
        client.send(b"".join(b"RCPT TO:<v%d@%s>\r\n" % (n, REMOTE.encode()) for n in range(50)))
        client.send(b"QUIT\r\n")
        codes = [reply.code for reply in client.replies_until_close()]
    # a server may end the session with 421 after too many errors (as Postfix does)
    refused = codes[: codes.index(421)] if 421 in codes else codes[:-1]
    assert refused, codes
    assert all(500 <= code < 600 for code in refused), codes
