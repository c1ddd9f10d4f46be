"""``postel account sender`` and ``account add --sender``: the per-account sender
policy of submission, stored and listed. Spec: RFC 6409 §6.1."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from postel.cli import main


class Cli:
    """Runs ``postel --data <tmp> ...`` in-process and captures its output."""

    def __init__(
        self, data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.data = data
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = main(["--data", str(self.data), *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert (code, err) == (0, ""), (code, err)
        return out

    def fails(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 1, (code, out, err)
        assert err.startswith("postel: error: ") and err.count("\n") == 1, err
        return err

    def json(self, *argv: str) -> list[dict[str, object]]:
        value = json.loads(self.ok(*argv, "--json"))
        assert isinstance(value, list)
        return value


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(tmp_path / "data", capsys, monkeypatch)


def policies(cli: Cli) -> dict[object, object]:
    return {a["address"]: a["sender"] for a in cli.json("account", "list")}


def test_accounts_are_added_with_a_sender_policy(cli: Cli) -> None:
    cli.ok("domain", "add", "example.org")
    cli.ok("account", "add", "alice@example.org", "--generate")
    cli.ok("account", "add", "gw@example.org", "--generate", "--sender", "any")
    cli.ok("account", "add", "role@example.org", "--generate", "--sender=domain")
    assert policies(cli) == {
        "alice@example.org": "own",
        "gw@example.org": "any",
        "role@example.org": "domain",
    }
    table = cli.ok("account", "list").splitlines()
    assert table[0].split() == ["ADDRESS", "ADMIN", "SENDER", "STORAGE", "MESSAGES", "CREATED"]
    assert [line.split()[:3] for line in table[1:]] == [
        ["alice@example.org", "no", "own"],
        ["gw@example.org", "no", "any"],
        ["role@example.org", "no", "domain"],
    ]


def test_account_sender_changes_the_policy(cli: Cli) -> None:
    cli.ok("domain", "add", "example.org")
    cli.ok("account", "add", "Alice@example.org", "--generate")
    out = cli.ok("account", "sender", "ALICE@example.org", "domain")
    assert out == "sender policy of Alice@example.org: domain\n"
    assert policies(cli) == {"Alice@example.org": "domain"}
    cli.ok("account", "sender", "alice@example.org", "any")
    assert policies(cli) == {"Alice@example.org": "any"}
    cli.ok("account", "sender", "alice@example.org", "own")
    assert policies(cli) == {"Alice@example.org": "own"}


def test_account_sender_errors(cli: Cli) -> None:
    cli.ok("domain", "add", "example.org")
    assert "no account nobody@example.org" in cli.fails(
        "account", "sender", "nobody@example.org", "any"
    )
    assert "not an address" in cli.fails("account", "sender", "nobody", "any")
    # A policy outside the closed set is a usage error (argparse, exit 2), nothing stored.
    code, _, err = cli("account", "sender", "alice@example.org", "everyone")
    assert code == 2 and "invalid choice" in err
    code, _, err = cli("account", "add", "alice@example.org", "--generate", "--sender", "all")
    assert code == 2 and "invalid choice" in err
    assert cli.json("account", "list") == []
