"""Summarise a POP3 side-by-side run (bench/pop3.sh) into bench/RESULTS.md.

``summarize_pop3.py OUT_DIR RESULTS_MD`` reads ``OUT_DIR/results.jsonl`` (mailbench
``pop3`` rows labelled ``postel/pop3`` and ``peer/pop3``) and ``OUT_DIR/env.json``, and
replaces the part of RESULTS_MD between the POP3 markers (appending them if missing) with
a table of medians: RETR/s, sessions/s, latencies, server CPU and memory, and the
postel/peer ratio of RETR throughput against the target (postel within 1.5x of Dovecot:
ratio >= 1/1.5).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BEGIN = "<!-- POP3: bench/pop3.sh rewrites from here -->"
END = "<!-- POP3: end -->"
TARGET = 1 / 1.5
"""postel's RETR rate must be at least two thirds of Dovecot's (issue: within 1.5x)."""


def _rows(path: Path) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {"postel": [], "peer": []}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        label = str(row.get("label", ""))
        server = label.split("/", 1)[0]
        if row.get("test") == "pop3" and server in out:
            out[server].append(row)
    return out


def _median(rows: list[dict[str, object]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)  # type: ignore[arg-type]


def _lat(rows: list[dict[str, object]], op: str) -> float:
    return statistics.median(float(r["latency"][op]["p50_ms"]) for r in rows)  # type: ignore[index]


def _server(rows: list[dict[str, object]]) -> tuple[float, float]:
    cpu, rss = [], []
    for r in rows:
        servers = r.get("resources", {}).get("servers", {})  # type: ignore[union-attr]
        cpu.append(sum(float(s.get("cpu_s", 0)) for s in servers.values()))
        rss.append(sum(float(s.get("rss_peak_mb", 0)) for s in servers.values()))
    return statistics.median(cpu), max(rss)


def render(out_dir: Path) -> str:
    env = json.loads((out_dir / "env.json").read_text())
    rows = _rows(out_dir / "results.jsonl")
    p, q = rows["postel"], rows["peer"]
    if not p or not q:
        return f"{BEGIN}\n## POP3\n\nNo complete run in {out_dir.name}.\n{END}\n"
    ratio = _median(p, "retr_per_s") / _median(q, "retr_per_s")
    verdict = "met" if ratio >= TARGET else "NOT met"
    pcpu, prss = _server(p)
    qcpu, qrss = _server(q)
    lines = [
        BEGIN,
        f"## POP3: run {env['stamp']} (commit {env['commit']})",
        "",
        f"`make bench-pop3` (bench/pop3.sh): {env['users']} mailboxes x {env['msgs']} messages "
        f"(mailbench's size mix) on each server, then `mailbench.py pop3` with "
        f"{env['sessions']} sessions per user, each USER/PASS, STAT, LIST, {env['retr']} x RETR "
        f"of a random message, QUIT; {env['rounds']} rounds, servers alternated. Peer: Dovecot "
        f"{env['dovecot']} (Maildir).",
        "",
        f"**Target (postel within 1.5x of Dovecot): {verdict}** — RETR/s ratio postel/peer "
        f"{ratio:.2f} (target >= {TARGET:.2f}).",
        "",
        "| measure (median of rounds) | postel | peer | postel/peer |",
        "|---|---|---|---|",
    ]
    for name, key in (("RETR/s", "retr_per_s"), ("sessions/s", "sessions_per_s")):
        a, b = _median(p, key), _median(q, key)
        lines.append(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    for op in ("login", "stat", "list", "retr", "quit"):
        a, b = _lat(p, op), _lat(q, op)
        lines.append(f"| {op} p50 ms | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    lines.append(f"| server CPU s per run | {pcpu:.2f} | {qcpu:.2f} | {pcpu / qcpu:.2f} |")
    lines.append(f"| server peak RSS MB | {prss:.0f} | {qrss:.0f} | |")
    lines += ["", END, ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir, results = Path(argv[0]), Path(argv[1])
    text = results.read_text() if results.exists() else ""
    block = render(out_dir)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    results.write_text(text)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
