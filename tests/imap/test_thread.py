"""THREAD: ORDEREDSUBJECT and REFERENCES (RFC 5256 §4) and the thread-list syntax (§5),
with Dovecot's imaptest thread scripts replayed over their mbox files."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.imap.thread import (
    REFERENCES_SCAN_MAX,
    THREAD_REFERENCES_MAX,
    ThreadAlgorithm,
    ThreadAlgorithmError,
    ThreadNode,
    ThreadRecord,
    format_threads,
    message_ids,
    parse_thread_algorithm,
    reference_ids,
    thread_messages,
    thread_orderedsubject,
    thread_references,
)
from postel.mail import decode_encoded_words, parse_date, parse_message, split_header
from postel.mail.basesubject import base_subject, casemap
from postel.mail.envelope import field_text

from .test_sort import CONFORMANCE, read_mbox

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def thread_record(seq: int, data: bytes, internal: datetime) -> ThreadRecord:
    summary = parse_message(data)
    header = split_header(data, 0, summary.body.header_offset + summary.body.header_length)
    env = summary.envelope
    sent = parse_date(env.date) if env.date is not None else None
    ids = message_ids(env.message_id) if env.message_id is not None else ()
    return ThreadRecord(
        seq=seq,
        uid=seq,
        sent_date=sent if sent is not None else internal,
        subject=decode_encoded_words(env.subject) if env.subject is not None else "",
        message_id=ids[0] if ids else None,
        references=reference_ids(
            field_text(header, b"references"), field_text(header, b"in-reply-to")
        ),
    )


def mbox_messages(name: str) -> list[tuple[bytes, datetime]]:
    path = CONFORMANCE / f"{name}.mbox"
    if not path.exists():
        pytest.skip(f"conformance mbox {name} not present")
    return read_mbox(path)


def mailbox(messages: list[tuple[bytes, datetime]]) -> list[ThreadRecord]:
    return [thread_record(i, data, when) for i, (data, when) in enumerate(messages, 1)]


def wire(algorithm: ThreadAlgorithm, records: list[ThreadRecord]) -> bytes:
    return format_threads(thread_messages(algorithm, records))


REFS = ThreadAlgorithm.REFERENCES


# -- imaptest scripts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("thread", b"(3 2)(1)"),
        ("thread3", b"(1 2)"),
        ("thread4", b"(1 2)"),
        ("thread6", b"((1)(2))"),
        ("thread7", b"(1 (2 3)(4))"),
    ],
)
def test_imaptest_references_scripts(name: str, expected: bytes) -> None:
    assert wire(REFS, mailbox(mbox_messages(name))) == expected


def test_imaptest_thread_after_expunge() -> None:
    messages = mbox_messages("thread")
    assert wire(REFS, mailbox(messages[1:])) == b"(2 1)"
    messages7 = mbox_messages("thread7")
    assert wire(REFS, mailbox([messages7[0], *messages7[2:]])) == b"(1 3 2)"


def test_imaptest_thread5() -> None:
    messages = mbox_messages("thread5")
    assert wire(REFS, mailbox(messages[:4])) == b"(1 (2 4)(3))"
    assert wire(REFS, mailbox(messages[2:4])) == b"(1)(2)"
    assert wire(REFS, mailbox(messages[2:5])) == b"(1)((2)(3))"


def test_imaptest_thread8() -> None:
    messages = mbox_messages("thread8")
    assert wire(REFS, mailbox(messages[:2])) == b"(1 2)"
    assert wire(REFS, mailbox(messages[:1])) == b"(1)"
    assert wire(REFS, mailbox([messages[0], messages[2]])) == b"(1 2)"


def test_imaptest_orderedsubject2() -> None:
    records = mailbox(mbox_messages("thread-orderedsubject2"))
    expected = b"(4 (2)(8)(6))(3 (1)(7)(5))"
    assert wire(ThreadAlgorithm.ORDEREDSUBJECT, records) == expected


# -- wire syntax --------------------------------------------------------------------------


def node(seq: int | None, *children: ThreadNode) -> ThreadNode:
    return ThreadNode(seq, None if seq is None else seq * 10, children)


def test_format_rfc_example() -> None:
    # RFC 5256 §5: (2)(3 6 (4 23)(44 7 96))
    forest = [
        node(2),
        node(3, node(6, node(4, node(23)), node(44, node(7, node(96))))),
    ]
    assert format_threads(forest) == b"(2)(3 6 (4 23)(44 7 96))"
    assert format_threads(forest, use_uid=True) == b"(20)(30 60 (40 230)(440 70 960))"


def test_format_dummies_and_empty() -> None:
    assert format_threads([node(None, node(3), node(5))]) == b"((3)(5))"
    assert format_threads([node(None, node(3, node(4)), node(5))]) == b"((3 4)(5))"
    assert format_threads([node(None, node(3))]) == b"(3)"
    assert format_threads([]) == b""


# -- ORDEREDSUBJECT -----------------------------------------------------------------------


def rec(
    seq: int,
    minutes: int = 0,
    subject: str = "",
    mid: str | None = None,
    refs: tuple[str, ...] = (),
) -> ThreadRecord:
    return ThreadRecord(seq, 100 + seq, T0 + timedelta(minutes=minutes), subject, mid, refs)


def test_orderedsubject_example() -> None:
    records = [
        rec(1, 5, "Re: Party"),
        rec(2, 1, "party"),
        rec(3, 2, "Lunch"),
        rec(4, 9, "[x] PARTY"),
        rec(5, 3, "Fwd: lunch"),
        rec(6, 4, "other"),
    ]
    threads = thread_orderedsubject(records)
    assert format_threads(threads) == b"(2 (1)(4))(3 5)(6)"
    assert all(not child.children for t in threads for child in t.children)


def test_orderedsubject_ties_by_sequence() -> None:
    records = [rec(3, 0, "a"), rec(1, 0, "a"), rec(2, 0, "b")]
    assert format_threads(thread_orderedsubject(records)) == b"(1 3)(2)"


# -- REFERENCES -------------------------------------------------------------------------


def test_references_basic_tree_and_sorting() -> None:
    records = [
        rec(1, 0, "x", "a"),
        rec(2, 5, "Re: x", "b", ("a",)),
        rec(3, 2, "Re: x", "c", ("a",)),
        rec(4, 1, "Re: x", "d", ("a", "c")),
        rec(5, 3, "y", "e"),
    ]
    assert wire(REFS, records) == b"(1 (3 4)(2))(5)"


def test_references_in_reply_to_fallback_and_normalisation() -> None:
    assert reference_ids(None, b"<a@b> <c@d>") == ("a@b",)
    assert reference_ids(b"<x@y>\r\n <z@w>", b"<a@b>") == ("x@y", "z@w")
    assert reference_ids(b"garbage", b"<a@b>") == ("a@b",)
    assert reference_ids(None, None) == ()
    assert message_ids(b'<"01KF8JCEOCBS0045PS"@xxx.yyy.com>') == message_ids(
        b"<01KF8JCEOCBS0045PS@xxx.yyy.com>"
    )
    assert message_ids(b"<> <a@b>") == ("a@b",)


@pytest.mark.parametrize("length", [254, 255, 256])
def test_a_huge_references_field_is_read_only_at_its_end(length: int) -> None:
    # Megabytes of ids: the last THREAD_REFERENCES_MAX ids (the parent last) are found
    # in the last REFERENCES_SCAN_MAX octets, whatever the ids' length; an id the bound
    # cuts through is not taken.
    ids = [b"%0*d@example.org" % (length - 14, i) for i in range(20 * THREAD_REFERENCES_MAX)]
    field = b" ".join(b"<" + i + b">" for i in ids)
    assert len(field) > 10 * REFERENCES_SCAN_MAX
    found = reference_ids(field, None)
    assert found[-1] == ids[-1].decode()
    expected = [i.decode() for i in ids][-len(found) :]
    assert list(found) == expected
    assert len(found) == THREAD_REFERENCES_MAX  # ids of up to 256 octets all fit


def test_references_bound() -> None:
    refs = b" ".join(b"<%d@x>" % i for i in range(THREAD_REFERENCES_MAX + 50))
    kept = reference_ids(refs, None)
    assert len(kept) == THREAD_REFERENCES_MAX
    assert kept[-1] == f"{THREAD_REFERENCES_MAX + 49}@x"


def test_missing_and_duplicate_ids_get_unique_ones() -> None:
    records = [
        rec(1, 0, "p", "a"),
        rec(2, 1, "q", "a"),  # duplicate: not the parent of 3
        rec(3, 2, "r", "c", ("a",)),
        rec(4, 3, "s", None, ("c",)),
        rec(5, 4, "t", None),
    ]
    assert wire(REFS, records) == b"(1 3 4)(2)(5)"


def test_no_loops_are_created() -> None:
    records = [
        rec(1, 0, "", "a", ("b",)),
        rec(2, 1, "", "b", ("a",)),
        rec(3, 2, "", "c", ("c",)),
    ]
    # 1 becomes the child of the dummy "b"; 2 fills "b" and may not become 1's child.
    threads = thread_references(records)
    assert format_threads(threads) == b"(2 1)(3)"


def test_dummy_with_one_child_is_promoted_and_nested_dummies_spliced() -> None:
    records = [
        rec(1, 0, "one", "m1", ("g", "p")),  # g -> p -> m1: a dummy chain with one message
        rec(2, 1, "two", "m2", ("q", "r")),
        rec(3, 2, "three", "m3", ("q", "s")),  # q has r and s: spliced into q at top
    ]
    assert wire(REFS, records) == b"(1)((2)(3))"


def test_subject_grouping_rules() -> None:
    # A reply joins the thread of a non-reply with the same base subject.
    assert wire(REFS, [rec(1, 0, "Re: x"), rec(2, 1, "x")]) == b"(2 1)"
    # Two non-replies with the same subject share a dummy.
    assert wire(REFS, [rec(1, 0, "x"), rec(2, 1, "x"), rec(3, 2, "Re: x")]) == b"((1)(2)(3))"
    # A dummy holds the subject: messages join it.
    records = [rec(1, 0, "x", "m1", ("d",)), rec(2, 1, "x", "m2", ("d",)), rec(3, 2, "X")]
    assert wire(REFS, records) == b"((1)(2)(3))"
    # Empty subjects are never grouped.
    assert wire(REFS, [rec(1, 0, ""), rec(2, 1, "Re:")]) == b"(1)(2)"


def test_algorithm_names() -> None:
    assert parse_thread_algorithm("references") is ThreadAlgorithm.REFERENCES
    assert parse_thread_algorithm("OrderedSubject") is ThreadAlgorithm.ORDEREDSUBJECT
    with pytest.raises(ThreadAlgorithmError):
        parse_thread_algorithm("REFS")


# -- deep chains: no recursion -----------------------------------------------------------


def chain(n: int, reverse_dates: bool = False) -> list[ThreadRecord]:
    out = []
    for i in range(1, n + 1):
        refs = (f"m{i - 1}",) if i > 1 else ()
        minutes = n - i if reverse_dates else i
        out.append(rec(i, minutes, "Re: deep" if i > 1 else "deep", f"m{i}", refs))
    return out


def test_deep_chain_does_not_recurse() -> None:
    n = 50_000
    records = chain(n)
    started = time.process_time()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        out = format_threads(thread_references(records))
        out_reversed = format_threads(thread_references(list(reversed(records))))
    finally:
        sys.setrecursionlimit(old)
    assert out == b"(" + b" ".join(b"%d" % i for i in range(1, n + 1)) + b")"
    assert out_reversed == out
    assert time.process_time() - started < 10.0


def test_deep_chain_arriving_children_first() -> None:
    # Each message references every ancestor (the usual References field), seq order is
    # the reverse of the chain: every link is made with the child already holding children.
    n = 3_000
    records = [
        rec(n - k + 1, k, "t", f"m{k}", tuple(f"m{j}" for j in range(max(1, k - 20), k)))
        for k in range(1, n + 1)
    ]
    started = time.process_time()
    out = format_threads(thread_references(records))
    assert out == b"(" + b" ".join(b"%d" % (n - k + 1) for k in range(1, n + 1)) + b")"
    assert time.process_time() - started < 10.0


def test_deep_nested_tree_formats_iteratively() -> None:
    # Alternate one- and two-child levels: nested parentheses 10,000 deep.
    leaf = node(1)
    for i in range(2, 20_000, 2):
        leaf = node(i, leaf, node(i + 1))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        out = format_threads([leaf])
    finally:
        sys.setrecursionlimit(old)
    assert out.count(b"(") == out.count(b")") == 1 + 2 * 9_999


# -- properties -------------------------------------------------------------------------

_subjects = st.sampled_from(["a", "Re: a", "A", "b", "Fwd: b", "[l] b (fwd)", "", "Re:"])
_ids = st.sampled_from(["i1", "i2", "i3", "i4", "i5", "i6"])


@st.composite
def _mailboxes(draw: st.DrawFn) -> list[ThreadRecord]:
    n = draw(st.integers(0, 25))
    out = []
    for seq in range(1, n + 1):
        out.append(
            ThreadRecord(
                seq,
                seq,
                T0 + timedelta(minutes=draw(st.integers(0, 6))),
                draw(_subjects),
                draw(st.one_of(st.none(), _ids)),
                tuple(draw(st.lists(_ids, max_size=4))),
            )
        )
    return out


def walk(nodes: list[ThreadNode]) -> Iterator[tuple[ThreadNode, int]]:
    stack = [(n, 0) for n in nodes]
    while stack:
        current, depth = stack.pop()
        yield current, depth
        stack.extend((c, depth + 1) for c in current.children)


@given(_mailboxes(), st.sampled_from(list(ThreadAlgorithm)))
def test_every_message_once(records: list[ThreadRecord], algorithm: ThreadAlgorithm) -> None:
    threads = thread_messages(algorithm, records)
    ids = [n.id for n, _ in walk(threads) if n.id is not None]
    assert sorted(ids) == [r.seq for r in records]
    for current, depth in walk(threads):
        if current.id is None:  # dummies only at the top, with two or more children
            assert depth == 0
            assert len(current.children) >= 2
    if algorithm is ThreadAlgorithm.ORDEREDSUBJECT:
        assert all(depth <= 1 for _, depth in walk(threads))
    assert format_threads(threads).count(b"(") == format_threads(threads).count(b")")


@given(_mailboxes())
def test_siblings_sorted_by_sent_date_then_sequence(records: list[ThreadRecord]) -> None:
    by_seq = {r.seq: r for r in records}

    def key(n: ThreadNode) -> tuple[datetime, int]:
        first = n if n.id is not None else n.children[0]
        assert first.id is not None
        return (by_seq[first.id].sent_date, first.id)

    threads = thread_references(records)
    for siblings in [threads] + [list(n.children) for n, _ in walk(threads)]:
        keys = [key(n) for n in siblings]
        assert keys == sorted(keys)


@given(_mailboxes())
def test_references_without_ids_is_subject_grouping(records: list[ThreadRecord]) -> None:
    plain = [ThreadRecord(r.seq, r.uid, r.sent_date, r.subject) for r in records]
    subject = {r.seq: casemap(base_subject(r.subject)) for r in plain}
    threads = thread_references(plain)
    members = [[n.id for n, _ in walk([t]) if n.id is not None] for t in threads]
    seen: set[str] = set()
    for group in members:
        subjects = {subject[i] for i in group}
        assert len(subjects) == 1
        (only,) = subjects
        if only == "":
            assert len(group) == 1
        else:
            assert only not in seen
            seen.add(only)
