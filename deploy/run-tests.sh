#!/usr/bin/env bash
# `just test`: every test of the workspace against a fresh, real Kafka on ports of its own
# (a running `just dev` stack is left alone), then the infrastructure smoke test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export KAFKA_DATA_DIR="$PWD/.local/kafka-test"
export KAFKA_PORT="${TEST_KAFKA_PORT:-39092}" KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-39093}"
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"

deploy/kafka/kafka.sh start --fresh
trap 'deploy/kafka/kafka.sh stop' EXIT
cargo test --workspace "$@"
deploy/kafka/kafka.sh stop
trap - EXIT

deploy/kafka/smoke-test.sh
