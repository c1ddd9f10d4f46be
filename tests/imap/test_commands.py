"""Parsing every command (RFC 9051 §6 examples and the extensions) into typed values."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.commands import (
    COMMAND_STATES,
    Authenticate,
    Capability,
    Close,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    Id,
    Idle,
    List,
    ListReturn,
    ListSelect,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    Rename,
    Search,
    SearchReturn,
    Select,
    SelectParam,
    StartTls,
    State,
    Status,
    StatusItem,
    Store,
    StoreMode,
    Subscribe,
    Unselect,
    Unsubscribe,
    command_head,
    parse_append_head,
    parse_append_next,
    parse_command,
)
from postel.imap.fetch_items import BinarySize, BodySection, FetchAttr, Section, SectionText
from postel.imap.grammar import BadCharset, Cursor, ImapSyntaxError, UnknownCommand
from postel.imap.parse_fetch import parse_fetch_args
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
    SequenceKey,
    SizeKey,
    SizeOp,
    TextKey,
)
from postel.imap.sequence import STAR, SequenceSet


def parse(line: bytes, *literals: bytes, utf8: bool = False) -> object:
    """``line`` with ``\\x00`` where each literal's octets go."""
    return parse_command(line.split(b"\x00"), list(literals), utf8=utf8)


def seq(*ranges: tuple[int, int]) -> SequenceSet:
    return SequenceSet(tuple(ranges))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a CAPABILITY", Capability("a")),
        (b"a noop", Noop("a")),
        (b"a LOGOUT", Logout("a")),
        (b"a STARTTLS", StartTls("a")),
        (b"a NAMESPACE", Namespace("a")),
        (b"a IDLE", Idle("a")),
        (b"a CLOSE", Close("a")),
        (b"a UNSELECT", Unselect("a")),
        (b"a EXPUNGE", Expunge("a", None)),
    ],
)
def test_commands_without_arguments(line: bytes, expected: object) -> None:
    assert parse(line) == expected


def test_arguments_refused_where_none_belong() -> None:
    with pytest.raises(ImapSyntaxError) as info:
        parse(b"a NOOP extra")
    assert info.value.tag == "a"


def test_login_quoted_and_literals() -> None:
    assert parse(b'a001 LOGIN SMITH "sesame"') == Login("a001", "SMITH", "sesame")
    assert parse(b"a LOGIN {4}\x00 {7+}\x00", b"fred", b'p w"d\\x') == Login(
        "a", "fred", 'p w"d\\x'
    )
    assert "sesame" not in repr(parse(b"a LOGIN u sesame"))


def test_authenticate_with_and_without_initial_response() -> None:
    assert parse(b"a AUTHENTICATE plain") == Authenticate("a", "PLAIN", None)
    assert parse(b"a AUTHENTICATE PLAIN AGZyZWQAYWJj") == Authenticate("a", "PLAIN", b"\0fred\0abc")
    assert parse(b"a AUTHENTICATE EXTERNAL =") == Authenticate("a", "EXTERNAL", b"")
    with pytest.raises(ImapSyntaxError):
        parse(b"a AUTHENTICATE PLAIN AGZy!ZWQ")


def test_enable() -> None:
    assert parse(b"a ENABLE IMAP4rev2 UTF8=ACCEPT") == Enable("a", ("IMAP4REV2", "UTF8=ACCEPT"))
    with pytest.raises(ImapSyntaxError):
        parse(b"a ENABLE")


def test_select_examine_and_params() -> None:
    assert parse(b"A142 SELECT INBOX") == Select("A142", "INBOX")
    assert parse(b"a select inbox") == Select("a", "INBOX")
    assert parse(b"a EXAMINE blurdybloop") == Select("a", "blurdybloop", examine=True)
    assert parse(b"a SELECT INBOX (CONDSTORE)") == Select("a", "INBOX", (SelectParam("CONDSTORE"),))
    qresync = parse(b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
    assert qresync == Select(
        "a",
        "INBOX",
        (SelectParam("QRESYNC", "(67890007 20050715194045000 41,43:211,214:541)"),),
    )


def test_mailbox_names_modified_utf7_or_utf8() -> None:
    assert parse(b"a SELECT Entw&APw-rfe") == Select("a", "Entwürfe")
    assert parse('a SELECT "Entwürfe"'.encode(), utf8=True) == Select("a", "Entwürfe")
    assert parse(b"a SELECT Entw&APw-rfe", utf8=True) == Select("a", "Entw&APw-rfe")
    for bad in (b"a SELECT &AGE-", b"a SELECT a&b", b"a SELECT {2}\x00"):
        with pytest.raises(ImapSyntaxError):
            parse(bad, "é".encode()) if b"{" in bad else parse(bad)


def test_create_delete_rename_subscribe() -> None:
    assert parse(b"a CREATE owatagusiam/") == Create("a", "owatagusiam/")
    assert parse(b"a CREATE Drafts (USE (\\Drafts))") == Create("a", "Drafts", ("\\Drafts",))
    assert parse(b"a DELETE blurdybloop") == Delete("a", "blurdybloop")
    assert parse(b"a RENAME blurdybloop sarasoop") == Rename("a", "blurdybloop", "sarasoop")
    assert parse(b"a SUBSCRIBE #news.comp.mail.mime") == Subscribe("a", "#news.comp.mail.mime")
    assert parse(b"a UNSUBSCRIBE inbox") == Unsubscribe("a", "INBOX")
    with pytest.raises(ImapSyntaxError):
        parse(b"a CREATE x (USE (Drafts))")


def test_list_basic_and_extended() -> None:
    assert parse(b'A101 LIST "" ""') == List("A101", "", ("",))
    assert parse(b"a LIST /usr/staff/jones %") == List("a", "/usr/staff/jones", ("%",))
    assert parse(b'a LIST "" *') == List("a", "", ("*",))
    command = parse(
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Drafts" %) '
        b"RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))"
    )
    assert command == List(
        "a",
        "",
        ("INBOX", "Drafts", "%"),
        (ListSelect.SUBSCRIBED, ListSelect.RECURSIVEMATCH),
        (ListReturn.CHILDREN, ListReturn.SPECIAL_USE),
        (StatusItem.MESSAGES, StatusItem.UNSEEN),
        extended=True,
    )
    assert parse(b'a LIST (SPECIAL-USE) "" *') == List(
        "a", "", ("*",), (ListSelect.SPECIAL_USE,), extended=True
    )
    assert parse(b'a LIST "" % RETURN ()') == List("a", "", ("%",), extended=True)


@pytest.mark.parametrize(
    "line",
    [
        b'a LIST (RECURSIVEMATCH) "" *',
        b'a LIST (BOGUS) "" *',
        b'a LIST "" * RETURN (BOGUS)',
        b'a LIST "" ()',
        b'a LIST ""',
    ],
)
def test_list_errors(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        parse(line)


def test_lsub_and_status() -> None:
    assert parse(b'a LSUB "#news." "comp.mail.*"') == Lsub("a", "#news.", "comp.mail.*")
    assert parse(b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)") == Status(
        "A042", "blurdybloop", (StatusItem.UIDNEXT, StatusItem.MESSAGES)
    )
    every = b"(MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ"
    every += b" APPENDLIMIT MAILBOXID deleted-storage)"
    command = parse(b"a STATUS INBOX " + every)
    assert isinstance(command, Status) and len(command.items) == 11
    assert command.items[-1] is StatusItem.DELETED_STORAGE
    with pytest.raises(ImapSyntaxError):
        parse(b"a STATUS INBOX (FOO)")
    with pytest.raises(ImapSyntaxError):
        parse(b"a STATUS INBOX ()")


# --- SEARCH -----------------------------------------------------------------------------
def keys(*k: object) -> AndKey:
    return AndKey(tuple(k))  # type: ignore[arg-type]


def test_search_rfc_examples() -> None:
    assert parse(
        b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"'
    ) == Search(
        "A282",
        keys(
            FlagKey("\\Flagged", True),
            DateKey(DateField.INTERNAL, DateOp.SINCE, dt.date(1994, 2, 1)),
            NotKey(HeaderKey("From", "Smith")),
        ),
        returns=(SearchReturn.MIN, SearchReturn.COUNT),
    )
    assert parse(b'A284 SEARCH TEXT "string not in mailbox"') == Search(
        "A284", keys(TextKey("string not in mailbox"))
    )
    assert parse(b"a SEARCH RETURN () ALL") == Search("a", keys(AllKey()), returns=())


def test_search_every_key() -> None:
    line = (
        b"a UID SEARCH CHARSET utf-8 ALL ANSWERED BCC b BEFORE 1-Jan-2000 BODY x CC c DELETED "
        b"DRAFT FLAGGED FROM f HEADER X-Spam yes KEYWORD $Junk LARGER 10 NEW OLD ON 2-Jan-2000 "
        b"RECENT SEEN SENTBEFORE 3-Jan-2000 SENTON 4-Jan-2000 SENTSINCE 5-Jan-2000 SINCE 6-Jan-2000 "
        b"SMALLER 20 SUBJECT s TEXT t TO t2 UID 1:* UNANSWERED UNDELETED UNDRAFT UNFLAGGED "
        b"UNKEYWORD $Junk UNSEEN 1,3:4 $ OR SEEN (DRAFT NOT DELETED)"
    )
    command = parse(line)
    assert isinstance(command, Search) and command.uid and command.charset == "UTF-8"
    got = command.key
    assert isinstance(got, AndKey)
    assert got.keys[:4] == (
        AllKey(),
        FlagKey("\\Answered", True),
        HeaderKey("Bcc", "b"),
        DateKey(DateField.INTERNAL, DateOp.BEFORE, dt.date(2000, 1, 1)),
    )
    assert BodyKey("x") in got.keys
    assert HeaderKey("X-Spam", "yes") in got.keys
    assert FlagKey("$Junk", True) in got.keys and FlagKey("$Junk", False) in got.keys
    assert SizeKey(SizeOp.LARGER, 10) in got.keys and SizeKey(SizeOp.SMALLER, 20) in got.keys
    assert AndKey((RecentKey(True), FlagKey("\\Seen", False))) in got.keys
    assert RecentKey(False) in got.keys
    assert SequenceKey(seq((1, STAR)), uid=True) in got.keys
    assert SequenceKey(seq((1, 1), (3, 4)), uid=False) in got.keys
    assert SequenceKey(SequenceSet((), saved=True), uid=False) in got.keys
    assert got.keys[-1] == OrKey(
        FlagKey("\\Seen", True),
        AndKey((FlagKey("\\Draft", True), NotKey(FlagKey("\\Deleted", True)))),
    )


def test_search_literal_strings_are_utf8() -> None:
    assert parse(b'a SEARCH CHARSET US-ASCII FROM "x"') == Search(
        "a", keys(HeaderKey("From", "x")), charset="US-ASCII"
    )
    assert parse(b"a SEARCH SUBJECT {7}\x00", "Grüße".encode()) == Search(
        "a", keys(HeaderKey("Subject", "Grüße"))
    )
    with pytest.raises(ImapSyntaxError):
        parse(b"a SEARCH SUBJECT {2}\x00", b"\xff\xfe")


def test_search_bad_charset_is_a_distinct_error() -> None:
    with pytest.raises(BadCharset) as info:
        parse(b"a SEARCH CHARSET KOI8-R TEXT x")
    assert info.value.tag == "a" and info.value.charset == "KOI8-R"


@pytest.mark.parametrize(
    "line",
    [
        b"a SEARCH",
        b"a SEARCH FOO",
        b"a SEARCH SINCE 31-Feb-2000",
        b"a SEARCH OR SEEN",
        b"a SEARCH (SEEN",
        b"a SEARCH RETURN (BOGUS) ALL",
        b"a SEARCH MODSEQ x",
        b"a SEARCH " + b"(" * 100 + b"ALL" + b")" * 100,
        b"a SEARCH " + b"NOT " * 500 + b"ALL",
        b"a SEARCH " + b"ALL " * 1500 + b"ALL",
    ],
)
def test_search_errors(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        parse(line)


# --- FETCH ------------------------------------------------------------------------------
def test_fetch_macros_and_single_items() -> None:
    assert parse(b"a FETCH 1 ALL") == Fetch(
        "a",
        seq((1, 1)),
        (FetchAttr.FLAGS, FetchAttr.INTERNALDATE, FetchAttr.RFC822_SIZE, FetchAttr.ENVELOPE),
    )
    fast = parse(b"a FETCH 1:* FAST")
    assert isinstance(fast, Fetch) and len(fast.items) == 3
    full = parse(b"a FETCH 1 FULL")
    assert isinstance(full, Fetch) and full.items[-1] is FetchAttr.BODY
    assert parse(b"a FETCH 2 body") == Fetch("a", seq((2, 2)), (FetchAttr.BODY,))
    assert parse(b"a FETCH 2 RFC822.SIZE") == Fetch("a", seq((2, 2)), (FetchAttr.RFC822_SIZE,))


def test_fetch_sections_and_partials() -> None:
    command = parse(
        b"A654 UID FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)] BODY.PEEK[]<0.2048> "
        b"BODY[1.2.MIME] BODY[3.TEXT] BODY[4] BINARY.PEEK[1]<5.10> BINARY[] BINARY.SIZE[1.2] "
        b"BODY[HEADER.FIELDS.NOT (Received)] FLAGS)"
    )
    assert command == Fetch(
        "A654",
        seq((2, 4)),
        (
            FetchAttr.FLAGS,
            BodySection(Section((), SectionText.HEADER_FIELDS, ("DATE", "FROM"))),
            BodySection(Section(), peek=True, partial=(0, 2048)),
            BodySection(Section((1, 2), SectionText.MIME)),
            BodySection(Section((3,), SectionText.TEXT)),
            BodySection(Section((4,))),
            BodySection(Section((1,)), peek=True, partial=(5, 10), binary=True),
            BodySection(Section(), binary=True),
            BinarySize((1, 2)),
            BodySection(Section((), SectionText.HEADER_FIELDS_NOT, ("RECEIVED",))),
        ),
        uid=True,
    )


def test_fetch_changedsince() -> None:
    assert parse(b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)") == Fetch(
        "a", seq((1, STAR)), (FetchAttr.FLAGS,), uid=True, changed_since=12345, vanished=True
    )


@pytest.mark.parametrize(
    "line",
    [
        b"a FETCH 1",
        b"a FETCH 1 (ALL)",
        b"a FETCH 1 BODY[MIME]",
        b"a FETCH 1 BODY[HEADER.FIELDS]",
        b"a FETCH 1 BODY[0]",
        b"a FETCH 1 BODY[01]",  # section-part is nz-numbers: one spelling per part
        b"a FETCH 1 BODY[2.01.MIME]",
        b"a FETCH 1 BINARY[1.00]",
        b"a FETCH 1 BINARY.SIZE[01]",
        b"a FETCH 1 BODY[]<0.0>",
        b"a FETCH 1 BINARY[TEXT]",
        b"a FETCH 1 FLAGS[]",
        b"a FETCH 1 MODSEQ.X",
        b"a FETCH 0 FLAGS",
        b"a FETCH 1 (FLAGS) (VANISHED)",
        b"a FETCH 1 (FLAGS",
        b"a FETCH 1 (FLAGS) ()",
        b"a UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)",
        b"a UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED VANISHED)",
        b"a UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 )",
    ],
)
def test_fetch_errors(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        parse(line)


# --- STORE, COPY, MOVE, EXPUNGE, ID -------------------------------------------------------
def test_store_forms() -> None:
    assert parse(b"A003 STORE 2:4 +FLAGS (\\Deleted)") == Store(
        "A003", seq((2, 4)), StoreMode.ADD, ("\\Deleted",)
    )
    assert parse(b"a STORE 1 -FLAGS.SILENT \\Seen $Junk") == Store(
        "a", seq((1, 1)), StoreMode.REMOVE, ("\\Seen", "$Junk"), silent=True
    )
    assert parse(b"a UID STORE 5 (UNCHANGEDSINCE 320162338) FLAGS ()") == Store(
        "a", seq((5, 5)), StoreMode.REPLACE, (), uid=True, unchanged_since=320162338
    )
    with pytest.raises(ImapSyntaxError):
        parse(b"a STORE 1 *FLAGS (\\Seen)")


def test_copy_move_expunge() -> None:
    assert parse(b"A003 COPY 2:4 MEETING") == Copy("A003", seq((2, 4)), "MEETING")
    assert parse(b"a UID MOVE 42:69 foo") == Move("a", seq((42, 69)), "foo", uid=True)
    assert parse(b"a UID EXPUNGE 3000:3002") == Expunge("a", seq((3000, 3002)))
    with pytest.raises(UnknownCommand):
        parse(b"a UID LIST x y")


def test_id() -> None:
    assert parse(b"a ID NIL") == Id("a", None)
    assert parse(b'a ID ("name" "sodr" "version" "19.34" "vendor" NIL)') == Id(
        "a", (("name", "sodr"), ("version", "19.34"), ("vendor", None))
    )
    too_many = b"a ID (" + b" ".join(b'"f%d" "v"' % i for i in range(31)) + b")"
    for bad in (too_many, b'a ID ("' + b"f" * 31 + b'" "v")', b'a ID ("f" "' + b"v" * 1025 + b'")'):
        with pytest.raises(ImapSyntaxError):
            parse(bad)


def test_unknown_command_and_tags() -> None:
    with pytest.raises(UnknownCommand) as info:
        parse(b"a XYZZY")
    assert info.value.tag == "a"
    with pytest.raises(ImapSyntaxError) as info2:
        parse(b"+ NOOP")
    assert info2.value.tag is None


def test_command_head_and_state_table() -> None:
    assert command_head(b"a1 uid fetch 1 flags") == ("a1", "UID")
    assert State.NOT_AUTHENTICATED in COMMAND_STATES["LOGIN"]
    assert State.AUTHENTICATED not in COMMAND_STATES["FETCH"]
    assert COMMAND_STATES["APPEND"] == {State.AUTHENTICATED, State.SELECTED}


def test_append_head() -> None:
    head = parse_append_head(
        [b'A003 APPEND saved-messages (\\Seen) " 7-Feb-1994 21:52:25 -0800" {310}'], [], utf8=False
    )
    assert head is not None and head.mailbox == "saved-messages" and head.flags == ("\\Seen",)
    assert head.internal_date == dt.datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=dt.timezone(-dt.timedelta(hours=8))
    )
    assert parse_append_head([b"a APPEND {5}"], [], utf8=False) is None
    mailbox_literal = parse_append_head([b"a APPEND {5}", b" {3+}"], [b"inbox"], utf8=False)
    assert mailbox_literal is not None and mailbox_literal.mailbox == "INBOX"
    assert parse_append_next(b" (\\Draft) ~{4}", "a") == (("\\Draft",), None, False, None)
    with pytest.raises(ImapSyntaxError):
        parse_append_head([b"a APPEND INBOX (\\Seen {5}"], [], utf8=False)


# --- FETCH argument texts are parsed once and remembered -----------------------------------
_FETCH_WORDS = [
    "UID",
    "FLAGS",
    "ENVELOPE",
    "BODY.PEEK[]",
    "BODY[HEADER.FIELDS (FROM TO)]",
    "BINARY.PEEK[1]<0.100>",
    "RFC822.SIZE",
    "MODSEQ",
    "BOGUS",
    "BODY[",
    "(",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_FETCH_WORDS), min_size=1, max_size=4),
    st.sampled_from(["", " (CHANGEDSINCE 5)", " (CHANGEDSINCE 5 VANISHED)", " (VANISHED)"]),
    st.booleans(),
)
def test_fetch_arguments_parse_the_same_remembered_or_not(
    words: list[str], modifiers: str, listed: bool
) -> None:
    """A FETCH argument text gives the same items, or the same tagged error, the first
    time, when remembered, and when parsed in full (no memo) by parse_fetch_args."""
    text = ("(" + " ".join(words) + ")" if listed else " ".join(words)) + modifiers
    outcomes = []
    for tag in ("a1", "b2"):
        try:
            command = parse_command([f"{tag} UID FETCH 1:5 {text}".encode()])
            assert isinstance(command, Fetch)
            outcomes.append((command.items, command.changed_since, command.vanished))
        except ImapSyntaxError as exc:
            assert exc.tag == tag
            outcomes.append(("BAD", exc.text))
    cur = Cursor([text.encode()])
    try:
        found = parse_fetch_args(cur)
        cur.end()
        direct: object = found
    except ImapSyntaxError as exc:
        direct = ("BAD", exc.text)
    assert outcomes[0] == outcomes[1] == direct


@pytest.mark.parametrize("line", [b"t\x00x NOOP", b"t(x NOOP", b"t{x NOOP", b't"x NOOP'])
def test_a_tag_with_an_octet_no_tag_holds_gets_an_untagged_bad(line: bytes) -> None:
    """The tag cannot be read, so the BAD is untagged. Spec: RFC 9051 §7.1.5, §9 (tag)."""
    with pytest.raises(ImapSyntaxError) as info:
        parse_command([line])
    assert info.value.tag is None
