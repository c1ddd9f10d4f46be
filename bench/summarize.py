"""Turn one benchmark run (bench/out/STAMP/) into the measured part of bench/RESULTS.md.

``summarize.py OUT_DIR RESULTS_MD`` reads OUT_DIR/results.jsonl (mailbench rows),
OUT_DIR/verify.jsonl (messages found in the mailboxes after each run), the py-spy
profiles, and replaces the text between the two GENERATED markers of RESULTS_MD (the
file is created when missing; text outside the markers is kept).

Per cell (load generator x concurrency): medians over the rounds of delivered msgs/s
(up to the last message in a mailbox: the peer's queue drained into Maildir), accepted
msgs/s (up to the last 250 after DATA), server CPU ms per message (whole process trees,
the peer's drain included), peak RSS, and the ratio postel / peer of the medians.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from profile_top import show as profile_markdown

START = "<!-- GENERATED: bench/run.sh rewrites from here -->"
END = "<!-- GENERATED: end -->"
TARGET_RATIO = 3.0
"""postel's goal: at least this many times the peer's delivered rate."""
RSS_TARGET_MB = 150.0
"""postel's goal for peak RSS under this load."""

_ACCEPT = re.compile(r"sent=(\d+) accept_s=([\d.]+) drain_s=([\d.]+) total_s=([\d.]+)")


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run of one server in one cell."""

    server: str
    cell: str
    delivered_per_s: float
    accepted_per_s: float
    cpu_ms_per_msg: float
    rss_peak_mb: float
    pss_peak_mb: float
    procs_peak: int
    other_cpu_s: float
    client_cpu_frac: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int


def _servers(row: dict[str, object]) -> dict[str, dict[str, float]]:
    resources = row.get("resources")
    assert isinstance(resources, dict)
    servers = resources["servers"]
    assert isinstance(servers, dict)
    return servers


def _resources(row: dict[str, object]) -> dict[str, float]:
    resources = row.get("resources")
    assert isinstance(resources, dict)
    return resources


def _run(row: dict[str, object], cpu_row: dict[str, object] | None) -> Run:
    label = str(row["label"])
    server, tool, conc = label.split("/")
    servers = _servers(cpu_row or row)
    if row["test"] == "watch":
        m = _ACCEPT.search(str(row.get("output_tail", "")))
        accepted = int(m[1]) / float(m[2]) if m else float("nan")
        delivered = float(str(row["msgs_per_s"]))
        p50 = p99 = None
        errors = 0 if row.get("rc") == 0 else 1
    else:
        accepted = float(str(row["msgs_per_s"]))
        drain = row.get("drain") or {}
        assert isinstance(drain, dict)
        delivered = float(drain.get("delivered_msgs_per_s") or "nan")
        latency = row.get("latency")
        message = latency.get("message", {}) if isinstance(latency, dict) else {}
        p50, p99 = message.get("p50_ms"), message.get("p99_ms")
        errors = int(str(row.get("errors", 0)))
    resources = _resources(cpu_row or row)
    return Run(
        server=server,
        cell=f"{tool} c{conc.removeprefix('c')}",
        delivered_per_s=delivered,
        accepted_per_s=accepted,
        cpu_ms_per_msg=sum(s.get("cpu_ms_per_msg", float("nan")) for s in servers.values()),
        rss_peak_mb=sum(s["rss_peak_mb"] for s in servers.values()),
        pss_peak_mb=sum(s.get("pss_peak_mb") or 0 for s in servers.values()),
        procs_peak=int(sum(s["procs_peak"] for s in servers.values())),
        other_cpu_s=float(resources.get("other_cpu_s", 0.0)),
        client_cpu_frac=float(resources.get("client_cpu_frac") or 0.0),
        p50_ms=p50,
        p99_ms=p99,
        errors=errors,
    )


def read_runs(path: Path) -> list[Run]:
    """Every measured run in a results.jsonl written by bench/run.sh."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    measured: dict[str, list[dict[str, object]]] = {}
    cpu_by_label: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        label = r.get("label", "")
        if label.endswith("/cpu"):
            # mailbench smtp runs inside `mailbench watch`: that row's CPU covers the drain
            cpu_by_label.setdefault(label.removesuffix("/cpu"), []).append(r)
        elif label and r.get("test") in ("watch", "smtp"):
            measured.setdefault(label, []).append(r)
    runs = []
    for label, rs in measured.items():
        cpus = cpu_by_label.get(label, [])
        for i, r in enumerate(rs):
            runs.append(_run(r, cpus[i] if i < len(cpus) else None))
    return runs


def _med(xs: Iterable[float | None]) -> float:
    vals = [x for x in xs if x is not None and x == x]
    return statistics.median(vals) if vals else float("nan")


def _rng(xs: list[float]) -> str:
    return f"{_med(xs):.0f} ({min(xs):.0f}-{max(xs):.0f})" if len(xs) > 1 else f"{_med(xs):.0f}"


def main_table(runs: list[Run]) -> list[str]:
    """The headline table: delivered rates, ratio, CPU per message, memory."""
    cells = sorted({r.cell for r in runs}, key=lambda c: (c.split()[0], int(c.split()[1][1:])))
    out = [
        "| cell | postel delivered msg/s median (min-max) | peer delivered msg/s | ratio postel/peer"
        " | 3x target | accepted msg/s postel / peer | server CPU ms/msg postel / peer"
        " | peak RSS MB postel / peer (PSS) | neighbour CPU s (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        p = [r for r in runs if r.cell == cell and r.server == "postel"]
        q = [r for r in runs if r.cell == cell and r.server == "peer"]
        if not p or not q:
            continue
        pd, qd = [r.delivered_per_s for r in p], [r.delivered_per_s for r in q]
        ratio = _med(pd) / _med(qd)
        out.append(
            f"| {cell} | {_rng(pd)} | {_rng(qd)} | {ratio:.2f}x | "
            f"{'met' if ratio >= TARGET_RATIO else 'NOT met'} | "
            f"{_med(r.accepted_per_s for r in p):.0f} / {_med(r.accepted_per_s for r in q):.0f} | "
            f"{_med(r.cpu_ms_per_msg for r in p):.2f} / {_med(r.cpu_ms_per_msg for r in q):.2f} | "
            f"{max(r.rss_peak_mb for r in p):.0f} / {max(r.rss_peak_mb for r in q):.0f} "
            f"({max(r.pss_peak_mb for r in q):.0f}) | "
            f"{_med(r.other_cpu_s for r in p + q):.1f} |"
        )
    return [*out, ""]


def latency_table(runs: list[Run]) -> list[str]:
    """mailbench's per-message latency (connect to QUIT reply) and errors."""
    out = [
        "| cell | server | runs | p50 ms | p99 ms | errors | client CPU (cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in sorted({r.cell for r in runs}):
        for server in ("postel", "peer"):
            rs = [r for r in runs if r.cell == cell and r.server == server]
            if not rs:
                continue
            p50 = _med(r.p50_ms for r in rs)
            p99 = _med(r.p99_ms for r in rs)
            out.append(
                f"| {cell} | {server} | {len(rs)} | {p50:.1f} | {p99:.1f} | "
                f"{sum(r.errors for r in rs)} | {_med(r.client_cpu_frac for r in rs):.2f} |"
            )
    return [*out, ""]


def verify_lines(path: Path) -> list[str]:
    """Whether every run's messages were found in the mailboxes afterwards."""
    if not path.exists():
        return ["Delivery check: no verify.jsonl.", ""]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    bad = [r for r in rows if r["delivered"] != r["sent"]]
    if not bad:
        return [
            f"Delivery check: after each of the {len(rows)} runs, every message sent was found "
            "in a mailbox (postel: rows in `messages`; peer: files in `Maildir/new`).",
            "",
        ]
    return [
        "Delivery check FAILED for: "
        + ", ".join(f"{r['label']} {r['delivered']}/{r['sent']}" for r in bad),
        "",
    ]


def probe_lines(path: Path) -> list[str]:
    """The CPU probe of each round (bench/run.sh ``cpu_probe``), if the run has one."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return []
    per_round = ", ".join(f"{r['ms']:.0f}" for r in rows)
    return [
        f"CPU probe (a fixed pure-Python loop timed before each round, ms; lower is a faster "
        f"machine): {per_round}, median {_med(float(r['ms']) for r in rows):.0f}.",
        "",
    ]


def generate(out: Path) -> str:
    """The generated Markdown for the run in ``out``."""
    env = json.loads((out / "env.json").read_text())
    runs = read_runs(out / "results.jsonl")
    postel_rss = max((r.rss_peak_mb for r in runs if r.server == "postel"), default=float("nan"))
    lines = [
        START,
        f"## Measured: run {env['stamp']} (commit {env['commit']})",
        "",
        f"Machine: {env['cpus']} x {env['cpu_model']}, Linux {env['kernel']}, {env['fs']} on /tmp; "
        f"Python {env['python']}; peer Postfix {env['postfix']} + Dovecot {env['dovecot']}. "
        f"postel: [smtp] processes = {env.get('smtp_processes', 1)}"
        + (
            f", main_serves = {env.get('smtp_main_serves', 'true')}. "
            if int(env.get("smtp_processes", 1)) > 1
            else ". "
        )
        + f"Rounds: {env['rounds']}, servers alternated (A B, order swapped every round); "
        f"{env['n_smtp_source']} messages per smtp-source run, {env['n_mailbench']} per mailbench run; "
        "1 KB payload; one message per connection except smtp-source-d (smtp-source -d: "
        "one connection per session for all its messages).",
        "",
        *main_table(runs),
        *probe_lines(out / "cpu_probe.jsonl"),
        f"postel peak RSS over all runs: {postel_rss:.0f} MB (target < {RSS_TARGET_MB:.0f} MB: "
        f"{'met' if postel_rss < RSS_TARGET_MB else 'NOT met'}).",
        "",
        *verify_lines(out / "verify.jsonl"),
        "mailbench (Python client) latency per message, connect to QUIT:",
        "",
        *latency_table([r for r in runs if r.cell.startswith("mailbench")]),
        "### Profile of postel under smtp-source c50",
        "",
        profile_markdown(out),
        "",
        f"Raw rows: `bench/out/{out.name}/results.jsonl`; mailbench's own report: "
        f"`bench/out/{out.name}/mailbench-report.md`; flame graph: `bench/out/{out.name}/profile.svg`.",
        END,
    ]
    return "\n".join(lines)


def write(results_md: Path, generated: str) -> None:
    """Replace the generated block of ``results_md`` (create the file if needed)."""
    if results_md.exists():
        text = results_md.read_text(encoding="utf-8")
    else:
        text = f"# postel vs Postfix + Dovecot: SMTP delivery benchmark\n\n{START}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + generated + tail
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    results_md.write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    """Command-line entry; see the module docstring."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    write(Path(argv[1]), generate(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
