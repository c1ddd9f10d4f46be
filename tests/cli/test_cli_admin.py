"""The admin CLI, run in-process with ``main([...])`` and once as a real subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from postel.cli import main
from postel.clock import SystemClock
from postel.config import Config
from postel.directory import verify_password
from postel.server.tls import ensure_self_signed
from postel.store import Credentials, open_store

MINIMAL = """\
hostname = "mail.example.org"
data_dir = "data"
admin_address = "admin@example.org"

[tls]
cert_file = "cert.pem"
key_file = "key.pem"
"""


class Cli:
    """Runs ``postel --data <tmp> ...`` in-process and captures its output."""

    def __init__(
        self, data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.data = data
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["--data", str(self.data), *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str, stdin: str = "") -> str:
        code, out, err = self(*argv, stdin=stdin)
        assert (code, err) == (0, ""), (code, err)
        return out

    def fails(self, *argv: str, stdin: str = "") -> str:
        code, out, err = self(*argv, stdin=stdin)
        assert code == 1, (code, out, err)
        assert err.startswith("postel: error: ")
        assert err.count("\n") == 1, err  # one line, no traceback
        return err

    def json(self, *argv: str) -> list[dict[str, object]]:
        value = json.loads(self.ok(*argv, "--json"))
        assert isinstance(value, list)
        return value


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A data directory with an empty store."""
    config = Config.embedded_default(tmp_path / "data")
    config.data_dir.mkdir()

    async def create() -> None:
        store = open_store(config.database_url, config.blob_dir, clock=SystemClock())
        await store.open()
        await store.close()

    asyncio.run(create())
    return Cli(tmp_path / "data", capsys, monkeypatch)


def stored_credentials(data: Path, address: str) -> Credentials:
    async def get() -> Credentials:
        config = Config.embedded_default(data)
        store = open_store(config.database_url, config.blob_dir, clock=SystemClock())
        await store.open()
        try:
            account = await store.get_account(address)
            assert account is not None
            return account.credentials
        finally:
            await store.close()

    return asyncio.run(get())


def test_domains(cli: Cli) -> None:
    assert cli.ok("domain", "add", "Example.ORG") == "added domain example.org\n"
    assert cli.ok("domain", "add", "bücher.example") == "added domain xn--bcher-kva.example\n"
    assert "already exists" in cli.fails("domain", "add", "example.org")
    assert "not a valid domain" in cli.fails("domain", "add", "bad_domain.example")
    listing = cli.json("domain", "list")
    assert [d["name"] for d in listing] == ["example.org", "xn--bcher-kva.example"]
    assert set(listing[0]) == {"name", "created"}
    table = cli.ok("domain", "list").splitlines()
    assert table[0].split() == ["DOMAIN", "CREATED"]
    assert table[1].startswith("example.org ")
    assert cli.ok("domain", "remove", "xn--bcher-kva.example").startswith("removed domain")
    assert "no domain" in cli.fails("domain", "remove", "xn--bcher-kva.example")
    assert [d["name"] for d in cli.json("domain", "list")] == ["example.org"]


def test_empty_lists(cli: Cli) -> None:
    assert cli.ok("domain", "list") == "no domains\n"
    assert cli.json("account", "list") == []
    assert cli.ok("alias", "list") == "no aliases\n"


def test_account_needs_its_domain(cli: Cli) -> None:
    err = cli.fails("account", "add", "alice@example.org", "--generate")
    assert "postel domain add example.org" in err


def test_account_add_generated_password(cli: Cli) -> None:
    cli.ok("domain", "add", "example.org")
    out = cli.ok("account", "add", "Alice@Example.org", "--generate", "--admin")
    lines = out.splitlines()
    assert lines[0] == "added account Alice@example.org"
    password = lines[1].rpartition(": ")[2]
    assert len(password) == 20
    assert verify_password(stored_credentials(cli.data, "alice@example.org"), password)
    assert "already exists" in cli.fails("account", "add", "alice@example.org", "--generate")
    listing = cli.json("account", "list")
    assert listing == [
        {
            "address": "Alice@example.org",
            "admin": True,
            "sender": "own",
            "storage_used": 0,
            "storage_limit": None,
            "messages": 0,
            "messages_limit": None,
            "created": listing[0]["created"],
        }
    ]
    # JSON output of add carries the generated password once.
    # (one object, not a list: one account was added)
    added = json.loads(cli.ok("account", "add", "bob@example.org", "--generate", "--json"))
    assert isinstance(added, dict) and added["address"] == "bob@example.org"
    assert isinstance(added["password"], str)
    assert verify_password(stored_credentials(cli.data, "bob@example.org"), added["password"])


def test_account_password_from_stdin_file_and_prompt(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.ok("domain", "add", "example.org")
    cli.ok("account", "add", "a@example.org", stdin="stdin-password\nignored\n")
    assert verify_password(stored_credentials(cli.data, "a@example.org"), "stdin-password")
    assert "no password" in cli.fails("account", "add", "b@example.org", stdin="")
    assert "shorter than" in cli.fails("account", "add", "b@example.org", stdin="short\n")

    secret = tmp_path / "secret"
    secret.write_text("file-password\r\n", encoding="utf-8")
    cli.ok("account", "add", "b@example.org", "--password-file", str(secret))
    assert verify_password(stored_credentials(cli.data, "b@example.org"), "file-password")
    assert "cannot read password file" in cli.fails(
        "account", "add", "c@example.org", "--password-file", str(tmp_path / "missing")
    )

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["prompt-password", "prompt-password", "one-password", "two-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(sys, "stdin", Tty())
    assert main(["--data", str(cli.data), "account", "add", "c@example.org"]) == 0
    assert verify_password(stored_credentials(cli.data, "c@example.org"), "prompt-password")
    assert main(["--data", str(cli.data), "account", "add", "d@example.org"]) == 1
    assert "do not match" in cli.capsys.readouterr().err

    def end_of_input(prompt: str = "") -> str:  # Ctrl-D at the prompt
        raise EOFError

    monkeypatch.setattr("getpass.getpass", end_of_input)
    assert main(["--data", str(cli.data), "account", "add", "d@example.org"]) == 1
    err = cli.capsys.readouterr().err
    assert err.startswith("postel: error: no password given") and "internal" not in err


def test_account_passwd_list_remove(cli: Cli) -> None:
    cli.ok("domain", "add", "example.org")
    cli.ok("domain", "add", "example.net")
    cli.ok("account", "add", "a@example.org", stdin="first-password\n")
    cli.ok("account", "add", "b@example.net", stdin="other-password\n")
    out = cli.ok("account", "passwd", "A@example.org", "--generate")
    password = out.splitlines()[1].rpartition(": ")[2]
    credentials = stored_credentials(cli.data, "a@example.org")
    assert verify_password(credentials, password)
    assert not verify_password(credentials, "first-password")
    assert "no account" in cli.fails("account", "passwd", "z@example.org", "--generate")
    assert [a["address"] for a in cli.json("account", "list", "--domain", "example.net")] == [
        "b@example.net"
    ]
    table = cli.ok("account", "list").splitlines()
    assert table[0].split() == ["ADDRESS", "ADMIN", "SENDER", "STORAGE", "MESSAGES", "CREATED"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["a@example.org", "no"],
        ["b@example.net", "no"],
    ]
    assert "removed account" in cli.ok("account", "remove", "a@example.org")
    assert "no account" in cli.fails("account", "remove", "a@example.org")
    assert "not an address" in cli.fails("account", "remove", "nobody")


def test_aliases(cli: Cli) -> None:
    cli.ok("domain", "add", "example.org")
    cli.ok("domain", "add", "example.net")
    cli.ok("account", "add", "alice@example.org", stdin="alice-password\n")
    cli.ok("account", "add", "bob@example.org", stdin="bob-password\n")
    out = cli.ok("alias", "add", "Team@Example.org", "alice@example.org", "bob@example.org")
    assert out == "added alias Team@example.org -> alice@example.org, bob@example.org\n"
    cli.ok("alias", "add", "@example.org", "team@example.org")
    # an address only the catch-all takes is no target: the alias would go with it
    assert "no such account or alias" in cli.fails(
        "alias", "add", "ghost@example.org", "nobody@example.org"
    )
    out = cli.ok("alias", "add", "fwd@example.org", "Someone@Gmail.example")
    assert out == "added alias fwd@example.org -> Someone@gmail.example\n"
    assert "added alias" in cli.ok("alias", "add", "far@example.org", "fwd@example.org")
    assert "not a valid domain" in cli.fails("alias", "add", "bad@example.org", "x@-bad-.example")
    assert "no such account or alias" in cli.fails(
        "alias", "add", "x@example.net", "nobody@example.net"
    )
    assert "does not exist" in cli.fails("alias", "add", "x@nowhere.example", "bob@example.org")
    assert "already exists" in cli.fails("alias", "add", "team@example.org", "bob@example.org")
    listing = cli.json("alias", "list")
    assert [(a["source"], a["targets"]) for a in listing] == [
        ("@example.org", ["team@example.org"]),
        ("far@example.org", ["fwd@example.org"]),
        ("fwd@example.org", ["Someone@gmail.example"]),
        ("Team@example.org", ["alice@example.org", "bob@example.org"]),
    ]
    table = cli.ok("alias", "list").splitlines()
    assert table[0].split() == ["ALIAS", "TARGETS", "CREATED"]
    assert "alice@example.org, bob@example.org" in table[4]
    assert "removed alias @example.org" in cli.ok("alias", "remove", "@example.org")
    assert "no alias" in cli.fails("alias", "remove", "@example.org")
    code, out, err = cli("alias", "remove", "fwd@example.org")  # far@ still names it
    assert code == 0 and out == "removed alias fwd@example.org\n"
    assert err.startswith("postel: note: fwd@example.org is still a target of far@example.org")


def test_removing_an_account_names_the_aliases_it_changes(cli: Cli) -> None:
    """The account leaves every alias's targets; an alias left without a target goes
    too. Neither happens silently: one note for the aliases removed, one for those
    that keep other targets."""
    cli.ok("domain", "add", "example.org")
    cli.ok("account", "add", "alice@example.org", stdin="alice-password\n")
    cli.ok("account", "add", "bob@example.org", stdin="bob-password\n")
    cli.ok("alias", "add", "@example.org", "alice@example.org")
    cli.ok("alias", "add", "sales@example.org", "Alice@example.org")
    cli.ok("alias", "add", "team@example.org", "alice@example.org", "bob@example.org")
    code, out, err = cli("account", "remove", "alice@example.org")
    assert (code, out) == (0, "removed account alice@example.org\n")
    assert err.splitlines() == [
        "postel: note: removed alias @example.org, sales@example.org too "
        "(alice@example.org was its only target)",
        "postel: note: alice@example.org is no longer a target of alias team@example.org",
    ]
    listing = cli.json("alias", "list")
    assert [(a["source"], a["targets"]) for a in listing] == [
        ("team@example.org", ["bob@example.org"])
    ]
    # an account no alias names: no note
    cli.ok("account", "add", "carol@example.org", stdin="carol-password\n")
    assert cli.ok("account", "remove", "carol@example.org") == (
        "removed account carol@example.org\n"
    )


@pytest.mark.parametrize("command", ["domain add", "dkim generate", "dns records"])
def test_a_domain_may_be_written_with_the_roots_dot(cli: Cli, command: str) -> None:
    """``example.net.`` (the absolute form zone files use) names example.net; two dots
    at the end are still refused."""  # `dns records` notes the hostname localhost
    if command != "domain add":
        cli.ok("domain", "add", "example.net")
    code, _, err = cli(*command.split(), "example.net.")
    assert code == 0 and "error" not in err, err
    assert [d["name"] for d in cli.json("domain", "list")] == ["example.net"]
    assert "not a valid domain" in cli.fails("domain", "add", "example.org..")


@pytest.mark.parametrize("alias_first", [False, True])
def test_an_alias_that_shadows_an_account_is_pointed_out(cli: Cli, alias_first: bool) -> None:
    """An alias and an account of the same address: the alias decides where its mail
    goes, so whichever comes second says that the account gets no copy unless the
    alias names it (in either order, and not when the alias keeps a copy)."""
    cli.ok("domain", "add", "example.org")
    cli.ok("account", "add", "bob@example.org", stdin="bob-password\n")
    steps = [
        ("account", "add", "Alice@example.org", "--password-file", "-"),
        ("alias", "add", "alice@Example.org", "bob@example.org"),
    ]
    if alias_first:
        steps.reverse()
    *_, (code, out, err) = [cli(*step, stdin="alice-password\n") for step in steps]
    assert code == 0 and out
    assert err.startswith("postel: note: ") and err.count("\n") == 1
    assert "both an account and an alias" in err
    cli.ok("alias", "add", "team@example.org", "alice@example.org")
    code, out, err = cli("alias", "remove", "alice@example.org")
    assert code == 0 and err == ""  # team@ names alice@, and her account still takes it
    cli.ok("alias", "add", "alice@example.org", "ALICE@example.org", "bob@example.org")
    cli.ok("alias", "add", "@example.org", "bob@example.org")  # a catch-all shadows no one
    for target in ("bob+news@example.org", "postmaster@example.org", "Abuse@example.org"):
        cli.ok("alias", "add", f"to-{target.partition('@')[0].lower()}@example.org", target)


def test_options_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "elsewhere"
    assert main(["domain", "add", "example.org", "--data", str(data)]) == 0
    assert main(["domain", "list", "--json", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[-1])[0]["name"] == "example.org"


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["domain"]) == 2
    assert main(["account", "add", "a@example.org", "--generate", "--password-file", "f"]) == 2
    assert main(["--data", str(tmp_path), "--config", str(tmp_path / "c.toml"), "serve"]) == 2
    assert main(["--data", str(tmp_path), "domain", "list", "--config", "c.toml"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "postel.toml"
    path.write_text(MINIMAL + "\n[smtp]\nrecipients_max = 'x'\n", encoding="utf-8")
    assert main(["config", "check", "--config", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:6: tls.cert_file: {tmp_path / 'cert.pem'} does not exist",
        f"{path}:7: tls.key_file: {tmp_path / 'key.pem'} does not exist",
        f"{path}:10: smtp.recipients_max: must be an integer",
    ]
    path.write_text(MINIMAL, encoding="utf-8")
    assert main(["config", "check", "--config", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:6: tls.cert_file: {tmp_path / 'cert.pem'} does not exist",
        f"{path}:7: tls.key_file: {tmp_path / 'key.pem'} does not exist",
    ]
    ensure_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.example.org")
    assert main(["--config", str(path), "config", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ok"
    assert "hostname: mail.example.org" in out
    assert main(["config", "check", "--data", str(tmp_path / "d")]) == 0
    assert "embedded default" in capsys.readouterr().out


def test_config_check_redacts_database_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "postel.toml"
    url = "postgresql+psycopg://postel:hunter2@db.example/postel"
    text = MINIMAL.replace("[tls]", f'database_url = "{url}"\n\n[tls]')
    path.write_text(text)
    ensure_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.example.org")
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "postgresql+psycopg://postel:***@db.example/postel" in out


def test_a_bad_config_file_is_one_line_for_other_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "postel.toml"
    path.write_text("hostname = [\n", encoding="utf-8")
    assert main(["--config", str(path), "domain", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"postel: error: {path}:")
    assert err.count("\n") == 1


def test_subprocess(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    postel = Path(sys.executable).with_name("postel")
    command = [str(postel)] if postel.exists() else [sys.executable, "-m", "postel"]

    def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *argv], input=stdin, capture_output=True, text=True, timeout=60
        )

    assert run("--data", data, "domain", "add", "example.org").returncode == 0
    added = run("--data", data, "account", "add", "bob@example.org", stdin="bob-password\n")
    assert (added.returncode, added.stderr) == (0, "")
    listing = subprocess.run(
        [sys.executable, "-m", "postel", "account", "list", "--json", "--data", data],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)[0]["address"] == "bob@example.org"
    failed = run("--data", data, "account", "add", "x@nowhere.example", "--generate")
    assert failed.returncode == 1
    assert failed.stderr.startswith("postel: error: domain nowhere.example does not exist")
    assert "Traceback" not in failed.stderr


def test_serve_calls_the_app_with_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = pytest.importorskip("postel.app")
    seen: list[Config] = []

    async def fake_serve(config: Config) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(app, "serve", fake_serve)
    assert main(["serve", "--data", str(tmp_path / "d")]) == 0
    assert seen == [Config.embedded_default(tmp_path / "d")]


def test_admin_commands_do_not_create_the_default_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run in the wrong directory, without --data or --config, an admin command says
    where it looked instead of making an empty ./postel-data there."""
    monkeypatch.chdir(tmp_path)
    for argv in (["account", "list"], ["domain", "add", "x.test"], ["queue", "list"]):
        assert main(argv) == 1
        assert "no postel data here" in capsys.readouterr().err
    assert not (tmp_path / "postel-data").exists()
    assert main(["config", "check"]) == 0


COMMANDS_ON_EXISTING_DATA = (
    ["domain", "list"],
    ["account", "list"],
    ["alias", "list"],
    ["queue", "list"],
    ["account", "add", "a@x.test", "--generate"],
    ["dmarc", "reports"],
)
"""Admin commands that need a data directory someone already made."""


def test_a_data_dir_that_does_not_exist_is_made_only_by_domain_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --data DIR gets an error naming it, not an empty listing and a new
    directory; `domain add` (the first step of a new data directory) still makes it."""
    typo = tmp_path / "typo"
    other = tmp_path / "other"  # a directory, but not postel's
    other.mkdir()
    for argv in COMMANDS_ON_EXISTING_DATA:
        assert main(["--data", str(typo), *argv]) == 1, argv
        assert f"no postel data in {typo}" in capsys.readouterr().err
        assert main(["--data", str(other), *argv]) == 1, argv
        assert f"no postel data in {other}" in capsys.readouterr().err
    assert not typo.exists() and list(other.iterdir()) == []
    assert main(["--data", str(typo), "domain", "add", "x.test"]) == 0
    assert typo.is_dir()
    capsys.readouterr()
    assert main(["--data", str(typo), "domain", "list"]) == 0
    assert "x.test" in capsys.readouterr().out


def test_a_configured_data_dir_without_a_database_is_made_only_by_domain_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same rule for a configuration file: a data_dir (or database_url) naming no
    database of postel's is refused by every admin command but `domain add`, with the
    file named, and nothing is created there."""
    typo = tmp_path / "typo-data"
    config = tmp_path / "postel.toml"
    config.write_text(
        f'hostname = "mx.x.test"\ndata_dir = "{typo}"\n[tls]\ngenerate_self_signed = true\n'
    )
    for argv in COMMANDS_ON_EXISTING_DATA:
        assert main(["--config", str(config), *argv]) == 1, argv
        err = capsys.readouterr().err
        assert "no postel database at" in err and str(config) in err, argv
    assert not typo.exists()
    assert main(["--config", str(config), "domain", "add", "x.test"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "domain", "list"]) == 0
    assert "x.test" in capsys.readouterr().out
    assert main(["--config", str(config), "account", "list"]) == 0
