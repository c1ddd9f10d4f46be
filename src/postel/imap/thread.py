"""THREAD: the ORDEREDSUBJECT and REFERENCES threading algorithms and the thread-list
wire syntax.

Pure functions over `ThreadRecord` values that the driver builds from the store (sent
date already defaulted to INTERNALDATE, subject decoded, msg-ids extracted with
`message_ids` / `reference_ids`). Every walk over the thread forest uses an explicit
stack or queue, never recursion, so a reference chain 100,000 messages deep is
threaded and formatted in linear space without touching the Python stack limit.

Work bounds: at most THREAD_REFERENCES_MAX references are taken per message. The loop
check of step 1 walks up from the would-be parent only when the would-be child already
has children (a new message or dummy never can be its own ancestor), so the usual
mailbox costs O(n log n + r) for n messages and r references in all; step 3 splices
child lists smaller-into-larger.

Spec: RFC 5256 §2.1 (base subject), §2.2 (sent date), §4 (ORDEREDSUBJECT, REFERENCES),
§5 (thread-data ABNF), RFC 5051 (i;unicode-casemap).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from postel.errors import ProtocolError
from postel.mail.basesubject import casemap, extract_base_subject

__all__ = [
    "REFERENCES_SCAN_MAX",
    "THREAD_REFERENCES_MAX",
    "ThreadAlgorithm",
    "ThreadAlgorithmError",
    "ThreadNode",
    "ThreadRecord",
    "format_threads",
    "message_ids",
    "parse_thread_algorithm",
    "reference_ids",
    "thread_messages",
    "thread_orderedsubject",
    "thread_references",
]

REFERENCES_SCAN_MAX = 256 * 1024
"""Octets read from the end of a References field: room for THREAD_REFERENCES_MAX ids of
up to 256 octets each. A longer field (a hostile one of megabytes) is not read past it,
so threading costs the same whatever the field's length; an id cut by the bound lacks
its opening bracket and is not taken. Postel policy (RELIABILITY.md D7)."""
THREAD_REFERENCES_MAX = 1000
"""References taken per message, the last ones (nearest the message: the last is the
parent). RFC 5322 §3.6.4 lets writers trim long References fields and RFC 5256 §4
copes with truncated ones (step 1.B), so dropping the oldest loses only links other
messages of the thread usually restate, while it bounds the step 1 work per message.
Local policy (RELIABILITY.md D7)."""

_MSG_ID = re.compile(rb"<([^<>]*)>")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
_NO_PARENT = -1


class ThreadAlgorithmError(ProtocolError, ValueError):
    """A THREAD command names an algorithm postel does not implement (answered BAD).
    Spec: RFC 5256 §5 (thread-alg)."""


class ThreadAlgorithm(StrEnum):
    """The threading algorithms, advertised as THREAD=<name>. Spec: RFC 5256 §4."""

    ORDEREDSUBJECT = "ORDEREDSUBJECT"
    REFERENCES = "REFERENCES"


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """What THREAD needs of one message.

    ``sent_date`` is the Date: field, or INTERNALDATE when it is missing or unparsable
    (a naive datetime is taken as UTC); ``subject`` is decoded ("" when absent);
    ``message_id`` is the normalised msg-id of Message-ID (None when absent or not a
    msg-id); ``references`` the msg-ids of References, or when there is no References
    field the first msg-id of In-Reply-To (see `reference_ids`).

    Spec: RFC 5256 §2.2 (sent date), §4 REFERENCES step 1.
    """

    seq: int
    uid: int
    sent_date: datetime
    subject: str = ""
    message_id: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ThreadNode:
    """One node of a thread tree: a message (``id`` = message sequence number, ``uid``
    its UID) or a dummy (both None) that only groups its children.

    Equality, hashing and repr of dataclasses recurse: use `format_threads` (iterative)
    on trees that may be very deep.

    Spec: RFC 5256 §4, §5 (thread-list).
    """

    id: int | None
    uid: int | None = None
    children: tuple[ThreadNode, ...] = ()


def parse_thread_algorithm(token: str) -> ThreadAlgorithm:
    """The algorithm named by a THREAD command's atom (case ignored).

    Raises `ThreadAlgorithmError` for any other name. Spec: RFC 5256 §5 (thread-alg).
    """
    try:
        return ThreadAlgorithm(token.upper())
    except ValueError:
        raise ThreadAlgorithmError(f"unknown threading algorithm {token[:64]!r}") from None


def thread_messages(
    algorithm: ThreadAlgorithm, records: Iterable[ThreadRecord]
) -> list[ThreadNode]:
    """Thread ``records`` with ``algorithm``. Spec: RFC 5256 §4."""
    if algorithm is ThreadAlgorithm.ORDEREDSUBJECT:
        return thread_orderedsubject(records)
    return thread_references(records)


def message_ids(value: bytes) -> tuple[str, ...]:
    """The msg-ids of a Message-ID, In-Reply-To or References field value, in order.

    Each is normalised so that quoting differences do not matter: the angle brackets
    are dropped, quoted pairs unescaped, double quotes and whitespace (folding, CFWS)
    removed, so ``<"01KF8JCEOCBS0045PS"@xxx.yyy.com>`` equals
    ``<01KF8JCEOCBS0045PS@xxx.yyy.com>``. Octets are read as latin-1 (one character per
    octet, so distinct ids stay distinct). Empty ids are skipped. Never raises.

    Spec: RFC 5256 §4 REFERENCES ("MUST normalize any msg-id"), RFC 5322 §3.6.4.
    """
    out: list[str] = []
    for match in _MSG_ID.finditer(value):
        normal = _normalize_msg_id(match.group(1).decode("latin-1"))
        if normal:
            out.append(normal)
    return tuple(out)


def reference_ids(references: bytes | None, in_reply_to: bytes | None) -> tuple[str, ...]:
    """A message's references for REFERENCES threading: the msg-ids of References, or
    when that field is absent (or holds no msg-id) the first msg-id of In-Reply-To.
    At most the last THREAD_REFERENCES_MAX are kept, found in the last
    REFERENCES_SCAN_MAX octets. Never raises.

    Spec: RFC 5256 §4 REFERENCES step 1.
    """
    if references is not None:
        kept: deque[str] = deque(maxlen=THREAD_REFERENCES_MAX)
        for match in _MSG_ID.finditer(references[-REFERENCES_SCAN_MAX:]):
            normal = _normalize_msg_id(match.group(1).decode("latin-1"))
            if normal:
                kept.append(normal)
        if kept:
            return tuple(kept)
    if in_reply_to is not None:
        first = message_ids(in_reply_to)[:1]
        return first
    return ()


def _normalize_msg_id(text: str) -> str:
    text = _QUOTED_PAIR.sub(lambda m: "" if m.group(1).isspace() else m.group(1), text)
    return "".join(text.replace('"', "").split())


def thread_orderedsubject(records: Iterable[ThreadRecord]) -> list[ThreadNode]:
    """ORDEREDSUBJECT ("poor man's threading"): messages sorted by base subject, then
    sent date; each run of one base subject is a thread whose first message is the
    root and whose other messages are its children, in sent-date order (no
    grandchildren). Threads are ordered by the sent date of their first message. Base
    subjects compare under i;unicode-casemap; sent-date ties go by sequence number.

    Spec: RFC 5256 §4 (ORDEREDSUBJECT), §2.1, §2.2.
    """
    keyed = sorted(
        ((casemap(extract_base_subject(r.subject).text), _date_key(r), r) for r in records),
        key=lambda item: (item[0], item[1]),
    )
    threads: list[tuple[tuple[datetime, int], ThreadNode]] = []
    start = 0
    while start < len(keyed):
        stop = start + 1
        while stop < len(keyed) and keyed[stop][0] == keyed[start][0]:
            stop += 1
        first = keyed[start][2]
        children = tuple(_leaf(item[2]) for item in keyed[start + 1 : stop])
        threads.append((keyed[start][1], ThreadNode(first.seq, first.uid, children)))
        start = stop
    threads.sort(key=lambda item: item[0])
    return [node for _, node in threads]


def thread_references(records: Iterable[ThreadRecord]) -> list[ThreadNode]:
    """REFERENCES threading: parent/child links from Message-ID and References, dummy
    containers for referenced messages that are not there, then threads with the same
    base subject gathered, every set of siblings sorted by sent date.

    Step 1 processes messages in sequence-number order; a message without a msg-id, or
    whose msg-id an earlier message already has, gets a unique id; no link that would
    make a loop is made. Step 3 prunes dummies (a top-level dummy keeps its children
    unless it has exactly one). Step 5 groups top-level threads by base subject
    (compared under i;unicode-casemap) with the RFC's rules on dummies and replies.
    Sent-date ties go by sequence number; a dummy sorts as its first child. Never
    raises; iterative throughout.

    Spec: RFC 5256 §4 (REFERENCES steps 1-6), §2.1, §2.2.
    """
    forest = _Forest()
    for record in sorted(records, key=lambda r: r.seq):
        forest.add(record)
    roots = forest.prune(forest.gather_roots())
    roots = forest.sort_top(roots)
    roots = forest.group_by_subject(roots)
    return forest.build(forest.sort_all(roots))


def format_threads(nodes: Sequence[ThreadNode], use_uid: bool = False) -> bytes:
    """The thread-lists of a THREAD response (what follows ``* THREAD``), e.g.
    ``b"(2)(3 6 (4 23)(44 7 96))"``; ``b""`` when there are no threads.

    A node with one child continues its thread-list flat ("3 6"); a node with several
    children is followed by one nested thread-list per child; a dummy writes only its
    children (``((3)(5))``). Numbers are sequence numbers, or UIDs when ``use_uid``
    (UID THREAD). Iterative. Never raises.

    Spec: RFC 5256 §5 (thread-data, thread-list, thread-members, thread-nested).
    """
    out: list[bytes] = []
    stack: list[ThreadNode | bytes] = list(reversed(nodes))
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        out.append(b"(")
        node, written = item, False
        while True:
            number = node.uid if use_uid else node.id
            if number is not None:
                out.append(b" %d" % number if written else b"%d" % number)
                written = True
            if len(node.children) != 1:
                break
            node = node.children[0]
        if len(node.children) > 1:
            if written:
                out.append(b" ")
            stack.append(b")")
            stack.extend(reversed(node.children))
        else:
            out.append(b")")
    return b"".join(out)


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _date_key(record: ThreadRecord) -> tuple[datetime, int]:
    """Sent date as an instant, then sequence number. Spec: RFC 5256 §2.2."""
    return (_utc(record.sent_date), record.seq)


def _leaf(record: ThreadRecord) -> ThreadNode:
    return ThreadNode(record.seq, record.uid)


class _Forest:
    """The containers of one REFERENCES run: index i holds a message or a dummy."""

    def __init__(self) -> None:
        self.message: list[ThreadRecord | None] = []  # None: dummy
        self.parent: list[int] = []
        self.child_count: list[int] = []
        self.children: list[list[int]] = []
        self.by_id: dict[str, int] = {}
        self._subjects: dict[int, tuple[str, bool]] = {}

    # -- step 1 ---------------------------------------------------------------------

    def _new(self, record: ThreadRecord | None) -> int:
        self.message.append(record)
        self.parent.append(_NO_PARENT)
        self.child_count.append(0)
        return len(self.message) - 1

    def _container(self, msg_id: str) -> int:
        found = self.by_id.get(msg_id)
        if found is None:
            found = self.by_id[msg_id] = self._new(None)
        return found

    def _would_loop(self, parent: int, child: int) -> bool:
        """Making ``parent`` the parent of ``child`` would make a loop: parent is child
        or one of its descendants, i.e. child is parent or one of its ancestors."""
        if parent == child:
            return True
        if self.child_count[child] == 0:
            return False
        node = self.parent[parent]
        while node != _NO_PARENT:
            if node == child:
                return True
            node = self.parent[node]
        return False

    def _link(self, parent: int, child: int) -> None:
        self.parent[child] = parent
        self.child_count[parent] += 1

    def _unlink(self, child: int) -> None:
        old = self.parent[child]
        if old != _NO_PARENT:
            self.child_count[old] -= 1
            self.parent[child] = _NO_PARENT

    def add(self, record: ThreadRecord) -> None:
        """Step 1 for one message (callers go in sequence-number order)."""
        msg_id = record.message_id
        found = self.by_id.get(msg_id) if msg_id else None
        if found is not None and self.message[found] is None:
            current = found
            self.message[current] = record
        else:
            current = self._new(record)
            if msg_id and found is None:
                self.by_id[msg_id] = current
        previous = _NO_PARENT
        for ref in record.references[-THREAD_REFERENCES_MAX:]:
            if not ref:
                continue
            container = self._container(ref)
            if (
                previous != _NO_PARENT
                and self.parent[container] == _NO_PARENT
                and not self._would_loop(previous, container)
            ):
                self._link(previous, container)
            previous = container
        self._unlink(current)
        if previous != _NO_PARENT and not self._would_loop(previous, current):
            self._link(previous, current)

    # -- steps 2 and 3 ----------------------------------------------------------------

    def gather_roots(self) -> list[int]:
        """Step 2: containers without a parent; also fills the child lists."""
        self.children = [[] for _ in self.message]
        roots: list[int] = []
        for node, parent in enumerate(self.parent):
            if parent == _NO_PARENT:
                roots.append(node)
            else:
                self.children[parent].append(node)
        return roots

    def _descendants_bottom_up(self, roots: Iterable[int]) -> list[int]:
        order: list[int] = []
        queue = deque(roots)
        while queue:
            node = queue.popleft()
            order.append(node)
            queue.extend(self.children[node])
        order.reverse()
        return order

    def prune(self, roots: list[int]) -> list[int]:
        """Step 3: a dummy below the top level is replaced by its children; a top-level
        dummy is dropped without children, replaced by its only child, kept otherwise."""
        for node in self._descendants_bottom_up(roots):
            kids: list[int] = []
            for child in self.children[node]:
                if self.message[child] is not None:
                    kids.append(child)
                    continue
                spliced = self.children[child]
                if len(spliced) > len(kids):
                    kids, spliced = spliced, kids
                kids.extend(spliced)
            self.children[node] = kids
        top: list[int] = []
        for root in roots:
            kids = self.children[root]
            if self.message[root] is not None or len(kids) > 1:
                top.append(root)
            elif len(kids) == 1:
                top.append(kids[0])
                self.parent[kids[0]] = _NO_PARENT
        return top

    # -- steps 4 to 6 -----------------------------------------------------------------

    def _key(self, node: int) -> tuple[datetime, int]:
        """Sent date and sequence number; a dummy sorts as its first child."""
        record = self.message[node]
        if record is None:
            record = self.message[self.children[node][0]]
            assert record is not None  # children of a top-level dummy are messages
        return _date_key(record)

    def sort_top(self, roots: list[int]) -> list[int]:
        """Step 4: sort the children of top-level dummies, then the top level."""
        for root in roots:
            if self.message[root] is None:
                self.children[root].sort(key=self._key)
        return sorted(roots, key=self._key)

    def _subject(self, node: int) -> tuple[str, bool]:
        """The casemapped base subject of a message and whether it is a reply/forward."""
        cached = self._subjects.get(node)
        if cached is None:
            record = self.message[node]
            base = extract_base_subject(record.subject if record is not None else "")
            cached = self._subjects[node] = (casemap(base.text), base.is_reply_or_forward)
        return cached

    def _thread_subject(self, node: int) -> str:
        first = node if self.message[node] is not None else self.children[node][0]
        return self._subject(first)[0]

    def group_by_subject(self, roots: list[int]) -> list[int]:
        """Step 5: gather top-level threads whose thread subject is the same."""
        table: dict[str, int] = {}
        for root in roots:  # 5.B
            subject = self._thread_subject(root)
            if not subject:
                continue
            held = table.get(subject)
            if held is None or (
                self.message[held] is not None
                and (
                    self.message[root] is None
                    or (self._subject(held)[1] and not self._subject(root)[1])
                )
            ):
                table[subject] = root
        at_top = dict.fromkeys(roots, True)
        for root in roots:  # 5.C
            subject = self._thread_subject(root)
            if not subject or table[subject] == root:
                continue
            at_top[root] = False
            table[subject] = self._merge(table[subject], root, at_top)
        return [node for node, top in at_top.items() if top]

    def _merge(self, held: int, current: int, at_top: dict[int, bool]) -> int:
        """Merge ``current`` into the subject table's ``held``; returns the new holder."""
        held_dummy = self.message[held] is None
        if held_dummy and self.message[current] is None:
            self.children[held].extend(self.children[current])
            return held
        if held_dummy or (self._subject(current)[1] and not self._subject(held)[1]):
            self.children[held].append(current)
            return held
        dummy = self._new(None)
        self.children.append([held, current])
        at_top[held] = False
        at_top[dummy] = True
        return dummy

    def sort_all(self, roots: list[int]) -> list[int]:
        """Step 6: sort every set of siblings, children before their parents."""
        order = self._descendants_bottom_up(roots)
        for node in order:
            if len(self.children[node]) > 1:
                self.children[node].sort(key=self._key)
        return sorted(roots, key=self._key)

    def build(self, roots: list[int]) -> list[ThreadNode]:
        """The frozen tree, built leaves first."""
        built: dict[int, ThreadNode] = {}
        for node in self._descendants_bottom_up(roots):
            record = self.message[node]
            children = tuple(built.pop(child) for child in self.children[node])
            if record is None:
                built[node] = ThreadNode(None, None, children)
            else:
                built[node] = ThreadNode(record.seq, record.uid, children)
        return [built[root] for root in roots]
