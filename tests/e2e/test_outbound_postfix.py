"""Postel delivers to Postfix: a message submitted at postel A (a.test, 127.0.0.2) to
user@p.test goes, through p.test's MX in a real DNS server (Knot), to a real Postfix
(Debian's package) listening on 127.0.0.4 as the receiving MTA for p.test. Postfix
accepts it over STARTTLS (its log shows the TLS connection and ``status=sent``) and
stores it in a Maildir the test reads.

The Postfix instance is private to the test: its own config, queue and data
directories in a temp dir (``postfix -c DIR``), one smtpd on 127.0.0.4 at A's delivery
port, a certificate the test makes, and a log file (``maillog_file``, Postfix >= 3.4);
it is stopped in teardown and touches no system Postfix.

Spec: RFC 5321 §5.1 (MX); RFC 3207 (STARTTLS); RFC 7435 (opportunistic TLS).
"""

from __future__ import annotations

import contextlib
import email
import os
import pty
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from pathlib import Path

import pytest

from dnsserver import DnsServer, DnsServerMissing

from .imap_helpers import add_accounts
from .outbound_helpers import (
    SENDER_HOST,
    make_certificate,
    mx_zone,
    received_fields,
    simple_message,
    submit,
    wait_for_empty_queue,
)
from .server import PostelServer, free_port

POSTFIX = Path("/usr/sbin/postfix")
POSTFIX_HOST = "127.0.0.4"
"""Loopback address of the Postfix instance (p.test's MX)."""
POSTFIX_HOSTNAME = "mx.p.test"
MAILBOX_UID = 65534
"""The owner of delivered mail (Debian's ``nobody``; above virtual_minimum_uid 100)."""
ALICE = "alice@a.test"
USER = "user@p.test"
ARRIVED_WITHIN = 30.0
"""Seconds from submission at A until the message is in Postfix's Maildir."""
START_TIMEOUT = 30.0
"""Seconds Postfix may take to listen."""
STOP_TIMEOUT = 15.0
"""Seconds ``postfix stop`` may take before the remaining processes are killed."""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/spool
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {base}
maillog_file = {log}
myhostname = {hostname}
mydomain = p.test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
virtual_mailbox_domains = p.test
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = inline:{{ {user}=user/ }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
smtpd_banner = $myhostname ESMTP
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
biff = no
smtpd_tls_security_level = may
smtpd_tls_cert_file = {base}/tls/cert.pem
smtpd_tls_key_file = {base}/tls/key.pem
smtpd_tls_loglevel = 1
"""
"""Postfix's main.cf: virtual mailbox domain p.test (one Maildir, owned by nobody),
no DNS of its own (no client name lookups: the machine has no resolver to ask),
opportunistic STARTTLS with one log line per TLS session."""

_MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
"""Debian's master.cf without chroot, with one smtpd on ``host``:``port`` instead of
port 25 on every interface."""


@dataclass
class PostfixInstance:
    """One private Postfix: ``postfix -c <base>/etc`` with its own queue, data, mail
    and log under ``base`` (a fresh temp dir, world-traversable so that Postfix's
    unprivileged daemons and the Maildir owner can reach their parts)."""

    base: Path
    host: str
    port: int

    @property
    def config_dir(self) -> Path:
        return self.base / "etc"

    @property
    def log(self) -> Path:
        return self.base / "log" / "postfix.log"

    @property
    def maildir(self) -> Path:
        return self.base / "mail" / "user"

    def _postfix(self, *args: str) -> tuple[int, str]:
        """Run ``postfix -c <config_dir> ARGS``; returns (exit code, what it printed).
        Postfix prints its errors only to a terminal (or the log it may not have yet),
        so its output goes to a pseudo-terminal."""
        control, terminal = pty.openpty()
        try:
            code = subprocess.run(
                [str(POSTFIX), "-c", str(self.config_dir), *args],
                stdin=subprocess.DEVNULL,
                stdout=terminal,
                stderr=terminal,
                timeout=60,
                check=False,
            ).returncode
        finally:
            os.close(terminal)
        output = b""
        with contextlib.suppress(OSError):  # EIO once the terminal side is closed
            while chunk := os.read(control, 4096):
                output += chunk
        os.close(control)
        return code, output.decode(errors="replace")

    def configure(self) -> None:
        base = self.base
        base.chmod(0o755)
        for sub in ("etc", "spool", "data", "mail", "log", "tls"):
            (base / sub).mkdir()
            (base / sub).chmod(0o755)  # whatever the umask: Postfix's daemons must enter
        shutil.chown(base / "data", "postfix", "postfix")
        os.chown(base / "mail", MAILBOX_UID, MAILBOX_UID)
        make_certificate(base / "tls" / "cert.pem", base / "tls" / "key.pem", POSTFIX_HOSTNAME)
        (self.config_dir / "main.cf").write_text(
            _MAIN_CF.format(
                base=base,
                log=self.log,
                hostname=POSTFIX_HOSTNAME,
                host=self.host,
                user=USER,
                uid=MAILBOX_UID,
            )
        )
        (self.config_dir / "master.cf").write_text(
            _MASTER_CF.format(host=self.host, port=self.port)
        )

    def start(self) -> None:
        """``postfix start``, then wait for smtpd's greeting."""
        code, output = self._postfix("start")
        assert code == 0, f"postfix start failed ({code}): {output}\n{self.logs()}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=2) as s,
            ):
                if s.recv(100).startswith(b"220"):
                    return
            time.sleep(0.1)
        pytest.fail(f"Postfix did not greet on {self.host}:{self.port}:\n{self.logs()}")

    def _master_pid(self) -> int | None:
        try:
            return int((self.base / "spool" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _children(self, parent: int) -> list[int]:
        """Processes whose parent is ``parent`` (the master's daemons)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """``postfix stop``; the master and its daemons still alive after STOP_TIMEOUT
        are killed (by their process ids, which this instance's master owns)."""
        master = self._master_pid()
        ours = [master, *self._children(master)] if master is not None else []
        self._postfix("stop")
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(_alive(pid) for pid in ours):
            time.sleep(0.1)
        for pid in ours:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def delivered(self) -> list[bytes]:
        """Messages in the Maildir's new/ folder, oldest first."""
        new = self.maildir / "new"
        if not new.is_dir():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours (none here: postfix daemonises) would count as alive.
    return True


@pytest.fixture(scope="module")
def postfix_chain(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PostelServer, PostfixInstance]]:
    if not POSTFIX.exists():
        pytest.skip(f"{POSTFIX} is missing (Debian's postfix package)")
    # Short and traversable: Postfix's daemons run as 'postfix', the Maildir's as nobody.
    base = Path(tempfile.mkdtemp(prefix="postel-pf-", dir="/tmp"))
    postfix = PostfixInstance(base, POSTFIX_HOST, free_port(POSTFIX_HOST))
    dns_server: DnsServer | None = None
    sender: PostelServer | None = None
    try:
        postfix.configure()
        zones = {"a.test": mx_zone(SENDER_HOST), "p.test": mx_zone(POSTFIX_HOST)}
        try:
            dns_server = DnsServer(zones).start()
        except DnsServerMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        ns_host, ns_port = dns_server.nameserver
        sender = PostelServer(
            tmp_path_factory.mktemp("outbound-postfix") / "a",
            host=SENDER_HOST,
            delivery={"enabled": True, "port": postfix.port, "bind_address": SENDER_HOST},
            dns={"nameservers": [f"{ns_host}:{ns_port}"]},
        )
        add_accounts(sender, ALICE)
        postfix.start()
        sender.start()
        yield sender, postfix
    finally:
        if sender is not None:
            sender.stop()
        postfix.stop()
        if dns_server is not None:
            dns_server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_delivery(postfix: PostfixInstance, marker: bytes) -> bytes:
    deadline = time.monotonic() + ARRIVED_WITHIN
    while time.monotonic() < deadline:
        for message in postfix.delivered():
            if marker in message:
                return message
        time.sleep(0.3)
    raise AssertionError(f"{marker!r} not delivered by Postfix:\n{postfix.logs()[-4000:]}")


def test_postfix_accepts_the_message_over_tls(
    postfix_chain: tuple[PostelServer, PostfixInstance],
) -> None:
    sender, postfix = postfix_chain
    submit(sender, ALICE, [USER], simple_message(ALICE, USER, "to postfix", "postfix-marker"))
    stored = _wait_for_delivery(postfix, b"postfix-marker")

    parsed = email.message_from_bytes(stored, policy=policy.default)
    assert parsed["Subject"] == "to postfix"
    assert parsed["Return-Path"] == f"<{ALICE}>"
    assert "Message-ID" in parsed and "Date" in parsed  # added at A's submission
    by_postfix = received_fields(stored)[0]
    assert f"[{SENDER_HOST}]" in by_postfix, by_postfix  # A sent from its own address
    assert f"by {POSTFIX_HOSTNAME}" in by_postfix and "ESMTPS" in by_postfix, by_postfix

    log = postfix.logs()
    assert f"TLS connection established from unknown[{SENDER_HOST}]" in log, log[-4000:]
    sent = [line for line in log.splitlines() if "status=sent" in line and USER in line]
    assert sent and "delivered to maildir" in sent[-1], log[-4000:]
    wait_for_empty_queue(sender, "p.test")
