"""Dovecot's scripted IMAP tests (``../shared/conformance/imaptest/tests``) replayed
against a running postel by our runner.

Every script whose required capabilities postel advertises must pass; the others are
skipped and name the missing capabilities.
"""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.server import PostelServer

from .runner import Outcome, ServerAddress, run_script, script_paths

SCRIPTS_DIR = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "imaptest" / "tests"
PASSWORD = "imaptest-password-1"


@pytest.fixture(scope="module")
def imaptest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerAddress]:
    home = tmp_path_factory.mktemp("imaptest")
    server = PostelServer(home / "data")
    server.start()
    try:
        pwfile = home / "pw"
        pwfile.write_text(PASSWORD + "\n")
        server.cli("domain", "add", "imaptest.test")
        for user in ("user1", "user2"):
            server.cli("account", "add", f"{user}@imaptest.test", "--password-file", str(pwfile))
        _create_mailbox(server.imaps_port, "user2@imaptest.test", "imaptest")
        yield ServerAddress(
            "127.0.0.1",
            server.imaps_port,
            "user1@imaptest.test",
            PASSWORD,
            user2="user2@imaptest.test",
            password2=PASSWORD,
            tls=True,
        )
    finally:
        server.stop()


def _create_mailbox(port: int, user: str, mailbox: str) -> None:
    """Give the second user the test mailbox too: scripts with ``user 2: $user2``
    SELECT it on that user's connection (imaptest's set-up creates it only with the
    first connection, which logs in as the first user)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context) as client:
        client.login(user, PASSWORD)
        client.create(mailbox)
        client.logout()


def _scripts() -> list[Path]:
    if not SCRIPTS_DIR.is_dir():
        return []
    return script_paths([str(SCRIPTS_DIR)])


@pytest.mark.parametrize("script", _scripts(), ids=lambda p: p.name)
def test_imaptest_script(script: Path, imaptest_server: ServerAddress) -> None:
    result = run_script(script, imaptest_server)
    if result.outcome is Outcome.SKIPPED:
        pytest.skip(f"needs {' '.join(result.missing_capabilities)}")
    assert result.outcome is Outcome.PASSED, result.report()
