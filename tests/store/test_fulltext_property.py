"""The full-text index's answer covers a full scan's, and equals it for exact clauses,
on every backend (property test), with the messages, search keys and full scan
(postel.imap.search.evaluate over every message of a mailbox) the other full-text tests
use too."""

from __future__ import annotations

import base64
import itertools
import quopri
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel.ids import MailboxId
from postel.imap.search import SearchContext, SearchSource, evaluate
from postel.imap.search_keys import AndKey, BodyKey, HeaderKey, SearchKey, TextKey
from postel.imap.textsearch import header_text, search_texts
from postel.mail.mime import parse_mime
from postel.store import Account, Store
from postel.store.fulltext import Clause, SearchField, exact_clause

from .conftest import T0
from .test_contract import delivery, make_accounts, put_blob

WORDS = (
    "hello",
    "World",
    "straße",
    "STRASSE",
    "Größe",
    "café",
    "naïve",
    "İstanbul",
    "ﬁle",
    "ΣΊΣΥΦΟΣ",
    "日本語テキスト",
    "emoji😀x",
    "100%",
    "a_b",
    'quo"te',
    "back\\slash",
    "invoice",
    "meeting",
    "*star*",
    "(paren)",
    "NEAR",
    "colon:x",
)

word = st.sampled_from(WORDS)
phrase = st.lists(word, min_size=1, max_size=5).map(" ".join)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def header_value(draw: st.DrawFn) -> bytes:
    """A header value: plain ASCII, or RFC 2047 encoded words (B or Q, utf-8 or latin-1)."""
    text = draw(phrase)
    how = draw(st.sampled_from(["plain", "b", "q"]))
    if how == "plain" or (text.isascii() and draw(st.booleans())):
        return text.encode("ascii", "replace")
    charset = "iso-8859-1" if _latin1(text) and draw(st.booleans()) else "utf-8"
    raw = text.encode(charset)
    if how == "b":
        return f"=?{charset}?b?{base64.b64encode(raw).decode()}?=".encode()
    q = quopri.encodestring(raw, header=True).decode().replace("?", "=3F")
    return f"=?{charset}?q?{q}?=".encode()


@st.composite
def address(draw: st.DrawFn) -> bytes:
    local = draw(st.sampled_from(["alice", "bob", "Carol.D", "info", "x_y"]))
    domain = draw(st.sampled_from(["example.org", "Example.NET", "mail.test"]))
    if draw(st.booleans()):
        return draw(header_value()) + f" <{local}@{domain}>".encode()
    return f"{local}@{domain}".encode()


@st.composite
def text_part(draw: st.DrawFn, subtype: str = "plain") -> bytes:
    """A text/* part in a random charset and transfer encoding."""
    text = draw(st.lists(phrase, min_size=1, max_size=4).map("\n".join))
    if subtype == "html":
        text = "<html><body><p>" + text.replace("&", "&amp;") + "</p>&eacute;</body></html>"
    charset = "iso-8859-1" if _latin1(text) and draw(st.booleans()) else "utf-8"
    raw = text.replace("\n", "\r\n").encode(charset)
    cte = draw(st.sampled_from(["8bit", "quoted-printable", "base64"]))
    if cte == "base64":
        body = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    elif cte == "quoted-printable":
        body = quopri.encodestring(raw).replace(b"\n", b"\r\n")
    else:
        body = raw + b"\r\n"
    head = (
        f"Content-Type: text/{subtype}; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode()
    return head + body


@st.composite
def message(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A whole message: header fields and a single, alternative or mixed body."""
    fields = [
        b"From: " + draw(address()),
        b"To: " + b", ".join(draw(st.lists(address(), min_size=1, max_size=3))),
        b"Subject: " + draw(header_value()),
        b"Date: Sun, 29 Nov 2026 12:00:00 +0000",
    ]
    if draw(st.booleans()):
        fields.append(b"Cc: " + draw(address()))
    if draw(st.booleans()):
        fields.append(b"Bcc: " + draw(address()))
    if draw(st.booleans()):
        fields.append(b"X-Custom: " + draw(header_value()))
    head = b"\r\n".join(fields) + b"\r\nMIME-Version: 1.0\r\n"
    kind = draw(st.sampled_from(["single", "alternative", "mixed"] if depth < 2 else ["single"]))
    if kind == "single":
        return head + draw(text_part())
    boundary = f"b{depth}-{draw(st.integers(0, 999))}".encode()
    if kind == "alternative":
        parts = [draw(text_part()), draw(text_part("html"))]
    else:
        inner = draw(message(depth + 1))
        parts = [draw(text_part()), b"Content-Type: message/rfc822\r\n\r\n" + inner]
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return (
        head
        + b"Content-Type: multipart/"
        + kind.encode()
        + b'; boundary="'
        + boundary
        + b'"\r\n\r\n'
        + body
        + b"--"
        + boundary
        + b"--\r\n"
    )


def visible_text(data: bytes) -> list[tuple[str, str]]:
    """What SEARCH reads of a stored message: (field name, decoded value) of each
    header field, and ("body", text) of each body text (text/html also reduced)."""
    fields = list(header_text(data).fields)
    return [*fields, *(("body", t) for t in search_texts(data, parse_mime(data)))]


_HEADER_FIELD = {
    SearchField.SUBJECT: "subject",
    SearchField.FROM: "from",
    SearchField.TO: "to",
    SearchField.CC: "cc",
    SearchField.BCC: "bcc",
}


def search_key(clauses: Sequence[Clause]) -> SearchKey:
    """The SEARCH key tree of AND-ed clauses. Spec: RFC 9051 §6.4.4."""
    keys: list[SearchKey] = []
    for c in clauses:
        if c.field is SearchField.TEXT:
            keys.append(TextKey(c.needle))
        elif c.field is SearchField.BODY:
            keys.append(BodyKey(c.needle))
        elif c.field is SearchField.HEADER:
            keys.append(HeaderKey(c.name or "x-custom", c.needle))
        else:
            keys.append(HeaderKey(_HEADER_FIELD[c.field], c.needle))
    return AndKey(tuple(keys))


async def full_scan(store: Store, mailbox_id: MailboxId, clauses: Sequence[Clause]) -> set[int]:
    """UIDs the SEARCH evaluator matches, reading every message (as the IMAP layer's
    scan does: no summary, the stored octets)."""
    key = search_key(clauses)
    stored = await store.list_messages(mailbox_id)
    largest = max((m.uid for m in stored), default=0)
    ctx = SearchContext(largest_msn=len(stored), largest_uid=largest)
    hits: set[int] = set()
    for msn, m in enumerate(stored, start=1):
        data = await store.read_message(mailbox_id, m.uid)
        source = SearchSource(
            msn, m.uid, m.flags, m.internal_date, m.size, None, m.trace_prefix, data
        )
        if evaluate(key, source, ctx):
            hits.add(m.uid)
    return hits


INTERNAL_DATE = T0


# -- the property: the index's answer covers the full scan's ---------------------------


@st.composite
def clause(draw: st.DrawFn, texts: Sequence[tuple[str, str]]) -> Clause:
    """A string key whose needle is a piece of the visible text its field reads (case
    changed at random), a random word or random text. ``texts``: (where, text) pairs,
    ``where`` a lower-case header field name or "body"."""
    field = draw(st.sampled_from(list(SearchField)))
    name = draw(st.sampled_from(["x-custom", "received", "delivered-to", "subject", "from"]))
    where = {
        SearchField.TEXT: None,
        SearchField.BODY: "body",
        SearchField.HEADER: name,
    }.get(field, field.value)
    pool = [t for w, t in texts if where is None or w == where]
    source = draw(st.sampled_from(["piece", "piece", "piece", "word", "random"]))
    if source == "piece" and pool:
        text = draw(st.sampled_from(pool))
        start = draw(st.integers(0, max(0, len(text) - 1)))
        needle = text[start : start + draw(st.integers(1, 16))]
    elif source == "word":
        needle = draw(word)
    else:
        needle = draw(st.text(min_size=1, max_size=8))
    needle = draw(st.sampled_from([needle, needle.upper(), needle.lower(), needle.swapcase()]))
    return Clause(field, needle or "x", name if field is SearchField.HEADER else None)


_counter = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_index_covers_full_scan(store: Store, data: st.DataObject) -> None:
    account = await _account(store)
    name = f"P{next(_counter)}"
    box = await store.create_mailbox(account.id, name)
    blobs = data.draw(st.lists(message(), min_size=1, max_size=5), label="messages")
    for i, blob in enumerate(blobs):
        ref = await put_blob(store, blob)
        if i % 2 == 0:
            await store.deliver([delivery(account, ref, mailbox=name)])
        else:
            await store.append(box.id, ref, internal_date=INTERNAL_DATE, summary="{}")
    if data.draw(st.booleans(), label="index all"):
        while await store.index_pending():
            pass
        fully = True
    else:
        await store.index_pending(data.draw(st.integers(1, 3), label="index some"))
        fully = False
    stored = await store.list_messages(box.id)
    texts = [t for m in stored for t in visible_text(await store.read_message(box.id, m.uid))]
    for _ in range(3):
        clauses = data.draw(st.lists(clause(texts), min_size=1, max_size=2), label="clauses")
        found = await store.search_candidates(box.id, clauses)
        scan = await full_scan(store, box.id, clauses)
        if found is None:
            continue
        assert scan <= found.matched | found.unindexed, (clauses, scan, found)
        if all(exact_clause(c) for c in clauses):
            assert found.matched == scan - found.unindexed, (clauses, scan, found)
        if fully:
            assert found.unindexed == frozenset()
    nowhere = await store.search_candidates(box.id, [Clause(SearchField.TEXT, "☃zq☃xj")])
    assert nowhere is not None and nowhere.matched == frozenset()


async def _account(store: Store) -> Account:
    got = await store.get_account("alice@example.org")
    if got is not None:
        return got
    (alice,) = await make_accounts(store, "alice")
    return alice
