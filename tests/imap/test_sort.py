"""SORT criteria parsing and ordering (RFC 5256 §3, RFC 5957), with Dovecot's imaptest
sort scripts replayed over their mbox files."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.imap.sort import (
    SORT_CRITERIA_MAX,
    SortCriteriaError,
    SortCriterion,
    SortKey,
    SortRecord,
    first_display,
    first_mailbox,
    parse_sort_criteria,
    sort_records,
)
from postel.mail import Address, decode_encoded_words, parse_date, parse_message

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "imaptest" / "tests"
_SEPARATOR = re.compile(
    rb"From \S*\s+\w{3}\s+(\w{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+(\d{4})"
    rb"(?:\s+([+-])(\d{2})(\d{2}))?\s*$"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


# -- mbox fixtures shared with test_thread ------------------------------------------------


def read_mbox(path: Path) -> list[tuple[bytes, datetime]]:
    """(message bytes with CRLF, INTERNALDATE from the separator line, UTC), as imaptest
    appends them."""
    messages: list[tuple[bytes, datetime]] = []
    body: list[bytes] = []
    date: datetime | None = None
    for line in path.read_bytes().splitlines(keepends=True):
        match = _SEPARATOR.match(line.rstrip(b"\r\n"))
        if match is not None:
            if date is not None:
                messages.append((b"".join(body), date))
            month = _MONTHS.index(match.group(1).decode()) + 1
            hour, minute, second = (int(match.group(i)) for i in (3, 4, 5))
            zone = UTC
            if match.group(7):
                offset = timedelta(hours=int(match.group(8)), minutes=int(match.group(9)))
                zone = timezone(-offset if match.group(7) == b"-" else offset)
            day, year = int(match.group(2)), int(match.group(6))
            date = datetime(year, month, day, hour, minute, second, tzinfo=zone)
            body = []
            continue
        body.append(line.rstrip(b"\r\n") + b"\r\n")
    if date is not None:
        messages.append((b"".join(body), date))
    return messages


def sort_record(seq: int, data: bytes, internal: datetime) -> SortRecord:
    summary = parse_message(data)
    env = summary.envelope
    return SortRecord(
        seq=seq,
        uid=seq,
        internal_date=internal,
        sent_date=parse_date(env.date) if env.date is not None else None,
        size=summary.size,
        subject=decode_encoded_words(env.subject) if env.subject is not None else "",
        from_mailbox=first_mailbox(env.from_),
        to_mailbox=first_mailbox(env.to),
        cc_mailbox=first_mailbox(env.cc),
        from_display=first_display(env.from_),
        to_display=first_display(env.to),
    )


def mbox_sort_records(name: str) -> list[SortRecord]:
    path = CONFORMANCE / f"{name}.mbox"
    if not path.exists():
        pytest.skip(f"conformance mbox {name} not present")
    return [sort_record(i, data, when) for i, (data, when) in enumerate(read_mbox(path), 1)]


def seqs(records: list[SortRecord]) -> list[int]:
    return [r.seq for r in records]


# -- imaptest scripts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "criteria", "expected"),
    [
        ("sort-date", "date", [1, 3, 7, 5, 2, 4, 6]),
        ("sort-date", "reverse date", [2, 4, 6, 5, 3, 7, 1]),
        ("sort-date", "date reverse size", [1, 7, 3, 5, 6, 4, 2]),
        ("sort-size", "size", [1, 8, 2, 6, 3, 5, 4, 7]),
        ("sort-size", "reverse size", [4, 7, 3, 5, 2, 6, 1, 8]),
        ("sort-size", "size reverse arrival", [8, 1, 6, 2, 5, 3, 7, 4]),
        ("sort-display-to", "displayto", [6, 2, 3, 8, 4, 1, 5, 7]),
        ("sort-display-to", "reverse displayto", [7, 5, 1, 4, 8, 3, 2, 6]),
        ("sort-partial", "arrival", [1, 2, 3, 4, 5]),
        ("sort-partial", "reverse arrival", [5, 3, 4, 2, 1]),
    ],
)
def test_imaptest_sort_scripts(name: str, criteria: str, expected: list[int]) -> None:
    records = mbox_sort_records(name)
    assert seqs(sort_records(records, parse_sort_criteria(criteria.split()))) == expected


# -- parsing ----------------------------------------------------------------------------


def test_parse_criteria() -> None:
    assert parse_sort_criteria(["subject", "REVERSE", "Date", "displayFROM"]) == (
        SortCriterion(SortKey.SUBJECT),
        SortCriterion(SortKey.DATE, reverse=True),
        SortCriterion(SortKey.DISPLAYFROM),
    )


@pytest.mark.parametrize(
    "tokens",
    [[], ["REVERSE"], ["DATE", "REVERSE"], ["REVERSE", "REVERSE", "DATE"], ["NAME"], ["X-DATE"]],
)
def test_parse_criteria_refuses(tokens: list[str]) -> None:
    with pytest.raises(SortCriteriaError):
        parse_sort_criteria(tokens)


def test_parse_criteria_bound() -> None:
    assert len(parse_sort_criteria(["DATE"] * SORT_CRITERIA_MAX)) == SORT_CRITERIA_MAX
    with pytest.raises(SortCriteriaError):
        parse_sort_criteria(["DATE"] * (SORT_CRITERIA_MAX + 1))


def test_sort_criteria_error_is_a_protocol_error() -> None:
    from postel.errors import ProtocolError

    assert issubclass(SortCriteriaError, ProtocolError)
    assert issubclass(SortCriteriaError, ValueError)


# -- ordering -----------------------------------------------------------------------------


def rec(seq: int, **fields: object) -> SortRecord:
    base: dict[str, object] = {
        "seq": seq,
        "uid": 100 + seq,
        "internal_date": T0,
        "sent_date": None,
        "size": 0,
    }
    base.update(fields)
    return SortRecord(**base)  # type: ignore[arg-type]


def by(*words: str) -> tuple[SortCriterion, ...]:
    return parse_sort_criteria(list(words))


def test_rfc_example_subject_reverse_date() -> None:
    # RFC 5256 §3 example shape: (SUBJECT REVERSE DATE).
    records = [
        rec(1, subject="Re: beta", sent_date=T0),
        rec(2, subject="beta", sent_date=T0 + timedelta(hours=1)),
        rec(3, subject="alpha", sent_date=T0),
        rec(4, subject="[list] Alpha", sent_date=T0 + timedelta(hours=2)),
        rec(5, subject="Fwd: ALPHA (fwd)", sent_date=T0 + timedelta(hours=3)),
    ]
    assert seqs(sort_records(records, by("SUBJECT", "REVERSE", "DATE"))) == [5, 4, 3, 2, 1]
    assert seqs(sort_records(records, by("SUBJECT", "DATE"))) == [3, 4, 5, 1, 2]


def test_date_is_zone_adjusted_and_falls_back_to_internal_date() -> None:
    plus2 = timezone(timedelta(hours=2))
    records = [
        rec(1, sent_date=datetime(2024, 1, 1, 13, 30, tzinfo=plus2)),  # 11:30Z
        rec(2, sent_date=None, internal_date=datetime(2024, 1, 1, 11, 0, tzinfo=UTC)),
        rec(3, sent_date=datetime(2024, 1, 1, 12, 0)),  # naive: UTC
        rec(
            4, sent_date=datetime(2024, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5)))
        ),  # 13:00Z
    ]
    assert seqs(sort_records(records, by("DATE"))) == [2, 1, 3, 4]
    assert seqs(sort_records(records, by("ARRIVAL"))) == [2, 1, 3, 4]
    assert seqs(sort_records(records, by("REVERSE", "DATE"))) == [4, 3, 1, 2]


def test_reverse_does_not_reverse_the_sequence_tie_break() -> None:
    records = [rec(3, size=10), rec(1, size=10), rec(2, size=20)]
    assert seqs(sort_records(records, by("SIZE"))) == [1, 3, 2]
    assert seqs(sort_records(records, by("REVERSE", "SIZE"))) == [2, 1, 3]


def test_address_keys_empty_first_and_case_insensitive() -> None:
    records = [
        rec(1, from_mailbox="bob", to_mailbox="Zed", cc_mailbox=None),
        rec(2, from_mailbox=None, to_mailbox="alice", cc_mailbox="x"),
        rec(3, from_mailbox="Alice", to_mailbox="ALICE", cc_mailbox=""),
        rec(4, from_mailbox="alice", to_mailbox=None, cc_mailbox="A"),
    ]
    assert seqs(sort_records(records, by("FROM"))) == [2, 3, 4, 1]
    assert seqs(sort_records(records, by("TO"))) == [4, 2, 3, 1]
    assert seqs(sort_records(records, by("CC"))) == [1, 3, 4, 2]


def test_display_keys() -> None:
    records = [
        rec(1, from_display="Zoë", to_display="b@example.org"),
        rec(2, from_display="adam", to_display="Anne"),
        rec(3, from_display=None, to_display=None),
    ]
    assert seqs(sort_records(records, by("DISPLAYFROM"))) == [3, 2, 1]
    assert seqs(sort_records(records, by("DISPLAYTO"))) == [3, 2, 1]


def test_repeated_key_is_harmless() -> None:
    records = [rec(i, size=i % 3) for i in range(1, 10)]
    assert sort_records(records, by("SIZE", "REVERSE", "SIZE")) == sort_records(records, by("SIZE"))


def test_first_display_and_mailbox() -> None:
    plain = Address(None, None, b"b", b"c.d")
    named = Address(b"=?iso-8859-1?q?foo_aar?=", None, b"e", b"f.g")
    group = Address(None, None, b"team", None)
    empty_name = Address(b"", None, b"x", b"y.z")
    assert first_display([plain]) == "b@c.d"
    assert first_display([named, plain]) == "foo aar"
    assert first_display([group]) == "team"
    assert first_display([empty_name]) == "x@y.z"
    assert first_display([]) is None
    assert first_mailbox([named]) == "e"
    assert first_mailbox([]) is None


# -- properties ---------------------------------------------------------------------------

_records = st.lists(
    st.builds(
        lambda size, subject, mins, sent, frm: (size, subject, mins, sent, frm),
        st.integers(0, 5),
        st.sampled_from(["a", "Re: a", "b", "[x] B", "", "Fwd: b (fwd)"]),
        st.integers(0, 5),
        st.one_of(st.none(), st.integers(0, 5)),
        st.one_of(st.none(), st.sampled_from(["al", "AL", "bo", ""])),
    ),
    max_size=30,
).map(
    lambda rows: [
        rec(
            i,
            size=size,
            subject=subject,
            internal_date=T0 + timedelta(minutes=mins),
            sent_date=None if sent is None else T0 + timedelta(minutes=sent),
            from_mailbox=frm,
        )
        for i, (size, subject, mins, sent, frm) in enumerate(rows, 1)
    ]
)
_criteria = st.lists(
    st.builds(SortCriterion, st.sampled_from(list(SortKey)), st.booleans()), min_size=1, max_size=4
)


@given(_records, _criteria)
def test_sort_is_a_permutation(records: list[SortRecord], criteria: list[SortCriterion]) -> None:
    out = sort_records(reversed(records), criteria)
    assert sorted(seqs(out)) == sorted(seqs(records))


@given(_records, _criteria)
def test_sort_is_ordered_with_sequence_tie_break(
    records: list[SortRecord], criteria: list[SortCriterion]
) -> None:
    from postel.imap import sort as sort_module

    out = sort_records(records, criteria)

    def vector(r: SortRecord) -> list[object]:
        return [sort_module._KEY_FUNCTIONS[c.key](r) for c in criteria]

    for left, right in itertools.pairwise(out):
        a, b = vector(left), vector(right)
        for crit, x, y in zip(criteria, a, b, strict=True):
            if x != y:
                assert (x > y) if crit.reverse else (x < y)  # type: ignore[operator]
                break
        else:
            assert left.seq < right.seq
