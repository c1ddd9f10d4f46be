"""A scripted driver for the sans-IO SMTP core: answers policy events, records messages.

Client input is a list of parts; between two parts lies a TLS handshake (the driver
answers STARTTLS with 220, feeds the rest of the current part, which the core must
discard, calls ``tls_established`` and continues with the next part).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from postel.smtp import (
    READY_TO_START_TLS,
    START_MAIL_INPUT,
    AutoReply,
    ChunkReceived,
    ConnectionClosed,
    DataStarted,
    Hello,
    MailFrom,
    MessageComplete,
    MessageData,
    MessageRejected,
    NeedData,
    Quit,
    RcptTo,
    Reply,
    Reset,
    ServerConfig,
    ServerConnection,
    StartTls,
    TooManyErrors,
)

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


SPLITTERS: dict[str, Splitter] = {
    "whole": whole,
    "bytewise": bytewise,
    **{f"random{seed}": random_splits(seed) for seed in range(3)},
}


@dataclass
class Envelope:
    reverse_path: str
    recipients: list[str] = field(default_factory=list)
    content: bytes = b""


@dataclass
class Session:
    output: bytes
    messages: list[Envelope]
    events: list[str]


def _policy(conn: ServerConnection, event: object, current: Envelope | None) -> Reply:
    match event:
        case Hello(extended=True):
            return conn.ehlo_reply()
        case Hello():
            return conn.helo_reply()
        case MailFrom(reverse_path=path):
            if path.mailbox is not None and path.mailbox.local_part.startswith("refuse"):
                return Reply(550, "5.7.1", "Sender refused")
            return Reply(250, "2.1.0", "OK")
        case RcptTo(forward_path=path):
            if path.mailbox is not None and path.mailbox.local_part.startswith("unknown"):
                return Reply(550, "5.1.1", "No such user")
            return Reply(250, "2.1.5", "OK")
        case DataStarted():
            return START_MAIL_INPUT
        case MessageComplete():
            return Reply(250, "2.0.0", "Queued")
        case StartTls():
            return READY_TO_START_TLS
    raise AssertionError(f"no policy for {event!r}")


def drive(
    parts: list[bytes],
    split: Splitter = whole,
    config: ServerConfig | None = None,
    *,
    buffer_bound: int | None = None,
) -> Session:
    """Run the client parts through a ServerConnection; return output and messages."""
    conn = ServerConnection(config or ServerConfig(hostname="mx.example.org", tls_available=True))
    out = [conn.greeting()]
    messages: list[Envelope] = []
    events: list[str] = []
    current: Envelope | None = None
    content: list[bytes] = []
    part_index = 0
    pieces: Iterator[bytes] = iter(split(parts[0]) if parts else [])
    last_piece = b""
    while True:
        event = conn.next_event()
        if buffer_bound is not None:
            assert conn.buffered <= buffer_bound + len(last_piece)
        if isinstance(event, NeedData):
            piece = next(pieces, None)
            if piece is None:
                conn.receive_data(b"")
            else:
                last_piece = piece
                conn.receive_data(piece)
            continue
        events.append(type(event).__name__)
        match event:
            case ConnectionClosed():
                return Session(b"".join(out), messages, events)
            case MessageData(chunk=chunk):
                content.append(chunk)
                continue
            case AutoReply(reply=reply) | Reset(reply=reply) | MessageRejected(reply=reply):
                if not isinstance(event, AutoReply):
                    content.clear()
                out.append(conn.send(reply))
                continue
            case ChunkReceived(reply=reply):
                out.append(conn.send(reply))
                continue
            case Quit(reply=reply) | TooManyErrors(reply=reply):
                out.append(conn.send(reply))
                return Session(b"".join(out), messages, events)
            case MailFrom(reverse_path=path):
                reply = _policy(conn, event, current)
                if reply.code == 250:
                    current = Envelope(str(path))
                out.append(conn.send(reply))
                continue
            case RcptTo(forward_path=path):
                reply = _policy(conn, event, current)
                if reply.code == 250 and current is not None:
                    current.recipients.append(str(path))
                out.append(conn.send(reply))
                continue
            case MessageComplete():
                assert current is not None
                current.content = b"".join(content)
                messages.append(current)
                content.clear()
                out.append(conn.send(_policy(conn, event, current)))
                continue
            case StartTls():
                out.append(conn.send(_policy(conn, event, current)))
                rest = b"".join(pieces)
                if rest:
                    conn.receive_data(rest)  # plaintext read ahead: must be discarded
                conn.tls_established()
                part_index += 1
                pieces = iter(split(parts[part_index]) if part_index < len(parts) else [])
                continue
        out.append(conn.send(_policy(conn, event, current)))


def replies(output: bytes) -> list[str]:
    """The last line of each reply, without CRLF (greeting first)."""
    return [line for line in output.decode().split("\r\n") if line and line[3:4] != "-"]


def codes(output: bytes) -> list[str]:
    """'code enhanced' (or just code) of each reply, greeting first."""
    result = []
    for line in replies(output):
        head = line.split(" ")
        if len(head) > 1 and head[1][:1].isdigit() and "." in head[1]:
            result.append(f"{head[0]} {head[1]}")
        else:
            result.append(head[0])
    return result


def drive_all(parts: list[bytes], config: ServerConfig | None = None) -> Session:
    """Run with every splitter, assert identical results, return the whole-split run."""
    reference = drive(parts, whole, config)
    for name, split in SPLITTERS.items():
        other = drive(parts, split, config)
        assert other.output == reference.output, name
        assert other.messages == reference.messages, name
    return reference
