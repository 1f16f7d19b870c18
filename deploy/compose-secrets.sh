#!/usr/bin/env bash
# Makes, once, the secrets docker-compose.yml reads (none is built into the repository):
#   .local/dev/jwt-secret        the gateway's HS256 secret; `just token <role>` signs with it
#   .local/compose/kafka-ui.env  kafka-ui's login: user admin, a random password
# `just up` and `just compose-check` run it; it never replaces a secret that exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 077

random() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

mkdir -p .local/dev .local/compose
[[ -s .local/dev/jwt-secret ]] || random > .local/dev/jwt-secret
if [[ ! -s .local/compose/kafka-ui.env ]]; then
  printf 'AUTH_TYPE=LOGIN_FORM\nSPRING_SECURITY_USER_NAME=admin\nSPRING_SECURITY_USER_PASSWORD=%s\n' "$(random)" \
    > .local/compose/kafka-ui.env
  echo "compose-secrets: kafka-ui login is admin with the password in .local/compose/kafka-ui.env" >&2
fi
