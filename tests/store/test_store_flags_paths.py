"""STORE on SQLite runs on the writer thread's sqlite3 connection (store/flags_sqlite.py);
the SQLAlchemy statements of message_ops.store_flags are the same operation. For random
sequences of STOREs (every mode, keywords in several cases, \\Recent, unknown and
several UID ranges, UNCHANGEDSINCE) both give the same FlagsResult and leave the same
flags and MODSEQs behind. Spec: RFC 9051 §6.4.6; RFC 7162 §3.1.3."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel.store import Store
from postel.store import message_ops as xq
from postel.store.api import FlagMode, FlagsResult, InvalidFlag, UidSet
from postel.store.sql import SqlStore

from .conftest import T0
from .test_contract import make_accounts, message, put_blob

MESSAGES = 6
FLAGS = ("\\Seen", "\\Deleted", "\\Flagged", "\\Recent", "$Label", "$label", "$LABEL", "Work")

uid_ranges = st.lists(
    st.tuples(st.integers(1, MESSAGES + 2), st.integers(1, MESSAGES + 2)), min_size=0, max_size=3
)
store_op = st.tuples(
    st.sampled_from(list(FlagMode)),
    st.frozensets(st.sampled_from(FLAGS), max_size=4),
    uid_ranges,
    st.one_of(st.none(), st.integers(0, 12)),
)

_names = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(store_op, min_size=1, max_size=8))
async def test_sqlite3_store_equals_the_sqlalchemy_store(
    store: Store, ops: list[tuple[FlagMode, frozenset[str], list[tuple[int, int]], int | None]]
) -> None:
    assert isinstance(store, SqlStore)
    if store.dialect != "sqlite":
        pytest.skip("the sqlite3 path exists on SQLite only")
    account = await store.get_account("alice@example.org")
    if account is None:
        (account,) = await make_accounts(store, "alice")
    n = next(_names)
    fast = await store.create_mailbox(account.id, f"Fast{n}")
    general = await store.create_mailbox(account.id, f"General{n}")
    for i in range(MESSAGES):
        for box in (fast, general):
            ref = await put_blob(store, message(i, 200))
            await store.append(box.id, ref, internal_date=T0, summary="{}")
    for mode, flags, ranges, since in ops:
        uids = UidSet.from_ranges(ranges)
        try:
            got: FlagsResult | type[InvalidFlag] = await store.store_flags(
                fast.id, uids, mode, flags, since
            )
        except InvalidFlag:
            got = InvalidFlag
        try:
            want: FlagsResult | type[InvalidFlag] = await store._write(
                xq.store_flags, xq.Dialect("sqlite"), general.id, uids, mode, flags, since
            )
        except InvalidFlag:
            want = InvalidFlag
        assert got == want, (mode, flags, ranges, since)
        rows = [
            [(m.uid, m.flags, m.modseq) for m in await store.list_messages(box.id)]
            for box in (fast, general)
        ]
        assert rows[0] == rows[1]
        statuses = [await store.mailbox_status(box.id) for box in (fast, general)]
        assert statuses[0].highestmodseq == statuses[1].highestmodseq
