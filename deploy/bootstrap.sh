#!/usr/bin/env bash
# Installs what building, running and testing this project needs, from the project's own files:
# Debian packages (deploy/apt-build.txt, deploy/apt-packages.txt), Python-distributed tools
# (deploy/requirements-dev.txt, including `just`), npm-distributed tools (deploy/package.json:
# jscpd, for `just lint`) and the Kafka jars from Maven Central.
# Idempotent and quick when everything is already there. Needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "bootstrap: $*" >&2; }
sudo=""
[[ $(id -u) == 0 ]] || sudo="sudo"

mapfile -t wanted < <(sed -e 's/#.*//' -e '/^\s*$/d' deploy/apt-build.txt deploy/apt-packages.txt)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
# python3-pip is only needed when no pip comes with the Python on PATH (pyenv, venv).
if python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip/}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]} > 0)); then
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "installing Python-distributed tools (deploy/requirements-dev.txt)"
python3 -m pip install -q --disable-pip-version-check -r deploy/requirements-dev.txt 2>&1 |
  grep -v 'Running pip as the .root. user' >&2 || true
user_bin="$(python3 -m site --user-base)/bin"
if ! command -v just >/dev/null; then
  say "just was installed into $user_bin: add it to PATH (export PATH=\"$user_bin:\$PATH\")"
fi

if ! command -v npm >/dev/null; then
  say "installing Debian's npm (no Node.js on this machine)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
say "installing npm-distributed tools (deploy/package.json)"
npm install --prefix deploy --no-audit --no-fund --loglevel=error 2>&1 | grep -v 'Unknown user config' >&2 || true
[[ -x deploy/node_modules/.bin/jscpd ]] || { say "jscpd did not install (deploy/package.json)"; exit 1; }

command -v cargo >/dev/null || { say "cargo not found: install Rust (https://rustup.rs) first"; exit 1; }
for tool in rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null || say "warning: $tool not found (rustup component add ${tool#cargo-})"
done

deploy/kafka/kafka.sh fetch
say "ready: $(just --version 2>/dev/null || echo 'just (not on PATH)'), $(cargo --version), $(java -version 2>&1 | head -1)"
