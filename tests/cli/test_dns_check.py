"""`postel dns check` against a real authoritative server (Knot DNS) serving a zone made
from `postel dns records --zone`: all ok; a wrong SPF and a missing DMARC; SERVFAIL."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dnsserver import DnsServer, serving
from postel.cli import main
from postel.server.tls import ensure_self_signed

DOMAIN = "example.test"
HOSTNAME = "mail.example.test"

_SOA = """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
"""

_CONFIG = """\
hostname = "{hostname}"
data_dir = "data"

[tls]
cert_file = "cert.pem"
key_file = "key.pem"

[dns]
nameservers = ["{nameserver}"]

[listen]
smtp = ["127.0.0.1:2525"]
submissions = ["127.0.0.1:2465"]
submission = []
imap = []
imaps = ["127.0.0.1:1993"]
pop3 = []
pop3s = []
web = []
"""


@dataclass(frozen=True)
class Site:
    """A configuration file whose data directory holds DKIM keys for DOMAIN."""

    config: Path

    def point_at(self, server: DnsServer) -> None:
        host, port = server.nameserver
        text = _CONFIG.format(hostname=HOSTNAME, nameserver=f"{host}:{port}")
        self.config.write_text(text, encoding="utf-8")


def _run(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    base = tmp_path_factory.mktemp("dnscheck")
    ensure_self_signed(base / "cert.pem", base / "key.pem", HOSTNAME)
    config = base / "postel.toml"
    config.write_text(
        _CONFIG.format(hostname=HOSTNAME, nameserver="127.0.0.1:53"), encoding="utf-8"
    )
    assert main(["--config", str(config), "domain", "add", DOMAIN]) == 0
    assert main(["--config", str(config), "dkim", "generate", DOMAIN]) == 0
    return Site(config)


@pytest.fixture
def zone(site: Site, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code, out = _run(site.config, capsys, "dns", "records", DOMAIN, "--zone", "--ipv4", "127.0.0.1")
    assert code == 0
    return _SOA + out


@contextlib.contextmanager
def _serve(zones: dict[str, str], servfail_zones: tuple[str, ...] = ()) -> Iterator[DnsServer]:
    yield from serving(zones, servfail_zones)


def _check(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, dict[str, object]]]:
    code, out = _run(site.config, capsys, "dns", "check", DOMAIN, "--ipv4", "127.0.0.1", "--json")
    rows = json.loads(out)
    return code, {f"{row['name']} {row['type']}": row for row in rows}


def test_zone_from_records_checks_ok(
    site: Site, zone: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with _serve({DOMAIN: zone}) as server:
        site.point_at(server)
        code, rows = _check(site, capsys)
        assert code == 0, rows
        assert {row["status"] for row in rows.values()} == {"ok"}, rows
        assert len(rows) == 15  # MX, A, SPF, 2 DKIM, DMARC, MTA-STS x2, TLS-RPT, 6 SRV
        assert rows[f"{DOMAIN} MX"]["served"] == [f"10 {HOSTNAME}."]
        assert rows[f"_pop3._tcp.{DOMAIN} SRV"]["served"] == ["0 0 0 ."]

        code, out = _run(site.config, capsys, "dns", "check", DOMAIN, "--ipv4", "127.0.0.1")
        assert code == 0
        assert out.splitlines()[-1] == "6 of 6 required records ok"


def test_wrong_spf_and_missing_dmarc(
    site: Site, zone: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = zone.splitlines()
    spf = next(i for i, line in enumerate(lines) if '"v=spf1' in line)
    lines[spf] = f'{DOMAIN}. IN TXT "v=spf1 a ~all"'
    lines = [line for line in lines if not line.startswith(f"_dmarc.{DOMAIN}.")]
    with _serve({DOMAIN: "\n".join(lines) + "\n"}) as server:
        site.point_at(server)
        code, rows = _check(site, capsys)
        assert code == 1
        bad = {key: row["status"] for key, row in rows.items() if row["status"] != "ok"}
        assert bad == {f"{DOMAIN} TXT": "different", f"_dmarc.{DOMAIN} TXT": "missing"}
        assert rows[f"{DOMAIN} TXT"]["served"] == ["v=spf1 a ~all"]
        assert rows[f"{DOMAIN} TXT"]["expected"] == "v=spf1 mx -all"

        code, out = _run(site.config, capsys, "dns", "check", DOMAIN, "--ipv4", "127.0.0.1")
        assert code == 1
        table = out.splitlines()
        assert table[0].split()[:3] == ["status", "name", "type"]
        assert any(line.split()[:2] == ["missing", f"_dmarc.{DOMAIN}"] for line in table)
        assert table[-1] == "4 of 6 required records ok"


def test_servfail_is_an_error_per_record(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    with _serve({"other.test": _SOA}, servfail_zones=(DOMAIN,)) as server:
        site.point_at(server)
        code, rows = _check(site, capsys)
        assert code == 1
        assert {row["status"] for row in rows.values()} == {"error"}
        assert "SERVFAIL" in str(rows[f"{DOMAIN} MX"]["detail"])
