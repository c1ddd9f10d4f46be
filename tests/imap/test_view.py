"""MailboxView: the untagged responses it produces keep a client's picture exact.

A simulated client applies every response the view returns (EXPUNGE renumbers, EXISTS
appends, FETCH FLAGS updates) and is compared with the store's mailbox after every sync
point; random operations by "other sessions" come from hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.sequence import parse_sequence_set
from postel.imap.view import Exists, Expunge, FlagsChanged, MailboxView

SEEN = frozenset({"\\Seen"})
NONE: frozenset[str] = frozenset()


@dataclass
class Store:
    """The mailbox as the store holds it, with a change log by MODSEQ."""

    messages: dict[int, tuple[frozenset[str], int]] = field(default_factory=dict)
    expunged: dict[int, int] = field(default_factory=dict)
    uidnext: int = 1
    modseq: int = 1

    def add(self, flags: frozenset[str] = NONE) -> int:
        self.modseq += 1
        uid, self.uidnext = self.uidnext, self.uidnext + 1
        self.messages[uid] = (flags, self.modseq)
        return uid

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        if uid in self.messages and self.messages[uid][0] != flags:
            self.modseq += 1
            self.messages[uid] = (flags, self.modseq)

    def expunge(self, uid: int) -> None:
        if uid in self.messages:
            self.modseq += 1
            del self.messages[uid]
            self.expunged[uid] = self.modseq

    def changes_since(
        self, modseq: int
    ) -> tuple[list[tuple[int, frozenset[str], int]], list[int], int]:
        changed = [(u, f, m) for u, (f, m) in sorted(self.messages.items()) if m > modseq]
        gone = sorted(u for u, m in self.expunged.items() if m > modseq)
        return changed, gone, self.modseq


@dataclass
class Client:
    """What an IMAP client knows: a list of (uid, flags) by sequence number."""

    slots: list[tuple[int | None, frozenset[str]]]

    def apply(self, responses: list[object], store: Store) -> None:
        for r in responses:
            if isinstance(r, Expunge):
                assert 1 <= r.msn <= len(self.slots)
                assert self.slots[r.msn - 1][0] == r.uid
                del self.slots[r.msn - 1]
            elif isinstance(r, Exists):
                assert r.count >= len(self.slots)
                # A real client learns the new UIDs with a FETCH; the test reads them.
                known = {u for u, _ in self.slots}
                fresh = [u for u in sorted(store.messages) if u not in known]
                fresh = [u for u in fresh if u > max(known, default=0)]
                for u in fresh[: r.count - len(self.slots)]:
                    self.slots.append((u, store.messages[u][0]))
                assert len(self.slots) == r.count
            elif isinstance(r, FlagsChanged):
                assert self.slots[r.msn - 1][0] == r.uid
                self.slots[r.msn - 1] = (r.uid, r.flags)


def select(store: Store) -> tuple[MailboxView, Client]:
    changed, _, modseq = store.changes_since(0)
    view = MailboxView(7, changed, modseq)
    return view, Client([(u, f) for u, f, _ in changed])


def sync(view: MailboxView, client: Client, store: Store, *, allow_expunge: bool) -> None:
    changed, gone, modseq = store.changes_since(view.modseq)
    client.apply(list(view.update(changed, gone, modseq, allow_expunge=allow_expunge)), store)


def test_new_mail_then_flags_then_expunge() -> None:
    store = Store()
    a, b = store.add(), store.add()
    view, client = select(store)
    c = store.add()
    store.set_flags(a, SEEN)
    store.expunge(b)
    changed, gone, modseq = store.changes_since(view.modseq)
    out = view.update(changed, gone, modseq, allow_expunge=True)
    assert out == [Expunge(2, b), Exists(2), FlagsChanged(1, a, SEEN, store.messages[a][1])]
    client.apply(list(out), store)
    assert client.slots == [(a, SEEN), (c, NONE)]


def test_expunge_held_back_during_sequence_number_commands() -> None:
    store = Store()
    a, b, c = store.add(), store.add(), store.add()
    view, _ = select(store)
    store.expunge(b)
    d = store.add()
    changed, gone, modseq = store.changes_since(view.modseq)
    out = view.update(changed, gone, modseq, allow_expunge=False)
    assert out == [Exists(4)]
    assert view.is_expunged(b) and view.msn_of(b) == 2 and view.uid_of(4) == d
    out = view.update([], [], modseq, allow_expunge=True)
    assert out == [Expunge(2, b)]
    assert view.uids == [a, c, d]


def test_added_and_expunged_between_sync_points_is_never_mentioned() -> None:
    store = Store()
    store.add()
    view, _ = select(store)
    ghost = store.add()
    store.expunge(ghost)
    changed, gone, modseq = store.changes_since(view.modseq)
    assert view.update(changed, gone, modseq, allow_expunge=True) == []


def test_select_by_sequence_number_and_uid() -> None:
    store = Store()
    for _ in range(5):
        store.add()
    store.expunge(2)
    view, _ = select(store)  # UIDs 1 3 4 5
    assert view.select(parse_sequence_set("2:*"), uid=False) == [(2, 3), (3, 4), (4, 5)]
    assert view.select(parse_sequence_set("2,4:3"), uid=True) == [(2, 3), (3, 4)]
    assert view.select(parse_sequence_set("9:*"), uid=True) == [(4, 5)]  # RFC 9051 §6.4.9
    assert view.out_of_range(parse_sequence_set("5"))
    assert not view.out_of_range(parse_sequence_set("1:*"))


_BOUND = st.one_of(st.just("*"), st.integers(1, 30).map(str))


@settings(max_examples=300)
@given(
    st.sets(st.integers(1, 25), max_size=15),
    st.lists(st.tuples(_BOUND, st.one_of(st.none(), _BOUND)), min_size=1, max_size=3),
)
def test_uid_select_is_the_uids_in_any_range(
    kept: set[int], elements: list[tuple[str, str | None]]
) -> None:
    """UID selection, one range or several: exactly the mailbox's UIDs inside some range
    (``*`` the highest UID, bounds in either order), ascending, numbered by position.
    Spec: RFC 9051 §6.4.9, §9 (seq-range)."""
    store = Store()
    for _ in range(25):
        store.add()
    for gone in set(range(1, 26)) - kept:
        store.expunge(gone)
    view, _ = select(store)
    text = ",".join(a if b is None else f"{a}:{b}" for a, b in elements)
    uids = sorted(kept)
    highest = uids[-1] if uids else 0

    def value(bound: str) -> int:
        return highest if bound == "*" else int(bound)

    def inside(uid: int) -> bool:
        for a, b in elements:
            lo, hi = sorted((value(a), value(a if b is None else b)))
            if lo <= uid <= hi:
                return True
        return False

    expected = [(n, uid) for n, uid in enumerate(uids, 1) if inside(uid)]
    assert view.select(parse_sequence_set(text), uid=True) == expected


operation = st.one_of(
    st.tuples(st.just("add"), st.booleans()),
    st.tuples(st.just("flag"), st.integers(1, 40)),
    st.tuples(st.just("expunge"), st.integers(1, 40)),
    st.tuples(st.just("sync"), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.lists(operation, max_size=60))
def test_client_picture_equals_the_store_after_every_full_sync(
    initial: int, ops: list[tuple[str, object]]
) -> None:
    store = Store()
    for _ in range(initial):
        store.add()
    view, client = select(store)
    for op, arg in ops:
        if op == "add":
            store.add(SEEN if arg else NONE)
        elif op == "flag":
            uid = int(str(arg))
            if uid in store.messages:
                flags = store.messages[uid][0]
                store.set_flags(uid, NONE if flags else SEEN)
        elif op == "expunge":
            store.expunge(int(str(arg)))
        else:
            sync(view, client, store, allow_expunge=bool(arg))
            pending = [u for u in client_uids(client) if u not in store.messages]
            assert all(view.is_expunged(u) for u in pending)
            assert client_uids(client) == view.uids
            for uid, flags in client.slots:
                if uid in store.messages:
                    assert flags == store.messages[uid][0]
    sync(view, client, store, allow_expunge=True)
    assert client_uids(client) == sorted(store.messages)
    assert dict(client.slots) == {u: f for u, (f, _) in store.messages.items()}


def client_uids(client: Client) -> list[int]:
    return [u for u, _ in client.slots if u is not None]
