#!/usr/bin/env bash
# pop3.sh -- side-by-side POP3 benchmark: postel against the peer's Dovecot, both on
# 127.0.0.1 only. Invoked by `make bench-pop3` from the repository root, as root.
#
# What it does:
#   1. starts the peer with mailbench's peer-up.sh (Dovecot POP3 on 11110),
#   2. starts postel (bench/postel_setup.py: SMTP and POP3 on free loopback ports, USER/PASS
#      accepted from loopback as Dovecot does here) with bench.test and user1..userU,
#   3. fills each of the U mailboxes on both servers with MSGS messages of mailbench's
#      realistic size mix (`mailbench.py fill`, over SMTP, waiting until delivered),
#   4. one unrecorded warm-up pass per server, then ROUNDS rounds, servers alternated
#      (A B, order swapped every round): `mailbench.py
#      pop3` with U users x SESSIONS sessions each: login, STAT, LIST, RETR x RETR, QUIT,
#      under `--watch` (server CPU and memory),
#   5. prints the medians and writes them into bench/RESULTS.md (bench/summarize_pop3.py).
#
# Knobs: ROUNDS [3]  USERS [4]  MSGS [1000] messages per mailbox  SESSIONS [10] per user
#        RETR [200] RETRs per session  MAILBENCH_DIR [../shared/bench]  KEEP [0]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY="$ROOT/.venv/bin/python"
MAILBENCH_DIR=${MAILBENCH_DIR:-$(cd "$ROOT/.." && pwd)/shared/bench}
MB="$MAILBENCH_DIR/mailbench.py"
ROUNDS=${ROUNDS:-3}
USERS=${USERS:-4}
MSGS=${MSGS:-1000}
SESSIONS=${SESSIONS:-10}
RETR=${RETR:-200}
KEEP=${KEEP:-0}
HOST=127.0.0.1
DOMAIN=bench.test
PASSWORD=benchpass
export SMTP_PORT=12525 SUBMIT_PORT=12587 IMAP_PORT=11143 POP3_PORT=11110

die() { echo "bench-pop3: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (peer-up.sh installs and starts postfix and dovecot)"
[ -x "$PY" ] || die "no $PY: run 'make bench-pop3' (it builds .venv) from $ROOT"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH/out/pop3-$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
WORK=$(mktemp -d /tmp/pbench-pop3.XXXXXX)
chmod 755 "$WORK"
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
  [ -f "$PEER/pids.tmp" ] && [ ! -f "$PEER/pids" ] && mv "$PEER/pids.tmp" "$PEER/pids"
  [ -f "$PEER/pids" ] && bash "$MAILBENCH_DIR/peer-down.sh" "$PEER" >/dev/null
  cp -f "$POSTEL_DIR/postel.log" "$OUT/" 2>/dev/null
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

log "starting the peer (Postfix + Dovecot) in $PEER"
bash "$MAILBENCH_DIR/peer-up.sh" "$PEER" > "$OUT/peer-up.log" 2>&1 || { tail -20 "$OUT/peer-up.log"; die "peer-up.sh failed"; }
# shellcheck disable=SC1091
source "$PEER/env.sh"

P_SMTP=$(free_port); P_POP3=$(free_port)
CONFIG=$("$PY" "$BENCH/postel_setup.py" config "$POSTEL_DIR" "$P_SMTP" "$P_POP3")
"$PY" "$BENCH/postel_setup.py" users "$CONFIG" "$DOMAIN" "$USERS" "$PASSWORD" > /dev/null
setsid "$ROOT/.venv/bin/postel" serve --config "$CONFIG" > "$POSTEL_DIR/postel.log" 2>&1 < /dev/null &
POSTEL_PID=$!
for _ in $(seq 1 100); do (echo > "/dev/tcp/$HOST/$P_POP3") 2>/dev/null && break; sleep 0.1; done
(echo > "/dev/tcp/$HOST/$P_POP3") 2>/dev/null || { cat "$POSTEL_DIR/postel.log"; die "postel did not start"; }
log "postel SMTP $P_SMTP POP3 $P_POP3; peer SMTP $SMTP_PORT POP3 $POP3_PORT"

echo "{\"test\": \"env\", \"stamp\": \"$STAMP\", \"dovecot\": \"$DOVECOT_VERSION\", \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')\", \"users\": $USERS, \"msgs\": $MSGS, \"sessions\": $SESSIONS, \"retr\": $RETR, \"rounds\": $ROUNDS}" > "$OUT/env.json"

for server in postel peer; do
  if [ "$server" = postel ]; then port=$P_SMTP; else port=$SMTP_PORT; fi
  log "filling $USERS mailboxes x $MSGS messages on $server"
  "$PY" "$MB" fill --quiet --host "$HOST" --port "$port" -c 10 --per-conn 50 \
    --rcpt-fmt "user{n}@$DOMAIN" --nusers "$USERS" --count $((USERS * MSGS)) > "$OUT/fill-$server.txt"
done
# the peer delivers through LMTP after its 250: wait until every Maildir has them all
for _ in $(seq 1 600); do
  n=$(find "$PEER/mail/$DOMAIN" -path '*/Maildir/new/*' -type f 2>/dev/null | wc -l)
  [ "$n" -ge $((USERS * MSGS)) ] && break; sleep 0.2
done

run_one() {
  local server=$1 port watch
  if [ "$server" = postel ]; then port=$P_POP3; watch=(--watch "postel=$POSTEL_PID")
  else port=$POP3_PORT; watch=(--watch "dovecot=$DOVECOT_PID"); fi
  "$PY" "$MB" pop3 --quiet --host "$HOST" --port "$port" --password "$PASSWORD" \
    --users "$USERS" --user-fmt "user{n}@$DOMAIN" --sessions "$SESSIONS" --retr "$RETR" \
    --seed 7 "${watch[@]}" --json "$RESULTS" --label "$server/pop3" > /dev/null
  log "$server: $(tail -1 "$RESULTS" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print({k: r[k] for k in r if k in ("elapsed_s","sessions","cmds_per_s","retr_per_s","errors")})')"
}

# one unrecorded pass each, so that both start warm (page cache, login caches)
for server in postel peer; do
  if [ "$server" = postel ]; then port=$P_POP3; else port=$POP3_PORT; fi
  "$PY" "$MB" pop3 --quiet --host "$HOST" --port "$port" --password "$PASSWORD" \
    --users "$USERS" --user-fmt "user{n}@$DOMAIN" --sessions 1 --retr 20 > /dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="postel peer"; else order="peer postel"; fi
  log "round $round/$ROUNDS ($order)"
  for server in $order; do run_one "$server"; done
done

"$PY" "$MB" report "$RESULTS" > "$OUT/mailbench-report.md" 2>&1 || true
"$PY" "$BENCH/summarize_pop3.py" "$OUT" "$BENCH/RESULTS.md"
log "results: $RESULTS; summary in bench/RESULTS.md"
