"""Dovecot's scripted IMAP tests (``../shared/conformance/imaptest/tests``) replayed
against a running postel by our runner.

Every script whose required capabilities postel advertises must pass; the others are
skipped and name the missing capabilities (CATENATE, URLAUTH and NOTIFY are not
offered yet).
"""

from __future__ import annotations

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
