"""Inbound sender authentication: what SPF, DKIM, ARC, DMARC and iprev cost on port 25.
Driven by ``bench/auth.sh``; every run appends one JSON row to ``OUT/results.jsonl``.

``auth.py prepare WORK``
    Makes the DKIM keys of s.test with ``postel dkim generate`` on a scratch data dir,
    writes the ``test`` zone (SPF, DMARC p=none, both DKIM key records), pre-signs
    ``VARIANTS`` distinct 1 KB messages from bulk@s.test with ``postel.dkim.sign_message``
    (RSA key) and builds a template data dir with bench.test and user1..user100.

``auth.py bench WORK OUT [--rounds R] [--concs 10 50] [-n N] [--profile-n N]``
    Starts Knot DNS on loopback (``tests/dnsserver.py``) serving the zone, then for each
    round and concurrency runs postel (SQLite, SMTP only on 127.0.0.3, abuse tracker off,
    a fresh copy of the template) once with checks on (``[authentication]
    ignore_clients = []``) and once with them off (``enabled = false``), the order
    alternated every round. Each run sends N messages, one per connection (MAIL FROM
    bulk@s.test), and is timed from the first connection to the last 250 (postel answers 250 after
    its delivery commit). Afterwards: the mailboxes must hold every message, and a
    sampled stored message must carry (on) or lack (off) our Authentication-Results with
    spf=pass, dkim=pass and dmarc=pass. ``--profile-n`` > 0: one more checks-on run at
    the highest concurrency under ``py-spy record --gil``. ``--ptr``: Knot also serves
    127.in-addr.arpa (the client address PTR mta.s.test), so iprev passes and is cached;
    those rows are marked ``ptr`` and summarized apart. ``--load``: the load generator.
    ``smtp-source`` (the default when Debian's postfix is installed) is Postfix's C client:
    min(c, 10) processes, process i sending message i to user<i+1>@bench.test from
    127.0.0.1, so the load takes little of the CPU it measures. ``python`` is this module's
    asyncio client: from 127.0.0.5, RCPT round robin over user1..user100@bench.test,
    about 0.3-0.5 ms of CPU per message on the same cores as postel.

``auth.py summarize OUT RESULTS_MD``
    Medians of OUT/results.jsonl as the "Inbound sender authentication" section of
    RESULTS_MD (replaced between its markers, appended when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import profile_top
from outbound import tree_cpu_ticks
from postel_setup import add_users, count_messages

from postel.config.model import Service
from postel.dkim import KeyAlgorithm, load_keys, sign_message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dnsserver import DnsServer  # noqa: E402

SERVER_ADDRESS = "127.0.0.3"
SMTP_PROCESSES = int(os.environ.get("SMTP_PROCESSES", "1"))
"""``[smtp] processes`` of the postel under test (bench/auth.sh's SMTP_PROCESSES)."""
SMTP_MAIN_SERVES = os.environ.get("SMTP_MAIN_SERVES", "true").lower() != "false"
"""``[smtp] main_serves`` with SMTP_PROCESSES > 1 (bench/auth.sh's SMTP_MAIN_SERVES)."""
"""Where postel listens (port 25's service on a free port)."""
SMTP_SOURCE = "/usr/sbin/smtp-source"
"""Postfix's C load generator (Debian's postfix), the default load."""
CLIENT_ADDRESSES = {"python": "127.0.0.5", "smtp-source": "127.0.0.1"}
"""The load's source address by load generator: the one s.test's SPF record allows (the
zone is written for it). The Python load binds 127.0.0.5; smtp-source cannot bind, so its
connections to SERVER_ADDRESS come from 127.0.0.1, which is not exempt from the checks
either (the config sets ``ignore_clients = []``)."""
CLIENT_ADDRESS = CLIENT_ADDRESSES["python"]
SENDER_DOMAIN = "s.test"
SENDER = f"bulk@{SENDER_DOMAIN}"
HELO = f"mta.{SENDER_DOMAIN}"
RCPT_DOMAIN = "bench.test"
USERS = 100
PASSWORD = "benchpass"
SIZE = 1024
"""Octets of each message, DKIM-Signature field included."""
VARIANTS = 10
"""Distinct pre-signed messages, sent in turn."""
WARMUP = 50
"""Messages sent before the clock starts (DNS answers cached, connections warm)."""
IO_TIMEOUT_S = 60.0
"""Seconds the load gives one session (connection to QUIT's reply)."""
RUN_DEADLINE_S = 600.0
SECTION_BEGIN = "<!-- AUTH: bench/auth.sh rewrites from here -->"
SECTION_END = "<!-- AUTH: end -->"
_ZONE_HEAD = """$TTL 3600
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
s IN A {client}
s IN MX 10 mta.s
s IN TXT "v=spf1 ip4:{client} -all"
mta.s IN A {client}
mta.s IN TXT "v=spf1 a -all"
_dmarc.s IN TXT "v=DMARC1; p=none"
"""
_REVERSE_ZONE = """$TTL 3600
@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
@ IN NS ns.test.
{last}.0.0 IN PTR mta.s.test.
"""
_AUTH_AREAS = (
    ("postel/dkim/arc", "ARC verification (postel.dkim.arc, dkimpy ARC)"),
    ("dkim/", "DKIM verification (dkimpy: canonicalisation, hashing, RSA)"),
    ("postel/dkim/", "DKIM verification (dkimpy: canonicalisation, hashing, RSA)"),
    ("postel/spf/", "SPF evaluation (postel.spf)"),
    ("postel/dmarc/", "DMARC evaluation (postel.dmarc, public-suffix lookup)"),
    ("postel/resolver/", "DNS lookups (postel.resolver, dnspython)"),
    ("dns/", "DNS lookups (postel.resolver, dnspython)"),
    ("postel/mail/authres", "Authentication-Results field (postel.mail.authres)"),
    ("postel/pipeline/authentication", "checks' glue and iprev (postel.pipeline.authentication)"),
)


@dataclass(frozen=True, slots=True)
class Run:
    """One timed load against one postel."""

    checks: str
    """"on" or "off"."""
    concurrency: int
    round: int
    n: int
    seconds: float
    msgs_per_s: float
    cpu_ms_per_msg: float
    """postel's CPU (the whole process tree) per message over the timed span."""
    cpu_main_ms_per_msg: float
    """...of which the main process's (its threads included; the rest is its helper
    processes: the DKIM verification worker, port-25 workers)."""
    stored: int
    """Messages in the mailboxes after the run (warm-up included)."""
    warmup: int
    """Messages sent before the clock started."""
    auth_results: str
    """The sampled message's Authentication-Results results ("" when it has none)."""
    load_before: str
    load_after: str
    """1/5/15-minute load averages (/proc/loadavg) around the run."""
    errors: int
    profile: str = ""
    ptr: bool = False
    """The reverse zone was served (iprev passes and its answers are cached)."""
    load: str = "python"
    """The load generator: "smtp-source" or "python" (this module's asyncio client)."""
    switches_main_per_msg: tuple[float, float] = (0.0, 0.0)
    """Context switches of the main process (all its threads) per message over the timed
    span: (voluntary, involuntary), from /proc/PID/task/*/status."""


# -- prepare -----------------------------------------------------------------------------------


def _postel(*args: str) -> str:
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/postel"), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"auth: postel {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _txt_strings(value: str) -> str:
    """A TXT value as quoted character-strings of at most 255 octets (RFC 1035 §3.3)."""
    return " ".join(f'"{value[i : i + 200]}"' for i in range(0, len(value), 200))


def _message(variant: int, padding: int) -> bytes:
    head = (
        f"From: Bulk Sender <{SENDER}>\r\n"
        f"To: Bench Users <users@{RCPT_DOMAIN}>\r\n"
        f"Subject: sender authentication bench, variant {variant}\r\n"
        f"Date: Sun, 29 Nov 2026 12:00:{variant:02d} +0000\r\n"
        f"Message-ID: <auth-bench-{variant}@{SENDER_DOMAIN}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    line = f"variant {variant}: the quick brown fox jumps over the lazy dog 0123456789\r\n"
    body = (line * (padding // len(line) + 1)).encode()[:padding].rstrip(b"\r\n") + b"\r\n"
    return head + body


def prepare(work: Path) -> None:
    """Keys, zone, signed messages and the template data dir under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    signer = work / "signer"
    _postel("--data", str(signer), "domain", "add", SENDER_DOMAIN)  # keys only for hosted domains
    rows = json.loads(_postel("--data", str(signer), "dkim", "generate", SENDER_DOMAIN, "--json"))
    zone = _ZONE_HEAD
    for row in rows:
        name = str(row["name"]).removesuffix(".test")
        zone += f"{name} IN TXT {_txt_strings(str(row['value']))}\n"
    (work / "test.zone").write_text(zone, encoding="ascii")
    keys = load_keys(signer / "dkim", SENDER_DOMAIN)
    rsa = next(k for k in keys if k.algorithm is KeyAlgorithm.RSA)
    messages = work / "messages"
    messages.mkdir(exist_ok=True)
    for variant in range(VARIANTS):
        draft = _message(variant, 600)
        overhead = len(sign_message(draft, rsa)) + len(draft) - 600
        body = _message(variant, SIZE - overhead)
        signed = sign_message(body, rsa) + body
        (messages / f"{variant:02d}.eml").write_bytes(signed)
    template = work / "template"
    config = write_config(template, checks=True, port=free_port(), nameserver="127.0.0.1:53")
    asyncio.run(add_users(config, RCPT_DOMAIN, USERS, PASSWORD))
    sizes = sorted({len(p.read_bytes()) for p in messages.glob("*.eml")})
    print(f"prepared {work}: {len(rows)} DKIM keys, {VARIANTS} messages of {sizes} octets")


# -- postel ------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the server address."""
    with socket.socket() as s:
        s.bind((SERVER_ADDRESS, 0))
        return int(s.getsockname()[1])


def write_config(base: Path, *, checks: bool, port: int, nameserver: str) -> Path:
    """postel's TOML: SMTP only on SERVER_ADDRESS:port, data in ``base/data``, the
    bench's Knot as DNS, sender authentication on for every client or off."""
    data = base / "data"
    off = "\n".join(f"{s.value} = []" for s in Service if s is not Service.SMTP)
    auth = "ignore_clients = []" if checks else "enabled = false"
    text = f"""# generated by bench/auth.py (checks {"on" if checks else "off"})
hostname = "mx.{RCPT_DOMAIN}"
data_dir = "{data}"

[listen]
smtp = ["{SERVER_ADDRESS}:{port}"]
{off}

[tls]
cert_file = "{data / "tls" / "cert.pem"}"
key_file = "{data / "tls" / "key.pem"}"
generate_self_signed = true

[abuse]
enabled = false

[smtp]
processes = {SMTP_PROCESSES}
{"" if SMTP_PROCESSES < 2 or SMTP_MAIN_SERVES else "main_serves = false"}

[authentication]
{auth}

[dns]
nameservers = ["{nameserver}"]
"""
    base.mkdir(parents=True, exist_ok=True)
    path = base / "postel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(ROOT / ".venv/bin/postel"), "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _greets(port: int) -> bool:
    try:
        with socket.create_connection((SERVER_ADDRESS, port), timeout=1) as s:
            return s.recv(100).startswith(b"220")
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- load --------------------------------------------------------------------------------------


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One whole SMTP reply; its first line."""
    first = b""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        first = first or line
        if line[3:4] != b"-":
            return first


async def _expect(reader: asyncio.StreamReader, code: bytes) -> None:
    reply = await _reply(reader)
    if not reply.startswith(code):
        raise ConnectionError(f"expected {code.decode()}: {reply!r}")


async def _session(port: int, rcpt: str, message: bytes) -> None:
    """One connection, one message: EHLO, MAIL, RCPT, DATA, QUIT (no pipelining),
    within ``IO_TIMEOUT_S`` (one timer for the session: a timer per reply would cost
    the load generator as much CPU as a third of what it measures)."""
    async with asyncio.timeout(IO_TIMEOUT_S):
        await _dialogue(port, rcpt, message)


def _client_socket() -> socket.socket:
    """A socket bound to CLIENT_ADDRESS whose port the kernel picks at connect time
    (IP_BIND_ADDRESS_NO_PORT): a port picked at bind time cannot be one still in
    TIME_WAIT from an earlier connection, and after a few runs' worth of those the
    search for a free one took the load generator milliseconds of CPU per connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
    sock.bind((CLIENT_ADDRESS, 0))
    sock.setblocking(False)
    return sock


async def _dialogue(port: int, rcpt: str, message: bytes) -> None:
    sock = _client_socket()
    try:
        await asyncio.get_running_loop().sock_connect(sock, (SERVER_ADDRESS, port))
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        await _expect(reader, b"220")
        for command, code in (
            (f"EHLO {HELO}", b"250"),
            (f"MAIL FROM:<{SENDER}>", b"250"),
            (f"RCPT TO:<{rcpt}>", b"250"),
            ("DATA", b"354"),
        ):
            writer.write(command.encode() + b"\r\n")
            await _expect(reader, code)
        writer.write(message + b".\r\n")
        await _expect(reader, b"250")
        writer.write(b"QUIT\r\n")
        await _expect(reader, b"221")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def load(port: int, messages: list[bytes], first: int, n: int, concurrency: int) -> int:
    """Send messages first..first+n-1 (round robin over recipients and variants) with
    ``concurrency`` sessions at a time; return the number of failed ones."""
    numbers = iter(range(first, first + n))
    errors: list[str] = []

    async def worker() -> None:
        for i in numbers:
            rcpt = f"user{i % USERS + 1}@{RCPT_DOMAIN}"
            try:
                await _session(port, rcpt, messages[i % len(messages)])
            except (OSError, ConnectionError, TimeoutError) as exc:
                errors.append(repr(exc))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if errors:
        print(f"auth: {len(errors)} failed, first: {errors[0]}", file=sys.stderr)
    return len(errors)


def smtp_source_files(work: Path) -> list[Path]:
    """The pre-signed messages as smtp-source ``-F`` files: smtp-source ends every line it
    reads with CRLF and dot-stuffs it, so the files hold the same lines with LF endings and
    the bytes on the wire are the signed ones."""
    out = work / "messages-lf"
    out.mkdir(exist_ok=True)
    files = []
    for eml in sorted((work / "messages").glob("*.eml")):
        target = out / eml.name
        target.write_bytes(eml.read_bytes().replace(b"\r\n", b"\n"))
        files.append(target)
    return files


def smtp_source_load(port: int, files: list[Path], n: int, concurrency: int) -> tuple[int, int]:
    """Send about n messages with ``concurrency`` sessions spread over G = min(concurrency,
    len(files)) smtp-source processes: process i sends message i to user<i+1> with
    concurrency // G sessions, one message per connection (connect, EHLO, MAIL, RCPT,
    DATA, QUIT). Returns (messages sent, failed processes); n is rounded down to a
    multiple of G."""
    g = min(concurrency, len(files))
    per = n // g
    procs = [
        subprocess.Popen(
            [
                SMTP_SOURCE,
                "-s",
                str(concurrency // g),
                "-m",
                str(per),
                "-F",
                str(files[i]),
                "-f",
                SENDER,
                "-t",
                f"user{i + 1}@{RCPT_DOMAIN}",
                "-M",
                HELO,
                f"{SERVER_ADDRESS}:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(g)
    ]
    failed = 0
    deadline = time.monotonic() + RUN_DEADLINE_S
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            failed += 1
            print(
                f"auth: smtp-source failed ({proc.returncode}): {err.decode()[-300:]}",
                file=sys.stderr,
            )
    return per * g, failed


# -- runs --------------------------------------------------------------------------------------


def _auth_results(config: Path) -> str:
    """The Authentication-Results results of user1's first stored message, unfolded."""
    text = _postel("--config", str(config), "message", "show", f"user1@{RCPT_DOMAIN}", "1")
    head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    unfolded = head.replace("\n\t", " ").replace("\n ", " ")
    for line in unfolded.split("\n"):
        if line.lower().startswith("authentication-results:"):
            return " ".join(line.split(":", 1)[1].split())
    return ""


def _verified(checks: bool, results: str) -> bool:
    if not checks:
        return results == ""
    return all(f"{m}=pass" in results for m in ("spf", "dkim", "dmarc"))


def run_one(
    work: Path, args: argparse.Namespace, checks: bool, conc: int, rnd: int, spy_to: str = ""
) -> Run:
    """One postel on a fresh copy of the template, loaded with ``args.n`` messages."""
    tag = ("-ptr" if args.ptr else "") + ("-profile" if spy_to else "")
    base = work / f"run-{'on' if checks else 'off'}-c{conc}-r{rnd}{tag}"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(work / "template" / "data", base / "data")
    port = free_port()
    config = write_config(base, checks=checks, port=port, nameserver=args.nameserver)
    messages = [p.read_bytes() for p in sorted((work / "messages").glob("*.eml"))]
    files = smtp_source_files(work) if args.load == "smtp-source" else []
    proc = _serve(config, base / "postel.log")
    n = args.n
    spy = None
    try:
        deadline = time.monotonic() + 60
        while not _greets(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"auth: postel did not listen (see {base / 'postel.log'})")
            time.sleep(0.05)
        while SMTP_PROCESSES > 1 and "smtp.workers pids=" not in (base / "postel.log").read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(
                    f"auth: postel's workers did not start (see {base / 'postel.log'})"
                )
            time.sleep(0.05)
        if files:
            warm, errors = smtp_source_load(port, files, WARMUP, min(conc, 10))
        else:
            warm, errors = WARMUP, asyncio.run(load(port, messages, 0, WARMUP, min(conc, 10)))
        if spy_to:
            spy = _spy(proc.pid, Path(spy_to))
        # Write back what is dirty (this run's fresh copy of the template, the previous
        # run's files) before the measured part, so no fsync of this run carries it.
        os.sync()
        load_before = _loadavg()
        cpu0, main0 = tree_cpu_ticks(proc.pid), process_cpu_ticks(proc.pid)
        switches0 = context_switches(proc.pid)
        began = time.monotonic()
        if files:
            n, failed = smtp_source_load(port, files, args.n, conc)
            errors += failed
        else:
            errors += asyncio.run(
                asyncio.wait_for(load(port, messages, WARMUP, n, conc), RUN_DEADLINE_S)
            )
        seconds = time.monotonic() - began
        cpu = tree_cpu_ticks(proc.pid) - cpu0
        main_cpu = process_cpu_ticks(proc.pid) - main0
        switches = [b - a for a, b in zip(switches0, context_switches(proc.pid), strict=True)]
        load_after = _loadavg()
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        _stop(proc)
    stored = count_messages(config)
    results = _auth_results(config)
    if stored != warm + n or not _verified(checks, results):
        print(f"auth: run {base.name}: stored {stored}, results {results!r}", file=sys.stderr)
    hz = os.sysconf("SC_CLK_TCK")
    return Run(
        checks="on" if checks else "off",
        concurrency=conc,
        round=rnd,
        n=n,
        seconds=round(seconds, 3),
        msgs_per_s=round(n / seconds, 1),
        cpu_ms_per_msg=round(1000 * cpu / hz / n, 3),
        cpu_main_ms_per_msg=round(1000 * main_cpu / hz / n, 3),
        stored=stored,
        warmup=warm,
        auth_results=results,
        load_before=load_before,
        load_after=load_after,
        errors=errors,
        profile=spy_to,
        ptr=args.ptr,
        load=args.load,
        switches_main_per_msg=(round(switches[0] / n, 2), round(switches[1] / n, 2)),
    )


def process_cpu_ticks(pid: int) -> int:
    """CPU ticks (user + system, all threads) of process ``pid`` alone."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="latin-1")
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of process ``pid``."""
    voluntary = involuntary = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text(encoding="latin-1")
        except OSError:  # the thread ended meanwhile
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                involuntary += int(line.split()[1])
    return voluntary, involuntary


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "py-spy-gil.log").open("wb")
    cmd = [str(ROOT / ".venv/bin/py-spy"), "record", "--pid", str(pid), "--rate", "200"]
    cmd += ["--nonblocking", "--threads", "--gil", "--format", "raw"]
    cmd += ["-o", str(out / "profile-gil.raw")]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def bench(args: argparse.Namespace) -> None:
    """All rounds, then the profiled run; rows appended to OUT/results.jsonl."""
    work, out = Path(args.work).absolute(), Path(args.out).absolute()
    client = CLIENT_ADDRESSES[args.load]
    zone = (work / "test.zone").read_text(encoding="ascii").replace("{client}", client)
    results = out / "results.jsonl"
    zones = {"test": zone}
    if args.ptr:
        zones["127.in-addr.arpa"] = _REVERSE_ZONE.replace("{last}", client.rsplit(".", 1)[1])
    with DnsServer(zones) as dns:
        args.nameserver = f"{dns.nameserver[0]}:{dns.nameserver[1]}"
        plan: list[tuple[bool, int, int, str]] = []
        for rnd in range(1, args.rounds + 1):
            for conc in args.concs:
                order = (True, False) if rnd % 2 else (False, True)
                plan += [(checks, conc, rnd, "") for checks in order]
        if args.profile_n:
            plan.append((True, max(args.concs), 0, str(out / "profile")))
        for checks, conc, rnd, spy_to in plan:
            if spy_to:
                args.n = args.profile_n
            run = run_one(work, args, checks, conc, rnd, spy_to)
            row = json.dumps(asdict(run))
            with results.open("a", encoding="utf-8") as f:
                f.write(row + "\n")
            print(
                f"[{time.strftime('%H:%M:%S')}] checks {run.checks} c{conc} round {rnd}"
                f"{' (reverse zone)' if args.ptr else ''}: "
                f"{run.msgs_per_s} msg/s, {run.cpu_ms_per_msg} ms CPU/msg "
                f"(main {run.cpu_main_ms_per_msg}, switches {run.switches_main_per_msg}), stored "
                f"{run.stored}, load {run.load_before} -> {run.load_after}",
                flush=True,
            )


# -- summary -----------------------------------------------------------------------------------


def _median(rows: list[dict[str, object]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in rows))  # type: ignore[arg-type]


def where_time_goes(raw: Path) -> list[str]:
    """GIL-holding samples of the profiled run by check (innermost matching frame)."""
    stacks = profile_top.read_raw(raw)
    total = sum(s.count for s in stacks) or 1
    by_check: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for s in stacks:
        label = "everything else (SMTP, delivery, store, event loop)"
        for _func, file in reversed(s.frames):
            hit = next((name for prefix, name in _AUTH_AREAS if file.startswith(prefix)), None)
            if hit:
                label = hit
                break
        by_check[label] += s.count
        if not label.startswith("everything"):
            func, file = s.frames[-1] if s.frames else ("?", "")
            leaves[f"{func} ({file})"] += s.count
    rows = ["| where (GIL-holding samples) | share |", "|---|---|"]
    rows += [f"| {k} | {100 * v / total:.1f}% |" for k, v in by_check.most_common()]
    rows += ["", "Top leaf functions inside the checks:", ""]
    rows += ["| leaf function | share of all samples |", "|---|---|"]
    rows += [f"| {k} | {100 * v / total:.1f}% |" for k, v in leaves.most_common(10)]
    return [*rows, ""]


def _span(rs: list[dict[str, object]]) -> str:
    rates = [float(r["msgs_per_s"]) for r in rs]  # type: ignore[arg-type]
    return f"{min(rates):.0f}-{max(rates):.0f}"


def paired_ratio(on: list[dict[str, object]], off: list[dict[str, object]]) -> float | None:
    """The median over rounds of (checks-on rate / checks-off rate) of the same round:
    the two runs of a round are back to back, so a slow phase of the machine weighs on
    both sides of each ratio. None without a round that has both."""
    rate = {(r["round"], r["checks"]): float(r["msgs_per_s"]) for r in on + off}  # type: ignore[arg-type]
    ratios = [
        rate[(n, "on")] / rate[(n, "off")] for n in {r["round"] for r in on} if (n, "off") in rate
    ]
    return statistics.median(ratios) if ratios else None


def ratio_table(
    runs: list[dict[str, object]],
) -> tuple[list[str], list[tuple[int, float, float | None]]]:
    """Medians on / off per concurrency as a Markdown table, and (concurrency, ratio of
    the medians, median of the per-round ratios)."""
    verdicts = []
    table = [
        "| concurrency | checks on msg/s (min-max) | checks off msg/s (min-max) | on / off "
        "| cost | per-round on / off (median) | CPU ms/msg on | CPU ms/msg off |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for conc in sorted({int(r["concurrency"]) for r in runs}):  # type: ignore[call-overload]
        on = [r for r in runs if r["concurrency"] == conc and r["checks"] == "on"]
        off = [r for r in runs if r["concurrency"] == conc and r["checks"] == "off"]
        if not on or not off:
            continue
        ron, roff = _median(on, "msgs_per_s"), _median(off, "msgs_per_s")
        ratio = ron / roff
        paired = paired_ratio(on, off)
        verdicts.append((conc, ratio, paired))
        table.append(
            f"| {conc} | {ron:.0f} ({_span(on)}) | {roff:.0f} ({_span(off)}) | {ratio:.2f} "
            f"| {100 * (1 - ratio):.0f}% | {'-' if paired is None else f'{paired:.2f}'} "
            f"| {_median(on, 'cpu_ms_per_msg'):.2f} "
            f"| {_median(off, 'cpu_ms_per_msg'):.2f} |"
        )
    return [*table, ""], verdicts


def run_rows(runs: list[dict[str, object]]) -> list[str]:
    """Every run, with the load averages around it."""
    lines = [
        "| round | c | checks | msg/s | s | CPU ms/msg (main process + helpers) | stored "
        "| load before -> after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["concurrency"], r["round"])):
        split = ""
        if "cpu_main_ms_per_msg" in r:
            main = float(r["cpu_main_ms_per_msg"])  # type: ignore[arg-type]
            split = f" ({main:.2f} + {float(r['cpu_ms_per_msg']) - main:.2f})"  # type: ignore[arg-type]
        lines.append(
            f"| {r['round']} | {r['concurrency']} | {r['checks']} | {r['msgs_per_s']:.0f} | "
            f"{r['seconds']:.2f} | {r['cpu_ms_per_msg']:.2f}{split} | {r['stored']} | "
            f"{r['load_before']} -> {r['load_after']} |"
        )
    return [*lines, ""]


def summarize(out: Path, results_md: Path) -> str:
    """The Markdown section for the runs in ``out``; also written into ``results_md``."""
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]
    env: dict[str, object] = next((r for r in rows if r.get("test") == "env"), {})
    every = [r for r in rows if r.get("checks") and not r.get("profile")]
    runs = [r for r in every if not r.get("ptr")]
    reverse = [r for r in every if r.get("ptr")]
    table, verdicts = ratio_table(runs)
    met = bool(verdicts) and all(
        ratio > 0.7 and (paired is None or paired > 0.7) for _, ratio, paired in verdicts
    )
    lines = [
        SECTION_BEGIN,
        f"### Measured: auth run {env.get('stamp', '?')} (commit {env.get('commit', '?')}, "
        f"load: {', '.join(sorted({str(r.get('load', 'python')) for r in runs})) or '?'})",
        "",
        "**Cost of the checks: "
        + ", ".join(
            f"c{c} {100 * (1 - r):.0f}% (on/off {r:.2f}"
            + ("" if p is None else f"; per round {100 * (1 - p):.0f}%")
            + ")"
            for c, r, p in verdicts
        )
        + f"** of throughput (target: less than 30% by both: {'met' if met else 'NOT met'})."
        + f" Medians of {env.get('rounds', '?')} rounds of {env.get('n', '?')} messages,"
        " no reverse zone (iprev=temperror, a cached failure). postel: [smtp] processes = "
        f"{env.get('smtp_processes', 1)}"
        + (
            f", main_serves = {env.get('smtp_main_serves', 'true')}."
            if int(env.get("smtp_processes", 1)) > 1  # type: ignore[call-overload]
            else "."
        ),
        "",
        *table,
        "Every run (load averages from /proc/loadavg before -> after; the bench's own "
        "postel, load generator and Knot are part of it):",
        "",
        *run_rows(runs),
    ]
    if reverse:
        rtable, _ = ratio_table(reverse)
        lines += [
            "With a reverse zone (127.in-addr.arpa: the client address PTR mta.s.test, so iprev=pass "
            f"and its answers are cached), {len(reverse) // 2} more on/off pairs:",
            "",
            *rtable,
            *run_rows(reverse),
        ]
    sample = next((r["auth_results"] for r in runs if r["checks"] == "on"), "")
    sample_ptr = next((r["auth_results"] for r in reverse if r["checks"] == "on"), "")
    bad = [r for r in every if r["stored"] != r["n"] + r.get("warmup", WARMUP) or r["errors"]]
    wrong = [r for r in every if not _verified(r["checks"] == "on", str(r["auth_results"]))]
    lines += [
        f"Delivery check: {len(every) - len(bad)} of {len(every)} runs stored every message "
        f"(warm-up included) with no failed session; {len(every) - len(wrong)} of "
        f"{len(every)} sampled messages (user1's UID 1, `postel message show`) carried the "
        "expected field (checks on: spf=pass, dkim=pass, dmarc=pass; off: no "
        "Authentication-Results).",
        "",
        f"Sampled Authentication-Results (checks on): `{sample}`",
        "",
    ]
    if sample_ptr:
        lines += [f"With the reverse zone: `{sample_ptr}`", ""]
    profile = out / "profile" / "profile-gil.raw"
    prof = next((r for r in rows if r.get("profile")), None)
    if profile.exists() and prof is not None:
        lines += [
            f"#### Where the time goes (checks on, c{prof['concurrency']}, {prof['n']} "
            f"messages under py-spy --gil: {prof['msgs_per_s']:.0f} msg/s)",
            "",
            *where_time_goes(profile),
        ]
    lines.append(SECTION_END)
    section = "\n".join(lines) + "\n"
    old = results_md.read_text(encoding="utf-8") if results_md.exists() else ""
    if SECTION_BEGIN in old and SECTION_END in old:
        head, rest = old.split(SECTION_BEGIN, 1)
        new = head + section + rest.split(SECTION_END, 1)[1].lstrip("\n")
    else:
        heading = "## Inbound sender authentication: checks on vs off\n\n"
        new = old.rstrip("\n") + "\n\n" + heading + section
    results_md.write_text(new, encoding="utf-8")
    return section


# -- entry -------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """Command-line entry; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("work")
    b = sub.add_parser("bench")
    b.add_argument("work")
    b.add_argument("out")
    b.add_argument("--rounds", type=int, default=3)
    b.add_argument("--concs", type=int, nargs="+", default=[10, 50])
    b.add_argument("-n", type=int, default=2000)
    b.add_argument("--profile-n", type=int, default=2000)
    b.add_argument("--ptr", action="store_true", help="also serve 127.in-addr.arpa")
    b.add_argument(
        "--load",
        choices=sorted(CLIENT_ADDRESSES),
        default="smtp-source" if Path(SMTP_SOURCE).exists() else "python",
    )
    s = sub.add_parser("summarize")
    s.add_argument("out")
    s.add_argument("results_md")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(Path(args.work).absolute())
    elif args.command == "bench":
        bench(args)
    else:
        print(summarize(Path(args.out), Path(args.results_md)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
