"""A scripted driver for the sans-IO POP3 core: one account, a fixed maildrop, PLAIN
and LOGIN run through postel.sasl.

Client input is a list of parts; between two parts lies a TLS handshake (the driver
answers STLS with +OK, feeds the rest of the current part, which the core must
discard, calls ``tls_established`` and continues with the next part).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from postel import sasl
from postel.pop3 import (
    AUTH_CANCELLED,
    AUTH_FAILED,
    BEGIN_TLS,
    SEND_PASS,
    SIGNING_OFF,
    Answered,
    AuthResponse,
    AuthStarted,
    ConnectionClosed,
    Event,
    NeedData,
    Pass,
    Pop3Config,
    Quit,
    Response,
    Retr,
    ServerConnection,
    StartTls,
    Top,
    User,
    pop3_size,
    stuff_chunks,
    top_chunks,
)

USER = "alice@example.org"
PASSWORD = "pencil box"
MESSAGES: tuple[bytes, ...] = (
    b"Subject: one\r\n\r\nHello\r\n.dot line\r\n..two dots\r\n.\r\nend\r\n",
    b"Subject: two\n\nbare LF body\nline 2\n",
    b"Subject: three\r\nFrom: a@example.net\r\n\r\nl1\r\nl2\r\nl3",
)
UIDS: tuple[str, ...] = ("uid-1", "uid-2", "uid-3")
CONFIG = Pop3Config(tls_available=True, plaintext_without_tls=True)

Splitter = Callable[[bytes], list[bytes]]


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_splits(seed: int) -> Splitter:
    def split(data: bytes) -> list[bytes]:
        rng = random.Random(seed)
        pieces, i = [], 0
        while i < len(data):
            step = rng.choice((1, 2, 3, 5, 8, 13, 64, 700))
            pieces.append(data[i : i + step])
            i += step
        return pieces

    return split


def cuts(points: list[int]) -> Splitter:
    """Split at the given offsets (as hypothesis draws them)."""

    def split(data: bytes) -> list[bytes]:
        edges = sorted({p for p in points if 0 < p < len(data)})
        bounds = [0, *edges, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    return split


SPLITTERS: dict[str, Splitter] = {
    "whole": whole,
    "bytewise": bytewise,
    **{f"random{seed}": random_splits(seed) for seed in range(3)},
}


@dataclass
class Session:
    output: bytes
    events: list[Event] = field(default_factory=list)
    quit: Quit | None = None
    max_buffered: int = 0
    max_piece: int = 0

    @property
    def lines(self) -> list[bytes]:
        return self.output.split(b"\r\n")


@dataclass
class _Auth:
    mech: sasl.ServerMechanism


def _sasl_step(conn: ServerConnection, auth: _Auth, response: bytes | None) -> bytes:
    step = auth.mech.step(response)
    while True:
        match step:
            case sasl.Challenge(data=data):
                return conn.challenge(data)
            case sasl.VerifyPassword(authcid=authcid, password=password):
                step = auth.mech.password_result(authcid == USER and password == PASSWORD)
            case sasl.Success():
                return conn.logged_in([pop3_size(m) for m in MESSAGES], UIDS)
            case _:
                return conn.send(AUTH_FAILED)


def _decode(conn: ServerConnection, line: bytes | None) -> bytes | Response | None:
    """The decoded response, or the -ERR to send."""
    if line is None:
        return None
    try:
        decoded = sasl.decode_response(line)
    except sasl.SaslError:
        return Response(False, "bad base64")
    if isinstance(decoded, sasl.Cancelled):
        return AUTH_CANCELLED
    return decoded


def _answer(conn: ServerConnection, event: Event, auth: list[_Auth]) -> bytes:
    match event:
        case User():
            return conn.send(SEND_PASS)
        case Pass(user=user, password=password):
            if user == USER and password == PASSWORD:
                return conn.logged_in([pop3_size(m) for m in MESSAGES], UIDS)
            return conn.send(AUTH_FAILED)
        case AuthStarted(mechanism=name, initial_response=initial):
            auth[:] = [
                _Auth(sasl.start(name, nonce_source=lambda: "n", fake_salt_secret=b"s" * 16))
            ]
            decoded = _decode(conn, initial)
            if isinstance(decoded, Response):
                return conn.send(decoded)
            return _sasl_step(conn, auth[0], decoded)
        case AuthResponse(line=line):
            decoded = _decode(conn, line)
            if isinstance(decoded, Response):
                return conn.send(decoded)
            return _sasl_step(conn, auth[0], decoded)
        case StartTls():
            return conn.send(BEGIN_TLS)
        case Retr(msg=msg):
            content = MESSAGES[msg - 1]
            return conn.message_follows() + b"".join(stuff_chunks([content]))
        case Top(msg=msg, lines=lines):
            content = MESSAGES[msg - 1]
            return conn.message_follows() + b"".join(stuff_chunks(top_chunks([content], lines)))
        case Quit():
            return conn.send(SIGNING_OFF)
    raise AssertionError(f"no policy for {event!r}")


def drive(
    parts: list[bytes],
    split: Splitter = whole,
    config: Pop3Config = CONFIG,
    *,
    tls_active: bool = False,
) -> Session:
    """Run the client parts through a ServerConnection; return what it wrote."""
    conn = ServerConnection(config, tls_active=tls_active)
    session = Session(conn.greeting())
    out = [session.output]
    auth: list[_Auth] = []
    part_index = 0
    pieces: Iterator[bytes] = iter(split(parts[0]) if parts else [])
    while True:
        event = conn.next_event()
        session.max_buffered = max(session.max_buffered, conn.buffered)
        if isinstance(event, NeedData):
            piece = next(pieces, None)
            if piece is None:
                conn.receive_data(b"")
            else:
                session.max_piece = max(session.max_piece, len(piece))
                conn.receive_data(piece)
            continue
        session.events.append(event)
        if isinstance(event, ConnectionClosed):
            break
        if isinstance(event, Answered):
            out.append(event.response)
            continue
        if isinstance(event, Quit):
            session.quit = event
        out.append(_answer(conn, event, auth))
        if isinstance(event, StartTls):
            for piece in pieces:
                conn.receive_data(piece)
            assert conn.buffered == 0
            conn.tls_established()
            part_index += 1
            rest = parts[part_index] if part_index < len(parts) else b""
            pieces = iter(split(rest))
    session.output = b"".join(out)
    return session


def drive_all(parts: list[bytes], **kwargs: object) -> Session:
    """drive() at every splitter; all outputs must be identical."""
    sessions = {name: drive(parts, split, **kwargs) for name, split in SPLITTERS.items()}  # type: ignore[arg-type]
    first = sessions["whole"]
    for name, session in sessions.items():
        assert session.output == first.output, name
    return first
