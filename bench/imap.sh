#!/usr/bin/env bash
# imap.sh -- side-by-side IMAP benchmark on a large mailbox: postel against the peer's
# Dovecot, both on 127.0.0.1 only. Invoked by `make bench-imap` from the repository root,
# as root (peer-up.sh apt-installs and starts Postfix + Dovecot; their daemons drop
# privileges).
#
# What it does:
#   1. starts the peer with mailbench's peer-up.sh (ports 12525/12587/11143/11110, off
#      postel's), users user1..user100 and big @bench.test, password benchpass,
#   2. starts postel (bench/imap.py setup: SQLite in a temp dir, SMTP and IMAP on free
#      loopback ports, plaintext LOGIN from loopback as in the embedded default, abuse
#      tracker off) with the same users,
#   3. fills big@bench.test with N messages on both (`mailbench.py fill --seed 1`, same
#      generator, over SMTP, waiting until IMAP shows them all; postel: and until its
#      background full-text indexer has caught up), then one unrecorded
#      `mailbench.py mailbox` pass per server (indexes and caches built),
#   4. ROUNDS rounds, servers alternated (order swapped every round), each server:
#        mailbench.py mailbox           SELECT, FETCH 1:* ENVELOPE, UID SEARCH TEXT (hit
#                                       and miss), UID SEARCH FROM, BODY.PEEK[], STORE
#        mailbench.py delivery-latency  SMTP 250 -> IDLE EXISTS, PROBES probes (user1)
#        bench/imap_idle.py             IDLE authenticated IDLE sessions held HOLD s:
#                                       summed RSS/PSS of the server's process tree
#      every mailbench run under --watch (server CPU and memory of each tree); after
#      the IDLE run the next one waits until the machine's process count is back
#      (Dovecot tears its IDLE processes down for a while),
#   5. times STORE once more with Dovecot set to mail_fsync = always (durable against
#      durable; postel always commits a flag change with fsync before its OK),
#   6. profiles postel per operation with py-spy (bench/imap.py profile; PROFILE=0
#      skips it),
#   7. writes the "IMAP" section of bench/RESULTS.md (bench/imap.py summarize).
# Raw rows: bench/out/imap-<stamp>/results.jsonl (git-ignored).
#
# Knobs: ROUNDS [3]  N [10000] messages in the big mailbox  IDLE [1000] IDLE sessions
#        HOLD [10] seconds the IDLE sessions are held  REPEAT [5] sessions per mailbox run
#        BODIES [20] STORES [20] per session  PROBES [50] IDLE delivery probes per run
#        FILL_C [10] SMTP sessions while filling  PROFILE [1]  PROFILE_S [8] seconds per op
#        MAILBENCH_DIR [../shared/bench beside the repository]  KEEP [0] keep the temp dir
# Quick run: ROUNDS=1 N=2000 IDLE=200 make bench-imap
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY="$ROOT/.venv/bin/python"
MAILBENCH_DIR=${MAILBENCH_DIR:-$(cd "$ROOT/.." && pwd)/shared/bench}
MB="$MAILBENCH_DIR/mailbench.py"
ROUNDS=${ROUNDS:-3}
N=${N:-10000}
IDLE=${IDLE:-1000}
HOLD=${HOLD:-10}
REPEAT=${REPEAT:-5}
BODIES=${BODIES:-20}
STORES=${STORES:-20}
PROBES=${PROBES:-50}
FILL_C=${FILL_C:-10}
PROFILE=${PROFILE:-1}
PROFILE_S=${PROFILE_S:-8}
KEEP=${KEEP:-0}
HOST=127.0.0.1
DOMAIN=bench.test
PASSWORD=benchpass
BIG="big@$DOMAIN"
export SMTP_PORT=12525 SUBMIT_PORT=12587 IMAP_PORT=11143 POP3_PORT=11110

die() { echo "bench-imap: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (peer-up.sh installs and starts postfix and dovecot)"
[ -x "$PY" ] || die "no $PY: run 'make bench-imap' (it builds .venv) from $ROOT"
for f in "$MB" "$MAILBENCH_DIR/peer-up.sh" "$MAILBENCH_DIR/peer-down.sh"; do
  [ -f "$f" ] || die "missing $f (set MAILBENCH_DIR)"
done
[ "$PROFILE" = 1 ] && [ ! -x "$ROOT/.venv/bin/py-spy" ] && \
  { "$ROOT/.venv/bin/pip" install -q py-spy > /dev/null 2>&1 || PROFILE=0; }
# IDLE sessions: a descriptor each on both ends
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH/out/imap-$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
LOADS="$OUT/load.jsonl"
WORK=$(mktemp -d /tmp/pbench-imap.XXXXXX)
chmod 755 "$WORK"   # the peer's daemons run as other users and must reach $WORK/peer
PEER="$WORK/peer"
POSTEL_DIR="$WORK/postel"
POSTEL_PID=""
log() { echo "[$(date +%H:%M:%S)] $*"; }

cleanup() {
  set +e
  if [ -n "$POSTEL_PID" ] && kill -0 "$POSTEL_PID" 2>/dev/null; then
    kill -TERM "$POSTEL_PID"
    for _ in $(seq 1 100); do kill -0 "$POSTEL_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$POSTEL_PID" 2>/dev/null && kill -KILL "$POSTEL_PID"
  fi
  # peer-up.sh failing half-way leaves pids.tmp: stop what it started, by PID
  [ -f "$PEER/pids.tmp" ] && [ ! -f "$PEER/pids" ] && mv "$PEER/pids.tmp" "$PEER/pids"
  [ -f "$PEER/pids" ] && bash "$MAILBENCH_DIR/peer-down.sh" "$PEER" >/dev/null
  cp -f "$POSTEL_DIR/postel.log" "$PEER/log/postfix.log" "$PEER/log/dovecot.log" "$OUT/" 2>/dev/null
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ------------------------------------------------------------------------- peer ----
log "starting the peer (Postfix + Dovecot) in $PEER"
bash "$MAILBENCH_DIR/peer-up.sh" "$PEER" > "$OUT/peer-up.log" 2>&1 || { tail -20 "$OUT/peer-up.log"; die "peer-up.sh failed"; }
# shellcheck disable=SC1091
source "$PEER/env.sh"
PEER_SMTP=$SMTP_PORT
PEER_IMAP=$IMAP_PORT

# ----------------------------------------------------------------------- postel ----
P_SMTP=$(free_port); P_IMAP=$(free_port)
CONFIG=$("$PY" "$BENCH/imap.py" setup "$POSTEL_DIR" "$P_SMTP" "$P_IMAP")
log "starting postel: SMTP $HOST:$P_SMTP, IMAP $HOST:$P_IMAP ($CONFIG)"
setsid "$ROOT/.venv/bin/postel" serve --config "$CONFIG" > "$POSTEL_DIR/postel.log" 2>&1 < /dev/null &
POSTEL_PID=$!
for _ in $(seq 1 100); do (echo > "/dev/tcp/$HOST/$P_IMAP") 2>/dev/null && break; sleep 0.1; done
(echo > "/dev/tcp/$HOST/$P_IMAP") 2>/dev/null || { cat "$POSTEL_DIR/postel.log"; die "postel did not start"; }

{
  echo "{\"test\": \"env\", \"stamp\": \"$STAMP\", \"dovecot\": \"$DOVECOT_VERSION\", \"postfix\": \"$POSTFIX_VERSION\","
  echo " \"python\": \"$("$PY" -c 'import sys; print(sys.version.split()[0])')\", \"cpus\": $(nproc),"
  echo " \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')\", \"load\": \"$(loadavg)\","
  echo " \"rounds\": $ROUNDS, \"n\": $N, \"repeat\": $REPEAT, \"bodies\": $BODIES, \"stores\": $STORES,"
  echo " \"probes\": $PROBES, \"idle\": $IDLE, \"hold\": $HOLD}"
} | tr -d '\n' > "$RESULTS"
echo >> "$RESULTS"

# server facts: server_facts NAME sets smtp, imap, watch (mailbench --watch), pids (imap_idle)
server_facts() {
  if [ "$1" = postel ]; then
    smtp=$P_SMTP; imap=$P_IMAP; watch=(--watch "postel=$POSTEL_PID"); idle_pids=(--pid "postel=$POSTEL_PID")
  else
    smtp=$PEER_SMTP; imap=$PEER_IMAP; watch=(--watch "postfix=$POSTFIX_PID" --watch "dovecot=$DOVECOT_PID")
    idle_pids=(--pid "dovecot=$DOVECOT_PID")
  fi
}

# timed ROUND LABEL CMD...: run CMD, recording the load averages around it
timed() {
  local round=$1 label=$2 before rc=0
  shift 2
  before=$(loadavg)
  "$@" || rc=$?
  echo "{\"round\": $round, \"label\": \"$label\", \"before\": \"$before\", \"after\": \"$(loadavg)\", \"rc\": $rc}" >> "$LOADS"
  [ $rc = 0 ] || log "$label: exit status $rc"
}

# ------------------------------------------------------------------------- fill ----
for server in peer postel; do
  server_facts "$server"
  log "filling $BIG on $server with $N messages"
  "$PY" "$MB" fill --quiet --host "$HOST" --port "$smtp" --rcpt "$BIG" --count "$N" --seed 1 \
    -c "$FILL_C" --password "$PASSWORD" --wait-imap "$HOST:$imap" --wait-timeout 1800 \
    "${watch[@]}" --json "$RESULTS" --label "$server/fill" > /dev/null
  log "$server: $(tail -1 "$RESULTS" | "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["accepted"], "accepted,", r["msgs_per_s"], "msg/s, visible after", r["all_visible_after_s"], "s")')"
  if [ "$server" = postel ]; then  # timed runs must not share the CPU with the indexer
    log "postel full-text index: $("$PY" "$BENCH/imap.py" wait-indexed --database "$POSTEL_DIR/data/postel.sqlite3")"
  fi
  "$PY" "$MB" mailbox --quiet --host "$HOST" --port "$imap" --user "$BIG" --password "$PASSWORD" \
    --repeat 1 --bodies 1 --stores 0 > /dev/null
done

# settle BEFORE: after an IDLE run, wait (at most 60 s) until the machine's process count
# is back near BEFORE (a server that forks per connection, as Dovecot does, tears down
# IDLE processes for a while: the next server's timings must not run beside that), then 2 s
processes() { cut -d' ' -f4 /proc/loadavg | cut -d/ -f2; }
settle() {
  local before=$1
  for _ in $(seq 1 600); do [ "$(processes)" -le $((before + 20)) ] && break; sleep 0.1; done
  sleep 2
}

# ------------------------------------------------------------------------ rounds ----
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="postel peer"; else order="peer postel"; fi
  log "round $round/$ROUNDS ($order)"
  for server in $order; do
    server_facts "$server"
    "$PY" "$BENCH/imap.py" unseen --port "$imap"   # every STORE of the run changes a flag
    timed "$round" "$server/mailbox" "$PY" "$MB" mailbox --quiet --host "$HOST" --port "$imap" \
      --user "$BIG" --password "$PASSWORD" --repeat "$REPEAT" --bodies "$BODIES" \
      --stores "$STORES" "${watch[@]}" --json "$RESULTS" --label "$server/mailbox"
    log "$server mailbox: $(tail -1 "$RESULTS" | "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(", ".join(k + " " + str(v["median_ms"]) + " ms" for k, v in r["ops"].items()))')"
    timed "$round" "$server/latency" "$PY" "$MB" delivery-latency --quiet --smtp-host "$HOST" \
      --smtp-port "$smtp" --imap-host "$HOST" --imap-port "$imap" --user "user1@$DOMAIN" \
      --password "$PASSWORD" --count "$PROBES" --mode idle "${watch[@]}" --json "$RESULTS" \
      --label "$server/latency"
    log "$server SMTP 250 -> IDLE EXISTS: $(tail -1 "$RESULTS" | "$PY" -c 'import json, sys; r = json.load(sys.stdin)["latency"].get("idle_visible_after_250", {}); print("p50", r.get("p50_ms"), "ms, p99", r.get("p99_ms"), "ms")')"
    procs_before=$(processes)
    timed "$round" "$server/idle" "$PY" "$BENCH/imap_idle.py" --port "$imap" --count "$IDLE" \
      --hold "$HOLD" "${idle_pids[@]}" --json "$RESULTS" --label "$server/idle" > /dev/null
    log "$server IDLE: $(tail -1 "$RESULTS" | "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["idling"], "of", r["count"], "idling,", ", ".join(k + " RSS " + str(m["before"]["rss_mb"]) + " -> " + str(m["peak"]["rss_mb"]) + " MB, PSS " + str(m["peak"]["pss_mb"]) + " MB" for k, m in r["memory"].items()))')"
    settle "$procs_before"
  done
done

# ----------------------------------------------------------------------- durable ----
# STORE when both servers put each flag change on disk before answering: Dovecot with
# mail_fsync = always (it then fdatasyncs its index log), postel as always.
log "durable STORE: Dovecot with mail_fsync = always"
sed -i 's/^mail_fsync = .*/mail_fsync = always/' "$PEER/dovecot/dovecot.conf"
kill -HUP "$DOVECOT_PID"
sleep 2
for server in postel peer; do
  server_facts "$server"
  "$PY" "$BENCH/imap.py" unseen --port "$imap"
  timed 0 "$server/durable" "$PY" "$MB" mailbox --quiet --host "$HOST" --port "$imap" \
    --user "$BIG" --password "$PASSWORD" --repeat "$REPEAT" --bodies 0 --stores "$STORES" \
    "${watch[@]}" --json "$RESULTS" --label "$server/durable"
  log "$server durable STORE: $(tail -1 "$RESULTS" | "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["ops"]["store_seen"]["median_ms"], "ms")')"
done

# ---------------------------------------------------------------------- profile ----
if [ "$PROFILE" = 1 ]; then
  log "profiling postel per operation ($PROFILE_S s each)"
  read -r WORD FROM < <(grep '"test": "mailbox"' "$RESULTS" | head -1 | "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["search_word"], r["search_from"])')
  "$PY" "$BENCH/imap.py" profile --pid "$POSTEL_PID" --port "$P_IMAP" --out "$OUT/profile" \
    --word "$WORD" --from "$FROM" --seconds "$PROFILE_S" || log "profile failed"
fi

# ----------------------------------------------------------------------- report ----
"$PY" "$MB" report "$RESULTS" > "$OUT/mailbench-report.md" 2>&1 || true
"$PY" "$BENCH/imap.py" summarize "$OUT" "$BENCH/RESULTS.md" > /dev/null
log "results: $RESULTS; summary in bench/RESULTS.md"
