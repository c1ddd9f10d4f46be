"""The message corpus over IMAP: every message of ``../shared/conformance/email-corpus``
and ``mime-torture`` APPENDed to a running ``postel serve`` (one MULTIAPPEND over
IMAPS), then FETCHed back.

- ``BODY[]`` and ``RFC822.SIZE`` equal the appended octets (APPEND adds no trace fields).
- ENVELOPE, BODY and BODYSTRUCTURE on the wire equal the offline renderers' output
  byte for byte, and differ from Dovecot 2.3.19's reference answers exactly where
  ``tests/mail/dovecot_differences.tsv`` says (each listed with the RFC section that
  makes postel's answer right), compared as ``tests/mail/test_dovecot_compare.py`` does.
- For a sample (every message under ``SAMPLE_SIZE_MAX`` octets, and the torture test),
  ``BODY[n]``, ``BODY[n.MIME]``, ``BODY[n.HEADER]``/``[n.TEXT]``, ``BINARY[n]`` and
  ``BINARY.SIZE[n]`` for every part number the BODYSTRUCTURE shows fit the message
  and agree with Python's ``email`` package (policy compat32): the same part tree, a
  leaf's raw body is ``BODY[n]``, its decoded body ``BINARY[n]``, the same MIME header
  fields; body-fld-octets and body-fld-lines agree with ``BODY[n]``.
- Hand-derived answers: Crispin's part map of the torture test (part numbers, sizes,
  line counts), and a hand-made message with every BODYSTRUCTURE field (encoded words
  untouched, parameters, Content-Disposition, -Language, -Location, -MD5).

Spec: RFC 9051 §6.3.12 (APPEND), §6.4.5 (FETCH), §7.5.2 (ENVELOPE, BODYSTRUCTURE);
RFC 3502 (MULTIAPPEND); RFC 3516 (BINARY); RFC 2045, RFC 2046 (MIME).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mail.dovecot_compare import CORPUS, TORTURE, Case, cases, norm_body
from mail.imapsexp import Atom, parse
from postel.mail import parse_message, render_body, render_bodystructure, render_envelope

from .conftest import ServerFactory
from .imap_corpus_helpers import (
    Binary,
    Difference,
    EmailPart,
    Fetched,
    PartKind,
    StructurePart,
    collect,
    email_parts,
    expected_binary,
    fetch,
    has_defects,
    header_items,
    listed_differences,
    multiappend,
    parse_bytes,
    pipelined,
    raw_payload,
    structure_parts,
    wire_differences,
)
from .imap_helpers import DOMAIN, PASSWORD, add_account
from .imap_raw import Completion, RawImap
from .server import PostelServer

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="conformance corpus not present")

USER = f"corpus@{DOMAIN}"
MAILBOX = "Corpus"

SAMPLE_SIZE_MAX = 100 * 1024
"""Messages up to this many octets get every section fetched and cross-checked."""
SAMPLE_COUNT_MAX = 300
"""At most this many sampled messages (keeps the module well under a minute)."""
TORTURE_FILE = "mime-torture/crispin-torture-test.eml"
"""The torture test's name in ``cases()``."""
AGREEMENT_MIN = 0.95
"""Share of messages whose answer must equal Dovecot's exactly (as offline)."""
PYTHON_TREE_DIFFERS = frozenset(
    {
        # RFC 2231 boundary* parameter: Python uses it; postel, like Dovecot, only a plain
        # boundary parameter (RFC 2046 §5.1.1).
        "cpython-test-email/msg_33.txt",
        # Consecutive delimiters enclose an empty part (RFC 2046 §5.1.1); Python drops it.
        "cpython-test-email/msg_37.txt",
        # A boundary that is a prefix of another: postel matches the longest (RFC 2046
        # §5.1.1), Python the innermost.
        "mimetools-testmsgs/2002_06_12_doublebound.msg",
        "mimetools-testmsgs/double-bound.msg",
    }
)
"""Messages without parse defects where Python's part tree differs from postel's for a
reason on Python's side (as in tests/mail/test_email_crosscheck.py)."""


@dataclass(frozen=True, slots=True)
class Corpus:
    """The appended corpus: ``cases[i]`` is message sequence number ``i + 1``."""

    client: RawImap
    cases: list[Case]
    appended: Completion
    seconds: float


@dataclass(frozen=True, slots=True)
class BinaryAnswer:
    """The answer to ``FETCH n (BINARY.PEEK[p] BINARY.SIZE[p])``: the tagged status,
    the tagged line, and the items (empty unless OK)."""

    status: str
    tagged: bytes
    items: dict[str, object]


@dataclass(frozen=True, slots=True)
class Sampled:
    """One sampled message: its case, BODYSTRUCTURE's parts, the BODY sections fetched
    in one FETCH, and the BINARY answers by part number."""

    case: Case
    msn: int
    parts: dict[str, StructurePart]
    sections: dict[str, object]
    binary: dict[str, BinaryAnswer]


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-corpus")
    add_account(srv, USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def corpus(server: PostelServer) -> Iterator[Corpus]:
    every = list(cases())
    client = RawImap.tls(server.imaps_port)
    client.login(USER, PASSWORD)
    assert client.command(f'CREATE "{MAILBOX}"').status == "OK"
    began = time.monotonic()
    appended = multiappend(client, MAILBOX, (c.message for c in every))
    seconds = time.monotonic() - began
    assert appended.status == "OK", appended.tagged
    assert client.command(f'SELECT "{MAILBOX}"').status == "OK"
    yield Corpus(client, every, appended, seconds)
    client.command("LOGOUT")
    client.close()


@pytest.fixture(scope="module")
def structures(corpus: Corpus) -> dict[int, Fetched]:
    done, got = fetch(corpus.client, "1:*", "(UID RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)")
    assert done.status == "OK", done.tagged
    assert sorted(got) == list(range(1, len(corpus.cases) + 1))
    return got


def _sample(corpus: Corpus) -> list[tuple[int, Case]]:
    chosen = [
        (msn, case)
        for msn, case in enumerate(corpus.cases, 1)
        if len(case.message) <= SAMPLE_SIZE_MAX or case.file == TORTURE_FILE
    ]
    return chosen[:SAMPLE_COUNT_MAX]


def _section_items(parts: dict[str, StructurePart]) -> list[str]:
    items = ["BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]"]
    for number, part in parts.items():
        items.append(f"BODY.PEEK[{number}]")
        if part.has_mime_header:
            items.append(f"BODY.PEEK[{number}.MIME]")
        if part.message:
            items += [f"BODY.PEEK[{number}.HEADER]", f"BODY.PEEK[{number}.TEXT]"]
    return items


def _binary_answer(done: Completion) -> BinaryAnswer:
    items = collect(done)
    merged = next(iter(items.values())).items if items else {}
    return BinaryAnswer(done.status, done.tagged, merged)


@pytest.fixture(scope="module")
def sampled(corpus: Corpus, structures: dict[int, Fetched]) -> list[Sampled]:
    out: list[Sampled] = []
    for msn, case in _sample(corpus):
        parts = structure_parts(structures[msn].items["BODYSTRUCTURE"])
        numbers = list(parts)
        commands = [f"FETCH {msn} ({' '.join(_section_items(parts))})"]
        commands += [f"FETCH {msn} (BINARY.PEEK[{n}] BINARY.SIZE[{n}])" for n in numbers]
        first, *binaries = pipelined(corpus.client, commands)
        assert first.status == "OK", (case.file, first.tagged)
        sections = collect(first)[msn].items
        answers = {n: _binary_answer(done) for n, done in zip(numbers, binaries, strict=True)}
        out.append(Sampled(case, msn, parts, sections, answers))
    return out


def _octets(items: dict[str, object], name: str) -> bytes:
    value = items[name]
    assert isinstance(value, bytes), (name, value)
    return value


def _number(items: dict[str, object], name: str) -> int:
    value = items[name]
    assert isinstance(value, Atom), (name, value)
    return int(value.text)


# -- every message ------------------------------------------------------------------------


def test_multiappend_stores_every_message_in_order(
    corpus: Corpus, structures: dict[int, Fetched]
) -> None:
    assert b"APPENDUID" in corpus.appended.tagged
    uids = [_number(structures[msn].items, "UID") for msn in sorted(structures)]
    assert uids == sorted(uids) and len(set(uids)) == len(corpus.cases)
    print(f"MULTIAPPEND of {len(corpus.cases)} messages: {corpus.seconds:.2f}s")


def test_body_and_size_equal_the_appended_octets(corpus: Corpus) -> None:
    done, got = fetch(corpus.client, "1:*", "(RFC822.SIZE BODY.PEEK[])")
    assert done.status == "OK", done.tagged
    wrong = [
        case.file
        for msn, case in enumerate(corpus.cases, 1)
        if _octets(got[msn].items, "BODY[]") != case.message
        or _number(got[msn].items, "RFC822.SIZE") != len(case.message)
    ]
    assert not wrong, wrong


def test_wire_answer_equals_the_offline_renderers(
    corpus: Corpus, structures: dict[int, Fetched]
) -> None:
    wrong: list[str] = []
    for msn, case in enumerate(corpus.cases, 1):
        summary = parse_message(case.message)
        raw = structures[msn].raw
        for name, rendered in (
            (b"ENVELOPE", render_envelope(summary)),
            (b"BODY", render_body(summary)),
            (b"BODYSTRUCTURE", render_bodystructure(summary, True)),
        ):
            if b" " + name + b" " + rendered not in raw:
                wrong.append(f"{case.file} {name.decode()}")
    assert not wrong, wrong


def test_differences_from_dovecot_are_exactly_the_listed_ones(
    corpus: Corpus, structures: dict[int, Fetched]
) -> None:
    found: set[Difference] = set()
    agree = 0
    for msn, case in enumerate(corpus.cases, 1):
        diffs = wire_differences(case, structures[msn].items)
        agree += not diffs
        found.update(diffs)
    listed = listed_differences()
    total = len(corpus.cases)
    print(f"wire agreement with Dovecot: {agree}/{total} messages, {len(found)} differences")
    assert sorted(found - listed, key=str) == [], "differences not listed"
    assert sorted(listed - found, key=str) == [], "listed differences not seen"
    assert agree / total >= AGREEMENT_MIN


# -- sections of the sample ---------------------------------------------------------------


def test_sections_fit_the_message(sampled: list[Sampled]) -> None:
    """Each part's body lies in the message, right after its MIME header; a message/rfc822
    part is its header and text; BINARY.SIZE is the length of BINARY; a composite part's
    BINARY is its BODY. Spec: RFC 9051 §6.4.5, RFC 3516 §4."""
    checked = 0
    problems: list[str] = []
    for s in sampled:
        whole = s.case.message
        if _octets(s.sections, "BODY[HEADER]") + _octets(s.sections, "BODY[TEXT]") != whole:
            problems.append(f"{s.case.file}: HEADER + TEXT")
        for number, part in s.parts.items():
            checked += 1
            problems += [f"{s.case.file} [{number}]: {p}" for p in _fit(s, number, part)]
    print(f"sections checked: {checked} parts of {len(sampled)} messages")
    assert len(sampled) > 200
    assert not problems, "\n".join(problems)


def _fit(s: Sampled, number: str, part: StructurePart) -> list[str]:
    out: list[str] = []
    body = _octets(s.sections, f"BODY[{number}]")
    if body not in s.case.message:
        out.append("BODY not in the message")
    if part.size is not None and part.size != len(body):
        out.append(f"body-fld-octets {part.size} != len(BODY) {len(body)}")
    if part.lines is not None and part.lines != _lines(body):
        out.append(f"body-fld-lines {part.lines} != {_lines(body)} lines in BODY")
    if part.has_mime_header:
        mime = _octets(s.sections, f"BODY[{number}.MIME]")
        if mime + body not in s.case.message:
            out.append("MIME header not followed by the body")
    if part.message:
        header = _octets(s.sections, f"BODY[{number}.HEADER]")
        text = _octets(s.sections, f"BODY[{number}.TEXT]")
        if header + text != body:
            out.append("HEADER + TEXT != BODY")
    answer = s.binary[number]
    if answer.status != "OK":
        if b"UNKNOWN-CTE" not in answer.tagged or part.multipart:
            out.append(f"BINARY: {answer.tagged!r}")
        return out
    binary = _octets(answer.items, f"BINARY[{number}]")
    if _number(answer.items, f"BINARY.SIZE[{number}]") != len(binary):
        out.append("BINARY.SIZE != len(BINARY)")
    if (part.multipart or part.message) and binary != body:
        out.append("composite BINARY != BODY")
    return out


def _lines(body: bytes) -> int:
    """Lines of a body as body-fld-lines counts them: its line ends. A part's last line
    has none of its own when the CRLF before a delimiter belongs to the delimiter, so
    it is not counted (Crispin's map and Dovecot count the same way). Spec: RFC 9051
    §7.5.2 (body-fld-lines), RFC 2046 §5.1.1."""
    return body.count(b"\n")


def test_torture_sections_match_crispins_part_map(sampled: list[Sampled]) -> None:
    """Mark Crispin's part map of the MIME torture test (hand-derived): the part numbers,
    each leaf's size in octets (``BODY[n]``) and each text or message/rfc822 part's line
    count (body-fld-lines). Spec: RFC 9051 §6.4.5, §7.5.2."""
    (torture,) = [s for s in sampled if s.case.file == TORTURE_FILE]
    entry = re.compile(r"^([\d.]+) .*\((\d+) (bytes|lines)\)$")
    checked = 0
    for line in (TORTURE / "crispin-part-map.txt").read_text().splitlines():
        found = entry.match(line.strip())
        if found is None:
            continue
        number, count, unit = found.group(1), int(found.group(2)), found.group(3)
        assert number in torture.parts, line
        if unit == "bytes":
            assert len(_octets(torture.sections, f"BODY[{number}]")) == count, line
        else:
            assert torture.parts[number].lines == count, line
        checked += 1
    assert checked == 40  # every entry of the map


def test_sections_agree_with_python_email(sampled: list[Sampled]) -> None:
    """On messages Python's ``email`` parses without defects into the same part tree
    (numbers and content types): the same MIME header fields, the same message headers,
    a leaf's raw body is BODY[n] and its decoded body BINARY[n] (Python's lenient
    decodings aside, see ``expected_binary``); an unknown encoding is NO [UNKNOWN-CTE]."""
    tree_differs: set[str] = set()
    tally = dict.fromkeys(("messages", "defects", "parts", "binary", "lenient", "cte", "opaque"), 0)
    problems: list[str] = []
    for s in sampled:
        theirs = parse_bytes(s.case.message)
        parts = email_parts(theirs)
        if has_defects(parts, theirs):
            tally["defects"] += 1
            continue
        shape = {n: p.message.get_content_type() for n, p in parts.items()}
        if shape != {n: p.content_type for n, p in s.parts.items()}:
            tree_differs.add(s.case.file)
            continue
        tally["messages"] += 1
        if header_items(_octets(s.sections, "BODY[HEADER]")) != theirs.items():
            problems.append(f"{s.case.file}: BODY[HEADER] fields")
        for number, part in parts.items():
            tally["parts"] += 1
            where = f"{s.case.file} [{number}]"
            problems += [f"{where}: {p}" for p in _agree(s, number, part, s.parts[number], tally)]
    print(f"Python email cross-check: {tally}, part trees differ: {len(tree_differs)}")
    assert tree_differs == PYTHON_TREE_DIFFERS
    assert tally["messages"] > 150 and tally["binary"] > 200
    assert not problems, "\n".join(problems)


def _agree(
    s: Sampled, number: str, part: EmailPart, ours: StructurePart, tally: dict[str, int]
) -> list[str]:
    out: list[str] = []
    if part.has_mime_header != ours.has_mime_header:
        out.append("MIME header presence")
    elif part.has_mime_header and (
        header_items(_octets(s.sections, f"BODY[{number}.MIME]")) != part.message.items()
    ):
        out.append("MIME header fields")
    if part.kind is PartKind.MESSAGE:
        inner = part.message.get_payload(0)
        assert not isinstance(inner, str)
        if header_items(_octets(s.sections, f"BODY[{number}.HEADER]")) != inner.items():
            out.append("message/rfc822 HEADER fields")
    if part.kind is not PartKind.LEAF:
        return out
    raw = raw_payload(part.message)
    if raw is None:
        tally["opaque"] += 1
        return out
    if _octets(s.sections, f"BODY[{number}]") != raw:
        out.append("BODY != Python's raw payload")
    decoded = part.message.get_payload(decode=True)
    assert isinstance(decoded, bytes)
    answer = s.binary[number]
    got = _octets(answer.items, f"BINARY[{number}]") if answer.status == "OK" else b""
    match expected_binary(ours.encoding, raw, decoded, got):
        case Binary.EQUAL:
            tally["binary"] += 1
            if answer.status != "OK" or got != decoded:
                out.append(f"BINARY != Python's decoded payload ({answer.tagged!r})")
        case Binary.LENIENT:
            tally["lenient"] += 1
        case Binary.UNKNOWN_CTE:
            tally["cte"] += 1
            if b"UNKNOWN-CTE" not in answer.tagged:
                out.append(f"encoding {ours.encoding!r}: {answer.tagged!r}")
    return out


# -- hand-derived ---------------------------------------------------------------------------

HANDMADE = (
    b"From: =?utf-8?q?Andr=C3=A9?= <andre@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: =?iso-8859-1?q?caf=E9?= and =?utf-8?b?w6k=?=\r\n"
    b"Date: Wed, 17 Jul 1996 02:44:25 -0700\r\n"
    b"Message-ID: <hand@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"Content-Language: en, de (German)\r\n"
    b"Content-Location: http://example.org/a.txt\r\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    b"Content-ID: <text@example.org>\r\n"
    b"Content-Description: =?utf-8?q?gr=C3=BC=C3=9F?=\r\n"
    b"\r\n"
    b"caf=C3=A9\r\n"
    b"line two\r\n"
    b"--outer\r\n"
    b'Content-Type: application/octet-stream; name="=?utf-8?q?r=C3=A9sum=C3=A9.bin?="\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename*0*=utf-8''r%C3%A9;\r\n"
    b" filename*1*=sum%C3%A9.bin; size=3\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: carol@example.com\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--outer--\r\n"
)
"""A message with every BODYSTRUCTURE field: encoded words in headers, parameters
(quoted, RFC 2231 continuations), Content-ID, -Description, -MD5, -Disposition,
-Language (a list with a comment), -Location, and a message/rfc822 part."""

HANDMADE_ENVELOPE = (
    b'("Wed, 17 Jul 1996 02:44:25 -0700" "=?iso-8859-1?q?caf=E9?= and =?utf-8?b?w6k=?="'
    b' (("=?utf-8?q?Andr=C3=A9?=" NIL "andre" "example.org"))'
    b' (("=?utf-8?q?Andr=C3=A9?=" NIL "andre" "example.org"))'
    b' (("=?utf-8?q?Andr=C3=A9?=" NIL "andre" "example.org"))'
    b' ((NIL NIL "bob" "example.net")) NIL NIL NIL "<hand@example.org>")'
)
"""ENVELOPE: encoded words untouched; Sender and Reply-To default to From. Spec:
RFC 9051 §7.5.2 (envelope), RFC 2047 §2."""

HANDMADE_BODYSTRUCTURE = (
    b'(("text" "plain" ("charset" "utf-8" "format" "flowed") "<text@example.org>"'
    b' "=?utf-8?q?gr=C3=BC=C3=9F?=" "quoted-printable" 19 1'
    b' "Q2hlY2sgSW50ZWdyaXR5IQ==" NIL ("en" "de") "http://example.org/a.txt")'
    b'("application" "octet-stream" ("name" "=?utf-8?q?r=C3=A9sum=C3=A9.bin?=") NIL NIL'
    b' "base64" 4 NIL ("attachment" ("size" "3" "filename*" "utf-8\'\'r%C3%A9sum%C3%A9.bin"))'
    b" NIL NIL)"
    b'("message" "rfc822" NIL NIL NIL "7bit" 53'
    b' (NIL "inner" ((NIL NIL "carol" "example.com")) ((NIL NIL "carol" "example.com"))'
    b' ((NIL NIL "carol" "example.com")) NIL NIL NIL NIL NIL)'
    b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
    b" 3 NIL NIL NIL NIL)"
    b' "mixed" ("boundary" "outer") NIL NIL NIL)'
)
"""BODYSTRUCTURE, derived by hand: part 1 is ``caf=C3=A9 CRLF line two`` (19 octets,
one line end: the CRLF before a delimiter belongs to it, RFC 2046 §5.1.1); part 2 is
``AAEC``; part 3 is the 53-octet message with 3 line ends. RFC 2231 continuations are
joined with their charset and escapes kept, after the plain parameters (Dovecot's
answer too); Content-Language's comment is dropped (RFC 3282 §2). Spec: RFC 9051 §7.5.2,
RFC 2045 §5.1, RFC 2183, RFC 1864, RFC 2557 §4."""

HANDMADE_SECTIONS: dict[str, bytes] = {
    "BODY[1]": b"caf=C3=A9\r\nline two",
    "BODY[1.MIME]": HANDMADE[
        HANDMADE.index(b"Content-Type: text/") : HANDMADE.index(b"caf=C3=A9\r\n")
    ],
    "BINARY[1]": "café\r\nline two".encode(),
    "BODY[2]": b"AAEC",
    "BINARY[2]": b"\x00\x01\x02",
    "BODY[3.HEADER]": b"From: carol@example.com\r\nSubject: inner\r\n\r\n",
    "BODY[3.TEXT]": b"inner body",
    "BODY[3.1]": b"inner body",
    "BODY[3.1.MIME]": b"From: carol@example.com\r\nSubject: inner\r\n\r\n",
}
"""Sections of the hand-made message, derived by hand. The MIME header of part 3.1,
the body of a non-multipart encapsulated message, is that message's header.
Spec: RFC 9051 §6.4.5, RFC 3516 §4.2."""


def test_handmade_message_matches_hand_derived_answers(server: PostelServer) -> None:
    with RawImap.tls(server.imaps_port) as client:
        client.login(USER, PASSWORD)
        assert client.command('CREATE "Handmade"').status == "OK"
        assert multiappend(client, "Handmade", [HANDMADE]).status == "OK"
        assert client.command('EXAMINE "Handmade"').status == "OK"
        names = " ".join(k.replace("BODY[", "BODY.PEEK[") for k in HANDMADE_SECTIONS)
        names = names.replace("BINARY[", "BINARY.PEEK[")
        done, got = fetch(
            client,
            "1",
            f"(RFC822.SIZE ENVELOPE BODYSTRUCTURE BINARY.SIZE[1] BINARY.SIZE[2] {names})",
        )
        assert done.status == "OK", done.tagged
    items = got[1].items
    assert _number(items, "RFC822.SIZE") == len(HANDMADE)
    assert items["ENVELOPE"] == parse(HANDMADE_ENVELOPE)
    assert norm_body(items["BODYSTRUCTURE"]) == norm_body(parse(HANDMADE_BODYSTRUCTURE))
    assert _number(items, "BINARY.SIZE[1]") == len(HANDMADE_SECTIONS["BINARY[1]"])
    assert _number(items, "BINARY.SIZE[2]") == 3
    assert {k: items[k] for k in HANDMADE_SECTIONS} == HANDMADE_SECTIONS
