#!/usr/bin/env bash
# The project's Confluent-compatible schema registry (infra/schema-registry) as a background
# process next to the local Kafka, for Docker-free runs.
#
#   schema-registry.sh start    build if needed, start, return when it answers (idempotent)
#   schema-registry.sh stop     SIGTERM, wait
#   schema-registry.sh status
#
# Listens on $SCHEMA_REGISTRY_HTTP_ADDR (default 127.0.0.1:8081) and keeps its state in Kafka
# (topic _schemas) at $KAFKA_BOOTSTRAP_SERVERS (default: the local single-node broker).
# Its pid and log live in $SCHEMA_REGISTRY_DIR (default <repo>/.local/schema-registry).
# $SCHEMA_REGISTRY_BIN runs a given build (the benchmarks use the release one).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

dir="${SCHEMA_REGISTRY_DIR:-$repo/.local/schema-registry}"
addr="${SCHEMA_REGISTRY_HTTP_ADDR:-127.0.0.1:8081}"
url="http://$addr"
pidfile="$dir/registry.pid"
log="$dir/registry.log"
timeout="${SCHEMA_REGISTRY_START_TIMEOUT_SECS:-60}"

say() { echo "schema-registry.sh: $*" >&2; }

running_pid() {
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && cat "$pidfile"
}

start() {
  if pid="$(running_pid)"; then
    say "already running (pid $pid) at $url"
    return 0
  fi
  mkdir -p "$dir"
  local bin="${SCHEMA_REGISTRY_BIN:-}"
  if [[ -z $bin ]]; then
    cargo build --quiet -p schema-registry
    bin=target/debug/schema-registry
  fi
  export SCHEMA_REGISTRY_HTTP_ADDR="$addr"
  export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$(deploy/kafka/kafka.sh bootstrap)}"
  setsid "$bin" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + timeout))
  until curl -sf "$url/subjects" >/dev/null 2>&1; do
    if ! running_pid >/dev/null; then
      say "exited during start; last log lines:"
      tail -n 20 "$log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      say "not answering after ${timeout}s; see $log"
      stop
      exit 1
    fi
    sleep 0.2
  done
  say "ready at $url (Kafka $KAFKA_BOOTSTRAP_SERVERS; log: $log)"
}

stop() {
  local pid
  pid="$(running_pid)" || { rm -f "$pidfile"; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.2
  done
  say "did not stop within 30s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

status() {
  if pid="$(running_pid)"; then echo "schema registry: running (pid $pid) at $url"; else echo "schema registry: stopped"; return 1; fi
}

case "${1:-}" in
  start | stop | status) "$1" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
