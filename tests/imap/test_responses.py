"""Response encoders: string choice, mailbox names, codes, untagged data."""

from __future__ import annotations

from postel.imap import responses as r
from postel.imap.commands import Select, parse_command


def test_astring_quoted_literal_choice() -> None:
    assert r.astring("INBOX") == b"INBOX"
    assert r.astring("a]b") == b"a]b"
    assert r.astring("") == b'""'
    assert r.astring("NIL") == b'"NIL"'
    assert r.astring("two words") == b'"two words"'
    assert r.astring('say "hi" \\') == b'"say \\"hi\\" \\\\"'
    assert r.astring("line\r\nbreak") == b"{11}\r\nline\r\nbreak"
    assert r.astring("é") == b"{2}\r\n\xc3\xa9"
    assert r.astring("é", utf8=True) == b'"\xc3\xa9"'
    assert r.string("x" * (r.QUOTED_MAX + 1)).startswith(b"{1025}\r\n")
    assert r.nstring(None) == b"NIL"
    assert r.nstring(b"\x00") == b"{1}\r\n\x00"


def test_literal_helpers() -> None:
    assert r.literal(b"abc") == b"{3}\r\nabc"
    assert r.literal8(b"a\x00c") == b"~{3}\r\na\x00c"


def test_mailbox_names() -> None:
    assert r.mailbox("inbox") == b"INBOX"
    assert r.mailbox("Entwürfe") == b"Entw&APw-rfe"
    assert r.mailbox("Entwürfe", utf8=True) == '"Entwürfe"'.encode()
    assert r.mailbox("a b&c") == b'"a b&-c"'


def test_mailbox_name_round_trips_through_the_parser() -> None:
    for name in ["Entwürfe", "日本語/台北", "a&b", "with space", 'q"uote']:
        for utf8 in (False, True):
            line = b"a SELECT " + r.mailbox(name, utf8=utf8)
            parts = [line]
            literals: list[bytes] = []
            if line.endswith(b"}\r\n") or b"}\r\n" in line:
                head, _, data = line.partition(b"\r\n")
                parts, literals = [head, b""], [data]
            assert parse_command(parts, literals, utf8=utf8) == Select("a", name)


def test_status_responses_and_codes() -> None:
    assert r.tagged("a1", r.Status.OK, "LOGIN completed") == b"a1 OK LOGIN completed\r\n"
    assert r.tagged("a", r.Status.NO, "no", r.TRYCREATE) == b"a NO [TRYCREATE] no\r\n"
    assert (
        r.untagged(r.Status.OK, "x", r.uidvalidity(3857529045))
        == b"* OK [UIDVALIDITY 3857529045] x\r\n"
    )
    assert r.untagged(r.Status.OK, "", r.uidnext(4392)) == b"* OK [UIDNEXT 4392] done\r\n"
    assert (
        r.permanentflags(["\\Deleted", "\\Seen", "\\*"]).render()
        == b"[PERMANENTFLAGS (\\Deleted \\Seen \\*)]"
    )
    assert r.appenduid(38505, [3955]).render() == b"[APPENDUID 38505 3955]"
    assert (
        r.copyuid(38505, [304, 319, 320], [3956, 3957, 3958]).render()
        == b"[COPYUID 38505 304,319:320 3956:3958]"
    )
    assert r.badcharset(["UTF-8", "US-ASCII"]).render() == b"[BADCHARSET (UTF-8 US-ASCII)]"
    assert r.highestmodseq(715194045007).render() == b"[HIGHESTMODSEQ 715194045007]"
    assert r.capability_code(["IMAP4rev2", "IDLE"]).render() == b"[CAPABILITY IMAP4rev2 IDLE]"
    for code, wire in [
        (r.READ_ONLY, b"[READ-ONLY]"),
        (r.READ_WRITE, b"[READ-WRITE]"),
        (r.UNKNOWN_CTE, b"[UNKNOWN-CTE]"),
        (r.ALREADYEXISTS, b"[ALREADYEXISTS]"),
        (r.CLOSED, b"[CLOSED]"),
    ]:
        assert code.render() == wire
    assert r.bye("Autologout; idle for too long") == b"* BYE Autologout; idle for too long\r\n"


def test_text_cannot_split_a_response() -> None:
    assert r.tagged("a", r.Status.BAD, "x\r\n* OK injected") == b"a BAD x  * OK injected\r\n"
    assert r.Code("X", "a]b").render() == b"[X a b]"


def test_continuations() -> None:
    assert r.continuation("Ready") == b"+ Ready\r\n"
    assert r.continuation() == b"+ \r\n"
    assert r.continuation_data(b"\x00abc") == b"+ AGFiYw==\r\n"


def test_untagged_data() -> None:
    assert r.capability(["IMAP4rev2", "STARTTLS"]) == b"* CAPABILITY IMAP4rev2 STARTTLS\r\n"
    assert r.exists(23) == b"* 23 EXISTS\r\n"
    assert r.expunge(3) == b"* 3 EXPUNGE\r\n"
    assert r.flags(["\\Answered", "\\Seen"]) == b"* FLAGS (\\Answered \\Seen)\r\n"
    assert r.list_response(["\\Noselect"], "/", "foo") == b'* LIST (\\Noselect) "/" foo\r\n'
    assert r.list_response([], None, "Entwürfe") == b"* LIST () NIL Entw&APw-rfe\r\n"
    assert (
        r.list_response(["\\Subscribed"], ".", "Fruit", extended=b'("CHILDINFO" ("SUBSCRIBED"))')
        == b'* LIST (\\Subscribed) "." Fruit ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    )
    assert r.list_response([], "/", "x", command="LSUB") == b'* LSUB () "/" x\r\n'
    assert r.status("blurdybloop", [("MESSAGES", 231), ("UIDNEXT", 44292)]) == (
        b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
    )
    assert r.search([2, 84, 882]) == b"* SEARCH 2 84 882\r\n"
    assert r.search([]) == b"* SEARCH\r\n"
    assert r.esearch("A282", minimum=2, count=3) == b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    assert (
        r.esearch("a", uid=True, all_numbers=[5, 1, 2, 3])
        == b'* ESEARCH (TAG "a") UID ALL 1:3,5\r\n'
    )
    assert r.esearch("a", all_numbers=[]) == b'* ESEARCH (TAG "a")\r\n'
    assert r.enabled(["IMAP4rev2"]) == b"* ENABLED IMAP4rev2\r\n"
    assert r.enabled([]) == b"* ENABLED\r\n"
    assert (
        r.id_response([("name", "postel"), ("os", None)]) == b'* ID ("name" "postel" "os" NIL)\r\n'
    )
    assert r.id_response(None) == b"* ID NIL\r\n"
    assert r.namespace([("", "/")]) == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    assert (
        r.namespace([("", "/")], [("~", "/")], None)
        == b'* NAMESPACE (("" "/")) (("~" "/")) NIL\r\n'
    )


def test_fetch_response() -> None:
    items = [
        (b"FLAGS", r.flag_list(["\\Seen"])),
        (b"UID", b"4827313"),
        (b"BODY[]", r.literal(b"hi")),
    ]
    assert (
        r.fetch_response(12, items)
        == b"* 12 FETCH (FLAGS (\\Seen) UID 4827313 BODY[] {2}\r\nhi)\r\n"
    )


def test_compress_set() -> None:
    assert r.compress_set([]) == ""
    assert r.compress_set([1, 2, 3, 5]) == "1:3,5"
    assert r.compress_set([7, 3, 3, 4, 9, 8]) == "3:4,7:9"
