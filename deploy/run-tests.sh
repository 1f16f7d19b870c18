#!/usr/bin/env bash
# `just test`: the compose file's validation, then every test of the workspace against a fresh,
# real Kafka and the schema registry, on ports of their own (a running `just dev` stack is left
# alone; below 32768, where Linux never picks a client's local port), then the infrastructure
# smoke test and the quick benchmark.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

deploy/compose-check.sh

export KAFKA_DATA_DIR="$PWD/.local/kafka-test"
export KAFKA_PORT="${TEST_KAFKA_PORT:-29092}" KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-29093}"
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
export SCHEMA_REGISTRY_DIR="$PWD/.local/schema-registry-test"
export SCHEMA_REGISTRY_HTTP_ADDR="127.0.0.1:${TEST_SCHEMA_REGISTRY_PORT:-28081}"
export SCHEMA_REGISTRY_URL="http://$SCHEMA_REGISTRY_HTTP_ADDR"

deploy/kafka/kafka.sh start --fresh
trap 'deploy/schema-registry.sh stop; deploy/kafka/kafka.sh stop' EXIT
deploy/schema-registry.sh start
cargo test --workspace "$@"
deploy/schema-registry.sh stop
deploy/kafka/kafka.sh stop
trap - EXIT

deploy/kafka/smoke-test.sh

# Every part of the benchmark on 10,000 users with runs of 2 s: it measures little, but a bench
# that no longer runs is found here rather than on the day its figures are needed.
just bench --quick
