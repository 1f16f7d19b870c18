#!/usr/bin/env bash
# Checks a running gateway against its own OpenAPI document with schemathesis (PyPI, installed by
# deploy/bootstrap.sh): every operation, every check, stateful sequences through the document's
# links. Run by `just test` (tests/system/tests/system/contract.rs) against a test system, or by
# hand against `just dev` started with GATEWAY_RATE_LIMIT_PER_SECOND=0:
#   deploy/api-contract.sh http://127.0.0.1:8000 "$(just token admin)"
# Exit status: 0 no failure, 1 failures (printed), 2 or more schemathesis could not run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
url="${1:?usage: api-contract.sh <gateway url> <admin token> [st run options...]}"
token="${2:?usage: api-contract.sh <gateway url> <admin token> [st run options...]}"
shift 2
command -v st >/dev/null || { echo "api-contract: schemathesis (st) is not installed: run deploy/bootstrap.sh" >&2; exit 2; }
# schemathesis writes its reports and caches under the working directory.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
export ST_TOKEN="$token" ST_HOOKS="$root/tests/system/contract/hooks.py"
exec timeout --kill-after=10 "${API_CONTRACT_TIMEOUT:-600}" \
  st --config-file "$root/tests/system/contract/schemathesis.toml" run "$url/openapi.json" --checks all "$@"
