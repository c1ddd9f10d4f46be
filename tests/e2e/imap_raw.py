"""A tiny IMAP client over a raw socket (implicit TLS or plaintext + STARTTLS), for bytes
no library would send and for reading every untagged response a session receives.

``RawImap.tls(port)`` connects to an IMAPS port, ``RawImap.plain(port)`` to an IMAP port
(``starttls()`` upgrades it). ``send`` writes bytes as given; ``response()`` reads one
response (a line with any literals it announces folded in); ``command`` sends one tagged
command and returns the untagged responses and the tagged completion.

Spec: RFC 9051 §2.2 (commands and responses), §4.3 (literals), §7 (responses).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import socket
import ssl
from dataclasses import dataclass, field

REPLY_TIMEOUT = 15.0
"""Seconds to wait for a response before the test fails."""

_LITERAL_AT_END = re.compile(rb"\{(\d+)\}$")
_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)\)$", re.DOTALL)
_UID_ITEM = re.compile(rb"(?:^|[ (])UID (\d+)")
_FLAGS_ITEM = re.compile(rb"(?:^|[ (])FLAGS \(([^)]*)\)")


def client_context() -> ssl.SSLContext:
    """A TLS client context that accepts the test servers' self-signed certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True, slots=True)
class Completion:
    """A command's outcome: its untagged responses in order and the tagged line."""

    untagged: tuple[bytes, ...]
    tagged: bytes

    @property
    def status(self) -> str:
        """``OK``, ``NO`` or ``BAD`` (the word after the tag)."""
        parts = self.tagged.split(b" ", 2)
        return parts[1].decode("ascii", "replace").upper() if len(parts) > 1 else ""


@dataclass(frozen=True, slots=True)
class FetchData:
    """The message-data items of ``* msn FETCH (...)`` a model cares about."""

    msn: int
    uid: int | None
    flags: frozenset[str] | None


def parse_fetch(response: bytes) -> FetchData | None:
    """``FetchData`` of an untagged FETCH response without literals, else None."""
    match = _FETCH.match(response)
    if match is None:
        return None
    items = match.group(2)
    uid = _UID_ITEM.search(items)
    flags = _FLAGS_ITEM.search(items)
    return FetchData(
        int(match.group(1)),
        int(uid.group(1)) if uid else None,
        frozenset(flags.group(1).decode().split()) if flags else None,
    )


@dataclass(slots=True)
class RawImap:
    """One IMAP connection; see the module docstring."""

    sock: socket.socket | ssl.SSLSocket
    buffer: bytes = b""
    next_tag: int = 0
    greeting: bytes = field(default=b"")

    @classmethod
    def tls(cls, port: int, timeout: float = REPLY_TIMEOUT, *, greet: bool = True) -> RawImap:
        """Connect to the implicit-TLS port ``port`` on 127.0.0.1 (RFC 8314)."""
        raw = socket.create_connection(("127.0.0.1", port), timeout)
        client = cls(client_context().wrap_socket(raw))
        if greet:
            client.greeting = client.response()
        return client

    @classmethod
    def plain(cls, port: int, timeout: float = REPLY_TIMEOUT, *, greet: bool = True) -> RawImap:
        """Connect in plaintext to ``port`` on 127.0.0.1 (the STARTTLS port)."""
        client = cls(socket.create_connection(("127.0.0.1", port), timeout))
        if greet:
            client.greeting = client.response()
        return client

    def starttls(self) -> None:
        """Wrap the socket in TLS after a tagged OK to STARTTLS. Anything already read
        past that OK arrived in plaintext and is an error."""
        assert not self.buffer, f"plaintext after the OK to STARTTLS: {self.buffer!r}"
        assert isinstance(self.sock, socket.socket)
        self.sock = client_context().wrap_socket(self.sock)

    def close(self) -> None:
        """Close the socket (no LOGOUT)."""
        self.sock.close()

    def __enter__(self) -> RawImap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settimeout(self, seconds: float | None) -> None:
        """Set the socket's read timeout."""
        self.sock.settimeout(seconds)

    def send(self, data: bytes) -> None:
        """Write ``data`` as given."""
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; unread {self.buffer[:200]!r}")
        self.buffer += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _octets(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def response(self) -> bytes:
        """One response without its final CRLF; literals are folded in as
        ``{n}\\r\\n<octets>``. Raises ConnectionError at EOF, TimeoutError on timeout."""
        out = self._line()
        while (match := _LITERAL_AT_END.search(out)) is not None:
            out += b"\r\n" + self._octets(int(match.group(1))) + self._line()
        return out

    def responses_until_close(self) -> list[bytes]:
        """Every response until the server closes the connection (or a read times out)."""
        found: list[bytes] = []
        while True:
            try:
                found.append(self.response())
            except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
                return found

    def tag(self) -> str:
        """A fresh tag (``t1``, ``t2``, ...)."""
        self.next_tag += 1
        return f"t{self.next_tag}"

    def until_tagged(self, tag: str) -> Completion:
        """Read responses up to the tagged one for ``tag``."""
        untagged: list[bytes] = []
        prefix = tag.encode() + b" "
        while True:
            line = self.response()
            if line.startswith(prefix):
                return Completion(tuple(untagged), line)
            untagged.append(line)

    def command(self, text: str | bytes) -> Completion:
        """Send ``<tag> text`` and read up to its tagged response."""
        tag = self.tag()
        data = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.until_tagged(tag)

    def login(self, user: str, password: str) -> Completion:
        """LOGIN with quoted strings; asserts OK."""
        done = self.command(f'LOGIN "{user}" "{password}"')
        assert done.status == "OK", done
        return done

    def authenticate_scram(self, user: str, password: str) -> Completion:
        """AUTHENTICATE SCRAM-SHA-256 with an initial response; checks the server's
        signature and asserts OK. Unlike LOGIN, the server verifies no argon2 hash.
        Spec: RFC 5802 §3, RFC 7677, RFC 9051 §6.2.2, RFC 4959 (SASL-IR)."""
        nonce = secrets.token_urlsafe(18)
        bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={nonce}"
        tag = self.tag()
        self.send(f"{tag} AUTHENTICATE SCRAM-SHA-256 {_b64(b'n,,' + bare.encode())}\r\n".encode())
        challenge = self.response()
        assert challenge.startswith(b"+ "), challenge
        server_first = base64.b64decode(challenge[2:]).decode()
        fields = dict(item.split("=", 1) for item in server_first.split(","))
        assert fields["r"].startswith(nonce), server_first
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        without_proof = f"c=biws,r={fields['r']}"
        message = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.send(_b64(f"{without_proof},p={_b64(proof)}".encode()).encode() + b"\r\n")
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        expected = b"v=" + _b64(hmac.digest(server_key, message, "sha256")).encode()
        final = self.response()
        if final.startswith(b"+"):
            assert base64.b64decode(final[2:]) == expected, final
            self.send(b"\r\n")
            done = self.until_tagged(tag)
        else:
            done = Completion((), final)
        assert done.status == "OK", done
        return done

    def append(self, mailbox: str, message: bytes, flags: str = "") -> Completion:
        """APPEND with a non-synchronizing literal (LITERAL+)."""
        head = f'APPEND "{mailbox}" '.encode()
        if flags:
            head += f"({flags}) ".encode()
        return self.command(head + b"{%d+}\r\n" % len(message) + message)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
