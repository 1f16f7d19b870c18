#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine: `docker compose config` where the
# compose plugin exists, else Debian's docker-compose (installed by deploy/bootstrap.sh). That
# the file matches the services' configuration is checked by crates/testkit/tests/compose.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deploy/compose-secrets.sh  # the files the compose file names must exist

if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q
elif command -v docker-compose >/dev/null; then
  docker-compose -f docker-compose.yml config -q
else
  echo "compose-check: neither 'docker compose' nor 'docker-compose' found; run deploy/bootstrap.sh" >&2
  exit 1
fi
echo "compose-check: docker-compose.yml is valid" >&2
