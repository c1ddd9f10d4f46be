"""Outbound throughput, postel against Postfix: messages per second from the queue to
Postfix's ``smtp-sink``, 10 destination domains (d0.bench .. d9.bench). Driven by
``bench/outbound.sh``; every run appends one JSON row to ``--json``.

``outbound.py postel --work DIR --sink-port P --sink-log F -n N [--profile DIR]``
    Starts Knot DNS on loopback (``tests/dnsserver.py``) serving d0..d9.bench, each
    with an MX whose address is 127.0.0.1; fills postel's queue with N messages of 1 KB
    (recipients round robin over the 10 domains) through its submission port while its
    delivery is off; stops it, starts it again on the same data with delivery on (port
    P, the sink's) and times it until the sink has counted all N and no recipient is
    left open. ``--profile`` runs py-spy on the delivering process (wall or --gil).

``outbound.py postfix --conf D --spool D --master-pid PID --port P --sink-log F -n N``
    Fills the Postfix instance configured in D (every message held at SMTP time) with
    N messages of 1 KB through ``smtp-source`` (one process per domain), then times
    ``postsuper -H ALL`` + ``postqueue -f`` until the sink has counted all N and the
    queue directories are empty.

``outbound.py summarize OUT RESULTS_MD``
    Medians of OUT/results.jsonl as the "Outbound" section of RESULTS_MD (replaced
    between its markers, appended when missing), with OUT's py-spy profile.

The sink's ``-c`` counter ("sess=.. quit=.. mesg=N\\r", on its stdout) is the count of
messages received; a run counts from the value before it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import profile_top
from postel_setup import add_users

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dnsserver import DnsServer  # noqa: E402

LOOPBACK = "127.0.0.1"
DOMAINS = tuple(f"d{i}.bench" for i in range(10))
SENDER = "user1@bench.test"
PASSWORD = "benchpass"
SIZE = 1024
"""Octets of each message (header and body), as smtp-source -l 1024 sends."""
SUBMITTERS = 10
"""Concurrent submission sessions filling postel's queue."""
POLL_S = 0.02
"""Seconds between looks at the sink counter and the queue while timing."""
RUN_DEADLINE_S = 900.0
"""A run that has not delivered everything by then is reported as failed."""
OPEN_STATES = ("queued", "leased", "deferred", "held")
SECTION_BEGIN = "<!-- OUTBOUND: bench/outbound.sh rewrites from here -->"
SECTION_END = "<!-- OUTBOUND: end -->"
_ZONE = """$TTL 3600
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
@ IN MX 10 mx
mx IN A 127.0.0.1
"""
_COUNTER = re.compile(rb"mesg=(\d+)")


@dataclass(frozen=True, slots=True)
class Run:
    """One timed drain of N queued messages into the sink."""

    server: str
    n: int
    seconds: float
    """From the release (Postfix) or the delivering process's first greeting (postel)
    until the sink had all N and the queue was empty."""
    msgs_per_s: float
    cpu_ms_per_msg: float
    """Server CPU (the whole process tree) per message over those seconds."""
    sink_received: int
    startup_s: float = 0.0
    """postel only: spawn to the first greeting (not in ``seconds``)."""
    profile: str = ""


# -- shared ----------------------------------------------------------------------------------


def sink_count(log: Path) -> int:
    """The sink's message counter: the last ``mesg=N`` it printed (0 before any)."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 256))
            found = _COUNTER.findall(f.read())
    except OSError:
        return 0
    return int(found[-1]) if found else 0


def tree_cpu_ticks(root: int) -> int:
    """CPU ticks (user + system, reaped children included) of ``root`` and every
    process below it."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text(encoding="latin-1")
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    return sum(table[p][1] for p in members if p in table)


def message(n: int) -> bytes:
    """The n-th message: to user<n>@d<n mod 10>.bench, padded to SIZE octets."""
    rcpt = recipient(n)
    head = (
        f"From: {SENDER}\r\nTo: {rcpt}\r\nSubject: outbound bench {n}\r\n"
        f"Message-ID: <ob.{n}@bench.test>\r\n\r\n"
    ).encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = (line * (SIZE // len(line) + 1))[: SIZE - len(head) - 2] + b"\r\n"
    return head + body


def recipient(n: int) -> str:
    return f"user{n}@{DOMAINS[n % len(DOMAINS)]}"


def wait_until(done: object, deadline: float, what: str) -> None:
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"outbound: timed out waiting for {what}")
        time.sleep(POLL_S)


# -- postel ----------------------------------------------------------------------------------


def write_config(work: Path, *, delivering: bool, sink_port: int, nameserver: str) -> Path:
    """postel's TOML for this bench: SMTP and submission on free loopback ports,
    delivery on or off, the bench's Knot as its DNS, no sending limits."""
    ports = [_free_port(), _free_port()]
    name = "deliver" if delivering else "fill"
    data = work / "data"
    text = f"""# generated by bench/outbound.py ({name})
hostname = "mx.bench.test"
data_dir = "{data}"

[listen]
smtp = ["{LOOPBACK}:{ports[0]}"]
submission = ["{LOOPBACK}:{ports[1]}"]
submissions = []
imap = []
imaps = []
pop3 = []
pop3s = []

[tls]
cert_file = "{data / "tls" / "cert.pem"}"
key_file = "{data / "tls" / "key.pem"}"
generate_self_signed = true

[abuse]
enabled = false
max_messages_per_hour_per_account = 100000000
max_recipients_per_hour_per_account = 100000000

[auth]
plaintext_on_loopback = true

[delivery]
enabled = {"true" if delivering else "false"}
port = {sink_port}

[dns]
nameservers = ["{nameserver}"]
"""
    path = work / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _listen_port(config: Path, service: str) -> int:
    found = re.search(rf'^{service} = \["[\d.]+:(\d+)"\]', config.read_text(), re.MULTILINE)
    assert found is not None
    return int(found.group(1))


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
    import socket

    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as s:
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


def open_recipients(db: Path) -> int:
    """Recipients of postel's queue not yet delivered or failed (read-only query)."""
    marks = ",".join("?" * len(OPEN_STATES))
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
        query = f"SELECT count(*) FROM queue_recipients WHERE state IN ({marks})"
        (n,) = c.execute(query, OPEN_STATES).fetchone()
    return int(n)


def _submit(port: int, numbers: range, errors: list[str]) -> None:
    try:
        with smtplib.SMTP(LOOPBACK, port, timeout=60) as client:
            client.login(SENDER, PASSWORD)
            for n in numbers:
                refused = client.sendmail(SENDER, [recipient(n)], message(n))
                if refused:
                    errors.append(f"{n}: {refused}")
    except (OSError, smtplib.SMTPException) as exc:
        errors.append(repr(exc))


def fill_postel(config: Path, log: Path, n: int) -> None:
    """Queue ``n`` messages through the submission port of a postel without delivery."""
    proc = _serve(config, log)
    try:
        port = _listen_port(config, "submission")
        wait_until(lambda: _greets(port), time.monotonic() + 60, "postel (fill) to listen")
        errors: list[str] = []
        threads = [
            threading.Thread(target=_submit, args=(port, range(i, n, SUBMITTERS), errors))
            for i in range(SUBMITTERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(f"outbound: submission failed: {errors[:3]}")
    finally:
        _stop(proc)


def run_postel(args: argparse.Namespace) -> Run:
    work = Path(args.work).absolute()
    work.mkdir(parents=True, exist_ok=True)
    zones = {d: _ZONE for d in DOMAINS}
    with DnsServer(zones) as dns:
        nameserver = f"{dns.nameserver[0]}:{dns.nameserver[1]}"
        fill = write_config(work, delivering=False, sink_port=args.sink_port, nameserver=nameserver)
        deliver = write_config(
            work, delivering=True, sink_port=args.sink_port, nameserver=nameserver
        )
        (work / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
        asyncio.run(add_users(fill, "bench.test", 1, PASSWORD))
        log = work / "postel.log"
        fill_postel(fill, log, args.n)
        db = work / "data" / "postel.sqlite3"
        if open_recipients(db) != args.n:
            raise SystemExit(f"outbound: {open_recipients(db)} queued, expected {args.n}")
        base = sink_count(Path(args.sink_log))
        spawned = time.monotonic()
        proc = _serve(deliver, log)
        spy = None
        try:
            port = _listen_port(deliver, "smtp")
            wait_until(lambda: _greets(port), spawned + 60, "postel (deliver) to listen")
            began = time.monotonic()
            if args.profile:  # delivery has begun: the profile misses its first moments
                spy = _spy(proc.pid, args.profile, args.mode)
            cpu0 = tree_cpu_ticks(proc.pid)
            threads0 = profile_top.thread_cpu(proc.pid)
            wait_until(
                lambda: (
                    sink_count(Path(args.sink_log)) - base >= args.n and open_recipients(db) == 0
                ),
                began + RUN_DEADLINE_S,
                "postel to deliver everything",
            )
            seconds = time.monotonic() - began
            cpu = tree_cpu_ticks(proc.pid) - cpu0
            if args.profile:
                _write_threads(Path(args.profile), args.mode, threads0, proc.pid)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            _stop(proc)
    received = sink_count(Path(args.sink_log)) - base
    if args.profile:
        load = f"sent={args.n} total_s={seconds:.3f}"
        (Path(args.profile) / f"profile-{args.mode}-load.txt").write_text(load + "\n")
    return _result("postel", args.n, seconds, cpu, received, began - spawned, args.profile or "")


def _spy(pid: int, out: str, mode: str) -> subprocess.Popen[bytes]:
    spy = ROOT / ".venv/bin/py-spy"
    extra = ["--gil"] if mode == "gil" else []
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    log = (path / f"py-spy-{mode}.log").open("wb")
    cmd = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--nonblocking"]
    cmd += ["--threads", "--format", "raw", *extra, "-o", str(path / f"profile-{mode}.raw")]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def _write_threads(out: Path, mode: str, before: dict[str, int], pid: int) -> None:
    after = profile_top.thread_cpu(pid)
    (out / f"threads-before-{mode}.txt").write_text(
        "".join(f"{t} {c}\n" for t, c in before.items())
    )
    (out / f"threads-after-{mode}.txt").write_text("".join(f"{t} {c}\n" for t, c in after.items()))


def _result(
    server: str, n: int, seconds: float, ticks: int, received: int, startup: float, profile: str
) -> Run:
    hz = os.sysconf("SC_CLK_TCK")
    return Run(
        server=server,
        n=n,
        seconds=round(seconds, 3),
        msgs_per_s=round(n / seconds, 1),
        cpu_ms_per_msg=round(1000 * ticks / hz / n, 3),
        sink_received=received,
        startup_s=round(startup, 3),
        profile=profile,
    )


# -- Postfix ---------------------------------------------------------------------------------

QUEUES = ("incoming", "active", "deferred", "hold", "maildrop")
SMTP_SOURCE = ("/usr/sbin/smtp-source", "-s", "2", "-l", str(SIZE), "-f", SENDER)
"""Each of the 10 filling processes: 2 sessions, 1 KB messages."""


def postfix_files(spool: Path, queues: tuple[str, ...] = QUEUES) -> int:
    """Queue files in these queue directories of the Postfix spool."""
    return sum(len(files) for q in queues for _, _, files in os.walk(spool / q))


def run_postfix(args: argparse.Namespace) -> Run:
    spool, conf = Path(args.spool), args.conf
    if postfix_files(spool):
        raise SystemExit("outbound: Postfix's queue is not empty before the run")
    per_domain = args.n // len(DOMAINS)
    procs = [
        subprocess.Popen(
            [*SMTP_SOURCE, "-m", str(per_domain), "-t", f"user@{domain}", f"{LOOPBACK}:{args.port}"]
        )
        for domain in DOMAINS
    ]
    if any(p.wait() for p in procs):
        raise SystemExit("outbound: smtp-source failed")
    n = per_domain * len(DOMAINS)
    wait_until(
        lambda: postfix_files(spool, ("hold",)) >= n and postfix_files(spool) == n,
        time.monotonic() + 300,
        "Postfix to hold every message",
    )
    base = sink_count(Path(args.sink_log))
    cpu0 = tree_cpu_ticks(args.master_pid)
    began = time.monotonic()
    subprocess.run(["postsuper", "-c", conf, "-H", "ALL"], check=True, capture_output=True)
    subprocess.run(["postqueue", "-c", conf, "-f"], check=True, capture_output=True)
    wait_until(
        lambda: sink_count(Path(args.sink_log)) - base >= n and postfix_files(spool) == 0,
        began + RUN_DEADLINE_S,
        "Postfix to deliver everything",
    )
    seconds = time.monotonic() - began
    cpu = tree_cpu_ticks(args.master_pid) - cpu0
    received = sink_count(Path(args.sink_log)) - base
    return _result("postfix", n, seconds, cpu, received, 0.0, "")


# -- summary ---------------------------------------------------------------------------------


def _median(rows: list[dict[str, object]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in rows))  # type: ignore[arg-type]


def summarize(out: Path, results_md: Path) -> str:
    """The Markdown section for the runs in ``out``; also written into ``results_md``."""
    lines = (out / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    env: dict[str, object] = next((r for r in rows if r.get("test") == "env"), {})
    runs = [r for r in rows if r.get("server") in ("postel", "postfix") and not r.get("profile")]
    by = {s: [r for r in runs if r["server"] == s] for s in ("postel", "postfix")}
    if not by["postel"] or not by["postfix"]:
        raise SystemExit("outbound: no runs to summarize")
    rate = {s: _median(rs, "msgs_per_s") for s, rs in by.items()}
    ratio = rate["postel"] / rate["postfix"]
    verdict = "met" if ratio >= 1.0 else "NOT met"
    text = [
        SECTION_BEGIN,
        f"### Measured: outbound run {env.get('stamp', '?')} (commit {env.get('commit', '?')})",
        "",
        f"**postel / Postfix = {ratio:.2f}x** (target: at least Postfix's rate: {verdict}). "
        f"Medians of {len(by['postel'])} rounds: postel {rate['postel']:.0f} msg/s, "
        f"Postfix {rate['postfix']:.0f} msg/s.",
        "",
        f"`make bench-outbound` (as root) runs `bench/outbound.sh`: {env.get('n', '?')} "
        "queued messages of 1 KB, one recipient each, round robin over 10 domains "
        "(d0..d9.bench), delivered to Postfix's `smtp-sink` (one sink per server, on a "
        "loopback port) in each round, the servers alternated (A B, then B A). postel: "
        "filled through its submission port with delivery off, then started on the same "
        "data with delivery on; its worker finds each domain's MX through Knot DNS on "
        "loopback (every MX is 127.0.0.1); timed from its first greeting until the sink "
        "counted all N and no recipient was open. Postfix "
        f"{env.get('postfix', '?')}: its own instance (`default_destination_concurrency_"
        "limit` 20, connection cache on demand, no TLS offered by the sink on either "
        "side), the 10 domains routed by a transport map to `[127.0.0.1]:sink` (no DNS: "
        "Postfix's resolver cannot be pointed at a loopback port), every message held at "
        "SMTP time (`HOLD`), then timed from `postsuper -H ALL` + `postqueue -f` until "
        "the sink counted all N and the queue directories were empty. CPU is the whole "
        "process tree of each server over the timed span.",
        "",
        "| server | msg/s median (min-max) | seconds median | server CPU ms/msg | "
        "received by the sink (each run) |",
        "|---|---|---|---|---|",
    ]
    for server, rs in by.items():
        rates = [float(r["msgs_per_s"]) for r in rs]
        text.append(
            f"| {server} | {rate[server]:.0f} ({min(rates):.0f}-{max(rates):.0f}) | "
            f"{_median(rs, 'seconds'):.2f} | {_median(rs, 'cpu_ms_per_msg'):.2f} | "
            f"{', '.join(str(r['sink_received']) for r in rs)} |"
        )
    starts = ", ".join(f"{float(r['startup_s']):.2f}" for r in by["postel"])
    text += ["", f"postel start-up (spawn to first greeting, not timed): {starts} s.", ""]
    profile = out / "profile"
    if (profile / "profile-wall.raw").exists() or (profile / "profile-gil.raw").exists():
        text += [
            "#### Profile of postel delivering (py-spy, one more run each)",
            "",
            profile_top.show(profile),
        ]
    text.append(SECTION_END)
    section = "\n".join(text) + "\n"
    old = results_md.read_text(encoding="utf-8") if results_md.exists() else ""
    if SECTION_BEGIN in old and SECTION_END in old:
        head, rest = old.split(SECTION_BEGIN, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n")
        new = head + section + tail
    else:
        new = old.rstrip("\n") + "\n\n" + section
    results_md.write_text(new, encoding="utf-8")
    return section


# -- entry -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """Command-line entry; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("postel")
    p.add_argument("--work", required=True)
    p.add_argument("--profile", default="")
    p.add_argument("--mode", choices=("wall", "gil"), default="wall")
    f = sub.add_parser("postfix")
    f.add_argument("--conf", required=True)
    f.add_argument("--spool", required=True)
    f.add_argument("--master-pid", type=int, required=True)
    f.add_argument("--port", type=int, required=True)
    for q in (p, f):
        q.add_argument("--sink-port", type=int, default=0)
        q.add_argument("--sink-log", required=True)
        q.add_argument("-n", type=int, default=5000)
        q.add_argument("--json", default="")
    s = sub.add_parser("summarize")
    s.add_argument("out")
    s.add_argument("results_md")
    t = sub.add_parser("tree-cpu", help="CPU ticks of a process tree (bench/run.sh's settle)")
    t.add_argument("pid", type=int)
    args = parser.parse_args(argv)
    if args.command == "tree-cpu":
        print(tree_cpu_ticks(args.pid))
        return 0
    if args.command == "summarize":
        print(summarize(Path(args.out), Path(args.results_md)))
        return 0
    run = run_postel(args) if args.command == "postel" else run_postfix(args)
    row = json.dumps(asdict(run))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as out:
            out.write(row + "\n")
    print(row)
    return 0 if run.sink_received >= run.n else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
