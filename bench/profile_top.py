"""Where postel's time goes: py-spy raw profiles and per-thread CPU, as Markdown.

``profile_top.py threads PID`` prints ``tid cpu_ticks`` for every thread of PID (read from
``/proc/PID/task/*/stat``; run it before and after a load to get each thread's CPU).

``profile_top.py show OUT_DIR`` prints the Markdown that ``summarize.py`` embeds:
per-thread CPU during the profiled load, the wall-clock profile by thread, and the
GIL-holding profile by area, by postel function and by leaf function.

Input: py-spy ``record --format raw --threads`` files (one "frame;frame;... COUNT" line
per distinct stack, first frame "thread (TID): NAME") in OUT_DIR/profile-{wall,gil}.raw.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TOP = 15
"""Rows shown per table."""

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \((?P<tid>\w+)\)(?::\s*(?P<name>.*))?$")
_AREAS = (
    ("postel/", None),
    ("sqlalchemy/", "sqlalchemy (SQL building, execution, sqlite3 calls)"),
    ("asyncio/", "asyncio event loop and transports"),
    ("selectors", "asyncio event loop and transports"),
    ("concurrent/", "thread-pool hand-off (executor, futures)"),
    ("threading", "thread-pool hand-off (executor, futures)"),
    ("queue", "thread-pool hand-off (executor, futures)"),
    ("logging/", "logging"),
    ("ssl", "ssl"),
    ("random", "random / ids"),
    ("secrets", "random / ids"),
)


@dataclass(frozen=True, slots=True)
class Stack:
    """One distinct sampled stack: thread id and name, frames root first, sample count."""

    tid: str
    thread: str
    frames: tuple[tuple[str, str], ...]
    count: int


def read_raw(path: Path) -> list[Stack]:
    """Parse a py-spy raw (collapsed) file written with ``--threads``."""
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        text, _, count = line.rpartition(" ")
        if not text or not count.isdigit():
            continue
        parts = text.split(";")
        tid, thread = "?", "?"
        head = _THREAD.match(parts[0])
        if head:
            tid = head["tid"]
            thread = re.sub(r"_\d+$", "", head["name"] or "?")
            parts = parts[1:]
        frames = []
        for part in parts:
            m = _FRAME.match(part)
            frames.append((m["func"], m["file"]) if m else (part, ""))
        stacks.append(Stack(tid, thread, tuple(frames), int(count)))
    return stacks


def area(file: str) -> str:
    """The area a source file belongs to (postel package, library, or stdlib part)."""
    if file.startswith("postel/"):
        parts = file.split("/")
        return f"postel.{parts[1].removesuffix('.py')}" if len(parts) > 2 else "postel"
    for prefix, name in _AREAS:
        if file.startswith(prefix) and name:
            return name
    return "other (stdlib, C extensions)"


def innermost_postel(stack: Stack) -> str:
    """The deepest postel function on the stack: the postel code that caused the work."""
    for func, file in reversed(stack.frames):
        if file.startswith("postel/") and not file.startswith("postel/cli/"):
            return f"{func} ({file})"
    return "(event loop itself: no postel callback on the stack)"


def thread_cpu(pid: int) -> dict[str, int]:
    """CPU ticks (user + system) of every thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = int(fields[11]) + int(fields[12])
    return out


def _read_ticks(path: Path) -> dict[str, int]:
    pairs = (line.split() for line in path.read_text(encoding="ascii").splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2}


def _table(title: str, counter: Counter[str], total: int) -> list[str]:
    rows = [f"| {title} | share |", "|---|---|"]
    for key, n in counter.most_common(TOP):
        rows.append(f"| {key.replace('|', '/')} | {100 * n / total:.1f}% |")
    return [*rows, ""]


def _load_line(out: Path, mode: str) -> str:
    path = out / f"profile-{mode}-load.txt"
    return path.read_text(encoding="utf-8").strip() if path.exists() else "?"


def thread_section(out: Path, names: dict[str, str]) -> list[str]:
    """Per-thread CPU seconds during the wall-clock profiling load."""
    before_path, after_path = out / "threads-before-wall.txt", out / "threads-after-wall.txt"
    if not (before_path.exists() and after_path.exists()):
        return []
    before, after = _read_ticks(before_path), _read_ticks(after_path)
    hz = os.sysconf("SC_CLK_TCK")
    by_name: Counter[str] = Counter()
    for tid, ticks in after.items():
        by_name[names.get(tid, "other threads")] += ticks - before.get(tid, 0)
    total = sum(by_name.values()) or 1
    load = _load_line(out, "wall")
    rows = [
        f"Thread CPU during the profiled load ({load}; from /proc/PID/task/*/stat):",
        "",
        "| thread | CPU s | share |",
        "|---|---|---|",
    ]
    for name, ticks in by_name.most_common():
        rows.append(f"| {name} | {ticks / hz:.2f} | {100 * ticks / total:.0f}% |")
    return [*rows, ""]


def show(out: Path) -> str:
    """The Markdown profile section for the run in ``out``."""
    lines: list[str] = []
    wall_path, gil_path = out / "profile-wall.raw", out / "profile-gil.raw"
    names: dict[str, str] = {}
    if wall_path.exists():
        wall = read_raw(wall_path)
        names = {s.tid: s.thread for s in wall}
        lines += thread_section(out, names)
        total = sum(s.count for s in wall) or 1
        by_thread: Counter[str] = Counter()
        for s in wall:
            by_thread[s.thread] += s.count
        lines.append("Wall-clock samples (py-spy, non-idle threads) by thread:")
        lines.append("")
        lines += _table("thread", by_thread, total)
        leaf: Counter[str] = Counter()
        for s in wall:
            func, file = s.frames[-1] if s.frames else ("?", "")
            leaf[f"{s.thread}: {func} ({file})"] += s.count
        lines.append("Wall-clock samples by leaf function (where threads are busy or blocked):")
        lines.append("")
        lines += _table("thread: function", leaf, total)
    if gil_path.exists():
        gil = read_raw(gil_path)
        total = sum(s.count for s in gil) or 1
        by_area: Counter[str] = Counter()
        by_postel: Counter[str] = Counter()
        by_leaf: Counter[str] = Counter()
        for s in gil:
            func, file = s.frames[-1] if s.frames else ("?", "")
            by_area[area(file)] += s.count
            by_postel[innermost_postel(s)] += s.count
            by_leaf[f"{func} ({file})"] += s.count
        load = _load_line(out, "gil")
        lines.append(
            f"GIL-holding samples (py-spy --gil: the Python work that serialises postel; {load}):"
        )
        lines.append("")
        lines += _table("area of the leaf frame", by_area, total)
        lines += _table("innermost postel function (the work it causes)", by_postel, total)
        lines += _table("leaf function", by_leaf, total)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Command-line entry; see the module docstring."""
    if len(argv) == 2 and argv[0] == "threads":
        for tid, ticks in sorted(thread_cpu(int(argv[1])).items()):
            print(tid, ticks)
    elif len(argv) == 2 and argv[0] == "show":
        print(show(Path(argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
