"""IMAP side by side with Dovecot on one large mailbox; driven by ``bench/imap.sh``.

``imap.py setup DIR SMTP_PORT IMAP_PORT``
    Writes ``DIR/postel.toml`` (SQLite in ``DIR/data``; SMTP and IMAP on 127.0.0.1 at
    the given ports, every other service off; plaintext LOGIN from loopback as in the
    embedded default; abuse tracker off; self-signed TLS), creates bench.test with
    user1..user100 and ``big`` (password benchpass, as the peer has) and prints the
    config's path.

``imap.py profile --pid PID --port IMAP_PORT --out DIR --word W --from F [--seconds S]``
    For each operation of ``mailbench.py mailbox`` (SELECT, FETCH 1:* ENVELOPE, UID
    SEARCH TEXT, UID SEARCH FROM, UID FETCH BODY.PEEK[], UID STORE +FLAGS) a loop of
    that operation alone on big@bench.test's INBOX for S seconds (at least
    ``MIN_ITERATIONS`` times) while ``py-spy record --threads`` samples postel's busy
    threads: ``DIR/profile-OP.raw`` and the client's timings in ``DIR/profile.jsonl``.

``imap.py unseen --port IMAP_PORT``
    Removes ``\\Seen`` from every message of big@bench.test's INBOX, so that each
    ``UID STORE +FLAGS (\\Seen)`` of the next ``mailbench.py mailbox`` run changes a
    flag (its random UIDs are the same every run: without this, later rounds would time
    STOREs that change nothing).

``imap.py wait-indexed --database PATH [--timeout S]``
    Waits until postel's background full-text indexer has indexed every message of the
    SQLite store at PATH (so that timed runs do not share the CPU with it), at most S
    seconds; prints how long it waited.

``imap.py summarize OUT RESULTS_MD``
    Medians of OUT/results.jsonl (mailbench ``mailbox``, ``delivery-latency`` and
    ``fill`` rows, ``imap_idle.py`` rows) per server, the postel/Dovecot ratios against
    the targets of the IMAP benchmark, the memory of 1,000 IDLE sessions and where
    postel's time goes per operation, as the "IMAP" section of RESULTS_MD (replaced
    between its markers, appended when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import profile_top
from imap_idle import Client
from postel_setup import add_users

from postel.config.model import Service

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
DOMAIN = "bench.test"
USERS = 100
PASSWORD = "benchpass"
BIG = f"big@{DOMAIN}"
MIN_ITERATIONS = 3
"""Profile loops run each operation at least this often, however slow."""
SECTION_BEGIN = "<!-- IMAP: bench/imap.sh rewrites from here -->"
SECTION_END = "<!-- IMAP: end -->"
SERVERS = ("postel", "peer")


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issue: postel / Dovecot at most ``ratio`` (or, with
    ``absolute_ms``, postel's value under that many ms)."""

    op: str
    title: str
    ratio: float | None = None
    absolute_ms: float | None = None


TARGETS = (
    Target("select_warm", "SELECT (warm)", ratio=1.2),
    Target("fetch_all_envelopes", "FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)", ratio=1.2),
    Target("search_text_hit", "UID SEARCH TEXT (word present)", ratio=0.1),
    Target("search_from", "UID SEARCH FROM", ratio=1.2),
    Target("fetch_body", "UID FETCH BODY.PEEK[]", ratio=1.5),
    Target("store_seen", "UID STORE +FLAGS (\\Seen)", ratio=1.5),
)
"""Issue 7: SEARCH TEXT at least 10x faster; SELECT, FETCH ENVELOPE, SEARCH FROM within
1.2x; STORE and FETCH BODY within 1.5x."""
UNTARGETED = (
    ("select_cold", "SELECT (first of each run)"),
    ("search_text_miss", "UID SEARCH TEXT (word absent: full scan)"),
    ("login", "LOGIN"),
)
IDLE_P99_TARGET_MS = 20.0
"""SMTP 250 to IDLE EXISTS, p99."""
IDLE_RSS_TARGET_MB = 300.0
"""Resident memory with 1,000 authenticated IDLE sessions."""
PROFILE_OPS = (
    ("select", "SELECT"),
    ("fetch_all_envelopes", "FETCH 1:* ENVELOPE"),
    ("search_text_hit", "UID SEARCH TEXT"),
    ("search_from", "UID SEARCH FROM"),
    ("fetch_body", "UID FETCH BODY.PEEK[]"),
    ("store_seen", "UID STORE +FLAGS"),
)
TOP = 5
"""Rows per operation in the profile tables."""
IDLE_LEAVES = (
    ("EpollSelector.select", "selectors.py"),
    ("_worker", "concurrent/futures/thread.py"),
)
"""Leaf frames of a thread that waits: the event loop in epoll, a store worker for a job."""


# -- setup -------------------------------------------------------------------------------------


def write_config(base: Path, smtp_port: int, imap_port: int) -> Path:
    """postel's TOML for this benchmark under ``base``; returns its path."""
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    serving = {Service.SMTP: smtp_port, Service.IMAP: imap_port}
    on = "\n".join(f'{s.value} = ["{LOOPBACK}:{p}"]' for s, p in serving.items())
    off = "\n".join(f"{s.value} = []" for s in Service if s not in serving)
    text = f"""# generated by bench/imap.py: SMTP and IMAP on loopback, abuse tracker off
hostname = "mx.{DOMAIN}"
data_dir = "{data}"

[listen]
{on}
{off}

[tls]
cert_file = "{data / "tls" / "cert.pem"}"
key_file = "{data / "tls" / "key.pem"}"
generate_self_signed = true

[abuse]
enabled = false

[auth]
plaintext_on_loopback = true
"""
    path = base / "postel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def setup(base: Path, smtp_port: int, imap_port: int) -> Path:
    """Config, domain, user1..user100 and big; returns the config's path."""
    config = write_config(base, smtp_port, imap_port)
    asyncio.run(add_users(config, DOMAIN, USERS, PASSWORD))
    add = ["account", "add", BIG, "--password-file", "-"]
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/postel"), "--config", str(config), *add],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 and "exists" not in proc.stderr:
        raise SystemExit(f"imap: account add {BIG} failed: {proc.stderr.strip()}")
    return config


# -- profile -----------------------------------------------------------------------------------


def _command(op: str, uids: list[int], rng: random.Random, word: str, frm: str, n: int) -> str:
    if op == "select":
        return "SELECT INBOX"
    if op == "fetch_all_envelopes":
        return "FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)"
    if op == "search_text_hit":
        return f"UID SEARCH TEXT {word}"
    if op == "search_from":
        return f"UID SEARCH FROM {frm}"
    if op == "fetch_body":
        return f"UID FETCH {rng.choice(uids)} (BODY.PEEK[])"
    # Every STORE changes a flag: \\Flagged set on a random message, then taken off it.
    if n % 2:
        return f"UID STORE {uids[-1]} -FLAGS (\\Flagged)"
    uids.append(uids.pop(rng.randrange(len(uids))))
    return f"UID STORE {uids[-1]} +FLAGS (\\Flagged)"


async def _loop(port: int, op: str, seconds: float, word: str, frm: str) -> list[float]:
    """Run ``op`` again and again for ``seconds``; its latencies in seconds."""
    client = Client()
    await client.open(port)
    await client.login(BIG, PASSWORD)
    await client.command("SELECT INBOX")
    found = await client.command("UID SEARCH ALL")
    uids = [int(x) for r in found if r.startswith(b"* SEARCH") for x in r[8:].split()]
    rng = random.Random(11)
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end or len(times) < MIN_ITERATIONS:
        text = _command(op, uids, rng, word, frm, len(times))
        began = time.perf_counter()
        await client.command(text)
        times.append(time.perf_counter() - began)
    await client.close()
    return times


async def _unseen(port: int) -> None:
    client = Client()
    await client.open(port)
    await client.login(BIG, PASSWORD)
    await client.command("SELECT INBOX")
    await client.command("STORE 1:* -FLAGS.SILENT (\\Seen)")
    await client.close()


_UNINDEXED_SQL = (
    "SELECT count(*) FROM messages AS m"
    " LEFT JOIN fulltext_messages AS f ON f.message_id = m.id"
    " WHERE f.message_id IS NULL OR f.version != ?"
)


def wait_indexed(database: Path, timeout: float) -> float:
    """Seconds waited until no message of ``database`` lacks its full-text document of
    the current extraction version; raises TimeoutError after ``timeout`` seconds."""
    from postel.store.fulltext import EXTRACT_VERSION

    began = time.monotonic()
    while True:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as db:
            (left,) = db.execute(_UNINDEXED_SQL, (EXTRACT_VERSION,)).fetchone()
        waited = time.monotonic() - began
        if left == 0:
            return waited
        if waited > timeout:
            raise TimeoutError(f"{left} messages still not indexed after {timeout:.0f} s")
        time.sleep(1.0)


def profile(args: argparse.Namespace) -> None:
    """One py-spy recording per operation; timings appended to OUT/profile.jsonl."""
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    for op, _title in PROFILE_OPS:
        raw = out / f"profile-{op}.raw"
        cmd = [str(ROOT / ".venv/bin/py-spy"), "record", "--pid", str(args.pid)]
        cmd += ["--rate", "200", "--nonblocking", "--threads", "--format", "raw", "-o", str(raw)]
        with (out / f"py-spy-{op}.log").open("wb") as log:
            spy = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.0)
        try:
            times = asyncio.run(_loop(args.port, op, args.seconds, args.word, args.from_))
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        row = {
            "test": "profile",
            "op": op,
            "n": len(times),
            "median_ms": round(1000 * statistics.median(times), 2),
            "raw": raw.name,
        }
        with (out / "profile.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(f"profiled {op}: {row['n']} x, median {row['median_ms']} ms", flush=True)


# -- summary -----------------------------------------------------------------------------------

Row = dict[str, object]


def _rows(path: Path) -> list[Row]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _server(row: Row) -> str:
    return str(row.get("label", "")).split("/", 1)[0]


def _med(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def op_samples(rows: list[Row], server: str, kind: str = "mailbox") -> dict[str, list[float]]:
    """Every latency (ms) per operation of the server's ``mailbox`` runs labelled
    ``server/kind``, pooled over the rounds. ``select_warm`` leaves out each run's first SELECT, ``select_cold`` is
    only that first one."""
    out: dict[str, list[float]] = {}
    for r in rows:
        if r.get("test") != "mailbox" or r.get("label") != f"{server}/{kind}":
            continue
        raw = r["raw_ms"]
        assert isinstance(raw, dict)
        for op, values in raw.items():
            out.setdefault(op, []).extend(float(v) for v in values)
        selects = [float(v) for v in raw.get("select", [])]
        out.setdefault("select_cold", []).extend(selects[:1])
        out.setdefault("select_warm", []).extend(selects[1:])
    return out


def _fmt(x: float) -> str:
    if x != x:
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def _verdict(target: Target, value: float, ratio: float) -> str:
    if target.absolute_ms is not None:
        return "met" if value < target.absolute_ms else "NOT met"
    assert target.ratio is not None
    return "met" if ratio <= target.ratio else "NOT met"


def ops_table(rows: list[Row]) -> tuple[list[str], list[str]]:
    """Per-operation medians, ratio and verdict; and the verdict summaries."""
    p, q = op_samples(rows, "postel"), op_samples(rows, "peer")
    lines = [
        "| operation | postel median ms (n) | Dovecot median ms (n) | postel / Dovecot "
        "| target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = []
    for t in TARGETS:
        pv, qv = _med(p.get(t.op, [])), _med(q.get(t.op, []))
        ratio = pv / qv if qv else float("nan")
        goal = f"<= {t.ratio}x" if t.ratio and t.ratio >= 1 else f"10x faster (<= {t.ratio}x)"
        verdict = _verdict(t, pv, ratio)
        verdicts.append(f"{t.title}: {ratio:.2f}x ({verdict})")
        lines.append(
            f"| {t.title} | {_fmt(pv)} ({len(p.get(t.op, []))}) | {_fmt(qv)} "
            f"({len(q.get(t.op, []))}) | {ratio:.2f}x | {goal} | **{verdict}** |"
        )
    for op, title in UNTARGETED:
        pv, qv = _med(p.get(op, [])), _med(q.get(op, []))
        ratio = pv / qv if qv else float("nan")
        lines.append(
            f"| {title} | {_fmt(pv)} ({len(p.get(op, []))}) | {_fmt(qv)} "
            f"({len(q.get(op, []))}) | {ratio:.2f}x | - | - |"
        )
    return [*lines, ""], verdicts


def _latency(rows: list[Row], server: str) -> tuple[list[float], list[float], int, int]:
    p50, p99, count, errors = [], [], 0, 0
    for r in rows:
        if r.get("test") != "delivery-latency" or _server(r) != server:
            continue
        lat = r["latency"]
        assert isinstance(lat, dict)
        seen = lat.get("idle_visible_after_250", {})
        if seen.get("count"):
            p50.append(float(seen["p50_ms"]))
            p99.append(float(seen["p99_ms"]))
            count += int(seen["count"])
        errors += int(str(r.get("errors", 0)))
    return p50, p99, count, errors


def latency_lines(rows: list[Row]) -> tuple[list[str], str]:
    """SMTP 250 to IDLE EXISTS per server; and the verdict."""
    lines = [
        "| SMTP 250 -> IDLE EXISTS | postel | Dovecot | postel / Dovecot |",
        "|---|---|---|---|",
    ]
    (pp50, pp99, pn, perr), (qp50, qp99, qn, qerr) = (
        _latency(rows, "postel"),
        _latency(rows, "peer"),
    )
    for name, a, b in (
        ("p50 ms (median of runs)", pp50, qp50),
        ("p99 ms (median of runs)", pp99, qp99),
    ):
        lines.append(f"| {name} | {_fmt(_med(a))} | {_fmt(_med(b))} | {_med(a) / _med(b):.3f}x |")
    worst_p, worst_q = max(pp99, default=float("nan")), max(qp99, default=float("nan"))
    lines.append(f"| p99 ms (worst run) | {_fmt(worst_p)} | {_fmt(worst_q)} | - |")
    lines.append(f"| probes (timeouts) | {pn} ({perr}) | {qn} ({qerr}) | - |")
    met = "met" if worst_p < IDLE_P99_TARGET_MS else "NOT met"
    verdict = (
        f"SMTP 250 -> IDLE EXISTS p99 {_fmt(worst_p)} ms in the worst run, "
        f"{_fmt(_med(pp99))} ms median of runs (under {IDLE_P99_TARGET_MS:.0f} ms: {met})"
    )
    return [*lines, ""], verdict


def _idle_row(rows: list[Row], server: str) -> list[Row]:
    return [r for r in rows if r.get("test") == "idle" and _server(r) == server]


def idle_lines(rows: list[Row]) -> tuple[list[str], str]:
    """Memory with N IDLE sessions per server (peak over the hold, whole trees)."""
    lines = [
        "| server (tree) | sessions idling / asked (alive after hold) | open s "
        "| RSS MB before -> peak held | PSS MB before -> peak held | processes held "
        "| RSS KB per session |",
        "|---|---|---|---|---|---|---|",
    ]
    verdict = "1,000 IDLE sessions: not measured"
    for server in SERVERS:
        for r in _idle_row(rows, server):
            memory = r["memory"]
            assert isinstance(memory, dict)
            for name, m in memory.items():
                before, peak = m["before"], m["peak"]
                per = 1024 * (peak["rss_mb"] - before["rss_mb"]) / max(int(str(r["idling"])), 1)
                lines.append(
                    f"| {server} ({name}) | {r['idling']} / {r['count']} "
                    f"({r['alive_after_hold']}) | {r['open_s']} | {before['rss_mb']:.0f} -> "
                    f"{peak['rss_mb']:.0f} | {before['pss_mb']:.0f} -> {peak['pss_mb']:.0f} "
                    f"| {peak['procs']} | {per:.0f} |"
                )
    postel = _idle_row(rows, "postel")
    if postel:
        memory = postel[-1]["memory"]
        assert isinstance(memory, dict)
        rss = sum(m["peak"]["rss_mb"] for m in memory.values())
        n = postel[-1]["idling"]
        met = "met" if rss < IDLE_RSS_TARGET_MB and n == postel[-1]["count"] else "NOT met"
        verdict = f"{n} IDLE sessions in {rss:.0f} MB RSS ({met})"
    return [*lines, ""], verdict


def fill_lines(rows: list[Row]) -> list[str]:
    """How the mailbox was filled on each server."""
    out = []
    for r in rows:
        if r.get("test") == "fill":
            out.append(
                f"- {_server(r)}: {r['accepted']} messages accepted at {r['msgs_per_s']} msg/s "
                f"(mean {r['mean_size']} octets, {r['errors']} errors), all visible over IMAP "
                f"after {r['all_visible_after_s']} s"
            )
    return [*out, ""] if out else []


def load_lines(out: Path) -> list[str]:
    """Load averages around every run (OUT/load.jsonl, written by imap.sh)."""
    rows = _rows(out / "load.jsonl")
    if not rows:
        return []
    lines = ["| round | run | load before -> after |", "|---|---|---|"]
    lines += [f"| {r['round']} | {r['label']} | {r['before']} -> {r['after']} |" for r in rows]
    return [*lines, ""]


def _busy(stacks: list[profile_top.Stack]) -> list[profile_top.Stack]:
    """Stacks of threads doing work: without the event loop's epoll wait and the
    store workers' wait for their next job (py-spy --nonblocking counts them as busy),
    and without postel.app's ``run`` (the loop's own frame) as a postel caller."""
    out = []
    for s in stacks:
        if s.frames and s.frames[-1] in IDLE_LEAVES:
            continue
        frames = tuple(f for f in s.frames if f[1] != "postel/app.py")
        out.append(profile_top.Stack(s.tid, s.thread, frames, s.count))
    return out


def _profile_rows(
    stacks: list[profile_top.Stack],
) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    by_area: Counter[str] = Counter()
    by_postel: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    for s in stacks:
        file = s.frames[-1][1] if s.frames else ""
        by_area[profile_top.area(file)] += s.count
        by_postel[profile_top.innermost_postel(s)] += s.count
        by_thread[s.thread] += s.count
    return by_area, by_postel, by_thread, sum(s.count for s in stacks) or 1


def profile_lines(out: Path) -> list[str]:
    """Where postel's time goes, per operation (py-spy, busy threads, wall clock)."""
    prof = {str(r["op"]): r for r in _rows(out / "profile" / "profile.jsonl")}
    if not prof:
        return []
    lines = [
        "| operation | ms per op (under py-spy) | busy samples by thread | by area of the "
        "leaf frame | innermost postel function (share of busy samples) |",
        "|---|---|---|---|---|",
    ]
    for op, title in PROFILE_OPS:
        raw = out / "profile" / f"profile-{op}.raw"
        if op not in prof or not raw.exists():
            continue
        by_area, by_postel, by_thread, total = _profile_rows(_busy(profile_top.read_raw(raw)))
        threads = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in by_thread.most_common(3))
        areas = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in by_area.most_common(4))
        funcs = "<br>".join(
            f"{k.replace('|', '/')} {100 * v / total:.0f}%" for k, v in by_postel.most_common(TOP)
        )
        lines.append(
            f"| {title} | {prof[op]['median_ms']} (n={prof[op]['n']}) | {threads} | {areas} "
            f"| {funcs} |"
        )
    return [*lines, ""]


def durable_lines(rows: list[Row]) -> list[str]:
    """STORE with Dovecot at ``mail_fsync = always`` (the ``*/durable`` runs)."""
    p = op_samples(rows, "postel", "durable").get("store_seen", [])
    q = op_samples(rows, "peer", "durable").get("store_seen", [])
    if not p or not q:
        return []
    ratio = _med(p) / _med(q)
    return [
        "| UID STORE +FLAGS (\\Seen), both durable | postel median ms (n) | Dovecot "
        "`mail_fsync = always` median ms (n) | postel / Dovecot |",
        "|---|---|---|---|",
        f"| each STORE changes a flag | {_fmt(_med(p))} ({len(p)}) | {_fmt(_med(q))} "
        f"({len(q)}) | {ratio:.2f}x |",
        "",
    ]


def summarize(out: Path, results_md: Path) -> str:
    """The Markdown section for the run in ``out``; also written into ``results_md``."""
    rows = _rows(out / "results.jsonl")
    env = next((r for r in rows if r.get("test") == "env"), {})
    table, verdicts = ops_table(rows)
    lat, lat_verdict = latency_lines(rows)
    idle, idle_verdict = idle_lines(rows)
    mailbox = next((r for r in rows if r.get("test") == "mailbox"), {})
    lines = [
        SECTION_BEGIN,
        f"### Measured: IMAP run {env.get('stamp', '?')} (commit {env.get('commit', '?')})",
        "",
        f"Dovecot {env.get('dovecot', '?')} (Maildir, defaults) and postel (SQLite) on the "
        f"same machine ({env.get('cpus', '?')} cores, load average {env.get('load', '?')} at "
        f"the start), {env.get('rounds', '?')} rounds, servers alternated (order swapped "
        f"every round). big@bench.test holds {mailbox.get('messages', '?')} messages on "
        f"each, the same ones (`mailbench.py fill --seed 1`, mailbench's size mix); "
        f"`mailbench.py mailbox --repeat {env.get('repeat', '?')} --bodies "
        f"{env.get('bodies', '?')} --stores {env.get('stores', '?')}` per run (a fresh "
        f"session per repetition; SEARCH TEXT `{mailbox.get('search_word', '?')}` "
        f"({mailbox.get('search_text_hits', '?')} hits), FROM "
        f"`{mailbox.get('search_from', '?')}` ({mailbox.get('search_from_hits', '?')} "
        "hits)). Latencies are pooled over the rounds.",
        "",
        "**Targets:** " + "; ".join([*verdicts, lat_verdict, idle_verdict]) + ".",
        "",
        *table,
        "STORE: `\\Seen` is taken off every message before each run (`bench/imap.py "
        "unseen`), so every timed STORE changes a flag. postel commits each flag change "
        "to disk (fsync) before its tagged OK; Dovecot (`mail_fsync = optimized`) does "
        "not fsync flag changes, so the STORE ratio above compares a durable write with "
        "an unsynced one. After the rounds the same STOREs once more with Dovecot set to "
        "`mail_fsync = always` (it then fdatasyncs its index log before answering), "
        "durable against durable:",
        "",
        *durable_lines(rows),
        '"SELECT (first of each run)" is the first SELECT after the other tests, not a '
        "page-cache-cold one.",
        "",
        f"Delivery to an idling client (`mailbench.py delivery-latency --mode idle --count "
        f"{env.get('probes', '?')}`, user1, 2 KB messages; Dovecot waits about 500 ms on "
        "purpose before it reports new mail):",
        "",
        *lat,
        f"Authenticated IDLE sessions held (`bench/imap_idle.py --count "
        f"{env.get('idle', '?')}`: LOGIN user1..user100 round robin, SELECT INBOX, IDLE; "
        f"memory summed over each server's process tree, sampled every 0.5 s for "
        f"{env.get('hold', '?')} s):",
        "",
        *idle,
        "RSS summed over Dovecot's tree counts the pages its ~1,000 imap processes share "
        "(binary, libraries) once per process, so PSS (each shared page split among its "
        "sharers) is its real footprint; postel is one process, where RSS and PSS differ "
        'only by the pages shared with other programs. "open s" is the time to log in '
        "and start IDLE on every session, 50 handshakes at a time: postel's first pass "
        "verifies each of the 100 argon2id password hashes once (later logins hit its "
        "verified-password cache, `[auth] cache_seconds`), Dovecot's users have PLAIN "
        "passwords and it starts one imap process per session. postel's cache keeps a "
        "verified password 300 s, so a pass that comes later pays argon2id again. A later "
        "postel pass starts from the first one's high-water mark (the Python heap is "
        "kept), so its per-session figure is near 0.",
        "",
        "Filling big@bench.test over SMTP (`mailbench.py fill -c 10`, waited until visible):",
        "",
        *fill_lines(rows),
    ]
    prof = profile_lines(out)
    if prof:
        lines += [
            "#### Where postel's time goes, per operation",
            "",
            "Each operation alone in a loop on big@bench.test's INBOX (`bench/imap.py "
            "profile`) while `py-spy record --threads` samples postel's busy threads "
            "(event loop and store worker threads; idle waits are not counted):",
            "",
            *prof,
        ]
    lines += [
        "Load averages around each run (the bench's own clients and both servers are part of it):",
        "",
        *load_lines(out),
        SECTION_END,
    ]
    section = "\n".join(lines) + "\n"
    old = results_md.read_text(encoding="utf-8") if results_md.exists() else ""
    if SECTION_BEGIN in old and SECTION_END in old:
        head, rest = old.split(SECTION_BEGIN, 1)
        new = head + section + rest.split(SECTION_END, 1)[1].lstrip("\n")
    else:
        heading = "## IMAP on a large mailbox: postel vs Dovecot\n\n"
        new = old.rstrip("\n") + "\n\n" + heading + section
    results_md.write_text(new, encoding="utf-8")
    return section


# -- entry -------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """Command-line entry; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    s.add_argument("dir")
    s.add_argument("smtp_port", type=int)
    s.add_argument("imap_port", type=int)
    p = sub.add_parser("profile")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--word", required=True)
    p.add_argument("--from", dest="from_", required=True)
    p.add_argument("--seconds", type=float, default=8.0)
    u = sub.add_parser("unseen")
    u.add_argument("--port", type=int, required=True)
    w = sub.add_parser("wait-indexed")
    w.add_argument("--database", required=True)
    w.add_argument("--timeout", type=float, default=600.0)
    m = sub.add_parser("summarize")
    m.add_argument("out")
    m.add_argument("results_md")
    args = parser.parse_args(argv)
    if args.command == "setup":
        print(setup(Path(args.dir).absolute(), args.smtp_port, args.imap_port))
    elif args.command == "profile":
        profile(args)
    elif args.command == "wait-indexed":
        print(f"indexed after {wait_indexed(Path(args.database), args.timeout):.1f} s")
    elif args.command == "unseen":
        asyncio.run(_unseen(args.port))
    else:
        print(summarize(Path(args.out), Path(args.results_md)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
