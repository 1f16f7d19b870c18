#!/usr/bin/env bash
# Builds the release binaries of the four services and the `topics` tool, and copies them to
# the directory given (default target/dist). The one build recipe: `just build` and CI run it,
# and so does deploy/Dockerfile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-target/dist}"
binaries=(api-gateway user-service import-worker export-worker topics)

cargo build --release --locked -p api-gateway -p user-service -p import-worker -p export-worker -p platform --bins
mkdir -p "$out"
for bin in "${binaries[@]}"; do
  cp "target/release/$bin" "$out/"
done
echo "build-release: ${binaries[*]} -> $out" >&2
