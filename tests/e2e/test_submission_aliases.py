"""Submitted mail to an alias whose targets include addresses at other domains: those
copies are queued like any relayed recipient (never dropped), local targets get theirs,
and the alias is kept as the original recipient. Spec: RFC 6409 §4.3; RFC 5321 §3.9;
RFC 3461 §4.2 (ORCPT)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .imap_helpers import add_accounts
from .outbound_helpers import mailbox_messages, simple_message, submit
from .server import PostelServer

ALICE = "alice@a.test"
BOB = "bob@a.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    instance = PostelServer(tmp_path_factory.mktemp("aliases"))  # delivery off: mail waits
    add_accounts(instance, ALICE, BOB)
    instance.cli("alias", "add", "fwd@a.test", "far@remote.test")
    instance.cli("alias", "add", "mix@a.test", BOB, "other@remote.test")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def _queued(server: PostelServer) -> dict[str, dict[str, object]]:
    rows = json.loads(server.cli("queue", "list", "--json").stdout or "[]")
    return {str(row["recipient"]): row for row in rows}


def test_remote_alias_targets_are_queued(server: PostelServer) -> None:
    submit(server, ALICE, ["fwd@a.test"], simple_message(ALICE, "fwd@a.test", "f", "to-fwd"))
    submit(server, ALICE, ["mix@a.test"], simple_message(ALICE, "mix@a.test", "m", "to-mix"))
    queued = _queued(server)
    assert {"far@remote.test", "other@remote.test"} <= set(queued), queued
    assert any(b"to-mix" in m for m in mailbox_messages(server, BOB))
