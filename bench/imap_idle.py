"""Hold many authenticated IMAP IDLE sessions and measure the server's resident memory.

``imap_idle.py --port PORT --count N --pid NAME=PID [--pid ...] [--hold S] [--json FILE
--label CELL]`` opens N plaintext connections to 127.0.0.1:PORT (at most
``--open-concurrency`` handshakes at a time), each ``LOGIN user{k}@bench.test`` (round
robin over ``--users``), ``SELECT INBOX`` and ``IDLE`` until the continuation request.
While all are idling it samples, every half second for ``--hold`` seconds, the summed
RSS and PSS (``/proc/PID/status`` VmRSS, ``/proc/PID/smaps_rollup`` Pss) of each watched
process tree; then ends every IDLE with ``DONE`` (a session that answers the tagged OK
was still alive) and logs out. One JSON row (``test: "idle"``) is appended to FILE.

Also the minimal IMAP client (``Client``) that ``bench/imap.py profile`` uses for its
single-operation loops: plaintext, no pipelining, literals read inline.
Spec: RFC 9051 §6.2.3 (LOGIN), §6.3.2 (SELECT); RFC 2177 (IDLE).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HOST = "127.0.0.1"
"""The only address this client connects to."""
IO_TIMEOUT_S = 120.0
"""Seconds to wait for any one response line (a FETCH 1:* on 10,000 messages is slow)."""
LINE_LIMIT = 256 * 1024 * 1024
"""StreamReader limit: one response line (literals excluded) may be this long."""
SAMPLE_S = 0.5
"""Seconds between memory samples while holding."""
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ImapFailure(Exception):
    """A tagged NO/BAD, a missing continuation, or a closed connection."""


class Client:
    """One IMAP connection: ``command`` sends a tagged command and returns the
    untagged responses (each a complete response, literals inlined)."""

    def __init__(self) -> None:
        self.tag = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, port: int) -> None:
        """Connect and read the greeting."""
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=LINE_LIMIT), IO_TIMEOUT_S
        )
        greeting = await self.response()
        if not greeting.startswith(b"* OK"):
            raise ImapFailure(f"greeting {greeting[:100]!r}")

    async def response(self) -> bytes:
        """One complete response (a line and any literals it announces)."""
        assert self.reader is not None
        parts = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT_S)
            if not line:
                raise ImapFailure("connection closed")
            parts.append(line)
            m = _LITERAL.search(line)
            if not m:
                return b"".join(parts)
            parts.append(await self.reader.readexactly(int(m[1])))

    def _send(self, text: str) -> bytes:
        assert self.writer is not None
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        return tag

    async def _until_tagged(self, tag: bytes) -> list[bytes]:
        untagged: list[bytes] = []
        while True:
            resp = await self.response()
            if resp.startswith(tag + b" "):
                if resp[len(tag) + 1 : len(tag) + 3] != b"OK":
                    raise ImapFailure(resp.decode("latin-1").strip())
                return untagged
            untagged.append(resp)

    async def command(self, text: str) -> list[bytes]:
        """Send ``text`` under a new tag; the untagged responses before its tagged OK."""
        return await self._until_tagged(self._send(text))

    async def login(self, user: str, password: str) -> None:
        """LOGIN with quoted strings."""
        await self.command(f'LOGIN "{user}" "{password}"')

    async def idle(self) -> bytes:
        """Start IDLE; returns its tag once the server sent the continuation request."""
        tag = self._send("IDLE")
        while True:
            resp = await self.response()
            if resp.startswith(b"+"):
                return tag
            if resp.startswith(tag + b" "):
                raise ImapFailure(resp.decode("latin-1").strip())

    async def done(self, tag: bytes) -> None:
        """End IDLE (RFC 2177 §3) and wait for its tagged OK."""
        assert self.writer is not None
        self.writer.write(b"DONE\r\n")
        await self._until_tagged(tag)

    async def close(self) -> None:
        """LOGOUT (best effort) and close."""
        if self.writer is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.command("LOGOUT"), 5)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


# -- memory of a process tree ------------------------------------------------------------------


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True, slots=True)
class Memory:
    """Summed memory of one process tree: MB (2**20 bytes) and the process count."""

    rss_mb: float
    pss_mb: float
    procs: int


def tree_memory(root: int) -> Memory:
    """RSS and PSS of the tree under ``root``, summed over its processes."""
    pids = tree_pids(root)
    rss = sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return Memory(round(rss / 1024, 1), round(pss / 1024, 1), len(pids))


def _memory(pids: dict[str, int]) -> dict[str, Memory]:
    return {name: tree_memory(pid) for name, pid in pids.items()}


def _peak(a: Memory, b: Memory) -> Memory:
    return Memory(max(a.rss_mb, b.rss_mb), max(a.pss_mb, b.pss_mb), max(a.procs, b.procs))


# -- hold ------------------------------------------------------------------------------------


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


async def hold(args: argparse.Namespace) -> dict[str, object]:
    """Open, hold and close ``args.count`` IDLE sessions; the result row."""
    _raise_fd_limit(args.count + 256)
    pids = dict(p.split("=", 1) for p in args.pid)
    watched = {name: int(pid) for name, pid in pids.items()}
    before = _memory(watched)
    sem = asyncio.Semaphore(args.open_concurrency)
    idling: list[tuple[Client, bytes]] = []
    errors: list[str] = []

    async def one(k: int) -> None:
        client = Client()
        try:
            async with sem:
                await client.open(args.port)
                await client.login(args.user_fmt.format(n=k % args.users + 1), args.password)
                await client.command("SELECT INBOX")
                idling.append((client, await client.idle()))
        except (OSError, ImapFailure, TimeoutError, asyncio.IncompleteReadError) as exc:
            errors.append(repr(exc))
            await client.close()

    began = time.monotonic()
    await asyncio.gather(*(one(k) for k in range(args.count)))
    open_s = time.monotonic() - began
    peak = dict(before)
    end = time.monotonic() + args.hold
    while True:
        now = _memory(watched)
        peak = {name: _peak(peak[name], now[name]) for name in watched}
        if time.monotonic() >= end:
            break
        await asyncio.sleep(SAMPLE_S)
    held = now

    async def finish(client: Client, tag: bytes) -> bool:
        async with sem:
            try:
                await client.done(tag)
                return True
            except (OSError, ImapFailure, TimeoutError, asyncio.IncompleteReadError):
                return False
            finally:
                await client.close()

    alive = sum(await asyncio.gather(*(finish(c, t) for c, t in idling)))
    await asyncio.sleep(1.0)
    after = _memory(watched)
    if errors:
        print(f"imap_idle: {len(errors)} sessions failed, first: {errors[0]}", file=sys.stderr)
    return {
        "test": "idle",
        "label": args.label,
        "count": args.count,
        "idling": len(idling),
        "alive_after_hold": alive,
        "errors": len(errors),
        "error_samples": errors[:5],
        "open_s": round(open_s, 3),
        "hold_s": args.hold,
        "memory": {
            name: {
                "before": asdict(before[name]),
                "held": asdict(held[name]),
                "peak": asdict(peak[name]),
                "after": asdict(after[name]),
            }
            for name in watched
        },
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def main(argv: list[str]) -> int:
    """Command-line entry; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--user-fmt", default="user{n}@bench.test")
    p.add_argument("--password", default="benchpass")
    p.add_argument("--hold", type=float, default=10.0, help="seconds to hold once all idle")
    p.add_argument("--open-concurrency", type=int, default=50)
    p.add_argument("--pid", action="append", default=[], help="NAME=PID of a server tree")
    p.add_argument("--json", help="append the row to this file")
    p.add_argument("--label", default="idle")
    args = p.parse_args(argv)
    row = asyncio.run(hold(args))
    text = json.dumps(row)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0 if row["idling"] == args.count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
