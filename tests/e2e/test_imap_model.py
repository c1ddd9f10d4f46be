"""A model-based test of concurrent IMAP sessions on one mailbox (RELIABILITY.md test 14).

Three sessions of one account SELECT INBOX on a real `postel serve` and run random
APPEND, STORE (+FLAGS, -FLAGS, FLAGS, with and without UID and .SILENT), EXPUNGE, UID
EXPUNGE, MOVE, COPY (to INBOX and elsewhere), FETCH (BODY[] sets \\Seen), NOOP and
IDLE/DONE, while SMTP delivers into INBOX. A model holds the mailbox's true contents (UID
to flags). Each session keeps, as a real client does, its own list of UIDs by message
sequence number, updated only from the untagged EXISTS, EXPUNGE and FETCH responses it
receives (and FETCH (UID FLAGS) of new messages after EXISTS). Checked:

* every ``* n FETCH`` names a number the session has, and the UID the session has there;
* EXPUNGE numbers are in range; EXISTS never shrinks the list;
* UIDs are strictly increasing and never reused (new ones are above every UID seen);
* after a sync point (NOOP, IDLE ... DONE) the session's UID list equals the model's
  and its flags equal the model's: no lost flag change.

\\Recent is per session and is left out of flag comparisons.

Spec: RFC 9051 §2.3.1 (UIDs, sequence numbers), §5.2, §5.5, §7.4.1, §7.5.1, §7.5.2;
RFC 4315 (UIDPLUS), RFC 6851 (MOVE), RFC 2177 (IDLE).
"""

from __future__ import annotations

import itertools
import re
import smtplib
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from .conftest import ServerFactory
from .imap_raw import Completion, RawImap, parse_fetch
from .server import PostelServer

USER = "model@example.test"
PASSWORD = "model tests password"
SESSIONS = 3
"""Concurrent sessions on INBOX."""
OTHER = "Other"
"""The second mailbox (target of MOVE and some COPYs)."""
FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "\\Deleted", "\\Draft", "$Label1", "work")
"""Flags the rules set and clear: the system flags and two keywords."""
RECENT = "\\Recent"
SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
"""About 10-20 s in all."""

_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_COPYUID = re.compile(rb"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]")
_NUMBERED = re.compile(rb"^\* (\d+) (EXISTS|EXPUNGE|FETCH)\b")


def uid_list(text: bytes) -> list[int]:
    """The UIDs of a uid-set in its order (``3:5,9`` -> [3, 4, 5, 9]). Spec: RFC 4315 §4."""
    out: list[int] = []
    for part in text.decode().split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        step = 1 if b >= a else -1
        out.extend(range(a, b + step, step))
    return out


def seq_set(numbers: list[int]) -> str:
    """A sequence set naming exactly ``numbers`` (comma-separated)."""
    return ",".join(str(n) for n in sorted(set(numbers)))


@dataclass(slots=True)
class Model:
    """The mailbox's true contents: UID -> flags (no \\Recent), and the highest UID ever
    assigned, which new UIDs must exceed."""

    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    uid_floor: int = 0

    @property
    def uids(self) -> list[int]:
        return sorted(self.flags)

    def add(self, uid: int, flags: frozenset[str]) -> None:
        """A new message; its UID must be above every UID assigned before."""
        assert uid > self.uid_floor, f"UID {uid} not above {self.uid_floor}: reused or lower"
        self.flags[uid] = flags
        self.uid_floor = uid

    def store(self, uids: list[int], mode: str, flags: frozenset[str]) -> None:
        for uid in uids:
            if uid in self.flags:
                old = self.flags[uid]
                self.flags[uid] = (
                    old | flags if mode == "+" else old - flags if mode == "-" else flags
                )

    def expunge(self, among: list[int] | None = None) -> None:
        """Remove the \\Deleted messages (of ``among`` when given)."""
        for uid in list(self.flags) if among is None else among:
            if "\\Deleted" in self.flags.get(uid, frozenset()):
                del self.flags[uid]


@dataclass(slots=True)
class Session:
    """One connection and what its client knows: ``uids[msn - 1]`` (None until the UID of
    a new message is fetched) and flags by UID. ``transcript`` keeps recent lines."""

    name: str
    client: RawImap
    uids: list[int | None] = field(default_factory=list)
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    idle_tag: str | None = None
    highest: int = 0
    """The highest UID known before the latest new messages: theirs must exceed it."""
    told: set[int] = field(default_factory=set)
    """UIDs whose flags a FETCH response gave since ``told`` was last cleared."""
    transcript: list[bytes] = field(default_factory=list)

    def note(self, line: bytes) -> None:
        self.transcript = [*self.transcript[-60:], line[:300]]

    def fail(self, text: str) -> None:
        recent = b"\n".join(self.transcript[-40:]).decode("latin-1")
        raise AssertionError(f"{self.name}: {text}\n--- transcript ---\n{recent}")

    def absorb(self, responses: tuple[bytes, ...] | list[bytes]) -> None:
        """Apply untagged responses as a client does."""
        for line in responses:
            self.note(line)
            match = _NUMBERED.match(line)
            if match is None:
                continue
            n, kind = int(match.group(1)), match.group(2)
            if kind == b"EXISTS":
                if n < len(self.uids):
                    self.fail(f"EXISTS {n} below the {len(self.uids)} messages known")
                self.uids.extend([None] * (n - len(self.uids)))
            elif kind == b"EXPUNGE":
                if not 1 <= n <= len(self.uids):
                    self.fail(f"EXPUNGE {n} out of range 1..{len(self.uids)}")
                gone = self.uids.pop(n - 1)
                if gone is not None:
                    self.flags.pop(gone, None)
            else:
                self._fetch(line, n)

    def _fetch(self, line: bytes, n: int) -> None:
        data = parse_fetch(line)
        if data is None:
            return
        if not 1 <= n <= len(self.uids):
            self.fail(f"FETCH {n} out of range 1..{len(self.uids)}")
        known = self.uids[n - 1]
        uid = data.uid if data.uid is not None else known
        if uid is None:
            self.fail(f"FETCH {n} without UID for a message whose UID is unknown")
        assert uid is not None
        if known is None:
            if uid <= self.highest:
                self.fail(f"new message {n} has UID {uid}, not above {self.highest}")
            self.uids[n - 1] = uid
            below = [u for u in self.uids[: n - 1] if u is not None]
            above = [u for u in self.uids[n:] if u is not None]
            if (below and below[-1] >= uid) or (above and above[0] <= uid):
                self.fail(f"UIDs not increasing at {n}: {self.uids}")
        elif known != uid:
            self.fail(f"FETCH {n} says UID {uid}, the session has {known} there")
        if data.flags is not None:
            self.flags[uid] = data.flags - {RECENT}
            self.told.add(uid)

    def command(self, text: str | bytes) -> Completion:
        """Run a command, absorb its responses, then fetch the UIDs of new messages."""
        done = self._raw(text)
        self.learn_new()
        return done

    def _raw(self, text: str | bytes) -> Completion:
        self.note(b"C: " + (text.encode() if isinstance(text, str) else text))
        done = self.client.command(text)
        self.absorb(done.untagged)
        self.note(done.tagged)
        return done

    def learn_new(self) -> None:
        """``FETCH n:m (UID FLAGS)`` for messages known only by EXISTS."""
        while None in self.uids:
            first = self.uids.index(None) + 1
            done = self._raw(f"FETCH {first}:{len(self.uids)} (UID FLAGS)")
            if done.status != "OK":
                self.fail(f"FETCH of new messages: {done.tagged!r}")
            if None in self.uids[:first]:
                self.fail("FETCH did not give the UIDs of the new messages")
        self.highest = max([self.highest, *(u for u in self.uids if u is not None)])

    def uid_at(self, msn: int) -> int:
        uid = self.uids[msn - 1]
        assert uid is not None
        return uid

    def check(self, model: Model) -> None:
        """At a sync point: the session's picture equals the model."""
        if self.uids != model.uids:
            self.fail(f"UIDs {self.uids} but the mailbox holds {model.uids}")
        for uid in model.uids:
            if self.flags.get(uid) != model.flags[uid]:
                self.fail(f"UID {uid}: flags {self.flags.get(uid)} but stored {model.flags[uid]}")


@pytest.fixture(scope="module")
def model_server(
    module_servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> PostelServer:
    server = module_servers("imap-model")
    secret = tmp_path_factory.mktemp("secret") / "password"
    secret.write_text(PASSWORD + "\n")
    server.cli("domain", "add", "example.test")
    server.cli("account", "add", USER, "--password-file", str(secret))
    server.start()
    with RawImap.tls(server.imaps_port) as client:
        client.authenticate_scram(USER, PASSWORD)
        assert client.command(f"CREATE {OTHER}").status == "OK"
    return server


def _message(n: int) -> bytes:
    return b"From: a@remote.test\r\nSubject: model %d\r\n\r\nbody %d\r\n" % (n, n)


class ImapModel(RuleBasedStateMachine):
    """The state machine; ``server`` is set by the test (one server per module)."""

    server: ClassVar[PostelServer]

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.counter = itertools.count()
        self._reset_mailbox()
        self.sessions = [self._open(f"S{i}") for i in range(SESSIONS)]

    def _connect(self) -> RawImap:
        client = RawImap.tls(self.server.imaps_port, timeout=5)
        client.authenticate_scram(USER, PASSWORD)
        return client

    def _reset_mailbox(self) -> None:
        """Empty INBOX; UIDs assigned from now on must exceed UIDNEXT - 1."""
        with self._connect() as client:
            selected = client.command("SELECT INBOX")
            assert client.command("UID STORE 1:* +FLAGS.SILENT (\\Deleted)").status == "OK"
            assert client.command("EXPUNGE").status == "OK"
            status = client.command("STATUS INBOX (UIDNEXT MESSAGES)")
            found = re.search(rb"UIDNEXT (\d+)", b" ".join(status.untagged))
            assert found is not None and b"MESSAGES 0" in b" ".join(status.untagged), status
            self.model.uid_floor = int(found.group(1)) - 1
            assert selected.status == "OK"

    def _open(self, name: str) -> Session:
        session = Session(name, self._connect(), highest=self.model.uid_floor)
        done = session.command("SELECT INBOX")
        assert done.status == "OK", done
        session.check(self.model)
        return session

    def teardown(self) -> None:
        for session in getattr(self, "sessions", []):
            session.client.close()

    # -- helpers ---------------------------------------------------------------------

    def active(self) -> list[Session]:
        return [s for s in self.sessions if s.idle_tag is None]

    def pick(self, data: st.DataObject) -> Session:
        return data.draw(st.sampled_from(self.active()), label="session")

    def targets(self, data: st.DataObject, session: Session) -> list[int]:
        """Some message sequence numbers the session knows (at least one)."""
        count = len(session.uids)
        return data.draw(
            st.lists(st.integers(1, count), min_size=1, max_size=4, unique=True), label="msns"
        )

    # -- rules -----------------------------------------------------------------------

    @rule(data=st.data(), flags=st.sets(st.sampled_from(FLAGS), max_size=3))
    def append(self, data: st.DataObject, flags: set[str]) -> None:
        session = self.pick(data)
        message = _message(next(self.counter))
        done = session._raw(
            f"APPEND INBOX ({' '.join(sorted(flags))}) ".encode()
            + b"{%d+}\r\n" % len(message)
            + message
        )
        if done.status != "OK":
            session.fail(f"APPEND: {done.tagged!r}")
        found = _APPENDUID.search(done.tagged)
        assert found is not None, done
        self.model.add(int(found.group(1)), frozenset(flags))
        session.learn_new()

    @rule()
    def deliver(self) -> None:
        """SMTP delivers one message into INBOX; a NOOP in one session reveals it."""
        with smtplib.SMTP("127.0.0.1", self.server.smtp_port, timeout=15) as smtp:
            smtp.sendmail("a@remote.test", [USER], _message(next(self.counter)))
        session = self.active()[0]
        before = set(self.model.flags)
        done = session.command("NOOP")
        assert done.status == "OK", done
        new = [
            u
            for u in session.uids
            if u is not None and u not in before and u > self.model.uid_floor
        ]
        if len(new) != 1:
            session.fail(f"one delivery, new UIDs {new} after NOOP")
        self.model.add(new[0], frozenset())
        session.check(self.model)

    @rule(
        data=st.data(),
        mode=st.sampled_from(["+", "-", ""]),
        flags=st.sets(st.sampled_from(FLAGS), max_size=3),
        uid=st.booleans(),
        silent=st.booleans(),
    )
    def store(
        self, data: st.DataObject, mode: str, flags: set[str], uid: bool, silent: bool
    ) -> None:
        session = self.pick(data)
        if not session.uids:
            return
        msns = self.targets(data, session)
        uids = [session.uid_at(m) for m in msns]
        names = seq_set(uids) if uid else seq_set(msns)
        verb = ("UID STORE " if uid else "STORE ") + names
        item = f"{mode}FLAGS{'.SILENT' if silent else ''}"
        session.told.clear()
        done = session.command(f"{verb} {item} ({' '.join(sorted(flags))})")
        if done.status != "OK":
            session.fail(f"STORE: {done.tagged!r}")
        self.model.store(uids, mode, frozenset(flags))
        # As a client does: where no FETCH gave the new flags (.SILENT, or nothing
        # changed), it applies its own change to the flags it knows.
        mine = Model(dict(session.flags))
        mine.store([u for u in uids if u not in session.told], mode, frozenset(flags))
        session.flags = mine.flags

    @rule(data=st.data())
    def expunge(self, data: st.DataObject) -> None:
        session = self.pick(data)
        done = session.command("EXPUNGE")
        assert done.status == "OK", done
        self.model.expunge()
        session.check(self.model)

    @rule(data=st.data())
    def uid_expunge(self, data: st.DataObject) -> None:
        session = self.pick(data)
        if not session.uids:
            return
        uids = [session.uid_at(m) for m in self.targets(data, session)]
        done = session.command(f"UID EXPUNGE {seq_set(uids)}")
        assert done.status == "OK", done
        self.model.expunge(uids)

    @rule(data=st.data(), uid=st.booleans())
    def move(self, data: st.DataObject, uid: bool) -> None:
        session = self.pick(data)
        if not session.uids:
            return
        msns = self.targets(data, session)
        uids = [session.uid_at(m) for m in msns]
        verb = f"UID MOVE {seq_set(uids)}" if uid else f"MOVE {seq_set(msns)}"
        done = session.command(f"{verb} {OTHER}")
        assert done.status == "OK", done
        for u in uids:
            self.model.flags.pop(u, None)

    @rule(data=st.data(), uid=st.booleans(), inbox=st.booleans())
    def copy(self, data: st.DataObject, uid: bool, inbox: bool) -> None:
        session = self.pick(data)
        if not session.uids:
            return
        msns = self.targets(data, session)
        uids = [session.uid_at(m) for m in msns]
        verb = f"UID COPY {seq_set(uids)}" if uid else f"COPY {seq_set(msns)}"
        done = session._raw(f"{verb} {'INBOX' if inbox else OTHER}")
        assert done.status == "OK", done
        if inbox:
            found = _COPYUID.search(done.tagged)
            sources = uid_list(found.group(1)) if found else []
            targets = uid_list(found.group(2)) if found else []
            expected = [u for u in sorted(set(uids)) if u in self.model.flags]
            if sources != expected:
                session.fail(f"COPYUID sources {sources}, expected {expected}")
            for source, target in zip(sources, targets, strict=True):
                self.model.add(target, self.model.flags[source])
        session.learn_new()

    @rule(data=st.data(), body=st.booleans())
    def fetch(self, data: st.DataObject, body: bool) -> None:
        """FETCH (UID FLAGS), or BODY[] which sets \\Seen. Spec: RFC 9051 §6.4.5."""
        session = self.pick(data)
        if not session.uids:
            return
        msns = self.targets(data, session)
        items = "(UID FLAGS BODY[])" if body else "(UID FLAGS)"
        done = session.command(f"FETCH {seq_set(msns)} {items}")
        assert done.status == "OK", done
        if body:
            uids = [session.uid_at(m) for m in msns]
            self.model.store(uids, "+", frozenset({"\\Seen"}))

    @rule(data=st.data())
    def noop(self, data: st.DataObject) -> None:
        session = self.pick(data)
        assert session.command("NOOP").status == "OK"
        session.check(self.model)

    @rule(data=st.data())
    def idle(self, data: st.DataObject) -> None:
        """Start IDLE in one session (others go on meanwhile); at most SESSIONS - 1."""
        if len(self.active()) < 2:
            return
        session = self.pick(data)
        tag = session.client.tag()
        session.note(f"C: {tag} IDLE".encode())
        session.client.send(f"{tag} IDLE\r\n".encode())
        while not (line := session.client.response()).startswith(b"+"):
            session.absorb([line])
        session.idle_tag = tag

    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        """DONE ends IDLE: a sync point."""
        idling = [s for s in self.sessions if s.idle_tag is not None]
        if not idling:
            return
        session = data.draw(st.sampled_from(idling), label="idling")
        tag, session.idle_tag = session.idle_tag, None
        assert tag is not None
        session.note(b"C: DONE")
        session.client.send(b"DONE\r\n")
        finished = session.client.until_tagged(tag)
        session.absorb(finished.untagged)
        session.note(finished.tagged)
        assert finished.status == "OK", finished
        session.learn_new()
        session.check(self.model)

    @invariant()
    def known_uids_ascend(self) -> None:
        for session in self.active():
            known = [u for u in session.uids if u is not None]
            if known != sorted(set(known)):
                session.fail(f"UIDs not strictly increasing: {known}")


def test_concurrent_sessions_agree_with_the_model(model_server: PostelServer) -> None:
    """Random operations in three sessions and over SMTP; see the module docstring."""

    class Machine(ImapModel):
        server = model_server

    run_state_machine_as_test(Machine, settings=SETTINGS)


def test_store_silent_keeps_other_sessions_changes(model_server: PostelServer) -> None:
    """S2 sets \\Seen; S1, not yet told, adds \\Flagged with .SILENT; at S1's next NOOP
    it must learn \\Seen: .SILENT only spares the client the echo of its own change
    (RFC 9051 §6.4.6, §5.2, §7.5.2)."""
    with (
        RawImap.tls(model_server.imaps_port, timeout=5) as s1,
        RawImap.tls(model_server.imaps_port, timeout=5) as s2,
    ):
        for client in (s1, s2):
            client.authenticate_scram(USER, PASSWORD)
        done = s1.append("INBOX", _message(0))
        found = _APPENDUID.search(done.tagged)
        assert found is not None, done
        uid = int(found.group(1))
        for client in (s1, s2):
            assert client.command("SELECT INBOX").status == "OK"
        assert s2.command(f"UID STORE {uid} +FLAGS (\\Seen)").status == "OK"
        silent = s1.command(f"UID STORE {uid} +FLAGS.SILENT (\\Flagged)")
        noop = s1.command("NOOP")
        told = [parse_fetch(line) for line in (*silent.untagged, *noop.untagged)]
        flags = [f.flags for f in told if f is not None and f.uid == uid and f.flags]
        assert flags and "\\Seen" in flags[-1], (silent, noop)
