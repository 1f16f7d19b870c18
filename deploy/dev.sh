#!/usr/bin/env bash
# `just dev`: the whole stack on this machine, no Docker. Starts the local infrastructure (Kafka
# and the schema registry), then
# the four services in the foreground with their logs prefixed by name. Ctrl-C (or SIGTERM)
# stops the services cleanly (each drains, commits and flushes), then the infrastructure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

services=(api-gateway user-service import-worker export-worker)
colors=(36 32 33 35)

cargo build --quiet --bins
# The gateway verifies tokens with a secret made on this machine (never one built in);
# `just token <role>` signs with the same file.
export GATEWAY_JWT_SECRET_FILE="${GATEWAY_JWT_SECRET_FILE:-.local/dev/jwt-secret}"
token="$(target/debug/token jwt admin --secret-file "$GATEWAY_JWT_SECRET_FILE")"
deploy/kafka/kafka.sh start
deploy/schema-registry.sh start

pids=()
stopped=0
stop() {
  ((stopped == 0)) || return 0
  stopped=1
  trap - INT TERM
  echo "dev: stopping services..." >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  deploy/schema-registry.sh stop
  deploy/kafka/kafka.sh stop
  echo "dev: stopped" >&2
}
trap stop INT TERM

for i in "${!services[@]}"; do
  name="${services[$i]}"
  prefix="$(printf '\033[%sm%-14s|\033[0m ' "${colors[$i]}" "$name")"
  # Each service gets its own process group (setsid), so Ctrl-C reaches it only through `stop`
  # as a SIGTERM, the signal an orchestrator would send.
  # The log prefixer ignores SIGINT so that the services' shutdown logs still get through.
  setsid "target/debug/$name" > >(trap '' INT; exec sed -u "s/^/$prefix/") 2>&1 &
  pids+=("$!")
done

echo "dev: gateway on http://${GATEWAY_HTTP_ADDR:-127.0.0.1:8000}; Ctrl-C stops everything" >&2
echo "dev: an admin token for 12 h (or \$(just token reader|writer|admin)):" >&2
echo "dev:   export AUTH=\"Authorization: Bearer $token\"" >&2
# Returns when a service exits on its own (a failure) or when a signal runs `stop`.
wait -n "${pids[@]}" || true
stop
