"""SEARCH evaluation (postel.imap.search) and the text it searches (textsearch)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel.imap.search import (
    SearchContext,
    SearchDataMissing,
    SearchSource,
    decide_without_text,
    evaluate,
    in_sequence,
    needs_bytes,
    needs_summary,
    required_sequences,
    text_key_count,
)
from postel.imap.search_keys import (
    AllKey,
    AndKey,
    BodyKey,
    DateField,
    DateKey,
    DateOp,
    FlagKey,
    HeaderKey,
    NotKey,
    OrKey,
    RecentKey,
    SearchKey,
    SequenceKey,
    SizeKey,
    SizeOp,
    TextKey,
)
from postel.imap.sequence import parse_sequence_set
from postel.imap.textsearch import decode_charset
from postel.mail import parse_message

PREFIX = b"Return-Path: <x@example.org>\r\nReceived: from mx.example.org by mail.example.net\r\n"

M1 = (
    b"From: =?utf-8?b?SsO2cmc=?= <joerg@example.de>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus K\xc3\xb6ln\r\n"
    b"Date: Mon, 1 Jan 2024 23:30:00 -0800\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Die Stra=DFe ist lang, =\r\nsehr lang.\r\n"
)
M2 = (
    b"From: Alice <alice@example.org>\r\n"
    b"Subject: report\r\n"
    b'Content-Type: multipart/mixed; boundary="m"\r\n'
    b"\r\n"
    b"--m\r\n"
    b'Content-Type: multipart/alternative; boundary="a"\r\n'
    b"\r\n"
    b"--a\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"UHLDvGZ1bmcgZXJmb2xncmVpY2g=\r\n"  # "Prüfung erfolgreich"
    b"--a\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"<b>Hallo</b> =\r\nWelt\r\n"
    b"--a--\r\n"
    b"--m\r\n"
    b"Content-Type: application/pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"c2VjcmV0\r\n"  # "secret", not text: never searched
    b"--m\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: forwarded =?utf-8?q?n=C3=A4chste?= Woche\r\n"
    b"\r\n"
    b"inner text\r\n"
    b"--m--\r\n"
)
M3 = (
    b"From: carol@example.com\r\n"
    b"Cc: Dan <dan@example.com>\r\n"
    b"Subject: plain\r\n"
    b"X-Custom: folded\r\n value\r\n"
    b"Date: Sun, 10 Mar 2024 00:30:00 +0100\r\n"
    b"\r\n"
    b"nothing to see\r\n"
)

UTC = dt.UTC
MESSAGES = {
    1: (M1, 10, frozenset({"\\Seen"}), dt.datetime(2024, 1, 2, 7, 30, tzinfo=UTC)),
    2: (
        M2,
        20,
        frozenset({"\\Flagged", "$Work"}),
        dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
    ),
    3: (M3, 30, frozenset(), dt.datetime(2024, 3, 10, 0, 0, 0, tzinfo=UTC)),
}
CTX = SearchContext(largest_msn=3, largest_uid=30, saved_uids=frozenset({10, 30}))


def source(msn: int, *, data: bool = True, summary: bool = True) -> SearchSource:
    blob, uid, flags, when = MESSAGES[msn]
    return SearchSource(
        msn=msn,
        uid=uid,
        flags=flags,
        internal_date=when,
        size=len(PREFIX) + len(blob),
        summary=parse_message(blob) if summary else None,
        trace_prefix=PREFIX,
        data=PREFIX + blob if data else None,
    )


def matches(key: SearchKey, ctx: SearchContext = CTX, **kw: bool) -> set[int]:
    return {n for n in MESSAGES if evaluate(key, source(n, **kw), ctx)}


def seq(text: str, uid: bool = False) -> SequenceKey:
    return SequenceKey(parse_sequence_set(text), uid)


def d(y: int, m: int, day: int) -> dt.date:
    return dt.date(y, m, day)


SIZE_2 = len(PREFIX) + len(M2)

TABLE: list[tuple[SearchKey, set[int]]] = [
    (AllKey(), {1, 2, 3}),
    (FlagKey("\\Seen", True), {1}),
    (FlagKey("\\SEEN", False), {2, 3}),
    (FlagKey("$work", True), {2}),
    (FlagKey("\\Deleted", True), set()),
    (RecentKey(True), set()),
    (RecentKey(False), {1, 2, 3}),
    # Header fields: RFC 2047 decoded, casefolded, unfolded.
    (HeaderKey("Subject", "grüße"), {1}),
    (HeaderKey("SUBJECT", "GRÜSSE"), {1}),
    (HeaderKey("Subject", "köln"), {1}),
    (HeaderKey("Subject", "aus köln"), {1}),
    (HeaderKey("From", "jörg"), {1}),
    (HeaderKey("From", "JOERG@EXAMPLE.DE"), {1}),
    (HeaderKey("From", "example"), {1, 2, 3}),
    (HeaderKey("To", "bob"), {1}),
    (HeaderKey("Cc", "dan <dan@"), {3}),
    (HeaderKey("Bcc", ""), set()),
    (HeaderKey("Cc", ""), {3}),
    (HeaderKey("X-Custom", "folded value"), {3}),
    (HeaderKey("Received", "mx.example.org"), {1, 2, 3}),  # trace fields are header
    (HeaderKey("Subject", "nächste"), set()),  # enclosed message header: not top level
    # Body text: transfer- and charset-decoded text parts only.
    (BodyKey("straße"), {1}),
    (BodyKey("STRASSE"), {1}),
    (BodyKey("lang, sehr"), {1}),  # soft line break joins
    (BodyKey("prüfung"), {2}),
    (BodyKey("<b>hallo</b> welt"), {2}),
    (BodyKey("secret"), set()),
    (BodyKey("c2VjcmV0"), set()),
    (BodyKey("inner text"), {2}),
    (BodyKey("nächste woche"), {2}),  # enclosed message header is body text
    (BodyKey("Subject"), {2}),
    (BodyKey("köln"), set()),
    (TextKey("köln"), {1}),
    (TextKey("erfolgreich"), {2}),
    (TextKey("see"), {3}),
    (TextKey("mx.example.org"), {1, 2, 3}),
    # Internal date: its date, compared at day boundaries.
    (DateKey(DateField.INTERNAL, DateOp.ON, d(2024, 2, 29)), {2}),
    (DateKey(DateField.INTERNAL, DateOp.ON, d(2024, 1, 2)), {1}),
    (DateKey(DateField.INTERNAL, DateOp.BEFORE, d(2024, 3, 10)), {1, 2}),
    (DateKey(DateField.INTERNAL, DateOp.SINCE, d(2024, 3, 10)), {3}),
    (DateKey(DateField.INTERNAL, DateOp.SINCE, d(2024, 3, 11)), set()),
    (DateKey(DateField.INTERNAL, DateOp.BEFORE, d(2024, 1, 2)), set()),
    # Date: field, its own zone (M1 is 2 Jan in UTC); M2 has none: internal date.
    (DateKey(DateField.SENT, DateOp.ON, d(2024, 1, 1)), {1}),
    (DateKey(DateField.SENT, DateOp.ON, d(2024, 1, 2)), set()),
    (DateKey(DateField.SENT, DateOp.ON, d(2024, 2, 29)), {2}),
    (DateKey(DateField.SENT, DateOp.ON, d(2024, 3, 10)), {3}),
    (DateKey(DateField.SENT, DateOp.BEFORE, d(2024, 3, 1)), {1, 2}),
    (DateKey(DateField.SENT, DateOp.SINCE, d(2024, 3, 10)), {3}),
    (SizeKey(SizeOp.LARGER, SIZE_2 - 1), {2}),
    (SizeKey(SizeOp.LARGER, SIZE_2), set()),
    (SizeKey(SizeOp.SMALLER, SIZE_2), {1, 3}),
    (SizeKey(SizeOp.SMALLER, 1), set()),
    # Sequence sets.
    (seq("1"), {1}),
    (seq("2:*"), {2, 3}),
    (seq("*"), {3}),
    (seq("*:2"), {2, 3}),
    (seq("1,3"), {1, 3}),
    (seq("20", uid=True), {2}),
    (seq("15:*", uid=True), {2, 3}),
    (seq("31:*", uid=True), {3}),  # 31:* is 30:31
    (seq("1:9", uid=True), set()),
    (seq("$"), {1, 3}),
    (seq("$", uid=True), {1, 3}),
    # Boolean structure.
    (NotKey(FlagKey("\\Seen", True)), {2, 3}),
    (OrKey(FlagKey("\\Seen", True), HeaderKey("Cc", "")), {1, 3}),
    (OrKey(NotKey(seq("1:2")), AndKey((BodyKey("prüfung"), FlagKey("$Work", True)))), {2, 3}),
    (NotKey(OrKey(BodyKey("straße"), NotKey(seq("2:3")))), {2, 3}),
    (AndKey((seq("1:*"), NotKey(NotKey(TextKey("subject: plain"))))), {3}),
    (AndKey(()), {1, 2, 3}),
]


@pytest.mark.parametrize(("key", "expected"), TABLE)
def test_search_table(key: SearchKey, expected: set[int]) -> None:
    assert matches(key) == expected


def test_range_beyond_the_largest_number_names_nothing() -> None:
    assert matches(seq("4:5")) == set()
    assert matches(seq("4:*")) == {3}  # 4:* is 3:4


def test_saved_result_absent_is_empty() -> None:
    assert matches(seq("$"), SearchContext(3, 30)) == set()


def test_attribute_keys_never_read_octets_or_summary() -> None:
    cheap: list[SearchKey] = [
        row[0] for row in TABLE if not needs_bytes(row[0]) and not needs_summary(row[0])
    ]
    assert len(cheap) > 25
    for key in cheap:
        # Raises SearchDataMissing if anything but attributes were read.
        matches(key, data=False, summary=False)


def test_sent_dates_read_the_summary_only() -> None:
    key = DateKey(DateField.SENT, DateOp.ON, d(2024, 1, 1))
    assert needs_summary(key) and not needs_bytes(key)
    assert matches(key, data=False) == {1}
    # Without a summary, the Date: field is read from the octets.
    assert matches(key, summary=False) == {1}
    with pytest.raises(SearchDataMissing):
        matches(key, data=False, summary=False)


def test_text_keys_need_bytes() -> None:
    for key in (HeaderKey("To", "x"), BodyKey("x"), TextKey("x")):
        assert needs_bytes(key)
        assert needs_bytes(NotKey(OrKey(AllKey(), AndKey((key,)))))
        with pytest.raises(SearchDataMissing):
            evaluate(key, source(1, data=False), CTX)
    assert not needs_bytes(AndKey((FlagKey("x", True), seq("1:*"), SizeKey(SizeOp.LARGER, 5))))


def test_body_search_without_summary_parses_the_stored_message() -> None:
    assert matches(BodyKey("prüfung"), summary=False) == {2}
    assert matches(BodyKey("straße"), summary=False) == {1}


def test_short_circuit_does_not_read_octets() -> None:
    key = OrKey(AllKey(), BodyKey("x"))
    assert evaluate(key, source(1, data=False), CTX)


@pytest.mark.parametrize(
    ("octets", "charset", "text"),
    [
        (b"Stra\xdfe", b"iso-8859-1", "Straße"),
        (b"Stra\xdfe", b"ISO_8859-1", "Straße"),
        ("Straße".encode(), b"utf-8", "Straße"),
        ("Straße".encode(), b"us-ascii", "Straße"),  # 8-bit under us-ascii: UTF-8 if valid
        (b"Stra\xdfe", b"us-ascii", "Straße"),  # else windows-1252
        (b"Stra\xdfe", None, "Straße"),
        (b"Stra\xdfe", b"x-unknown-charset", "Straße"),
        (b"abc", b"base64", "abc"),  # not a text codec
        (b"abc", b"../../etc", "abc"),
        (b"\xff\xfe", b"utf-8", "\ufffd\ufffd"),
        ("Привет".encode("koi8-r"), b"koi8-r", "Привет"),
    ],
)
def test_decode_charset(octets: bytes, charset: bytes | None, text: str) -> None:
    assert decode_charset(octets, charset) == text


def test_unknown_transfer_encoding_is_searched_as_written() -> None:
    blob = b"Content-Transfer-Encoding: x-weird\r\n\r\nfind me\r\n"
    msg = SearchSource(
        1, 1, frozenset(), dt.datetime(2024, 1, 1, tzinfo=UTC), len(blob), None, b"", blob
    )
    assert evaluate(BodyKey("FIND ME"), msg, CTX)


def test_casefolding_is_the_unicode_default() -> None:
    # No locale rules: Turkish dotted capital I folds to "i" + combining dot above.
    blob = "Subject: İstanbul\r\n\r\nx\r\n".encode()
    msg = SearchSource(
        1, 1, frozenset(), dt.datetime(2024, 1, 1, tzinfo=UTC), len(blob), None, b"", blob
    )
    assert evaluate(HeaderKey("Subject", "i̇stanbul"), msg, CTX)
    assert not evaluate(HeaderKey("Subject", "istanbul"), msg, CTX)


# --- what a driver may know before evaluating ------------------------------------------


@pytest.mark.parametrize(
    ("key", "count"),
    [
        (AllKey(), 0),
        (HeaderKey("Subject", "x"), 0),
        (BodyKey("x"), 1),
        (TextKey("x"), 1),
        (NotKey(TextKey("x")), 1),
        (OrKey(BodyKey("a"), OrKey(BodyKey("b"), TextKey("c"))), 3),
        (AndKey((BodyKey("a"), BodyKey("a"), FlagKey("\\Seen", True))), 2),
        (NotKey(OrKey(AndKey((TextKey("a"), seq("1"))), HeaderKey("To", "b"))), 1),
    ],
)
def test_text_key_count_counts_every_body_and_text_key(key: SearchKey, count: int) -> None:
    assert text_key_count(key) == count


def test_required_sequences_are_the_sets_anded_at_the_top() -> None:
    one, two = seq("1"), seq("2:*", uid=True)
    assert required_sequences(one) == (one,)
    assert set(required_sequences(AndKey((BodyKey("x"), AndKey((one,)), two)))) == {one, two}
    for key in (OrKey(one, two), NotKey(one), AllKey(), AndKey((OrKey(one, AllKey()),))):
        assert required_sequences(key) == ()


_SETS = st.sampled_from(["1", "2:*", "$", "1,3", "*"]).flatmap(
    lambda text: st.booleans().map(lambda uid: seq(text, uid))
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_SETS, st.deferred(lambda: _KEYS), st.lists(_SETS, max_size=2), st.integers(1, 3))
def test_a_message_outside_a_required_set_never_matches(
    first: SequenceKey, rest: SearchKey, more: list[SequenceKey], msn: int
) -> None:
    # Skipping the messages outside the top-level sets (as imap_scan does) changes no
    # answer: every such message fails the whole key, whatever else it holds.
    key = AndKey((first, AndKey((rest, *more))))
    msg = source(msn)
    required = required_sequences(key)
    assert first in required and all(m in required for m in more)
    if not all(in_sequence(s, msg.msn, msg.uid, CTX) for s in required):
        assert not evaluate(key, msg, CTX)


# --- never raises ----------------------------------------------------------------------

_LINES = st.sampled_from(
    [
        b"Subject: =?utf-8?q?x=C3?=\r\n",
        b"From: =?bogus?b?!!!?= <a@b>\r\n",
        b"Date: 99 Foo 2024 99:99\r\n",
        b"Date: Mon, 1 Jan 2024 10:00:00 +9999\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: text/plain; charset=utf-16\r\n",
        b"Content-Type: text/html; charset=\xff\xfe\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Transfer-Encoding: zzz\r\n",
        b"\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"=C3=A9 =\r\n",
        b"QUJD=\r\n",
        b"\x00\xff\xfe\r\n",
    ]
)
_KEYS = st.recursive(
    st.sampled_from(
        [
            AllKey(),
            HeaderKey("Subject", "x"),
            HeaderKey("From", ""),
            BodyKey("é"),
            TextKey("a"),
            DateKey(DateField.SENT, DateOp.ON, d(2024, 1, 1)),
            DateKey(DateField.INTERNAL, DateOp.BEFORE, d(2024, 1, 1)),
            seq("2:*"),
            FlagKey("\\Seen", False),
        ]
    ),
    lambda inner: st.one_of(
        inner.map(NotKey),
        st.tuples(inner, inner).map(lambda t: OrKey(*t)),
        st.lists(inner, max_size=3).map(lambda ks: AndKey(tuple(ks))),
    ),
    max_leaves=6,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINES, max_size=25).map(b"".join), _KEYS, st.booleans(), st.booleans())
def test_an_answer_decided_without_the_text_is_the_answer(
    blob: bytes, key: SearchKey, with_summary: bool, seen: bool
) -> None:
    summary = parse_message(blob) if with_summary else None
    msg = SearchSource(
        msn=2,
        uid=20,
        flags=frozenset({"\\Seen"}) if seen else frozenset(),
        internal_date=dt.datetime(2024, 1, 1, tzinfo=UTC),
        size=len(blob),
        summary=summary,
        trace_prefix=b"",
        data=None,
    )
    decided = decide_without_text(key, msg, CTX)  # never reads the (absent) octets
    full = evaluate(key, dataclasses.replace(msg, data=blob), CTX)
    assert decided is None or decided == full


def test_text_keys_leave_the_answer_open_unless_the_rest_decides() -> None:
    msg = source(1, data=False)  # \Seen, 1 KB
    body = BodyKey("x")
    assert decide_without_text(body, msg, CTX) is None
    assert decide_without_text(AndKey((FlagKey("\\Seen", False), body)), msg, CTX) is False
    assert decide_without_text(OrKey(body, FlagKey("\\Seen", True)), msg, CTX) is True
    assert decide_without_text(NotKey(AndKey((body, SizeKey(SizeOp.LARGER, 10**9)))), msg, CTX)
    assert decide_without_text(OrKey(body, SizeKey(SizeOp.LARGER, 10**9)), msg, CTX) is None
    sent = DateKey(DateField.SENT, DateOp.ON, d(2024, 1, 1))
    assert decide_without_text(sent, source(1, data=False, summary=False), CTX) is None
    assert decide_without_text(sent, source(1, data=False), CTX) is True


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINES, max_size=25).map(b"".join), _KEYS, st.booleans())
def test_evaluate_never_raises(blob: bytes, key: SearchKey, with_summary: bool) -> None:
    msg = SearchSource(
        msn=1,
        uid=5,
        flags=frozenset({"\\Seen"}),
        internal_date=dt.datetime(2024, 1, 1, tzinfo=UTC),
        size=len(blob),
        summary=parse_message(blob) if with_summary else None,
        trace_prefix=b"",
        data=blob,
    )
    assert evaluate(key, msg, CTX) in (True, False)
