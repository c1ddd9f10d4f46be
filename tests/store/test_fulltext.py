"""The full-text index on every backend: bookkeeping, removal, hostile needles, speed."""

from __future__ import annotations

import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text

from postel.clock import FixedClock
from postel.ids import MailboxId
from postel.store import Account, FlagMode, Store, UidSet, open_store
from postel.store.fulltext import (
    FULLTEXT_NEEDLE_MAX,
    Candidates,
    Clause,
    SearchField,
    blob_doc,
    narrowing_needle,
    prefix_doc,
)
from postel.store.fulltext_sql import include_in_schema_compare
from postel.store.schema import fulltext_docs, fulltext_messages, metadata

from .test_contract import delivery, make_accounts, put_blob
from .test_fulltext_property import INTERNAL_DATE, full_scan

PLAIN = (
    b"From: =?utf-8?q?Stra=C3=9Fe?= <alice@example.net>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: Quarterly invoice\r\n"
    b"\r\n"
    b"Please pay 100% of the a_b total by Friday.\r\n"
)
HTML = (
    b"From: carol@example.net\r\n"
    b"Subject: =?iso-8859-1?b?R3L232U=?=\r\n"
    b'Content-Type: multipart/alternative; boundary="x"\r\n'
    b"\r\n"
    b"--x\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"TWVldGluZyBpbiBHcsO2w59l\r\n"
    b"--x\r\n"
    b"Content-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"<p>Caf=E9 &amp; <b>cr=E8me</b></p>\r\n"
    b"--x--\r\n"
)


async def _mailbox(store: Store, *bodies: bytes) -> tuple[Account, MailboxId]:
    """alice's INBOX with ``bodies`` delivered (trace prefix) in order: UIDs 1..n."""
    (alice,) = await make_accounts(store, "alice")
    box = None
    for body in bodies:
        ref = await put_blob(store, body)
        (done,) = await store.deliver([delivery(alice, ref)])
        box = done.mailbox_id
    assert box is not None
    return alice, box


async def _index_all(store: Store) -> int:
    total = 0
    while done := await store.index_pending():
        total += done
    return total


async def _matched(store: Store, box: MailboxId, field: SearchField, needle: str) -> Candidates:
    found = await store.search_candidates(box, [Clause(field, needle)])
    assert found is not None
    return found


def _count(database_url: str, table: object) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]
    finally:
        engine.dispose()


# -- extraction ----------------------------------------------------------------------------


def test_extraction_decodes_and_folds() -> None:
    doc = blob_doc(HTML)
    assert doc.complete and doc.header is not None
    assert doc.header.subject == "grösse"  # latin-1 B-encoded word, casefolded
    assert "meeting in grösse" in doc.body  # base64 utf-8, ß folded to ss
    assert "<p>café &amp; <b>crème</b></p>" in doc.body  # HTML source, as SEARCH reads it
    assert "café & crème" in doc.body  # and reduced to text
    assert blob_doc(PLAIN).header is not None
    assert "from: strasse <alice@example.net>" in (blob_doc(PLAIN).header or doc.header).header


def test_prefix_that_cannot_stand_apart_is_not_indexed() -> None:
    prefix = b"Return-Path: <a@example.net>\r\n"
    assert prefix_doc(prefix, PLAIN) is not None
    assert prefix_doc(prefix, b" continued\r\n" + PLAIN) is None  # folds into the prefix
    assert prefix_doc(prefix + b"Content-Type: text/html\r\n", PLAIN) is None
    assert prefix_doc(prefix, None) is None
    assert prefix_doc(b"", None) is not None


def test_narrowing_needle() -> None:
    assert narrowing_needle("STRASSE") == "strasse"
    assert narrowing_needle("Straße") == "strasse"
    assert narrowing_needle("ab") is None
    assert narrowing_needle("ab\ncd") is None
    assert narrowing_needle("x\x00hello") == "hello"
    assert narrowing_needle("y" * 10_000) == "y" * FULLTEXT_NEEDLE_MAX


# -- the store -----------------------------------------------------------------------------


async def test_unindexed_until_indexed_then_narrowed(store: Store) -> None:
    _, box = await _mailbox(store, PLAIN, HTML)
    before = await _matched(store, box, SearchField.TEXT, "invoice")
    assert before == Candidates(frozenset(), frozenset({1, 2}))
    assert await _index_all(store) == 2
    assert await _matched(store, box, SearchField.TEXT, "INVOICE") == Candidates(
        frozenset({1}), frozenset()
    )
    assert (await _matched(store, box, SearchField.BODY, "STRASSE")).matched == frozenset()
    assert (await _matched(store, box, SearchField.FROM, "STRASSE")).matched == {1}
    assert (await _matched(store, box, SearchField.SUBJECT, "größe")).matched == {2}
    assert (await _matched(store, box, SearchField.BODY, "crème")).matched == {2}
    assert (await _matched(store, box, SearchField.TO, "bob@")).matched == {1}
    assert (await _matched(store, box, SearchField.CC, "bob@")).matched == frozenset()
    # The trace prefix (Delivered-To) is searched by TEXT and HEADER, not by BODY.
    assert (await _matched(store, box, SearchField.TEXT, "alice@example.org")).matched == {1, 2}
    assert (await _matched(store, box, SearchField.BODY, "alice@example.org")).matched == set()
    assert await store.search_candidates(box, [Clause(SearchField.TEXT, "in")]) is None
    both = [Clause(SearchField.TEXT, "invoice"), Clause(SearchField.BODY, "friday")]
    assert (await store.search_candidates(box, both)) == Candidates(frozenset({1}), frozenset())
    limited = await store.search_candidates(
        box, [Clause(SearchField.TEXT, "example")], uids=UidSet.of([2])
    )
    assert limited == Candidates(frozenset({2}), frozenset())


async def test_indexer_is_idempotent(store: Store, database_url: str) -> None:
    _, box = await _mailbox(store, PLAIN, PLAIN, HTML)  # two messages share a blob
    ref = await put_blob(store, PLAIN)
    await store.append(box, ref, internal_date=INTERNAL_DATE, summary="{}")
    assert await store.index_pending(limit=1) == 1
    assert await _index_all(store) == 3
    assert await store.index_pending() == 0
    assert _count(database_url, fulltext_docs) == 2
    assert _count(database_url, fulltext_messages) == 4
    found = await _matched(store, box, SearchField.TEXT, "invoice")
    assert found == Candidates(frozenset({1, 2, 4}), frozenset())


async def test_reindex_all(store: Store) -> None:
    _, box = await _mailbox(store, PLAIN, HTML)
    await _index_all(store)
    assert await store.reindex_all() == 2
    assert (await _matched(store, box, SearchField.TEXT, "invoice")).unindexed == {1, 2}
    assert await _index_all(store) == 2
    assert (await _matched(store, box, SearchField.TEXT, "invoice")).matched == {1}


async def test_expunge_and_collection_remove_index_rows(
    store: Store, database_url: str, blob_dir: Path, clock: FixedClock
) -> None:
    _, box = await _mailbox(store, PLAIN, HTML)
    await _index_all(store)
    await store.store_flags(box, UidSet.of([1]), FlagMode.ADD, frozenset({"\\Deleted"}))
    assert await store.expunge(box) == [1]
    assert _count(database_url, fulltext_messages) == 1  # with its message
    assert (await _matched(store, box, SearchField.TEXT, "invoice")).matched == set()
    await store.close()
    again = open_store(database_url, blob_dir, clock=clock)
    await again.open()  # start-up recovery collects the unreferenced blob
    try:
        assert _count(database_url, fulltext_docs) == 1  # with its blob
        if database_url.startswith("sqlite"):
            engine = create_engine(database_url)
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT count(*) FROM fulltext_fts")).scalar_one()
                conn.execute(
                    text("INSERT INTO fulltext_fts(fulltext_fts) VALUES('integrity-check')")
                )
            engine.dispose()
            assert rows == 1
    finally:
        await again.close()


HOSTILE = (
    '"',
    '""',
    "'; DROP TABLE messages; --",
    "%%%",
    "___",
    "a%b",
    "a_b",
    "\\\\\\",
    "/%/",
    "x\x00yz",
    "\x00\x00\x00",
    "NEAR(a b)",
    "{header} : x",
    "* OR ^ -",
    "\ud800abc",
    "y" * 10_000,
    "100% of the a_b",
)


async def test_hostile_needles(store: Store) -> None:
    _, box = await _mailbox(store, PLAIN, HTML)
    await _index_all(store)
    for needle in HOSTILE:
        for field in SearchField:
            clauses = [Clause(field, needle, "subject" if field is SearchField.HEADER else None)]
            found = await store.search_candidates(box, clauses)
            scan = await full_scan(store, box, clauses)
            if found is not None:
                assert scan <= found.matched, (needle, field)
    hit = await _matched(store, box, SearchField.BODY, "100% OF THE A_B")
    assert hit.matched == {1}
    assert (await _matched(store, box, SearchField.BODY, "100x of")).matched == set()
    assert (await _matched(store, box, SearchField.BODY, "a%b")).matched == set()


async def test_candidate_query_on_10000_messages(store: Store, database_url: str) -> None:
    (alice,) = await make_accounts(store, "alice")
    batch = []
    for i in range(10_000):
        body = (
            f"From: sender{i % 97}@example.net\r\nSubject: report {i}\r\n\r\n"
            f"Weekly numbers {i * 7919 % 100_003} for team {i % 13}.\r\n"
        ).encode()
        if i == 4321:
            body += b"The needle is here.\r\n"
        batch.append(delivery(alice, await put_blob(store, body)))
        if len(batch) == 500:
            await store.deliver(batch)
            batch = []
    box = (await store.deliver(batch))[0].mailbox_id if batch else None
    if box is None:
        mailbox = await store.get_mailbox(alice.id, "INBOX")
        assert mailbox is not None
        box = mailbox.id
    t0 = time.perf_counter()
    await _index_all(store)
    t1 = time.perf_counter()
    found = await _matched(store, box, SearchField.TEXT, "needle is")
    t2 = time.perf_counter()
    common = await _matched(store, box, SearchField.BODY, "team 7.")
    t3 = time.perf_counter()
    print(
        f"\n[{database_url.split(':')[0]}] indexed 10,000 messages in {t1 - t0:.2f} s; "
        f"TEXT rare: {1000 * (t2 - t1):.1f} ms ({len(found.matched)} candidates); "
        f"BODY common: {1000 * (t3 - t2):.1f} ms ({len(common.matched)} candidates)"
    )
    assert found.matched == {4322} and not found.unindexed


async def test_migrated_schema_matches_metadata_but_trigram_structures(
    store: Store, database_url: str
) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            opts = {"compare_type": True, "include_name": include_in_schema_compare}
            context = MigrationContext.configure(conn, opts=opts)
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
