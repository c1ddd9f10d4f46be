"""Loading TOML configuration: values, defaults, and errors located by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from postel.config import (
    PRODUCTION_PORTS,
    BareLineEndings,
    Config,
    ConfigInvalid,
    Listen,
    Service,
    check,
    load,
    resolve_config,
)
from postel.config.listen import parse_endpoint
from postel.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "docs" / "postel.example.toml"

MINIMAL = """\
hostname = "mail.example.org"
data_dir = "data"

[tls]
cert_file = "cert.pem"
key_file = "key.pem"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[tuple[int | None, str]]:
    with pytest.raises(ConfigInvalid) as info:
        load(path)
    return [(e.line, e.message) for e in info.value.errors]


def test_example_file_loads() -> None:
    config = load(EXAMPLE)
    assert config.hostname == "mail.example.org"
    assert config.data_dir == Path("/var/lib/postel")
    assert config.admin_address == "admin@example.org"
    assert config.run_as == "postel"
    assert not config.embedded
    assert config.source == EXAMPLE.absolute()
    assert Listen(Service.SMTP, "::", 25) in config.listen
    assert not [x for x in config.listen if x.service is Service.POP3]
    assert config.abuse.exempt == ("127.0.0.0/8", "::1/128")
    assert config.tls.cert_file == Path("/etc/postel/tls/fullchain.pem")


def test_minimal_file_gets_production_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, MINIMAL))
    assert config.data_dir == tmp_path / "data"
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'postel.sqlite3'}"
    assert config.tls.cert_file == tmp_path / "cert.pem"
    assert {(x.service, x.host, x.port) for x in config.listen} == {
        (service, "0.0.0.0", port) for service, port in PRODUCTION_PORTS.items()
    }
    assert config.smtp.bare_line_endings is BareLineEndings.NORMALIZE
    assert config.admin_address is None


def test_sections_are_read(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[smtp]\nbare_line_endings = "strict"\nrecipients_max = 100\ncommand_timeout = 60\n'
        "[abuse]\nenabled = false\nwindow = 30.5\n"
        '[listen]\nsmtp = ["127.0.0.1:2525", "[::1]:2525"]\nweb = []\n'
    )
    config = load(write(tmp_path, text))
    assert config.smtp.bare_line_endings is BareLineEndings.STRICT
    assert config.smtp.recipients_max == 100
    assert config.smtp.command_timeout == 60.0
    assert isinstance(config.smtp.command_timeout, float)
    assert config.abuse.enabled is False
    assert config.abuse.window == 30.5
    smtp = [x for x in config.listen if x.service is Service.SMTP]
    assert smtp == [Listen(Service.SMTP, "127.0.0.1", 2525), Listen(Service.SMTP, "::1", 2525)]
    assert not [x for x in config.listen if x.service is Service.WEB]


def test_unknown_keys_are_located(tmp_path: Path) -> None:
    text = MINIMAL + "\n[smtp]\nrecipients_max = 100\nrecipient_max = 10\n[bogus]\nx = 1\n"
    path = write(tmp_path, text)
    assert sorted(errors_of(path)) == [
        (10, "smtp.recipient_max: unknown key in [smtp]"),
        (11, "bogus: unknown key in the top level"),
    ]


def test_wrong_types_are_located(tmp_path: Path) -> None:
    text = (
        'hostname = 25\ndata_dir = "d"\n[tls]\ncert_file = "c"\nkey_file = "k"\n'
        '[smtp]\nrecipients_max = "many"\nerrors_max = true\nbare_line_endings = "lax"\n'
        '[abuse]\nexempt = "10.0.0.0/8"\n'
    )
    found = errors_of(write(tmp_path, text))
    assert (1, "hostname: must be a string") in found
    assert (7, "smtp.recipients_max: must be an integer") in found
    assert (8, "smtp.errors_max: must be an integer") in found
    assert (9, 'smtp.bare_line_endings: "lax" is not one of "normalize", "strict"') in found
    assert (11, "abuse.exempt: must be a list of strings") in found


def test_bad_values(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[smtp]\nrecipients_max = 0\n[abuse]\nexempt = ["10.0.0.0/33"]\n'
        '[listen]\nsmtp = ["0.0.0.0:25", "mail.example.org:25", "0.0.0.0:70000", "::1:25"]\n'
        'submission = ["0.0.0.0:25"]\n'
    )
    found = dict(errors_of(write(tmp_path, text)))
    assert found[8] == "smtp.recipients_max: must be at least 100 (RFC 5321 §4.5.3.1.8)"
    assert found[10].startswith('abuse.exempt: "10.0.0.0/33" is not an IP network')
    messages = [m for line, m in errors_of(write(tmp_path, text)) if line == 12]
    assert any("host must be an IP address literal" in m for m in messages)
    assert any("port must be a number from 1 to 65535" in m for m in messages)
    assert any("write IPv6 addresses in brackets" in m for m in messages)
    assert found[13] == 'listen.submission: "0.0.0.0:25" is already used by smtp'


def test_required_keys(tmp_path: Path) -> None:
    found = [m for _, m in errors_of(write(tmp_path, "run_as = 'postel'\n"))]
    assert any(m.startswith("hostname is required") for m in found)
    assert any(m.startswith("data_dir is required") for m in found)
    assert any(m.startswith("tls: missing: add a [tls] table") for m in found)
    assert any("generate_self_signed = true" in m for m in found)


def test_a_tls_table_without_its_files_names_each_key_on_its_line(tmp_path: Path) -> None:
    text = 'hostname = "h.example"\ndata_dir = "d"\n\n[tls]\ncert_file = "c.pem"\n'
    assert errors_of(write(tmp_path, text)) == [
        (4, "tls.key_file: required (a PEM file), unless generate_self_signed = true")
    ]


def test_generate_self_signed_needs_no_files(tmp_path: Path) -> None:
    text = 'hostname = "h.example"\ndata_dir = "/srv/p"\n[tls]\ngenerate_self_signed = true\n'
    config = load(write(tmp_path, text))
    assert config.tls.generate_self_signed
    assert config.tls.cert_file == Path("/srv/p/tls/cert.pem")


def test_database_url(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postel@db.example/postel"
    config = load(write(tmp_path, MINIMAL.replace("[tls]", f'database_url = "{url}"\n[tls]')))
    assert config.database_url == url
    bad = MINIMAL.replace("[tls]", 'database_url = "mysql://x"\n[tls]')
    assert errors_of(write(tmp_path, bad)) == [
        (4, "database_url: must start with one of sqlite:///, postgresql://, postgresql+psycopg://")
    ]


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'hostname = "a.example"\n\ndata_dir = \n')
    found = errors_of(path)
    assert len(found) == 1
    assert found[0][0] == 3
    assert found[0][1].startswith("TOML syntax: ")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}:3: TOML syntax")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "missing.toml")
    assert info.value.file == str(tmp_path / "missing.toml")
    assert "cannot read" in info.value.message
    (tmp_path / "bin.toml").write_bytes(b"hostname = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(tmp_path / "bin.toml")


def test_check_reports_missing_tls_files_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    config, errors = check(path)
    assert config is not None
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (5, "tls.cert_file"),
        (6, "tls.key_file"),
    ]
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    assert [(e.line, e.message.split(":")[0]) for e in check(path)[1]] == [(5, "tls.cert_file")]


def test_check_loads_the_key_pair_the_listeners_will_use(tmp_path: Path) -> None:
    """What `serve` would refuse, `config check` reports: garbage PEM, a key that is not
    the certificate's, the certificate given as the key."""
    from postel.server.tls import ensure_self_signed

    path = write(tmp_path, MINIMAL)
    ensure_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.example.org")
    assert check(path)[1] == ()
    ensure_self_signed(tmp_path / "o" / "cert.pem", tmp_path / "o" / "key.pem", "other")
    (tmp_path / "key.pem").write_bytes((tmp_path / "o" / "key.pem").read_bytes())
    (message,) = [e.message for e in check(path)[1]]
    assert message.startswith("tls.key_file:") and "is not the key of" in message
    (tmp_path / "key.pem").write_bytes((tmp_path / "cert.pem").read_bytes())
    (message,) = [e.message for e in check(path)[1]]
    assert "no unencrypted PEM private key" in message
    (tmp_path / "cert.pem").write_text("garbage\n")
    (error,) = check(path)[1]
    assert (error.line, "no PEM certificate" in error.message) == (5, True)


def test_check_reports_an_unknown_run_as_user(tmp_path: Path) -> None:
    path = write(tmp_path, 'run_as = "no-such-user-here"\n' + MINIMAL)
    messages = [(e.line, e.message) for e in check(path)[1]]
    assert (1, "run_as: no user 'no-such-user-here' on this machine") in messages


def test_resolve_config(tmp_path: Path) -> None:
    embedded = resolve_config(None, tmp_path / "d")
    assert embedded == Config.embedded_default(tmp_path / "d")
    assert embedded.embedded
    assert resolve_config(None, None).data_dir == Path("postel-data").absolute()
    path = write(tmp_path, MINIMAL)
    assert resolve_config(path, None).hostname == "mail.example.org"
    with pytest.raises(ConfigError, match="not both"):
        resolve_config(path, tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.0.0.0:25", ("0.0.0.0", 25)), ("[::]:587", ("::", 587)), ("[::1]:1", ("::1", 1))],
)
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["25", ":25", "0.0.0.0", "0.0.0.0:0", "[0.0.0.0]:25", "[::]:x"])
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_forwarding_section(tmp_path: Path) -> None:
    config = load(write(tmp_path, MINIMAL))
    assert (config.forwarding.enabled, config.forwarding.srs_domain) == (True, "")
    text = MINIMAL + '\n[forwarding]\nenabled = false\nsrs_domain = "srs.example.org"\n'
    config = load(write(tmp_path, text))
    assert (config.forwarding.enabled, config.forwarding.srs_domain) == (False, "srs.example.org")
    bad = MINIMAL + '\n[forwarding]\nsrs_domain = "not a domain"\n'
    ((line, message),) = errors_of(write(tmp_path, bad))
    assert line == 9 and "forwarding.srs_domain" in message and "domain name" in message


def test_summary_says_where_a_generated_pair_goes(tmp_path: Path) -> None:
    """`config check` names the files a self-signed pair would be written to, and flags
    paths outside data_dir (the example's /etc paths kept by mistake)."""
    from postel.cli.config_commands import summary

    inside = load(
        write(
            tmp_path,
            'hostname = "m.example.org"\ndata_dir = "data"\n[tls]\ngenerate_self_signed = true\n',
        )
    )
    (line,) = [x for x in summary(inside) if x.startswith("tls:")]
    assert str(tmp_path / "data" / "tls" / "cert.pem") in line and "outside" not in line
    outside = load(write(tmp_path, MINIMAL.replace("[tls]", "[tls]\ngenerate_self_signed = true")))
    (line,) = [x for x in summary(outside) if x.startswith("tls:")]
    assert str(tmp_path / "cert.pem") in line and "(outside data_dir)" in line


def test_main_serves_false_needs_workers(tmp_path: Path) -> None:
    """[smtp] main_serves = false leaves port 25 to the worker processes: with none
    (processes = 1) nothing would serve it, so the key is refused at its line."""
    path = write(tmp_path, MINIMAL + "\n[smtp]\nmain_serves = false\n")
    assert errors_of(path) == [
        (9, "smtp.main_serves: false needs processes = 2 or more (no process would serve port 25)")
    ]
    path = write(tmp_path, MINIMAL + "\n[smtp]\nprocesses = 2\nmain_serves = false\n")
    config = load(path)
    assert config.smtp.processes == 2 and not config.smtp.main_serves
    assert load(write(tmp_path, MINIMAL)).smtp.main_serves
