#!/usr/bin/env bash
# Checks the local Kafka scripts the way people use them, on ports and a data directory of its
# own (so a running `just dev` stack is left alone):
#   1. `just infra-up && just kafka topics --list && just infra-down` works twice in a row,
#      the second start reusing the cached jars and the kept data, the registry answering;
#   2. the three-node shape starts and a topic with RF 3 reports three in-sync replicas.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export KAFKA_DATA_DIR="$PWD/.local/kafka-smoke"
export KAFKA_PORT=29192 KAFKA_CONTROLLER_PORT=29193 KAFKA_CLUSTER_BASE_PORT=29292
export SCHEMA_REGISTRY_HTTP_ADDR=127.0.0.1:28181 SCHEMA_REGISTRY_DIR="$KAFKA_DATA_DIR/schema-registry"
unset KAFKA_BOOTSTRAP_SERVERS
rm -rf "$KAFKA_DATA_DIR"
trap 'deploy/schema-registry.sh stop >/dev/null 2>&1 || true; deploy/kafka/kafka.sh stop >/dev/null 2>&1 || true
  deploy/kafka/kafka.sh stop --cluster >/dev/null 2>&1 || true' EXIT

fail() { echo "smoke-test: FAIL: $*" >&2; exit 1; }

for round in 1 2; do
  just infra-up
  listed="$(just kafka topics --list)"
  curl -sf "http://$SCHEMA_REGISTRY_HTTP_ADDR/subjects" >/dev/null || fail "round $round: the schema registry does not answer"
  [[ $listed == *_schemas* ]] || fail "round $round: the registry's _schemas topic is missing"
  [[ $round == 1 ]] && just kafka topics --create --topic smoke --partitions 2 >/dev/null
  [[ $round == 2 && $listed != *smoke* ]] && fail "round 2: the topic created in round 1 is gone (data not kept)"
  just infra-down
  echo "smoke-test: round $round ok"
done

just infra-up-cluster
just kafka topics --create --topic replicated --partitions 3 --replication-factor 3 >/dev/null
described="$(just kafka topics --describe --topic replicated)"
echo "$described"
partitions=0
while read -r isr; do
  partitions=$((partitions + 1))
  count="$(tr ',' '\n' <<<"$isr" | grep -c .)"
  [[ $count == 3 ]] || fail "a partition has $count in-sync replicas, expected 3: $isr"
done < <(sed -n 's/.*Isr: \([0-9,]*\).*/\1/p' <<<"$described")
[[ $partitions == 3 ]] || fail "expected 3 partitions, saw $partitions"
grep -q 'min.insync.replicas=2' <<<"$described" || fail "min.insync.replicas=2 not in effect"
just infra-down-cluster
echo "smoke-test: three-node cluster ok (RF 3, 3 in-sync replicas per partition, min.insync.replicas=2)"
