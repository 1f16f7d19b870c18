# The user-management system: `just --list` explains every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

services := "api-gateway user-service import-worker export-worker"

# List the recipes
default:
    @just --list --unsorted

# Start the local infrastructure (Kafka on 127.0.0.1:9092, schema registry on :8081) in the background; returns when ready
infra-up *flags:
    deploy/kafka/kafka.sh start {{ flags }}
    deploy/schema-registry.sh start

# Stop the local infrastructure cleanly (data is kept; `just infra-up --fresh` starts empty)
infra-down:
    deploy/schema-registry.sh stop
    deploy/kafka/kafka.sh stop

# Start a three-node Kafka cluster (RF 3, min.insync.replicas=2) on 127.0.0.1:19092-19094
infra-up-cluster *flags:
    deploy/kafka/kafka.sh start --cluster {{ flags }}

# Stop the three-node cluster
infra-down-cluster:
    deploy/kafka/kafka.sh stop --cluster

# One node of the three-node cluster, for trying faults by hand: `just kafka-node kill 2` (stop, kill, start, pause, resume; `--single` for the single node)
kafka-node action node *flags:
    deploy/kafka/kafka.sh node {{ action }} {{ node }} {{ flags }}

# Show what is running
infra-status:
    -deploy/kafka/kafka.sh status
    -deploy/schema-registry.sh status
    -deploy/kafka/kafka.sh status --cluster

# Run a Kafka CLI tool against the running broker, e.g. `just kafka topics --list`
kafka tool *args:
    deploy/kafka/kafka.sh tool {{ tool }} {{ args }}

# Create the project's topics that are missing and report drift in the others
topics:
    cargo run --quiet -p platform --bin topics

# What is on the dead-letter topic (`just dlq list [--entries]`), grouped by original topic and
# reason; `just dlq replay <topic>` re-publishes that topic's entries once, refused for
# users.events and users.state
dlq *args:
    cargo run --quiet -p platform --bin dlq -- {{args}}

# Compare the users projections of the running services (user-service, gateway, export-worker):
# waits for equal positions, prints the digests side by side, fails unless they agree
digests *args:
    cargo run --quiet -p platform --bin digests -- {{args}}

# Run one service in the foreground, e.g. `just run api-gateway` (which verifies tokens with the development secret unless GATEWAY_* says otherwise)
run service *args:
    @[[ " {{ services }} " == *" {{ service }} "* ]] || { echo "unknown service '{{ service }}'; one of: {{ services }}" >&2; exit 2; }
    @[[ "{{ service }}" != api-gateway ]] || just token admin >/dev/null
    GATEWAY_JWT_SECRET_FILE="${GATEWAY_JWT_SECRET_FILE:-.local/dev/jwt-secret}" cargo run --quiet -p {{ service }} -- {{ args }}

# Print a development token for a role (reader, writer, admin), signed with .local/dev/jwt-secret (made if absent): curl -H "Authorization: Bearer $(just token admin)" ...
token role="admin" *flags:
    @cargo run --quiet -p auth --bin token -- jwt {{ role }} {{ flags }}

# Make an API key for a machine: prints the key, and on stderr the GATEWAY_API_KEYS entry (its SHA-256) to configure
api-key name role:
    @cargo run --quiet -p auth --bin token -- api-key {{ name }} {{ role }}

# Write a realistic import file, e.g. `just gen-csv 1000000 users.csv --bad-share 0.05`
gen-csv rows path="users.csv" *flags:
    cargo run --release --quiet -p testkit --bin gen-csv -- {{ rows }} {{ path }} {{ flags }}

# Every test against a fresh local Kafka, then the infrastructure smoke test (what CI runs)
test *args:
    deploy/run-tests.sh {{ args }}

# The slow versions of the crash tests (user-service killed at random points of a 200,000-row import)
test-slow:
    USER_SERVICE_CRASH_ROWS=200000 deploy/run-tests.sh -p system-tests --test system user_service_crash

# The fault suite: every fault under load on a three-node cluster of its own (release builds),
# one line per fault; fails if a write was lost or applied twice. `just chaos --quick` is the
# short version `just test` runs; `--faults kill-registry,pause-broker` picks some
chaos *args:
    cargo build --release --quiet -p system-tests --bins -p schema-registry
    SCHEMA_REGISTRY_BIN=target/release/schema-registry target/release/chaos {{ args }}

# Measure the system end to end against its ceilings and write BENCHMARKS.md (release builds, fresh Kafka on ports of its own), e.g. `just bench --quick`
bench *args:
    cargo build --release --quiet --bins
    cargo run --release --quiet -p bench --bin bench -- {{ args }}

# Hammer a running gateway (`just dev`) past its limits: statuses, Retry-After, accepted latency vs idle
overload *args:
    cargo run --release --quiet -p bench --bin overload -- {{ args }}

# Compare the Avro codecs on the hot records: the generated one, serde_avro_fast, apache-avro
bench-codecs:
    cargo run --release --quiet -p bench --bin codecs

# Build the release binaries of the services and `topics` into target/dist (what the Docker image runs)
build:
    deploy/build-release.sh

# Validate docker-compose.yml without a Docker engine (part of `just test`)
compose-check:
    deploy/compose-check.sh

# The full stack with Docker: 3 Kafka brokers, Schema Registry, kafka-ui (:8080) and the services; only the API and kafka-ui are published (on 127.0.0.1)
up *args:
    deploy/compose-secrets.sh
    docker compose up -d --build {{ args }}

# Stop the Docker stack (`just down -v` also removes its volumes)
down *args:
    docker compose down {{ args }}

# Follow the Docker stack's logs, e.g. `just logs api-gateway`
logs *service:
    docker compose logs -f --tail 200 {{ service }}

# Show the Docker stack's containers and their health
ps:
    docker compose ps

# Formatting, lints, repeated code and the schema check, as CI checks them
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    just duplication
    just schema-check

# Fails on any block of six or more lines repeated outside tests (jscpd, from deploy/package.json)
duplication:
    deploy/node_modules/.bin/jscpd --min-lines 6 --format rust --ignore '**/tests/**' --reporters console --no-colors --exit-code 1 crates services infra tools

# Regenerates services/api-gateway/openapi.json from the code (a test fails while they differ)
openapi:
    UPDATE_OPENAPI=1 cargo test --quiet -p api-gateway --lib -- openapi::tests::the_served_document_is_the_checked_in_openapi_json

# Opens a running gateway's /docs (`just dev`) in headless Chromium: every operation shown, a screenshot in .local/docs-check/
docs-check url="http://127.0.0.1:8000":
    deploy/docs-check.sh {{ url }}

# Checks a running gateway (`just dev` with GATEWAY_RATE_LIMIT_PER_SECOND=0) against its OpenAPI document with schemathesis
api-contract url="http://127.0.0.1:8000" *args:
    deploy/api-contract.sh {{ url }} "$(just token admin)" {{ args }}

# The Avro contract in schemas/ against every release in schemas/releases/, at FULL_TRANSITIVE
schema-check:
    cargo run --quiet -p schema-registry --bin schema-check -- schemas

# Keep the contract as it is now as the next release (schemas/releases/<n+1>/), once it ships
schema-release:
    #!/usr/bin/env bash
    set -euo pipefail
    last=$(ls schemas/releases | grep -E '^[0-9]+$' | sort -n | tail -1)
    next=$((last + 1))
    mkdir -p "schemas/releases/$next"
    cp schemas/*.avsc "schemas/releases/$next/"
    cp -r schemas/types "schemas/releases/$next/"
    echo "schemas/releases/$next: the contract of release $next; just schema-check now checks against it too"

# Resolve the Kafka jars from Maven Central into the local cache (done on first start anyway)
fetch:
    deploy/kafka/kafka.sh fetch

# The whole stack without Docker: local Kafka + the four services, logs prefixed; Ctrl-C stops all
dev:
    deploy/dev.sh
