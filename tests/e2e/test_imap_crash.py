"""Kill -9 chaos for IMAP writes (product rule 2: an APPEND OK and a STORE OK mean the
change is on disk).

Four clients (threads with imaplib over IMAPS) APPEND messages and STORE flags on the
messages they appended, while the server is SIGKILLed at random moments and restarted.
A client whose connection breaks reconnects and goes on. Afterwards:

- every APPEND answered OK is in the mailbox, byte-exact, at the UID its APPENDUID
  named, exactly once (an APPEND whose answer was lost may or may not be there);
- every message whose last STORE was answered OK carries exactly the flags that STORE
  set (a STORE whose answer was lost may or may not have happened, so a message whose
  last STORE was unanswered is checked against both outcomes).

Spec: RFC 9051 §6.3.12 (APPEND), §6.4.6 (STORE); RFC 4315 §3 (APPENDUID);
RELIABILITY.md D1, D2.
"""

from __future__ import annotations

import contextlib
import imaplib
import random
import re
import threading
import time
from dataclasses import dataclass, field

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_account, tls_context
from .server import PostelServer

CLIENTS = 4
KILLS = 4
RUN_SECONDS = 20.0
USER = "chaos@crash.test"
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
FLAG_CHOICES = (("\\Seen",), ("\\Flagged",), ("\\Seen", "\\Answered"), ())


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    appended: dict[int, bytes] = field(default_factory=dict)
    """UID -> content of every APPEND answered OK."""
    flags: dict[int, tuple[frozenset[str], set[frozenset[str]]]] = field(default_factory=dict)
    """UID -> (flags of the last STORE answered OK, flags of later unanswered STOREs)."""


def _connect(server: PostelServer) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.imaps_port, ssl_context=tls_context(server), timeout=10
    )
    client.login(USER, PASSWORD)
    client.select("INBOX")
    return client


def _worker(server: PostelServer, n: int, ledger: Ledger, stop: threading.Event) -> None:
    rng = random.Random(n)
    client: imaplib.IMAP4_SSL | None = None
    mine: list[int] = []
    count = 0
    while not stop.is_set():
        try:
            if client is None:
                client = _connect(server)
            if mine and rng.random() < 0.5:
                uid = rng.choice(mine)
                flags = frozenset(rng.choice(FLAG_CHOICES))
                with ledger.lock:
                    done, pending = ledger.flags.get(uid, (frozenset(), set()))
                    ledger.flags[uid] = (done, pending | {flags})
                typ, _ = client.uid("STORE", str(uid), "FLAGS", f"({' '.join(sorted(flags))})")
                if typ == "OK":
                    with ledger.lock:
                        ledger.flags[uid] = (flags, set())
            else:
                count += 1
                content = (
                    f"Subject: chaos {n}.{count}\r\nMessage-ID: <{n}.{count}@crash.test>\r\n\r\n"
                    f"body {n}.{count}\r\n"
                ).encode()
                typ, data = client.append("INBOX", "", None, content)
                found = _APPENDUID.search(data[0] or b"") if typ == "OK" else None
                if found:
                    uid = int(found.group(2))
                    mine.append(uid)
                    with ledger.lock:
                        ledger.appended[uid] = content
                        ledger.flags[uid] = (frozenset(), set())
        except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error, EOFError):
            with contextlib.suppress(Exception):
                if client is not None:
                    client.shutdown()
            client = None
            time.sleep(0.05)
    if client is not None:
        with contextlib.suppress(Exception):
            client.logout()


def test_append_and_store_survive_kill9(postel_factory: ServerFactory) -> None:
    server = postel_factory("imapchaos")
    add_account(server, USER)
    server.start()
    ledger, stop = Ledger(), threading.Event()
    threads = [
        threading.Thread(target=_worker, args=(server, n, ledger, stop)) for n in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    rng = random.Random(7)
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, RUN_SECONDS / KILLS))
            server.kill()
            server.start()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(ledger.appended) > 20, "too little work got through to judge"
    client = _connect(server)
    try:
        typ, data = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        assert typ == "OK"
        stored: dict[int, tuple[frozenset[str], bytes]] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = int(re.search(rb"UID (\d+)", head).group(1))  # type: ignore[union-attr]
            flags_text = re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode()  # type: ignore[union-attr]
            stored[uid] = (frozenset(flags_text.split()), body)
    finally:
        client.logout()
    for uid, content in ledger.appended.items():
        assert uid in stored, f"APPEND answered OK (UID {uid}) is missing"
        assert stored[uid][1] == content, f"UID {uid} is not byte-exact"
    contents = [body for _, body in stored.values()]
    assert len(contents) == len(set(contents)), "a message is stored twice"
    for uid, (done, pending) in ledger.flags.items():
        if uid not in ledger.appended:
            continue
        have = stored[uid][0] - {"\\Recent"}
        allowed = {done} | pending
        assert have in allowed, f"UID {uid}: flags {have} not in {allowed}"
    assert server.stop() == 0
