"""Helpers for the POP3 end-to-end tests: poplib sessions over implicit TLS and STLS,
raw command lines (poplib raises on ``-ERR`` and has no AUTH), SASL PLAIN and
SCRAM-SHA-256 exchanges, a message's wire form from poplib's lines, fast maildrop
filling over IMAP (MULTIAPPEND with LITERAL+), what IMAP says about the INBOX, and
logging in again once the maildrop lock is free.

Spec: RFC 1939 (POP3); RFC 2449 (CAPA, response codes); RFC 2595 §4 (STLS);
RFC 5034 (AUTH); RFC 4616 (PLAIN); RFC 5802, RFC 7677 (SCRAM-SHA-256);
RFC 8314 §3 (995); RFC 3502 (MULTIAPPEND); RFC 7888 (LITERAL+).
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import poplib
import time
from collections.abc import Iterable, Sequence

from scramp import ScramClient

from .imap_helpers import PASSWORD, TIMEOUT, group, imaps, ok, tls_context
from .imap_raw import RawImap
from .server import PostelServer

LOCK_WAIT = 2.0
"""Seconds a maildrop lock may outlive the session that held it before a test calls it
stuck (RFC 1939 §6: the lock is released at the end of the UPDATE state, and the
reply to QUIT may come a moment before)."""

APPEND_BATCH = 500
"""Messages per MULTIAPPEND command when filling a maildrop."""

_UIDVALIDITY = rb"UIDVALIDITY (\d+)"
_MESSAGES = rb"MESSAGES (\d+)"


def pop3s(server: PostelServer, user: str | None = None) -> poplib.POP3_SSL:
    """A poplib session on the implicit-TLS port (RFC 8314), logged in with USER/PASS
    as ``user`` when given."""
    client = poplib.POP3_SSL(
        "127.0.0.1", server.pop3s_port, context=tls_context(server), timeout=TIMEOUT
    )
    if user is not None:
        client.user(user)
        client.pass_(PASSWORD)
    return client


def pop3_plain(server: PostelServer, *, stls: bool = False) -> poplib.POP3:
    """A poplib session on the STLS port, upgraded to TLS first when ``stls``."""
    client = poplib.POP3("127.0.0.1", server.pop3_port, timeout=TIMEOUT)
    if stls:
        client.stls(tls_context(server))
    return client


def command(client: poplib.POP3, line: str | bytes) -> bytes:
    """Send one command line and return the status line (without CRLF) as sent,
    ``-ERR`` included (poplib would raise). Spec: RFC 1939 §3."""
    send(client, line)
    return read_line(client)


def send(client: poplib.POP3, line: str | bytes) -> None:
    """Write ``line`` + CRLF on the session's socket."""
    data = line.encode() if isinstance(line, str) else line
    client.sock.sendall(data + b"\r\n")


def read_line(client: poplib.POP3) -> bytes:
    """One line from the server without its CRLF; raises EOFError at EOF."""
    line = client.file.readline()
    if not line:
        raise EOFError("connection closed")
    return line.rstrip(b"\r\n")


def try_login(server: PostelServer, user: str) -> poplib.POP3_SSL | bytes:
    """USER/PASS over 995: the session when PASS got ``+OK``, else PASS's ``-ERR`` line
    (the connection is then closed)."""
    client = pop3s(server)
    client.user(user)
    answer = command(client, f"PASS {PASSWORD}")
    if answer.startswith(b"+OK"):
        return client
    client.close()
    return answer


def wire_message(lines: Sequence[bytes]) -> bytes:
    """The message a RETR carried, from poplib's un-stuffed lines: each line with CRLF.
    Its length is the octet count LIST and STAT give. Spec: RFC 1939 §11."""
    return b"".join(line + b"\r\n" for line in lines)


def auth_plain(client: poplib.POP3, user: str, password: str = PASSWORD) -> bytes:
    """``AUTH PLAIN`` with an initial response; returns the final status line.
    Spec: RFC 5034 §4, RFC 4616 §2."""
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return command(client, f"AUTH PLAIN {token}")


def auth_scram(
    client: poplib.POP3, user: str, password: str = PASSWORD, *, initial: bool = True
) -> tuple[bytes, list[bytes]]:
    """``AUTH SCRAM-SHA-256`` with scramp as the client, the client-first message as an
    initial response when ``initial`` (else after an empty ``+`` challenge). The
    server's ``v=`` data comes as one more ``+`` challenge, answered with an empty line
    once scramp has verified it (scramp raises ScramException when it does not verify).
    Returns the final status line and every challenge line received.
    Spec: RFC 5034 §4, RFC 5802 §3, §5, RFC 7677."""
    scram = ScramClient(["SCRAM-SHA-256"], user, password)
    first = _b64(scram.get_client_first().encode())
    challenges: list[bytes] = []
    if initial:
        send(client, f"AUTH SCRAM-SHA-256 {first}")
    else:
        send(client, "AUTH SCRAM-SHA-256")
        challenges.append(read_line(client))
        if not challenges[-1].startswith(b"+"):
            return challenges.pop(), challenges
        send(client, first)
    line = read_line(client)
    if not line.startswith(b"+ "):
        return line, challenges
    challenges.append(line)
    scram.set_server_first(_unb64(line))
    send(client, _b64(scram.get_client_final().encode()))
    line = read_line(client)
    if not line.startswith(b"+ "):
        return line, challenges
    challenges.append(line)
    scram.set_server_final(_unb64(line))
    send(client, b"")
    return read_line(client), challenges


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(challenge: bytes) -> str:
    return base64.b64decode(challenge[2:].strip(), validate=True).decode()


def multiappend(server: PostelServer, user: str, messages: Iterable[bytes]) -> int:
    """APPEND ``messages`` to ``user``'s INBOX with MULTIAPPEND commands of LITERAL+
    literals (APPEND_BATCH a command); returns how many were appended.
    Spec: RFC 3502 §6.3.11, RFC 7888 §4."""
    pending = list(messages)
    with RawImap.tls(server.imaps_port) as client:
        client.login(user, PASSWORD)
        for start in range(0, len(pending), APPEND_BATCH):
            tag = client.tag()
            command_ = bytearray(f"{tag} APPEND INBOX".encode())
            for content in pending[start : start + APPEND_BATCH]:
                command_ += b" {%d+}\r\n" % len(content) + content
            client.send(bytes(command_) + b"\r\n")
            done = client.until_tagged(tag)
            assert done.status == "OK", done
    return len(pending)


def inbox_status(server: PostelServer, user: str) -> tuple[int, int]:
    """IMAP ``STATUS INBOX (MESSAGES UIDVALIDITY)`` for ``user``: (messages,
    uidvalidity). Spec: RFC 9051 §6.3.11."""
    client = imaps(server, user)
    try:
        data = ok(client.status("INBOX", "(MESSAGES UIDVALIDITY)"))[0]
        return int(group(_MESSAGES, data)), int(group(_UIDVALIDITY, data))
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def inbox_uids(server: PostelServer, user: str) -> list[int]:
    """The UIDs of ``user``'s INBOX in message-sequence order (``UID FETCH 1:* (UID)``
    after EXAMINE). Spec: RFC 9051 §6.4.9."""
    client = imaps(server, user)
    try:
        ok(client.select("INBOX", readonly=True))
        data = ok(client.uid("FETCH", "1:*", "(UID)"))
        return [int(group(rb"UID (\d+)", item)) for item in data if item]
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def login_within(
    server: PostelServer, user: str, timeout: float = LOCK_WAIT
) -> poplib.POP3_SSL | bytes:
    """USER/PASS over 995 for ``user``, retried while the answer is ``-ERR [IN-USE]``
    for up to ``timeout`` seconds: the session, or the last ``-ERR`` line."""
    deadline = time.monotonic() + timeout
    while True:
        got = try_login(server, user)
        if not isinstance(got, bytes) or not got.startswith(b"-ERR [IN-USE]"):
            return got
        if time.monotonic() > deadline:
            return got
        time.sleep(0.02)
