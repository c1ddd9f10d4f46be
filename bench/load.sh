#!/usr/bin/env bash
# load.sh -- one timed smtp-source load against 127.0.0.1:PORT, up to full delivery.
#
#   usage: load.sh PORT CONCURRENCY MESSAGES [DRAIN_CMD [SMTP_SOURCE_OPTS...]]
#
# The sessions are spread over G = min(CONCURRENCY, 10) smtp-source processes, process i
# sending to user<i>@bench.test with CONCURRENCY/G parallel sessions, so that deliveries
# land in G different mailboxes (one smtp-source can only name one recipient). Each
# session is connect, HELO, MAIL, RCPT, DATA (1 KB payload), QUIT unless SMTP_SOURCE_OPTS
# adds -d (keep the connection).
#
# After every smtp-source has finished, DRAIN_CMD (a shell command; "" or "true" for
# none) is run every 20 ms until it exits 0: the peer's rate then counts delivery into
# the Maildir, not only acceptance into the Postfix queue.
#
# Prints "accept_s=<s> drain_s=<s> total_s=<s>" and, per process, smtp-source's
# complaints. Exit status is non-zero if any smtp-source failed.
set -uo pipefail
PORT=$1 CONC=$2 N=$3 DRAIN=${4:-true}
shift 4 2>/dev/null || shift $#
G=$(( CONC < 10 ? CONC : 10 ))
PER_SESS=$(( CONC / G ))
PER_MSGS=$(( N / G ))
now() { date +%s.%N; }

t0=$(now)
pids=()
for i in $(seq 1 "$G"); do
  /usr/sbin/smtp-source -s "$PER_SESS" -m "$PER_MSGS" -l 1024 -f a@x \
    -t "user$i@bench.test" "$@" "127.0.0.1:$PORT" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
t1=$(now)
until sh -c "$DRAIN" >/dev/null 2>&1; do sleep 0.02; done
t2=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$(( PER_MSGS * G ))" \
  'BEGIN { printf "sent=%d accept_s=%.3f drain_s=%.3f total_s=%.3f\n", n, b - a, c - b, c - a }'
exit $rc
