#!/usr/bin/env bash
# run.sh -- side-by-side SMTP benchmark: postel against the peer (Postfix -> Dovecot LMTP
# -> Maildir), both on 127.0.0.1 only. Invoked by `make bench` from the repository root,
# as root (the peer's packages are apt-installed and its daemons drop privileges).
#
# What it does:
#   1. starts the peer with mailbench's peer-up.sh (ports 12525/12587/11143/11110),
#   2. starts postel (bench/postel_setup.py writes its config: data in a temp dir, SMTP
#      only, on a free loopback port, abuse tracker off, self-signed TLS) with the
#      domain bench.test and user1..user100,
#   3. ROUNDS rounds; in each, for every cell (load generator x concurrency) it runs
#      postel and the peer back to back (A B, order swapped every other round), each
#      run after a `sync` and a wait for both servers to go quiet (settle, below):
#        smtp-source  -- Postfix's C load generator, via bench/load.sh, timed up to full
#                        delivery (the peer's queue drained into the Maildirs),
#        mailbench    -- mailbench.py smtp (the Python client), with --drain-cmd,
#      every run wrapped by mailbench's --watch (server CPU and memory of each tree),
#      and checks afterwards that every message reached a mailbox; before each round a
#      CPU probe (a fixed pure-Python loop, cpu_probe.jsonl) records the machine's speed,
#   4. profiles postel under smtp-source load with py-spy (PROFILE=0 skips it),
#   5. stops both, regenerates the numbers in bench/RESULTS.md (bench/summarize.py).
# Raw rows: bench/out/<stamp>/results.jsonl (git-ignored).
#
#      smtp-source-d -- the same with -d: each session keeps its connection for all its
#                        messages (no per-connection cost: connect, banner, EHLO, QUIT),
# Knobs: ROUNDS [3]  CONCS ["10 50"]  TOOLS ["smtp-source mailbench"; add smtp-source-d]  N_SS [2000] messages per smtp-source run
#        N_PY [1500] messages per mailbench run  PROFILE [1]  N_PROFILE [2000]
#        MAILBENCH_DIR [../shared/bench beside the repository] (mailbench.py, peer-up.sh, peer-down.sh)
#        KEEP [0] keep the temp directory (postel data, peer mail and logs)
#        SMTP_PROCESSES [1] postel's [smtp] processes (port-25 processes, docs/adr/0005)
#        SMTP_MAIN_SERVES [true] postel's [smtp] main_serves (false: only the workers run sessions)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY="$ROOT/.venv/bin/python"
MAILBENCH_DIR=${MAILBENCH_DIR:-$(cd "$ROOT/.." && pwd)/shared/bench}
MB="$MAILBENCH_DIR/mailbench.py"
ROUNDS=${ROUNDS:-3}
CONCS=${CONCS:-"10 50"}
TOOLS=${TOOLS:-"smtp-source mailbench"}
N_SS=${N_SS:-2000}
N_PY=${N_PY:-1500}
PROFILE=${PROFILE:-1}
N_PROFILE=${N_PROFILE:-2000}
KEEP=${KEEP:-0}
HOST=127.0.0.1
export SMTP_PORT=12525 SUBMIT_PORT=12587 IMAP_PORT=11143 POP3_PORT=11110

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (peer-up.sh installs and starts postfix and dovecot)"
[ -x "$PY" ] || die "no $PY: run 'make bench' (it builds .venv) from $ROOT"
for f in "$MB" "$MAILBENCH_DIR/peer-up.sh" "$MAILBENCH_DIR/peer-down.sh"; do
  [ -f "$f" ] || die "missing $f (set MAILBENCH_DIR)"
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH/out/$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
VERIFY="$OUT/verify.jsonl"
WORK=$(mktemp -d /tmp/pbench.XXXXXX)
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

# ------------------------------------------------------------------------- peer ----
log "starting the peer (Postfix + Dovecot) in $PEER"
bash "$MAILBENCH_DIR/peer-up.sh" "$PEER" > "$OUT/peer-up.log" 2>&1 || { tail -20 "$OUT/peer-up.log"; die "peer-up.sh failed"; }
# shellcheck disable=SC1091
source "$PEER/env.sh"
PEER_PORT=$SMTP_PORT
SPOOL="$PEER/postfix/spool"
# The peer has delivered everything once no queue file is left (incoming, active,
# deferred, hold, maildrop); each run's Maildir count is checked afterwards as well.
PEER_DRAIN="test -z \"\$(find $SPOOL/incoming $SPOOL/active $SPOOL/deferred $SPOOL/hold $SPOOL/maildrop -type f -print -quit)\""
peer_count() { { find "$PEER/mail/$DOMAIN" -path '*/Maildir/new/*' -type f 2>/dev/null || true; } | wc -l; }

# ----------------------------------------------------------------------- postel ----
POSTEL_PORT=${POSTEL_PORT:-$(free_port)}
CONFIG=$("$PY" "$BENCH/postel_setup.py" config "$POSTEL_DIR" "$POSTEL_PORT")
"$PY" "$BENCH/postel_setup.py" users "$CONFIG" "$DOMAIN" "$NUSERS" "$PASSWORD" > /dev/null
log "starting postel on $HOST:$POSTEL_PORT ($CONFIG)"
setsid "$ROOT/.venv/bin/postel" serve --config "$CONFIG" > "$POSTEL_DIR/postel.log" 2>&1 < /dev/null &
POSTEL_PID=$!
for _ in $(seq 1 100); do (echo > "/dev/tcp/$HOST/$POSTEL_PORT") 2>/dev/null && break; sleep 0.1; done
(echo > "/dev/tcp/$HOST/$POSTEL_PORT") 2>/dev/null || { cat "$POSTEL_DIR/postel.log"; die "postel did not start"; }
if [ "${SMTP_PROCESSES:-1}" -gt 1 ]; then  # its port-25 workers report in once they serve
  for _ in $(seq 1 600); do grep -q "smtp.workers pids=" "$POSTEL_DIR/postel.log" && break; sleep 0.1; done
fi
postel_count() { "$PY" "$BENCH/postel_setup.py" count "$CONFIG"; }
# settle: before every measured run, write back what earlier runs left in the page
# cache (sync), then wait (at most 30 s) until the servers' process trees together have
# used at most 2 ticks (20 ms) of CPU in each of three 0.5 s intervals, so that one
# server's after-work (postel's full-text indexer, whatever the peer's processes still
# do) never runs during the other's measured run. Before this step existed, postel's c10
# rate was lowest right after the peer's run in most runs (bench/RESULTS.md, Verdict).
settle() {
  local last=-1 now quiet=0 pid
  sync
  for _ in $(seq 1 60); do
    now=0
    for pid in "$POSTEL_PID" "$POSTFIX_PID" "$DOVECOT_PID"; do
      now=$((now + $("$PY" "$BENCH/outbound.py" tree-cpu "$pid" 2>/dev/null || echo 0)))
    done
    if [ "$last" -ge 0 ] && [ $((now - last)) -le 2 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    [ "$quiet" -ge 3 ] && return 0
    last=$now; sleep 0.5
  done
}

# ------------------------------------------------------------------- machine ----
{
  echo "{\"test\": \"env\", \"stamp\": \"$STAMP\", \"postfix\": \"$POSTFIX_VERSION\", \"dovecot\": \"$DOVECOT_VERSION\","
  echo " \"python\": \"$("$PY" -c 'import sys; print(sys.version.split()[0])')\", \"cpus\": $(nproc),"
  echo " \"cpu_model\": \"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\","
  echo " \"kernel\": \"$(uname -r)\", \"fs\": \"$(df -T /tmp | awk 'NR==2 {print $2}')\","
  echo " \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')\","
  echo " \"rounds\": $ROUNDS, \"n_smtp_source\": $N_SS, \"n_mailbench\": $N_PY,"
  echo " \"smtp_processes\": ${SMTP_PROCESSES:-1}, \"smtp_main_serves\": \"${SMTP_MAIN_SERVES:-true}\"}"
} | tr -d '\n' > "$OUT/env.json"
echo >> "$OUT/env.json"
cat "$OUT/env.json" >> "$RESULTS"

# ------------------------------------------------------------------------ runs ----
# run_one SERVER TOOL CONC LABEL
run_one() {
  local server=$1 tool=$2 conc=$3 label="$1/$2/c$3"
  local port watch drain before after n
  if [ "$server" = postel ]; then
    port=$POSTEL_PORT; watch=(--watch "postel=$POSTEL_PID"); drain=true; before=$(postel_count)
  else
    port=$PEER_PORT; watch=(--watch "postfix=$POSTFIX_PID" --watch "dovecot=$DOVECOT_PID")
    drain=$PEER_DRAIN; before=$(peer_count)
  fi
  settle
  if [ "$tool" = smtp-source ] || [ "$tool" = smtp-source-d ]; then
    local keep=(); [ "$tool" = smtp-source-d ] && keep=(-d)   # -d: all messages on one connection per session
    n=$(( N_SS / (conc < 10 ? conc : 10) * (conc < 10 ? conc : 10) ))
    "$PY" "$MB" watch --quiet --messages "$n" "${watch[@]}" --json "$RESULTS" --label "$label" \
      -- "$BENCH/load.sh" "$port" "$conc" "$n" "$drain" "${keep[@]}" > /dev/null
  else
    n=$N_PY
    # the outer watch (label .../cpu) also covers the drain, so the peer's CPU includes
    # its delivery into the Maildirs; the inner smtp row holds rates and latencies
    "$PY" "$MB" watch --quiet --messages "$n" "${watch[@]}" --json "$RESULTS" --label "$label/cpu" \
      -- "$PY" "$MB" smtp --quiet --host "$HOST" --port "$port" -c "$conc" -n "$n" --size 1024 \
      --rcpt-fmt "user{n}@$DOMAIN" --nusers "$NUSERS" --drain-cmd "$drain" "${watch[@]}" \
      --json "$RESULTS" --label "$label" > /dev/null
  fi
  if [ "$server" = postel ]; then after=$(postel_count); else after=$(peer_count); fi
  echo "{\"label\": \"$label\", \"sent\": $n, \"delivered\": $((after - before))}" >> "$VERIFY"
  log "$label: $(grep -F "\"label\": \"$label\"" "$RESULTS" | tail -1 | "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["msgs_per_s"], "msg/s")'), delivered $((after - before))/$n"
  sleep 1
}

# cpu_probe: time a fixed pure-Python loop (the median of three, ms) into cpu_probe.jsonl.
# This machine's speed moves from minute to minute; postel's rate follows it (it is
# CPU-bound) and the peer's much less, so each round's ratio is read beside this number.
cpu_probe() {
  "$PY" -c 'import json, statistics, time
def once():
    t = time.perf_counter(); s = 0
    for i in range(3_000_000): s += i * i
    return (time.perf_counter() - t) * 1000
print(json.dumps({"test": "cpu_probe", "round": '"$1"', "ms": round(statistics.median(once() for _ in range(3)), 1)}))' \
    >> "$OUT/cpu_probe.jsonl"
}

for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="postel peer"; else order="peer postel"; fi
  cpu_probe "$round"
  log "round $round/$ROUNDS ($order), CPU probe $(tail -1 "$OUT/cpu_probe.jsonl" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["ms"])') ms"
  for tool in $TOOLS; do
    for conc in $CONCS; do
      for server in $order; do run_one "$server" "$tool" "$conc"; done
    done
  done
done

# -------------------------------------------------------------------- profile ----
if [ "$PROFILE" = 1 ]; then
  SPY="$ROOT/.venv/bin/py-spy"
  [ -x "$SPY" ] || "$ROOT/.venv/bin/pip" install -q py-spy > /dev/null 2>&1 || true
  if [ -x "$SPY" ]; then
    for mode in wall gil; do
      log "profiling postel under smtp-source c50 ($mode)"
      extra=(); [ "$mode" = gil ] && extra=(--gil)
      "$PY" "$BENCH/profile_top.py" threads "$POSTEL_PID" > "$OUT/threads-before-$mode.txt"
      "$SPY" record --pid "$POSTEL_PID" --rate 200 --nonblocking --threads --format raw \
        "${extra[@]}" -o "$OUT/profile-$mode.raw" > "$OUT/py-spy-$mode.log" 2>&1 &
      spy=$!
      sleep 1
      "$BENCH/load.sh" "$POSTEL_PORT" 50 "$N_PROFILE" true > "$OUT/profile-$mode-load.txt" || true
      kill -INT "$spy" 2>/dev/null; wait "$spy" || true
      "$PY" "$BENCH/profile_top.py" threads "$POSTEL_PID" > "$OUT/threads-after-$mode.txt"
    done
    log "flame graph"
    "$SPY" record --pid "$POSTEL_PID" --rate 100 --nonblocking -o "$OUT/profile.svg" \
      > "$OUT/py-spy-svg.log" 2>&1 &
    spy=$!
    sleep 1
    "$BENCH/load.sh" "$POSTEL_PORT" 50 "$N_PROFILE" true > /dev/null || true
    kill -INT "$spy" 2>/dev/null; wait "$spy" || true
  else
    log "py-spy not available: no profile"
  fi
fi

# --------------------------------------------------------------------- report ----
"$PY" "$MB" report "$RESULTS" > "$OUT/mailbench-report.md" 2>&1 || true
"$PY" "$BENCH/summarize.py" "$OUT" "$BENCH/RESULTS.md"
log "results: $RESULTS; summary in bench/RESULTS.md"
