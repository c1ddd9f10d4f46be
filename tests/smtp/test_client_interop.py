"""The SMTP client core over real sockets: against postel's own server core (through a
socketpair) and against Postfix's smtp-sink, an independent implementation."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from postel.smtp import (
    READY_TO_START_TLS,
    START_MAIL_INPUT,
    AutoReply,
    ChunkReceived,
    DataStarted,
    Hello,
    MailFrom,
    MessageComplete,
    MessageData,
    MessageRejected,
    NeedData,
    Path,
    Quit,
    RcptTo,
    Reply,
    Reset,
    ServerConfig,
    ServerConnection,
    StartTls,
    TooManyErrors,
)
from postel.smtp import ConnectionClosed as ServerClosed
from postel.smtp.client import (
    AuthChallenge,
    ClientConfig,
    ClientConnection,
    ClientEvent,
    Command,
    ConnectionClosed,
    EhloDone,
    Greeting,
    ReplyReceived,
    ServiceClosing,
    TransactionPlan,
    plan_transaction,
)
from postel.smtp.params import Body, MailParams

SMTP_SINK = "/usr/sbin/smtp-sink"


@dataclass
class Outgoing:
    sender: str
    recipients: list[str]
    content: bytes
    results: dict[str, int] = field(default_factory=dict)
    final: int | None = None


@dataclass
class ClientDriver:
    """A blocking driver: one connection, several messages, QUIT."""

    sock: socket.socket
    messages: list[Outgoing]
    use_bdat: bool = False
    auth: bytes | None = None
    tls: ssl.SSLContext | None = None
    conn: ClientConnection = field(
        default_factory=lambda: ClientConnection(ClientConfig(hostname="client.example.net"))
    )
    log: list[ClientEvent] = field(default_factory=list)
    _queue: list[Outgoing] = field(default_factory=list)

    def run(self) -> None:
        self._queue = list(self.messages)
        self.sock.settimeout(10)
        while True:
            event = self.conn.next_event()
            if isinstance(event, NeedData):
                self.conn.receive_data(self.sock.recv(65536))
                continue
            self.log.append(event)
            if isinstance(event, (ConnectionClosed, ServiceClosing)):
                return
            out = self.react(event)
            if out:
                self.sock.sendall(out)

    def react(self, event: ClientEvent) -> bytes:
        conn = self.conn
        match event:
            case Greeting():
                return conn.ehlo()
            case EhloDone(extensions=ext) if self.tls and ext.starttls and not conn.tls_active:
                return conn.starttls()
            case ReplyReceived(command=Command.STARTTLS, reply=reply):
                assert reply.code == 220 and self.tls is not None
                self.sock = self.tls.wrap_socket(self.sock, server_hostname="mx.example.org")
                conn.tls_established()
                return conn.ehlo()
            case EhloDone():
                if self.auth is not None and not conn.authenticated:
                    return conn.auth("PLAIN", self.auth)
                return self.start()
            case AuthChallenge():
                raise AssertionError("no challenge expected for PLAIN with initial response")
            case ReplyReceived(command=Command.AUTH, reply=reply):
                assert reply.code // 100 == 2, reply  # smtp-sink answers 250, not 235
                return self.start()
            case ReplyReceived(command=Command.EHLO):
                return conn.helo()
            case ReplyReceived(command=Command.HELO):
                return self.start()
            case ReplyReceived(command=Command.RCPT, reply=reply, path=path):
                self._queue[0].results[str(path)] = reply.code
                return b""
            case ReplyReceived(command=Command.DATA, reply=reply) if reply.code == 354:
                if conn.recipients_accepted == 0:
                    return conn.data_abort()
                return b"".join(conn.message_chunks([self._queue[0].content]))
            case ReplyReceived(command=Command.MESSAGE | Command.BDAT_LAST, reply=reply):
                self._queue.pop(0).final = reply.code
                return self.start()
            case ReplyReceived(command=Command.DATA, reply=reply):
                self._queue.pop(0).final = reply.code
                return conn.rset() + self.start()
        return b""

    def start(self) -> bytes:
        """The next transaction, pipelined (one write) when offered; else QUIT."""
        conn = self.conn
        if not self._queue:
            return conn.quit()
        message = self._queue[0]
        ext = conn.extensions
        assert ext is not None
        plan = plan_transaction(
            ext,
            message_is_8bit=any(b > 127 for b in message.content),
            needs_smtputf8=False,
            size=len(message.content),
        )
        assert isinstance(plan, TransactionPlan)
        params = plan.params
        bdat = self.use_bdat and ext.chunking
        if bdat and params.body is Body.EIGHT_BIT_MIME and ext.binary_mime:
            params = MailParams(size=params.size, body=Body.BINARY_MIME)
        out = conn.mail(Path.parse(message.sender), params)
        for rcpt in message.recipients:
            out += conn.rcpt(Path.parse(rcpt))
        if bdat:
            half = len(message.content) // 2
            out += conn.bdat(message.content[:half], last=False)
            out += conn.bdat(message.content[half:], last=True)
        else:
            out += conn.data()
        return out


# --- postel's server core in a thread ------------------------------------------------
@dataclass
class Received:
    sender: str
    recipients: list[str]
    content: bytes


def serve(
    sock: socket.socket,
    config: ServerConfig,
    inbox: list[Received],
    tls: ssl.SSLContext | None = None,
) -> None:
    """A blocking driver for ServerConnection: refuses ``unknown*`` recipients."""
    conn = ServerConnection(config)
    sock.sendall(conn.greeting())
    current: Received | None = None
    chunks: list[bytes] = []
    while True:
        event = conn.next_event()
        match event:
            case NeedData():
                conn.receive_data(sock.recv(65536))
                continue
            case ServerClosed():
                sock.close()
                return
            case MessageData(chunk=chunk):
                chunks.append(chunk)
                continue
            case Hello(extended=extended):
                reply = conn.ehlo_reply() if extended else conn.helo_reply()
            case MailFrom(reverse_path=path):
                current, reply = Received(str(path), [], b""), Reply(250, "2.1.0", "OK")
            case RcptTo(forward_path=path):
                refused = path.mailbox is not None and path.mailbox.local_part == "unknown"
                reply = (
                    Reply(550, "5.1.1", "No such user") if refused else Reply(250, "2.1.5", "OK")
                )
                if not refused and current is not None:
                    current.recipients.append(str(path))
            case DataStarted():
                reply = START_MAIL_INPUT
            case StartTls():
                assert tls is not None
                sock.sendall(conn.send(READY_TO_START_TLS))
                sock = tls.wrap_socket(sock, server_side=True)
                conn.tls_established()
                continue
            case MessageComplete():
                assert current is not None
                current.content = b"".join(chunks)
                inbox.append(current)
                chunks.clear()
                reply = Reply(250, "2.0.0", "Queued")
            case (
                AutoReply(reply=reply)
                | Reset(reply=reply)
                | MessageRejected(reply=reply)
                | ChunkReceived(reply=reply)
                | Quit(reply=reply)
                | TooManyErrors(reply=reply)
            ):
                pass
            case _:
                raise AssertionError(event)
        sock.sendall(conn.send(reply))


def run_pair(
    messages: list[Outgoing],
    config: ServerConfig,
    *,
    use_bdat: bool = False,
    tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
) -> tuple[ClientDriver, list[Received]]:
    client_sock, server_sock = socket.socketpair()
    inbox: list[Received] = []
    server_tls = tls[0] if tls else None
    args = (server_sock, config, inbox, server_tls)
    thread = threading.Thread(target=serve, args=args, daemon=True)
    thread.start()
    driver = ClientDriver(client_sock, messages, use_bdat=use_bdat, tls=tls[1] if tls else None)
    try:
        driver.run()
    finally:
        driver.sock.close()
        thread.join(5)
    return driver, inbox


CONTENT = b"Subject: hi\r\n\r\n.leading dot\r\n..two\r\nbare\nlf\r\nno final line end"
EXPECTED = b"Subject: hi\r\n\r\n.leading dot\r\n..two\r\nbare\r\nlf\r\nno final line end\r\n"


def test_against_postel_server_pipelined_data() -> None:
    messages = [
        Outgoing("<a@example.net>", ["<b@example.org>", "<unknown@example.org>"], CONTENT),
        Outgoing("<>", ["<unknown@example.org>"], b"never sent\r\n"),
        Outgoing("<a@example.net>", ["<c@example.org>"], "8bit é\r\n".encode()),
    ]
    driver, inbox = run_pair(messages, ServerConfig(hostname="mx.example.org"))
    assert messages[0].results == {"<b@example.org>": 250, "<unknown@example.org>": 550}
    assert [m.final for m in messages] == [250, 554, 250]
    assert [(r.sender, r.recipients, r.content) for r in inbox] == [
        ("<a@example.net>", ["<b@example.org>"], EXPECTED),
        ("<a@example.net>", ["<c@example.org>"], "8bit é\r\n".encode()),
    ]
    assert isinstance(driver.log[-1], ConnectionClosed)


def test_against_postel_server_bdat() -> None:
    messages = [Outgoing("<a@example.net>", ["<b@example.org>"], b"\x00binary\r\n.\r\n\xff")]
    _, inbox = run_pair(messages, ServerConfig(hostname="mx.example.org"), use_bdat=True)
    assert messages[0].final == 250
    assert inbox[0].content == b"\x00binary\r\n.\r\n\xff"


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for mx.example.org: (server context, client context)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mx.example.org")]), False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_against_postel_server_starttls(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    messages = [Outgoing("<a@example.net>", ["<b@example.org>"], b"over tls\r\n")]
    config = ServerConfig(hostname="mx.example.org", tls_available=True)
    driver, inbox = run_pair(messages, config, tls=tls_contexts)
    hellos = [e for e in driver.log if isinstance(e, EhloDone)]
    assert [h.extensions.starttls for h in hellos] == [True, False]
    assert driver.conn.tls_active
    assert messages[0].final == 250
    assert inbox[0].content == b"over tls\r\n"


# --- Postfix smtp-sink ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_sink() -> Iterator[tuple[int, FsPath]]:
    if not os.access(SMTP_SINK, os.X_OK):
        pytest.skip("Postfix smtp-sink not installed")
    # smtp-sink drops to "nobody" when run as root: the dump directory must be
    # reachable by it, which pytest's private tmp_path is not.
    with tempfile.TemporaryDirectory(prefix="postel-sink-") as name:
        dump = FsPath(name)
        dump.chmod(0o777)
        yield from _run_sink(dump)


def _run_sink(dump: FsPath) -> Iterator[tuple[int, FsPath]]:
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    args = [SMTP_SINK, *user, "-h", "sink.example", "-D", f"{dump}/all", f"127.0.0.1:{port}", "10"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.skip("smtp-sink did not start")
                time.sleep(0.05)
        yield port, dump / "all"
    finally:
        proc.terminate()
        proc.wait(5)


def test_against_smtp_sink(smtp_sink: tuple[int, FsPath]) -> None:
    port, dump = smtp_sink
    messages = [
        Outgoing("<a@example.net>", ["<b@example.org>", "<c@example.org>"], CONTENT),
        Outgoing("<a@example.net>", ["<d@example.org>"], "8bit é\r\n".encode()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        driver = ClientDriver(sock, messages, auth=b"\x00user\x00secret")
        driver.run()
    ehlo = next(e for e in driver.log if isinstance(e, EhloDone))
    assert ehlo.extensions.pipelining and ehlo.extensions.eight_bit_mime
    assert "PLAIN" in ehlo.extensions.auth
    auth = [e for e in driver.log if isinstance(e, ReplyReceived) and e.command is Command.AUTH]
    assert len(auth) == 1 and auth[0].reply.code // 100 == 2
    assert [m.final for m in messages] == [250, 250], driver.log
    assert messages[0].results == {"<b@example.org>": 250, "<c@example.org>": 250}
    assert isinstance(driver.log[-1], ConnectionClosed) and driver.log[-1].outstanding == ()
    deadline = time.monotonic() + 5
    while b"8bit" not in (dump.read_bytes() if dump.exists() else b""):
        assert time.monotonic() < deadline, "smtp-sink wrote no dump"
        time.sleep(0.05)
    text = dump.read_bytes()
    # smtp-sink stores LF-terminated lines, un-stuffed.
    assert EXPECTED.replace(b"\r\n", b"\n") in text
    assert b"X-Rcpt-Args: <c@example.org>" in text
    assert "8bit é\n".encode() in text


def test_smtp_sink_pipelined_rejections(tmp_path: FsPath) -> None:
    """smtp-sink rejecting RCPT (-f RCPT implies no PIPELINING): lock-step fallback,
    then DATA without an accepted recipient is never sent."""
    if not os.access(SMTP_SINK, os.X_OK):
        pytest.skip("Postfix smtp-sink not installed")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    args = [SMTP_SINK, *user, "-f", "RCPT", f"127.0.0.1:{port}", "10"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with sock:
            conn = ClientConnection(ClientConfig(hostname="client.example.net"))
            log: list[ClientEvent] = []

            def pump() -> ClientEvent:
                while isinstance(event := conn.next_event(), NeedData):
                    conn.receive_data(sock.recv(65536))
                log.append(event)
                return event

            assert isinstance(pump(), Greeting)
            sock.sendall(conn.ehlo())
            ehlo = pump()
            assert isinstance(ehlo, EhloDone) and not ehlo.extensions.pipelining
            sock.sendall(conn.mail(Path.parse("<a@example.net>")))
            assert isinstance(ev := pump(), ReplyReceived) and ev.reply.code == 250
            sock.sendall(conn.rcpt(Path.parse("<b@example.org>")))
            assert isinstance(ev := pump(), ReplyReceived) and ev.reply.code // 100 == 5
            assert conn.recipients_accepted == 0
            sock.sendall(conn.rset())
            assert isinstance(ev := pump(), ReplyReceived) and ev.command is Command.RSET
            sock.sendall(conn.quit())
            assert isinstance(ev := pump(), ReplyReceived) and ev.reply.code == 221
    finally:
        proc.terminate()
        proc.wait(5)
