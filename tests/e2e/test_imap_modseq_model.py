"""The model-based test of one mailbox (test_imap_model.py) extended with MODSEQ: a
writer session makes random changes (APPEND, SMTP delivery, STORE, EXPUNGE) and a
QRESYNC reader asks UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED) for random
earlier HIGHESTMODSEQs m. The model records, from the server's HIGHESTMODSEQ after
each operation, the MODSEQ of every message's last change and of every expunge.

Checked:

* every change raises HIGHESTMODSEQ (strictly), and an operation that changes nothing
  leaves it alone;
* CHANGEDSINCE m returns exactly the messages changed (or added) above m, with their
  flags and the MODSEQ of their last change;
* VANISHED (EARLIER) names exactly the UIDs expunged above m.

Spec: RFC 7162 §3.1 (MODSEQ is strictly increasing per change), §3.1.4.1
(CHANGEDSINCE), §3.2.6 (VANISHED), §3.2.10.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_accounts, message, smtp_send
from .imap_raw import RawImap
from .server import PostelServer

USER = f"modseq@{DOMAIN}"
FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Label1")
SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_HMS = re.compile(rb"HIGHESTMODSEQ (\d+)")
_FETCH = re.compile(rb"^\* \d+ FETCH \((.*)\)$")
_UID = re.compile(rb"UID (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_MODSEQ = re.compile(rb"MODSEQ \((\d+)\)")


@dataclass(slots=True)
class Model:
    """The mailbox: live UIDs with flags and last-change MODSEQ; expunge MODSEQs."""

    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    changed_at: dict[int, int] = field(default_factory=dict)
    expunged_at: dict[int, int] = field(default_factory=dict)
    checkpoints: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-modseq-model")
    add_accounts(srv, USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _uid_set(text: bytes) -> set[int]:
    out: set[int] = set()
    for part in text.decode().split(","):
        lo, _, hi = part.partition(":")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


class ModseqMachine(RuleBasedStateMachine):
    server: ClassVar[PostelServer]
    user: ClassVar[str]
    serial: ClassVar[int] = 0
    compared: ClassVar[int] = 0
    steps_checked: ClassVar[int] = 0
    """CHANGEDSINCE answers compared with the model that named some message."""

    def __init__(self) -> None:
        super().__init__()
        ModseqMachine.serial += 1
        self.box = f"m{ModseqMachine.serial}"
        self.model = Model()
        self.writer = RawImap.tls(self.server.imaps_port)
        self.writer.login(self.user, PASSWORD)
        assert self.writer.command(f"CREATE {self.box}").status == "OK"
        assert self.writer.command(f"SELECT {self.box}").status == "OK"
        self.reader = RawImap.tls(self.server.imaps_port)
        self.reader.login(self.user, PASSWORD)
        assert self.reader.command("ENABLE QRESYNC").status == "OK"
        assert self.reader.command(f"SELECT {self.box}").status == "OK"
        self.hms = self._highest()
        self.model.checkpoints.append(self.hms)
        self.sent = 0

    def teardown(self) -> None:
        self.writer.close()
        self.reader.close()

    def _highest(self) -> int:
        done = self.writer.command(f"STATUS {self.box} (HIGHESTMODSEQ)")
        match = _HMS.search(done.untagged[-1])
        assert match is not None, done
        return int(match.group(1))

    def _after(self, changed: bool) -> int:
        """HIGHESTMODSEQ after an operation: strictly higher iff it changed something."""
        now = self._highest()
        if changed:
            assert now > self.hms, (now, self.hms)
        else:
            assert now == self.hms, (now, self.hms)
        self.hms = now
        return now

    @rule(flags=st.sets(st.sampled_from(FLAGS), max_size=2))
    def append(self, flags: set[str]) -> None:
        self.sent += 1
        body = message("model", self.sent)
        done = self.writer.command(
            f"APPEND {self.box} ({' '.join(sorted(flags))}) ".encode()
            + b"{%d+}\r\n" % len(body)
            + body
        )
        match = _APPENDUID.search(done.tagged)
        assert match is not None, done
        uid = int(match.group(1))
        self.model.flags[uid] = frozenset(flags)
        self.model.changed_at[uid] = self._after(True)

    @rule()
    def deliver(self) -> None:
        """New mail over SMTP lands in INBOX: another mailbox's MODSEQ must not move."""
        self.sent += 1
        smtp_send(self.server, self.user, [message("smtp", self.sent)])
        self._after(False)

    @rule(
        data=st.data(),
        mode=st.sampled_from(["+FLAGS", "-FLAGS", "FLAGS"]),
        flags=st.sets(st.sampled_from(FLAGS), max_size=2),
    )
    def store(self, data: st.DataObject, mode: str, flags: set[str]) -> None:
        if not self.model.flags:
            return
        uid = data.draw(st.sampled_from(sorted(self.model.flags)))
        old = self.model.flags[uid]
        new = {"+FLAGS": old | flags, "-FLAGS": old - flags, "FLAGS": frozenset(flags)}[mode]
        done = self.writer.command(f"UID STORE {uid} {mode}.SILENT ({' '.join(sorted(flags))})")
        assert done.status == "OK", done
        now = self._after(new != old)
        if new != old:
            self.model.flags[uid] = frozenset(new)
            self.model.changed_at[uid] = now

    @rule(data=st.data())
    def expunge(self, data: st.DataObject) -> None:
        if not self.model.flags:
            return
        uid = data.draw(st.sampled_from(sorted(self.model.flags)))
        done = self.writer.command(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
        assert done.status == "OK", done
        self._after(True)
        assert self.writer.command(f"UID EXPUNGE {uid}").status == "OK"
        self.model.expunged_at[uid] = self._after(True)
        del self.model.flags[uid]
        del self.model.changed_at[uid]

    @rule()
    def checkpoint(self) -> None:
        self.model.checkpoints.append(self.hms)

    @rule(data=st.data())
    def changedsince(self, data: st.DataObject) -> None:
        since = data.draw(st.sampled_from(self.model.checkpoints))
        assert self.reader.command("NOOP").status == "OK"
        done = self.reader.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)")
        assert done.status == "OK", done
        fetched: dict[int, tuple[frozenset[str], int]] = {}
        vanished: set[int] = set()
        for line in done.untagged:
            if line.startswith(b"* VANISHED (EARLIER) "):
                vanished |= _uid_set(line.rsplit(b" ", 1)[1])
                continue
            match = _FETCH.match(line)
            assert match is not None, line
            items = match.group(1)
            uid, flags, modseq = _UID.search(items), _FLAGS.search(items), _MODSEQ.search(items)
            assert uid and flags and modseq, line
            fetched[int(uid.group(1))] = (
                frozenset(flags.group(1).decode().split()) - {"\\Recent"},
                int(modseq.group(1)),
            )
        want = {u: (self.model.flags[u], m) for u, m in self.model.changed_at.items() if m > since}
        assert fetched == want
        assert vanished == {u for u, m in self.model.expunged_at.items() if m > since}
        if fetched or vanished:
            ModseqMachine.compared += 1
        ModseqMachine.steps_checked += len(fetched) + len(vanished)


def test_modseq_model(server: PostelServer) -> None:
    ModseqMachine.server = server
    ModseqMachine.user = USER
    run_state_machine_as_test(ModseqMachine, settings=SETTINGS)
    assert ModseqMachine.compared > 20, ModseqMachine.compared
    print(
        f"{ModseqMachine.serial} runs, {ModseqMachine.compared} non-empty comparisons, "
        f"{ModseqMachine.steps_checked} UIDs checked"
    )
