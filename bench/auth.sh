#!/usr/bin/env bash
# auth.sh -- what inbound sender authentication (SPF, DKIM, ARC, DMARC, iprev) costs:
# postel's port-25 throughput with every check on against the same load with the checks
# off, as a ratio. Invoked by `make bench-auth` from the repository root.
#
# What it does (bench/auth.py does the work):
#   1. prepare: DKIM keys of s.test made by `postel dkim generate` on a scratch data dir,
#      the `test` zone (s.test SPF ip4:<client> -all, _dmarc p=none, the key records),
#      10 distinct 1 KB messages from bulk@s.test pre-signed (RSA), and a template data
#      dir with bench.test and user1..user100,
#   2. bench: Knot DNS on loopback serving the zone; ROUNDS rounds, for each concurrency
#      one postel (SQLite, SMTP only on 127.0.0.3, abuse tracker off, fresh data) with
#      checks on (`ignore_clients = []`) and one with checks off (`enabled = false`), the
#      order swapped every round; N messages each, one per connection, sent by LOAD;
#      then one more checks-on run under py-spy --gil (PROFILE=0 skips), and PTR_ROUNDS
#      more rounds with a reverse zone served too (iprev passes and is cached),
#   3. writes the "Inbound sender authentication" section of bench/RESULTS.md.
# Raw rows: bench/out/auth-<stamp>/results.jsonl (git-ignored).
#
# Knobs: ROUNDS [3]  CONCS ["10 50"]  N [2000] messages per run  PROFILE [1]
#        N_PROFILE [2000]  PTR_ROUNDS [1]  KEEP [0]
#        SMTP_PROCESSES [1] postel's [smtp] processes (port-25 processes, docs/adr/0005)
#        SMTP_MAIN_SERVES [true] postel's [smtp] main_serves (with SMTP_PROCESSES > 1)
#        LOAD [smtp-source when /usr/sbin/smtp-source exists, else python] the load generator:
#          smtp-source (Postfix's C client, from 127.0.0.1) or python (bench/auth.py's
#          asyncio client, from 127.0.0.5; it takes 0.3-0.5 ms of CPU per message)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY="$ROOT/.venv/bin/python"
ROUNDS=${ROUNDS:-3}
CONCS=${CONCS:-"10 50"}
N=${N:-2000}
PROFILE=${PROFILE:-1}
N_PROFILE=${N_PROFILE:-2000}
PTR_ROUNDS=${PTR_ROUNDS:-1}
KEEP=${KEEP:-0}
LOAD=${LOAD:-}
LOAD_ARGS=(); [ -n "$LOAD" ] && LOAD_ARGS=(--load "$LOAD")

die() { echo "bench-auth: $*" >&2; exit 1; }
[ -x "$PY" ] || die "no $PY: run 'make bench-auth' (it builds .venv) from $ROOT"
if ! { command -v knotd || [ -x /usr/sbin/knotd ]; } >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "Knot DNS (Debian's knot) is missing: install it as root"
  echo "installing knot"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends knot
fi
[ "$PROFILE" = 1 ] && [ ! -x "$ROOT/.venv/bin/py-spy" ] && \
  { "$ROOT/.venv/bin/pip" install -q py-spy > /dev/null 2>&1 || PROFILE=0; }
[ "$PROFILE" = 1 ] || N_PROFILE=0

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH/out/auth-$STAMP"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/pbench-auth.XXXXXX)
cleanup() {
  for d in "$WORK"/run-*; do [ -f "$d/postel.log" ] && cp -f "$d/postel.log" "$OUT/$(basename "$d").log"; done
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log() { echo "[$(date +%H:%M:%S)] $*"; }

{
  echo "{\"test\": \"env\", \"stamp\": \"$STAMP\", \"n\": $N, \"rounds\": $ROUNDS,"
  echo " \"python\": \"$("$PY" -c 'import sys; print(sys.version.split()[0])')\", \"cpus\": $(nproc),"
  echo " \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')\","
  echo " \"smtp_processes\": ${SMTP_PROCESSES:-1}, \"smtp_main_serves\": \"${SMTP_MAIN_SERVES:-true}\"}"
} | tr -d '\n' > "$OUT/results.jsonl"
echo >> "$OUT/results.jsonl"

cd "$BENCH"
log "preparing keys, zone, signed messages and accounts in $WORK"
"$PY" auth.py prepare "$WORK"
# shellcheck disable=SC2086  # CONCS is a list
"$PY" auth.py bench "$WORK" "$OUT" --rounds "$ROUNDS" --concs $CONCS -n "$N" --profile-n "$N_PROFILE" "${LOAD_ARGS[@]}"
if [ "$PTR_ROUNDS" -gt 0 ]; then
  log "with a reverse zone"
  # shellcheck disable=SC2086
  "$PY" auth.py bench "$WORK" "$OUT" --rounds "$PTR_ROUNDS" --concs $CONCS -n "$N" --profile-n 0 --ptr "${LOAD_ARGS[@]}"
fi
"$PY" auth.py summarize "$OUT" "$BENCH/RESULTS.md" > /dev/null
log "results: $OUT/results.jsonl; summary in bench/RESULTS.md"
